"""`python -m bench.png`: PNG size and encode time per zlib level, for images of
photographic entropy (bench/entropy.py), to choose SDQ_PNG_COMPRESS_LEVEL.

Prints, per level, the mean file size and the median encode time at three
smoothness levels of content (alpha 1.3: busy, detailed; 1.6: smooth), and how
much of its speed a Python thread keeps while another encodes (Pillow releases
the GIL while zlib compresses, so the worker's encode pool runs beside its
event loop and the GPU).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from bench.entropy import natural

CONTENT = (1.3, 1.5, 1.6)


def encode_s(image: Image.Image, level: int) -> tuple[int, float]:
    out = io.BytesIO()
    started = time.perf_counter()
    image.save(out, format="PNG", compress_level=level)
    return out.tell(), time.perf_counter() - started


def measure(width: int, height: int, levels: list[int], images: int, repeat: int) -> list[str]:
    rows = [f"{width}x{height}, {images} image(s) per content, median of {repeat}"]
    rows.append(f"{'level':>5} " + " ".join(f"{f'alpha {a}: kB':>14} {'ms':>5}" for a in CONTENT))
    pictures = {
        a: [natural(width, height, seed, alpha=a) for seed in range(images)] for a in CONTENT
    }
    for level in levels:
        cells = []
        for alpha in CONTENT:
            sizes, times = [], []
            for picture in pictures[alpha]:
                runs = [encode_s(picture, level) for _ in range(repeat)]
                sizes.append(runs[0][0])
                times.append(statistics.median(t for _, t in runs))
            cells.append(
                f"{statistics.mean(sizes) / 1000:>14.0f} {statistics.mean(times) * 1000:>5.0f}"
            )
        rows.append(f"{level:>5} " + " ".join(cells))
    return rows


def gil_free(width: int, height: int, level: int) -> str:
    """How much of its speed a pure-Python thread (the worker's event loop) keeps
    while another thread encodes: near 100 % when the GIL is released."""

    def count(seconds: float) -> int:
        started, n = time.perf_counter(), 0
        while time.perf_counter() - started < seconds:
            n += 1
        return n

    picture = natural(width, height, 0)
    alone = count(0.5)
    with ThreadPoolExecutor(1) as pool:
        encoding = pool.submit(lambda: [encode_s(picture, level) for _ in range(20)])
        beside = count(0.5)
        encoding.result()
    return (
        f"a Python thread beside one encoding at level {level} keeps "
        f"{100 * beside / alone:.0f} % of its speed (the GIL is released while zlib runs)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.png", description=__doc__)
    parser.add_argument("--size", default="768x576")
    parser.add_argument("--levels", default="0,1,2,3,4,5,6,9")
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    width, _, height = args.size.partition("x")
    levels = [int(level) for level in args.levels.split(",")]
    for row in measure(int(width), int(height), levels, args.images, args.repeat):
        print(row)
    print(gil_free(int(width), int(height), 4))
    return 0


if __name__ == "__main__":
    sys.exit(main())
