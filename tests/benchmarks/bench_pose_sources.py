"""Milliseconds per frame of each pose source on this CPU, through the backend's ``heatmaps``
(what the pose stage runs), output 18 x 64 x 86; openpifpaf is bench_pose.py's.

- mediapipe: the real 320 x 240 clip ../shared/data/real_clips/test.avi (one person)
- markers: a generated demo video (320 x 240)
- openpose / alphapose: generated files in their published formats, 2 people per frame
- openpose_heatmaps: generated --write_heatmaps PNGs (BODY_25 parts + background + PAFs,
  78 channels at 46 x 82 side by side)

    .venv/bin/python tests/benchmarks/bench_pose_sources.py [--frames 120]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from jmrn.pose.base import make_backend
from jmrn.video import probe

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO.parent / "shared" / "data" / "real_clips" / "test.avi"
OUT = (64, 86)


def timed(backend, video: dict) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = sum(len(b) for b in backend.heatmaps(video))
    return (time.perf_counter() - t0) * 1000 / n, n


def pose_files(root: Path, frames: int, rng: np.random.Generator) -> None:
    (root / "openpose" / "v").mkdir(parents=True)
    dets = []
    for t in range(frames):
        people = [rng.uniform(0, 300, (25, 3)).round(2) for _ in range(2)]
        (root / "openpose" / "v" / f"v_{t:012d}_keypoints.json").write_text(json.dumps(
            {"people": [{"pose_keypoints_2d": p.ravel().tolist()} for p in people]}))
        dets += [{"image_id": f"{t}.jpg", "keypoints": rng.uniform(0, 300, (26, 3)).ravel().tolist()}
                 for _ in range(2)]
    (root / "alphapose").mkdir()
    (root / "alphapose" / "v.json").write_text(json.dumps(dets))
    (root / "openpose_heatmaps" / "v").mkdir(parents=True)
    for t in range(frames):
        image = rng.integers(0, 256, (46, 82 * 78), dtype=np.uint8)
        cv2.imwrite(str(root / "openpose_heatmaps" / "v" / f"v_{t:012d}_pose_heatmaps.png"), image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="jmrn-sources-") as tmp:
        root = Path(tmp)
        from jmrn.datasets import demo

        videos = demo.generate(root / "demo", classes=2, videos_per_class=1, subjects=1,
                               min_frames=args.frames, max_frames=args.frames)
        info = probe(videos[0])
        rows.append(("markers", "demo video 320 x 240",
                     timed(make_backend("markers", *OUT), {"path": str(videos[0])})))
        pose_files(root, args.frames, rng)
        files_row = {"video_id": "v", "frames": args.frames, "width": info.width, "height": info.height}
        for tool in ("openpose", "alphapose"):
            backend = make_backend(tool, *OUT, {"root": str(root / tool)})
            rows.append((tool, f"{tool} files, 2 people ({'BODY_25' if tool == 'openpose' else 'Halpe-26'})",
                         timed(backend, files_row)))
        backend = make_backend("openpose_heatmaps", *OUT, {"root": str(root / "openpose_heatmaps"),
                                                           "channels": 78})
        rows.append(("openpose_heatmaps", "PNG, 78 channels of 46 x 82", timed(backend, files_row)))
        try:
            backend = make_backend("mediapipe", *OUT)
        except ImportError as exc:
            print(f"mediapipe: not measured ({exc})", file=sys.stderr)
        else:
            clip = probe(CLIP)
            video = {"path": str(CLIP), "clip_frames": f"0:{min(args.frames, clip.frames)}:1"}
            rows.append(("mediapipe", f"real clip {clip.width} x {clip.height}", timed(backend, video)))
    print(f"{'backend':<19}{'input':<44}{'frames':>8}{'ms/frame':>10}")
    for name, what, (ms, n) in rows:
        print(f"{name:<19}{what:<44}{n:>8}{ms:>10.2f}")


if __name__ == "__main__":
    main()
