"""How images are made: the Renderer protocol and its implementations.

base              RenderRequest, RenderedImage, StepHook and the Renderer protocol
diffusers         Stable Diffusion through diffusers (needs the diffusers extra)
diffusers_loader  loads the pipeline once per process
diffusers_options scheduler, attention, memory layout, fused QKV, TF32, torch.compile
test_pattern      a labelled test pattern, no model (demos, tests)
"""

__all__ = [
    "base",
    "diffusers",
    "diffusers_loader",
    "diffusers_options",
    "test_pattern",
]
