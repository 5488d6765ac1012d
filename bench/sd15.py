"""The Stable Diffusion 1.5 architecture built in code from its published component
configs (stable-diffusion-v1-5's unet/, vae/, text_encoder/ and scheduler/ config.json),
with random weights: what a GPU spends per image does not depend on the weights, and
no machine here reaches a model hub. `tiny=True` gives the same classes at a size the
CPU renders in a second (the test suite's tiny pipeline)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

UNET: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": (320, 640, 1280, 1280),
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": (
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ),
}
VAE: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "scaling_factor": 0.18215,
}
TEXT: dict[str, Any] = {  # CLIP ViT-L/14's text tower
    "hidden_act": "quick_gelu",
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
    "projection_dim": 768,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 1,
}
SCHEDULER: dict[str, Any] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
    "prediction_type": "epsilon",
    "clip_sample": False,
    "set_alpha_to_one": False,
}
TINY_UNET: dict[str, Any] = {
    "block_out_channels": (32, 64),
    "layers_per_block": 1,
    "sample_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
    "cross_attention_dim": 32,
    "norm_num_groups": 32,
}
TINY_VAE: dict[str, Any] = {
    "block_out_channels": (32, 64),
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D", "DownEncoderBlock2D"),
    "up_block_types": ("UpDecoderBlock2D", "UpDecoderBlock2D"),
    "latent_channels": 4,
    "norm_num_groups": 32,
}
TINY_TEXT: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "max_position_embeddings": 77,
    "vocab_size": 1000,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 1,
}


def tokenizer(folder: Path) -> Any:
    """A byte-level CLIP tokenizer without merges (every character a token): the real
    vocabulary is a download; the text encoder's cost does not depend on it."""
    from transformers import CLIPTokenizer

    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    characters = printable + [256 + i for i in range(256 - len(printable))]
    vocab = ["<|startoftext|>", "<|endoftext|>"]
    vocab += [chr(c) for c in characters] + [f"{chr(c)}</w>" for c in characters]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(
        vocab_file=str(folder / "vocab.json"),
        merges_file=str(folder / "merges.txt"),
        model_max_length=77,
    )


def pipeline(folder: Path, device: str, dtype: torch.dtype, tiny: bool = False) -> Any:
    """The SD 1.5 text-to-image pipeline with random weights, on `device` in `dtype`."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(**(TINY_UNET if tiny else UNET))
        vae = AutoencoderKL(**(TINY_VAE if tiny else VAE))
        text = CLIPTextModel(CLIPTextConfig(**(TINY_TEXT if tiny else TEXT)))
    made = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tokenizer(folder / "tokenizer"),
        unet=unet,
        scheduler=DDIMScheduler(**SCHEDULER),  # replaced as the worker's settings say
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    made.to(device=device, dtype=dtype)
    made.set_progress_bar_config(disable=True)
    return made
