"""How images are made: the Renderer protocol and its implementations.

base              RenderRequest and the Renderer protocol
diffusers         Stable Diffusion through diffusers (needs the diffusers extra)
diffusers_loader  loads the pipeline once per process
test_pattern      a labelled test pattern, no model (demos, tests)
"""

__all__ = [
    "base",
    "diffusers",
    "diffusers_loader",
    "test_pattern",
]
