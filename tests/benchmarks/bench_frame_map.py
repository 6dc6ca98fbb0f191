"""Frame-mAP (AVA's evaluation) at the size of AVA's validation set: the vectorised matching
against the one-detection-at-a-time reference, measured in the same run.

Generates ``--keyframes`` keyframes with ``--people`` person boxes each on average, each box
labelled with 1-3 of ``--classes`` actions (skewed, as AVA's are); the detections are the boxes
jittered plus one spurious box per keyframe, scored for every class (what export and fusion
evaluate: boxes x classes rows). Prints seconds per evaluation and the speed-up, and checks
that both give the same mAP.

    .venv/bin/python tests/benchmarks/bench_frame_map.py [--keyframes 25000] [--classes 60]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from jmrn import frame_map as fm


def generate(keyframes: int, people: float, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    per_key = rng.poisson(people - 1, keyframes) + 1
    n = int(per_key.sum())
    video = np.repeat([f"movie{k // 900:03d}" for k in range(keyframes)], per_key)
    stamp = np.repeat(902 + np.arange(keyframes) % 900, per_key)
    x1, y1 = rng.uniform(0, 0.6, n), rng.uniform(0, 0.3, n)
    boxes = np.stack([x1, y1, x1 + rng.uniform(0.1, 0.4, n), y1 + rng.uniform(0.3, 0.7, n)], 1)
    popularity = 1 / np.arange(1, classes + 1)  # a few frequent actions, a long tail
    labels = [rng.choice(classes, rng.integers(1, 4), replace=False, p=popularity / popularity.sum())
              for _ in range(n)]
    truth = pd.DataFrame({"video": np.repeat(video, [len(x) for x in labels]),
                          "timestamp": np.repeat(stamp, [len(x) for x in labels]),
                          **{c: np.repeat(boxes[:, i], [len(x) for x in labels])
                             for i, c in enumerate(fm.BOX)},
                          "class": np.concatenate(labels)})
    jitter = boxes + rng.normal(0, 0.02, boxes.shape)
    spurious_at = np.cumsum(per_key) - 1  # one extra box on each keyframe
    det_boxes = pd.DataFrame({"video": np.r_[video, video[spurious_at]],
                              "timestamp": np.r_[stamp, stamp[spurious_at]],
                              **{c: np.r_[jitter[:, i], boxes[spurious_at, i][::-1]]
                                 for i, c in enumerate(fm.BOX)}})
    scores = rng.random((len(det_boxes), classes))
    return fm.detections_from_scores(det_boxes, scores), truth, n


def timed(fn, *args) -> tuple[float, float]:
    t0 = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keyframes", type=int, default=25000)
    parser.add_argument("--people", type=float, default=2.3, help="person boxes per keyframe")
    parser.add_argument("--classes", type=int, default=60)
    args = parser.parse_args()
    detections, truth, n_boxes = generate(args.keyframes, args.people, args.classes)
    print(f"{args.keyframes} keyframes, {n_boxes} ground-truth boxes ({len(truth)} labels), "
          f"{len(detections)} detection rows ({args.classes} classes)")
    vectorised, t_vec = timed(fm.frame_map, detections, truth, args.classes)
    fast = fm.class_true_positives
    fm.class_true_positives = fm.class_true_positives_reference
    try:
        reference, t_ref = timed(fm.frame_map, detections, truth, args.classes)
    finally:
        fm.class_true_positives = fast
    print(f"{'matching':<34}{'seconds':>10}{'frame-mAP':>12}{'speed-up':>10}")
    print(f"{'one detection at a time (reference)':<34}{t_ref:>10.2f}{reference:>12.4f}{1:>9.1f}x")
    print(f"{'vectorised (jmrn.frame_map)':<34}{t_vec:>10.2f}{vectorised:>12.4f}{t_ref / t_vec:>9.1f}x")
    if vectorised != reference:
        raise SystemExit(f"the two matchings disagree: {vectorised} vs {reference}")


if __name__ == "__main__":
    main()
