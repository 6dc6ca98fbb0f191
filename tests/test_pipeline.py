"""Runs the real Snakemake DAG on a tiny demo config: outputs, caching and partial rebuilds."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from jmrn.store import HeatmapShard, PotionStore

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]

pytestmark = pytest.mark.slow


def tiny_config(base: Path) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["dataset"].update(video_root="results/demo/raw/videos", split_dir="results/demo/raw/splits",
                          splits=[1, 2])
    cfg["demo"].update(classes=4, videos_per_class=8, subjects=4, min_frames=12, max_frames=20)
    cfg["pose"].update(shards=2, height=16, width=21)
    cfg["train"].update(epochs=2, batch_size=8)
    cfg["model"]["width"] = 0.125
    return cfg


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
           "--cores", "2", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-6000:]}")
    return proc


# finished_run (conftest.py): the tiny demo DAG run once per session, shared with
# test_incremental.py, which copies it before changing anything.


def test_every_declared_output_is_well_formed(finished_run: Path):
    res = finished_run / "results"
    manifest = pd.read_csv(res / "demo" / "manifest.csv", keep_default_na=False)
    assert len(manifest) == 32 and (manifest["status"] == "ok").all()
    shards = [HeatmapShard(res / "demo" / "heatmaps" / f"shard{i:03d}.zarr") for i in range(2)]
    assert sum(len(s) for s in shards) == 32 and all(s.attrs["backend"] == "markers" for s in shards)
    store = PotionStore(res / "demo" / "potion.zarr")
    assert len(store) == 32 and store.shape == (18, 3, 16, 21)
    assert pd.read_csv(res / "demo" / "failed.csv").empty
    for split in (1, 2):
        for variant in ("potion", "jmrn"):
            d = res / "demo" / f"split{split}" / variant / "seed0"
            assert (d / "model.pt").stat().st_size > 0
            history = pd.read_csv(d / "history.csv")
            assert list(history["epoch"]) == [1, 2]
            assert {"val_loss", "val_acc", "lr", "selected", "validated"} <= set(history.columns)
            assert list(history["validated"]) == [0, 1]  # every 5 epochs and after the last
            metrics = json.loads((d / "metrics.json").read_text())
            assert 0 <= metrics["mean_class_accuracy"] <= 1 and metrics["n_test"] > 0
            assert (metrics["split"], metrics["variant"], metrics["seed"]) == (split, variant, 0)
            assert metrics["threads"] == 1 and metrics["n_parameters"] > 0
            logits = pd.read_csv(d / "logits.csv", keep_default_na=False)
            assert set(logits["subset"]) == {"train", "val", "test"} and logits.shape[1] == 3 + 4
            assert not (d / "checkpoint.pt").exists()
        fusion = json.loads((res / "demo" / f"split{split}" / "fusion" / "potion+jmrn" / "seed0"
                             / "metrics.json").read_text())
        assert {"potion", "jmrn", "average"} < set(fusion["test"]) and len(fusion["test"]) == 4
        assert fusion["fit"]["subset"] == "val" and fusion["split"] == split
    summary = (res / "tables" / "summary.md").read_text()
    assert "potion" in summary and "jmrn" in summary and "±" in summary
    ablation = pd.read_csv(res / "tables" / "demo_ablation.csv")
    assert not [c for c in ablation.columns if "paper," in c]  # the paper has no demo figures
    assert set(ablation["poses"]) == {"rendered markers"}
    for png in ("learning_curves", "confusion", "joint_weights", "per_class_accuracy",
                "potion_examples"):
        assert (res / "plots" / f"demo_{png}.png").read_bytes()[:4] == b"\x89PNG"
    assert "jmrn.train" in (res / "demo" / "logs" / "train" / "split1_jmrn_seed0.log").read_text()


def test_snakemake_report_bundles_tables_and_plots(finished_run: Path):
    snakemake(finished_run, "--report", "report.html")
    html = (finished_run / "report.html").read_text(encoding="utf-8", errors="replace")
    assert len(html) > 10_000
    for name in ("summary.md", "demo_fusion.md", "demo_confusion.png", "demo_potion_examples.png"):
        assert name in html


def test_second_run_does_nothing(finished_run: Path):
    out = snakemake(finished_run, "-n", "all")
    assert "Nothing to be done" in out.stdout + out.stderr


def test_deleting_one_model_rebuilds_only_its_dependents(finished_run: Path):
    (finished_run / "results" / "demo" / "split2" / "jmrn" / "seed0" / "model.pt").unlink()
    proc = snakemake(finished_run, "-n", "--quiet", "rules", "all")
    out = proc.stdout + proc.stderr
    jobs = {line.split()[0]: int(line.split()[1]) for line in out.splitlines()
            if len(line.split()) == 2 and line.split()[1].isdigit()}
    assert jobs == {"train": 1, "export": 1, "fusion": 1, "report": 1, "all": 1, "total": 5}
    snakemake(finished_run, "all")
    again = snakemake(finished_run, "-n", "all")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_dry_run_before_anything_exists(tmp_path: Path):
    """`bash run.sh demo -n` on a fresh checkout: train and export ask for their memory from a
    PoTion store that does not exist yet (Snakemake 9.27 crashed printing such a job)."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tiny_config(tmp_path)))
    proc = snakemake(tmp_path, "-n", "all")
    assert "demo_dataset" in proc.stdout and not (tmp_path / "results").exists()


def test_bad_config_value_is_refused_before_running(tmp_path: Path):
    cfg = tiny_config(tmp_path)
    cfg["potion"]["channels"] = 9
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(AssertionError, match="channels"):
        snakemake(tmp_path, "-n", "all")
    cfg = tiny_config(tmp_path)
    cfg["run_variants"] = ["potion", "jmrm"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(AssertionError, match="jmrm"):
        snakemake(tmp_path, "-n", "all")


def test_interrupted_run_is_finished_by_the_plain_command(finished_run: Path, tmp_path: Path):
    """SIGINT while a training job runs, then the README's plain command: the workflow profile
    (profiles/default) makes Snakemake rerun the incomplete job instead of refusing."""
    import shutil
    import signal
    import time

    work = tmp_path / "w"
    shutil.copytree(finished_run, work)
    (work / "results/demo/split1/jmrn/seed0/model.pt").unlink()
    log = work / "results/demo/logs/train/split1_jmrn_seed0.log"
    log.unlink()
    cmd = [*SNAKEMAKE, "--directory", str(work), "--configfile", str(work / "config.yaml"),
           "--cores", "2", "all"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # A run started in the background by a shell without job control inherits SIGINT ignored
    # (and Python then keeps it so): give Snakemake the default, as a terminal's Ctrl-C finds it.
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not log.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert log.exists(), "the training job never started"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, out  # the job was interrupted (its output may be half there)
    rerun = snakemake(work, "all")
    assert "workflow specific profile" in rerun.stderr
    assert "rule train:" in rerun.stdout + rerun.stderr  # the interrupted job ran again
    assert (work / "results/demo/split1/jmrn/seed0/model.pt").exists()
    assert not list((work / "results/demo/split1/jmrn/seed0").glob(".*tmp-*"))
    again = snakemake(work, "-n", "all")
    assert "Nothing to be done" in again.stdout + again.stderr
