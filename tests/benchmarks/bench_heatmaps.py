"""Keypoint heatmaps rendered in windows (+-truncate sigma, the default) against the whole-grid
rendering, through what the keypoints / openpose / alphapose / mediapipe backends run
(``render_batches``: float maps, then uint8), and the largest difference between the two.

Random keypoints over a 320 x 240 source, 18 joints, all present; sigma 0.6 output pixels; one
thread; interleaved rounds, medians.

    .venv/bin/python tests/benchmarks/bench_heatmaps.py [--frames 128] [--rounds 7]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from jmrn.pose.keypoints import TRUNCATE, render_batches, render_heatmaps


def per_frame_ms(kp: np.ndarray, score: np.ndarray, out_hw: tuple[int, int], sigma: float,
                 truncate: float | None) -> float:
    """Milliseconds per frame of rendering the video into uint8 batches of 32 frames."""
    t0 = time.perf_counter()
    for _ in render_batches(kp, score, (240, 320), out_hw, sigma, 32, truncate):
        pass
    return (time.perf_counter() - t0) * 1e3 / kp.shape[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--sigma", type=float, default=0.6)
    parser.add_argument("--truncate", type=float, default=TRUNCATE)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    bound = np.exp(-args.truncate**2 / 2)
    print(f"{args.frames} frames x 18 joints, sigma {args.sigma}, window +-{args.truncate} sigma "
          f"(bound score * {bound:.4f}), 1 thread, median of {args.rounds} interleaved rounds")
    print(f"{'output':<8}{'people':>7}{'whole grid ms/frame':>21}{'windowed ms/frame':>19}"
          f"{'speed-up':>10}{'max |diff|':>12}{'uint8 levels':>14}")
    for out_hw in ((32, 43), (64, 86)):
        for people in (1, 2):
            kp = rng.uniform(0, (320, 240), (people, args.frames, 18, 2)).astype(np.float32)
            score = rng.uniform(0.05, 1, (people, args.frames, 18)).astype(np.float32)
            times: dict[str, list[float]] = {"whole": [], "windowed": []}
            per_frame_ms(kp, score, out_hw, args.sigma, args.truncate)  # warm-up
            for _ in range(args.rounds):
                times["whole"].append(per_frame_ms(kp, score, out_hw, args.sigma, None))
                times["windowed"].append(per_frame_ms(kp, score, out_hw, args.sigma, args.truncate))
            whole, windowed = (statistics.median(times[k]) for k in ("whole", "windowed"))
            a = render_heatmaps(kp, score, (240, 320), out_hw, args.sigma, None)
            b = render_heatmaps(kp, score, (240, 320), out_hw, args.sigma, args.truncate)
            levels = np.abs(np.rint(a * 255).astype(int) - np.rint(b * 255).astype(int)).max()
            print(f"{out_hw[0]}x{out_hw[1]:<5}{people:>7}{whole:>21.3f}{windowed:>19.3f}"
                  f"{whole / windowed:>9.1f}x{np.abs(a - b).max():>12.4f}{levels:>14}", flush=True)


if __name__ == "__main__":
    main()
