"""Builds a tiny, randomly initialised Stable Diffusion pipeline and saves it to a folder.

The diffusers renderer is tested by loading this folder through the same code
that loads a real model in production: same classes, same file layout
(model_index.json and one subfolder per component), only far smaller, and
built here from configs because the machine has no internet. Its images are
noise, but their size, count, format and seeding behave as a real model's do.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
)

_SPECIAL = ["<|startoftext|>", "<|endoftext|>"]


def _byte_level_characters() -> list[str]:
    """The 256 characters GPT-2-style byte-level BPE maps the bytes to."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    characters = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            characters.append(256 + extra)
            extra += 1
    return [chr(c) for c in characters]


def _tokenizer(folder: Path) -> CLIPTokenizer:
    """A CLIP tokenizer with no merges: every character is a token."""
    characters = _byte_level_characters()
    vocab = [*_SPECIAL, *characters, *(f"{c}</w>" for c in characters)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(
        json.dumps({token: i for i, token in enumerate(vocab)}), encoding="utf-8"
    )
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return CLIPTokenizer(
        vocab_file=str(folder / "vocab.json"),
        merges_file=str(folder / "merges.txt"),
        model_max_length=77,  # the default is huge and breaks truncation
    )


def _flag_everything_checker() -> tuple[StableDiffusionSafetyChecker, CLIPImageProcessor]:
    """A tiny safety checker whose thresholds are below any score: it flags every image."""
    tiny = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1}
    config = CLIPConfig(
        text_config={**tiny, "num_attention_heads": 4},
        vision_config={**tiny, "num_attention_heads": 4, "image_size": 32, "patch_size": 4},
        projection_dim=32,
    )
    checker = StableDiffusionSafetyChecker(config)
    with torch.no_grad():
        checker.concept_embeds_weights.fill_(-1.0)  # cosine similarity is always above -1
    features = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return checker, features


def build_tiny_pipeline(folder: Path, *, flagging_safety_checker: bool = False) -> Path:
    """Saves a tiny random pipeline (a few MB) under `folder` and returns its path.

    flagging_safety_checker: include a safety checker that flags every image,
    as a real model's checker flags what it judges unsafe.
    """
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=32,
    )
    tokenizer = _tokenizer(folder / "tokenizer-source")
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=max(1000, len(tokenizer)),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    checker, features = _flag_everything_checker() if flagging_safety_checker else (None, None)
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDIMScheduler(  # Stable Diffusion 1.x's schedule
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            clip_sample=False,
            set_alpha_to_one=False,
            steps_offset=1,
        ),
        safety_checker=checker,
        feature_extractor=features,
        requires_safety_checker=flagging_safety_checker,
    )
    model = folder / "model"
    pipeline.save_pretrained(model)
    return model
