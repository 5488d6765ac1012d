"""Images of photographic entropy, made without a model: what PNG encoding costs for
real Stable Diffusion output.

Natural images have a power spectrum falling with frequency (amplitude about
1/f^alpha, alpha near 1 to 1.5), correlated colour channels and fine grain.
This draws such noise per channel (an inverse FFT of shaped white noise), mixes
luminance and colour, and adds grain. At alpha 1.3 and grain 2 a 768x576 image
makes a PNG of about 0.9 MB in about 70 ms at zlib level 6 on these machines,
as FIELD-NOTES.md measured for photographic content (0.7-1.2 MB, about 75 ms);
smoother images (alpha 1.5-1.6) stand for flatter renders. A flat test pattern
encodes an order of magnitude faster and would flatter the worker.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

ALPHA, GRAIN = 1.3, 2.0


def natural(
    width: int, height: int, seed: int, alpha: float = ALPHA, grain: float = GRAIN
) -> Image.Image:
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    frequency = np.sqrt(fx**2 + fy**2)
    frequency[0, 0] = 1.0
    shape = 1.0 / frequency**alpha
    channels = []
    for _ in range(3):
        field = np.fft.irfft2(
            np.fft.rfft2(rng.standard_normal((height, width))) * shape, s=(height, width)
        )
        channels.append((field - field.mean()) / field.std())
    luma, red_green, blue_yellow = channels
    rgb = np.stack(
        [
            luma + 0.35 * red_green,
            luma - 0.2 * red_green + 0.2 * blue_yellow,
            luma - 0.35 * blue_yellow,
        ],
        axis=-1,
    )
    rgb = 128 + 40 * rgb + rng.normal(0, grain, rgb.shape)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
