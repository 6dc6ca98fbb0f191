"""Per-person PoTion (AVA) at config/ava.yaml's sizes: cost per person instance and per movie.

Writes a heatmap shard of one video (``--seconds`` of keyframes at 10 frames/s, whole-frame
heatmaps 18 x 128 x 171, sparse blobs), with ``--people`` boxes per keyframe, then times
``jmrn.person_potion`` over it (person crop 64 x 64, clip +-1 s, context channels on and off),
and, as the baseline measured in the same run, the same number of whole-frame PoTion maps of
21-frame clips (no crop). Prints instances/s, the ratio, and the time for one AVA movie
(897 keyframes) at the given people per keyframe.

    .venv/bin/python tests/benchmarks/bench_person_potion.py [--seconds 30] [--people 3]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from jmrn.datasets.ava import clip_frames, instance_id
from jmrn.person_potion import plan_source, source_maps
from jmrn.potion import PotionAccumulator
from jmrn.store import HeatmapShard, write_heatmap_shard
from jmrn.tables import merge_frame_ranges

FPS, RATE, SHAPE = 30.0, 10, (18, 128, 171)
AVA_KEYFRAMES = 897


def heatmaps(n: int, rng: np.random.Generator) -> np.ndarray:
    frames = np.zeros((n, *SHAPE), np.uint8)
    ys, xs = rng.integers(0, SHAPE[1] - 6, (n, SHAPE[0])), rng.integers(0, SHAPE[2] - 6, (n, SHAPE[0]))
    for t in range(n):
        for j in range(SHAPE[0]):
            frames[t, j, ys[t, j]:ys[t, j] + 6, xs[t, j]:xs[t, j] + 6] = 200
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30, help="keyframes of the test video")
    parser.add_argument("--people", type=int, default=3, help="boxes per keyframe")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    keyframes = list(range(2, 2 + args.seconds))
    n_frames = int((keyframes[-1] + 2) * FPS)
    rows = []
    for ts in keyframes:
        for k in range(args.people):
            x1 = (k + 0.1) / args.people
            rows.append({"video_id": instance_id("movie", ts, k), "source": "movie", "timestamp": ts,
                         "x1": x1, "y1": 0.2, "x2": x1 + 0.8 / args.people, "y2": 0.95,
                         "width": 640, "height": 360, "status": "ok",
                         "clip_frames": clip_frames(ts, FPS, 1.0, RATE, n_frames)})
    table = pd.DataFrame(rows)
    clips = merge_frame_ranges(table["clip_frames"].tolist())
    stored = heatmaps(sum(len(range(*map(int, c.split(":")))) for c in clips.split(";")), rng)
    with tempfile.TemporaryDirectory(prefix="jmrn-person-") as tmp:
        path = Path(tmp) / "shard.zarr"
        attrs = {"backend": "bench", "height": SHAPE[1], "width": SHAPE[2], "joints": [str(j) for j in range(18)],
                 "config_hash": "-"}
        with write_heatmap_shard(path, attrs, SHAPE) as writer:
            writer.add("movie", iter(np.array_split(stored, max(1, len(stored) // 32))), len(stored), SHAPE)
            writer.frame_numbers["movie"] = clips
        shard = HeatmapShard(path)
        results = {}
        for context in (False, True):
            potion = {"channels": 3, "normalisation": "area", "extra_channels": [],
                      "person": {"height": 64, "width": 64, "context": context, "context_scale": 2.0}}
            t0 = time.perf_counter()
            plan = plan_source(shard, "movie", table, potion)
            n = sum(1 for _ in source_maps(shard, "movie", plan, potion))
            results[f"per person, context {'on' if context else 'off'}"] = (n, time.perf_counter() - t0)
        # baseline: whole-frame PoTion of each instance's clip (the per-video path's cost per map)
        clip = len(range(*map(int, rows[0]["clip_frames"].split(":"))))
        t0 = time.perf_counter()
        frames = shard.read("movie")
        for i in range(len(rows)):
            start = (i // args.people) * RATE
            acc = PotionAccumulator(clip, 3, SHAPE)
            acc.update(frames[start:start + clip])
            acc.result()
        results["whole frame, no crop (baseline)"] = (len(rows), time.perf_counter() - t0)
    base = results["whole frame, no crop (baseline)"]
    base_rate = base[0] / base[1]
    print(f"{len(rows)} instances ({args.people} per keyframe, clips of {clip} frames), heatmaps "
          f"{'x'.join(map(str, SHAPE))}, person maps 64 x 64")
    print(f"{'path':<36}{'instances/s':>12}{'ratio':>8}{'one AVA movie':>16}")
    for name, (n, seconds) in results.items():
        rate = n / seconds
        movie = AVA_KEYFRAMES * args.people / rate
        print(f"{name:<36}{rate:>12.1f}{rate / base_rate:>8.2f}{movie / 60:>13.1f} min")


if __name__ == "__main__":
    main()
