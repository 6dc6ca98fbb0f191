"""Benchmark of the streaming PoTion aggregator (issue: PoTion aggregation, fast).

Compares, in one run on the same T x J x H x W uint8 video: a straightforward per-frame Python
loop, an all-in-memory np.einsum, and jmrn's streaming aggregator; and the aggregator's input
bandwidth with np.copyto of the same bytes (one read and one write of the video: the
memory-bandwidth bound); "vs copy" is the aggregator's speed as a fraction of that copy pass.

    .venv/bin/python tests/benchmarks/bench_potion.py [--frames 60,300] [--repeats 7]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from jmrn.potion import PotionAccumulator, hat_weights, relative_time


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def per_frame_loop(h: np.ndarray, channels: int) -> np.ndarray:
    """The obvious implementation: one weighted add per frame and channel."""
    w = hat_weights(relative_time(len(h)), channels)
    u = np.zeros((channels, *h.shape[1:]), np.float32)
    for t in range(len(h)):
        frame = h[t].astype(np.float32) / 255
        for c in range(channels):
            u[c] += w[t, c] * frame
    return u


def all_in_memory_einsum(h: np.ndarray, channels: int) -> np.ndarray:
    w = hat_weights(relative_time(len(h)), channels).astype(np.float32)
    return np.einsum("tc,tjhw->cjhw", w, h.astype(np.float32) / 255)


def streaming(h: np.ndarray, channels: int, batch: int) -> np.ndarray:
    acc = PotionAccumulator(len(h), channels, h.shape[1:])
    for start in range(0, len(h), batch):
        acc.update(h[start:start + batch])
    return acc.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", default="60,300", help="comma-separated video lengths T")
    parser.add_argument("--joints", type=int, default=18)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=86)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32, help="frames per streamed batch (a Zarr chunk)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    for frames in (int(t) for t in args.frames.split(",")):
        measure(args, frames)


def measure(args: argparse.Namespace, frames: int) -> None:
    """Print the table for one video length."""
    rng = np.random.default_rng(0)
    h = rng.integers(0, 256, (frames, args.joints, args.height, args.width), dtype=np.uint8)
    mb = h.nbytes / 1e6
    dst = np.empty_like(h)
    t_copy = best_of(lambda: np.copyto(dst, h), args.repeats)
    t_loop = best_of(lambda: per_frame_loop(h, args.channels), max(1, args.repeats // 3))
    t_einsum = best_of(lambda: all_in_memory_einsum(h, args.channels), max(1, args.repeats // 3))
    streaming(h[:8], args.channels, args.batch)  # compile (or load) the kernel outside the timing
    t_stream = best_of(lambda: streaming(h, args.channels, args.batch), args.repeats)
    ref = per_frame_loop(h, args.channels)
    got = streaming(h, args.channels, args.batch)
    # result() area-normalises; undo it to compare raw weighted sums with the loop.
    wsum = hat_weights(relative_time(len(h)), args.channels).sum(0)
    err = np.abs(got.transpose(1, 0, 2, 3) * wsum[:, None, None, None] - ref).max()
    print(f"video: T={frames} J={args.joints} {args.height}x{args.width} uint8 = {mb:.1f} MB, "
          f"C={args.channels}, batch={args.batch}, 1 thread; max |stream - loop| = {err:.2e}")
    print(f"{'method':<28}{'ms':>9}{'frames/s':>12}{'GB/s':>8}{'vs loop':>9}{'vs copy':>9}")
    for name, t in (("np.copyto (bandwidth bound)", t_copy), ("per-frame Python loop", t_loop),
                    ("all-in-memory np.einsum", t_einsum), ("jmrn streaming", t_stream)):
        print(f"{name:<28}{t * 1e3:>9.2f}{frames / t:>12.0f}{mb / 1e3 / t:>8.2f}"
              f"{t_loop / t:>8.1f}x{t_copy / t:>8.0%}")
    print(f"targets: streaming >= 20x the loop (got {t_loop / t_stream:.1f}x); "
          f">= 75% of the copy pass at T = 300 (got {t_copy / t_stream:.0%} at T = {frames})\n")


if __name__ == "__main__":
    main()
