"""Pose-stage throughput: our openpifpaf stage vs openpifpaf's own video tool, same network.

In one run on the same video: (1) decode-only frames/s of OpenCV vs ``ffmpeg -f null`` (the
decoding bound); (2) frames/s of our pose stage (decode + network + heatmaps written to Zarr,
no pose decoding) vs ``python -m openpifpaf.video`` (decode + network + pose decoding + JSON).
Without internet no pretrained checkpoint exists here, so both use the same network with
random weights saved as a local checkpoint; the CIF confidence bias is set to -6 so that, as
with a trained network on mostly-background frames, few seeds pass openpifpaf's threshold.

    .venv/bin/python tests/benchmarks/bench_pose.py [--video PATH] [--frames 60] [--device cpu]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def make_video(path: Path, frames: int) -> None:
    import numpy as np

    from jmrn.datasets import demo

    rng = np.random.default_rng(0)
    joints = demo.skeleton_3d("run", frames, demo.make_subject(rng), rng)
    xy, depth, size = demo.project(joints, rng)
    demo.render_video(path, xy, depth, size, rng, noise_px=0.5, drop_prob=0.0)


def make_checkpoint(path: Path) -> None:
    from jmrn.pose.openpifpaf_backend import build_network

    torch.manual_seed(0)
    net = build_network(None)
    for head in net.head_nets:
        if head.meta.name == "cif":  # confidence component of every field -> low prior
            # conv channels: (field, component, pixel-shuffle sub-position)
            head.conv.bias.data.view(head.meta.n_fields, head.n_components, -1)[:, 1] = -6.0
    torch.save({"model": net, "epoch": 0}, path)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", help="video to use (default: a generated 320x240 clip)")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_pose_"))
    try:
        video = Path(args.video) if args.video else work / "clip.avi"
        if not args.video:
            make_video(video, args.frames)
        checkpoint = work / "random-shufflenetv2k16.pkl"
        make_checkpoint(checkpoint)
        from jmrn.pose.openpifpaf_backend import OpenPifPafBackend
        from jmrn.store import write_heatmap_shard
        from jmrn.video import iter_frame_batches, probe

        n = probe(video).frames
        t_cv = timed(lambda: sum(len(b) for b in iter_frame_batches(video, 16)))
        ffmpeg = shutil.which("ffmpeg")
        t_ff = (timed(lambda: subprocess.run([ffmpeg, "-v", "error", "-i", str(video), "-f", "null", "-"],
                                             check=True)) if ffmpeg else float("nan"))
        long_edge = max(probe(video).width, probe(video).height)  # same input size for both
        backend = OpenPifPafBackend(64, 86, batch_size=args.batch, checkpoint=str(checkpoint),
                                    device=args.device, long_edge=long_edge)

        def ours() -> None:
            with write_heatmap_shard(work / "shard.zarr", {"backend": "openpifpaf"}) as w:
                w.add("clip", backend.heatmaps({"path": str(video)}), n, (18, 64, 86))

        ours()  # warm-up
        t_ours = timed(ours)
        env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
        cmd = [sys.executable, "-m", "openpifpaf.video", "--source", str(video), "--checkpoint",
               str(checkpoint), "--json-output", str(work / "out.json"), "--batch-size", str(args.batch),
               "--long-edge", str(long_edge)]
        if args.device == "cpu":
            cmd.append("--disable-cuda")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        t_theirs = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"openpifpaf.video failed:\n{proc.stderr[-3000:]}")
        t_start = timed(lambda: subprocess.run([sys.executable, "-c", "import openpifpaf"], env=env))
        t_theirs_net = t_theirs - t_start  # without its Python + import start-up
        print(f"video {video.name}: {n} frames; device {args.device}; batch {args.batch}")
        print(f"{'what':<44}{'s':>8}{'frames/s':>10}")
        rows = [("decode: OpenCV (ours, reader thread)", t_cv), ("decode: ffmpeg -f null", t_ff),
                ("pose stage: jmrn (network + Zarr)", t_ours),
                ("openpifpaf.video (network + decoding)", t_theirs_net)]
        for name, t in rows:
            print(f"{name:<44}{t:>8.2f}{n / t:>10.1f}")
        print(f"jmrn pose stage vs openpifpaf.video: {t_theirs_net / t_ours:.2f}x "
              f"(target >= 1.5x); OpenCV decode at {t_ff / t_cv:.0%} of ffmpeg's speed")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
