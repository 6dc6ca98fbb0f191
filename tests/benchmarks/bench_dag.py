"""DAG size and planning time for an HMDB51-size run (6,766 videos, 3 splits, 7 variants), or
for AVA v2.1 at full size (``--dataset ava``: 235 + 64 movies, 211 k training and 57 k val
boxes, config/paper.yaml + config/ava.yaml).

Writes a config and a fake manifest (paths need not exist for a dry run) in a temporary folder,
as the manifest job would leave it, and times `snakemake -n all` there.

    .venv/bin/python tests/benchmarks/bench_dag.py [--videos 6766] [--shards 100]
    .venv/bin/python tests/benchmarks/bench_dag.py --dataset ava
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]
VARIANTS = ["potion", "potion_deep", "jmrn", "jmrn_paa", "jmrn_paa_cl", "jmrn_nonsiamese",
            "jmrn_noreweight"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=6766)
    parser.add_argument("--classes", type=int, default=51)
    parser.add_argument("--shards", type=int, default=100)
    parser.add_argument("--dataset", choices=["hmdb51", "ava"], default="hmdb51")
    args = parser.parse_args()
    if args.dataset == "ava":
        return plan(*ava_run())
    work = Path(tempfile.mkdtemp(prefix="bench_dag_"))
    from snakemake.utils import update_config

    cfg: dict = {}
    for name in ("config.yaml", "demo.yaml"):  # as --configfile config/demo.yaml merges them
        update_config(cfg, yaml.safe_load((REPO / "config" / name).read_text()))
    cfg["dataset"] = {"name": "hmdb51", "adapter": "hmdb51", "video_root": "/data/hmdb51/videos",
                      "split_dir": "/data/hmdb51/splits", "splits": [1, 2, 3]}
    cfg["pose"]["shards"] = args.shards
    cfg["run_variants"] = VARIANTS
    cfg["fusion"] = {"potion+jmrn_paa_cl": ["potion", "jmrn_paa_cl"]}
    cfg["report"] = {"focus_variant": "jmrn_paa_cl"}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    rows = pd.DataFrame({"video_id": [f"video_{i:05d}" for i in range(args.videos)]})
    rows["path"] = "/data/hmdb51/videos/" + rows["video_id"] + ".avi"
    rows["label"] = rows.index % args.classes
    rows["label_name"] = "class_" + rows["label"].astype(str)
    for k in (1, 2, 3):
        rows[f"split{k}"] = ["train" if (i + k) % 10 < 7 else "test" for i in range(args.videos)]
    rows[["frames", "fps", "width", "height", "status"]] = [100, 30.0, 320, 240, "ok"]
    (work / "results" / "hmdb51").mkdir(parents=True)
    rows.to_csv(work / "results" / "hmdb51" / "manifest.csv", index=False)
    plan(work, f"{args.videos} videos, {args.shards} shards, 3 splits, {len(VARIANTS)} variants")


def plan(work: Path, what: str) -> None:
    """Time `snakemake -n all` in ``work`` and print the job counts."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
           str(work), "-n", "--quiet", "rules", "all", "--configfile", str(work / "config.yaml")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout + proc.stderr, flags=re.M))
    print(f"{what}: `snakemake -n` took {elapsed:.1f} s (Python start-up included)")
    print("jobs: " + ", ".join(f"{k} {v}" for k, v in jobs.items()))



def ava_run(train_videos: int = 235, val_videos: int = 64, train_boxes: int = 211_000,
            val_boxes: int = 57_000) -> tuple[Path, str]:
    """A folder with AVA v2.1's shape: config (paper.yaml + ava.yaml), the manifest of person
    boxes (keyframes 902..1798 s, boxes spread over the movies) and its ground truth."""
    import numpy as np

    from jmrn.datasets.ava import clip_frames, instance_id

    work = Path(tempfile.mkdtemp(prefix="bench_dag_ava_"))
    from snakemake.utils import update_config

    cfg: dict = {}
    for name in ("config.yaml", "paper.yaml", "ava.yaml"):  # as --configfile merges them
        update_config(cfg, yaml.safe_load((REPO / "config" / name).read_text()))
    cfg["dataset"].update(video_root=str(work / "videos"), annotation_dir=str(work / "annotations"))
    cfg["dataset"].pop("proposals")
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    rng = np.random.default_rng(0)
    classes = [f"action {i}" for i in range(60)]
    rows, truth = [], []
    for subset, n_videos, n_boxes in (("train", train_videos, train_boxes), ("test", val_videos, val_boxes)):
        videos = [f"{subset}{i:03d}_movie" for i in range(n_videos)]
        keys = sorted(zip(rng.integers(0, n_videos, n_boxes).tolist(),
                          rng.integers(902, 1799, n_boxes).tolist()))  # several boxes per keyframe
        count: dict[tuple, int] = {}
        for v, t in keys:
            k = count[(v, t)] = count.get((v, t), -1) + 1
            label = int(rng.integers(60))
            x1, y1 = rng.uniform(0, 0.6, 2)
            rows.append({"video_id": instance_id(videos[v], t, k), "path": f"/data/ava/{videos[v]}.mkv",
                         "labels": str(label), "label_names": classes[label], "split1": subset,
                         "frames": 54000, "fps": 30.0, "width": 640, "height": 360, "status": "ok",
                         "group": videos[v], "source": videos[v], "timestamp": t, "x1": x1, "y1": y1,
                         "x2": x1 + 0.3, "y2": y1 + 0.4, "score": 1.0,
                         "clip_frames": clip_frames(t, 30.0, 1.0, 10, 54000)})
            truth.append({"video": videos[v], "timestamp": t, "x1": x1, "y1": y1, "x2": x1 + 0.3,
                          "y2": y1 + 0.4, "class": label, "subset": subset})
    (work / "results" / "ava").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(work / "results" / "ava" / "manifest.csv", index=False)
    pd.DataFrame(truth).to_csv(work / "results" / "ava" / "ground_truth.csv", index=False)
    what = (f"AVA v2.1 shape: {train_videos} + {val_videos} movies, {len(rows):,} person boxes, "
            f"{cfg['pose']['shards']} pose shards, {len(cfg['run_variants'])} variants")
    return work, what

if __name__ == "__main__":
    main()
