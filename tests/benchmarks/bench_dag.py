"""DAG size and planning time for an HMDB51-size run (6,766 videos, 3 splits, 7 variants).

Writes a config and a fake manifest of 6,766 rows (paths need not exist for a dry run) in a
temporary folder and times `snakemake -n all` there.

    .venv/bin/python tests/benchmarks/bench_dag.py [--videos 6766] [--shards 100]
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
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_dag_"))
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
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
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
           str(work), "-n", "--quiet", "rules", "all", "--configfile", str(work / "config.yaml")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout + proc.stderr, flags=re.M))
    print(f"{args.videos} videos, {args.shards} shards, 3 splits, {len(VARIANTS)} variants: "
          f"`snakemake -n` took {elapsed:.1f} s (Python start-up included)")
    print("jobs: " + ", ".join(f"{k} {v}" for k, v in jobs.items()))


if __name__ == "__main__":
    main()
