"""Runs the real Snakemake DAG on a tiny demo config: outputs, caching and partial rebuilds."""
from __future__ import annotations

import json
import os
import re
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


def demo_config() -> dict:
    """config/config.yaml with config/demo.yaml merged on top: what `bash run.sh demo` runs."""
    from snakemake.utils import update_config

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    update_config(cfg, yaml.safe_load((REPO / "config" / "demo.yaml").read_text()))
    return cfg


def tiny_config(base: Path) -> dict:
    cfg = demo_config()
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
            assert metrics["per_class_metric"] == "accuracy" and len(metrics["per_class"]) == 4
            confusion = pd.read_csv(d / "confusion.csv", index_col=0)
            assert confusion.shape == (4, 4) and confusion.to_numpy().sum() == metrics["n_test"]
            per_class_hits = confusion.to_numpy().diagonal() / confusion.to_numpy().sum(1)
            assert per_class_hits.tolist() == pytest.approx(list(metrics["per_class"].values()))
        fusion = json.loads((res / "demo" / f"split{split}" / "fusion" / "potion+jmrn" / "seed0"
                             / "metrics.json").read_text())
        assert {"potion", "jmrn", "average"} < set(fusion["test"]) and len(fusion["test"]) == 4
        assert fusion["fit"]["subset"] == "val" and fusion["split"] == split
    summary = (res / "tables" / "demo_summary.md").read_text()
    assert "potion" in summary and "jmrn" in summary and "±" in summary
    per_class = pd.read_csv(res / "tables" / "demo_per_class.csv")
    assert len(per_class) == 4 * 2 and set(per_class["runs"]) == {2}  # 4 classes x 2 variants, 2 splits
    for kind in ("summary", "ablation", "fusion", "per_class"):
        assert "<table" in (res / "tables" / f"demo_{kind}.html").read_text()
    ablation = pd.read_csv(res / "tables" / "demo_ablation.csv")
    assert not [c for c in ablation.columns if "paper," in c]  # the paper has no demo figures
    assert set(ablation["poses"]) == {"rendered markers"}
    for png in ("learning_curves", "confusion", "joint_weights", "per_class_accuracy",
                "potion_examples"):
        assert (res / "plots" / f"demo_{png}.png").read_bytes()[:4] == b"\x89PNG"
    assert "jmrn.train" in (res / "demo" / "logs" / "train" / "split1_jmrn_seed0.log").read_text()


def test_a_finished_run_names_its_tables_and_the_report_command(finished_run: Path):
    last = (finished_run / "run.err").read_text().strip().splitlines()[-2:]
    assert last[0].startswith("Tables: results/tables/demo_summary.md"), last
    assert last[1].startswith("HTML report: .venv/bin/snakemake --report results/demo_report.html"
                              " --configfile "), last


def test_status_reads_progress_from_the_logs(finished_run: Path, tmp_path: Path, capsys):
    """A finished run: every stage done; a training log with no benchmark yet shows its epoch."""
    import shutil

    from jmrn.status import print_status

    work = tmp_path / "w"
    shutil.copytree(finished_run, work)
    (work / "results/demo/benchmarks/train/split2_jmrn_seed0.tsv").unlink()
    # a later `snakemake --report` (or a refused run) logs no job table: the run stays the latest
    (work / ".snakemake/log/9999-12-31T000000.000000.snakemake.log").write_text("Building report\n")
    print_status(work / "results", work)
    out = capsys.readouterr().out
    assert "(finished)" in out and re.search(r"train\s+4 / 4 done", out), out
    assert "demo/logs/train/split2_jmrn_seed0.log: epochs 2/2, about 00:00 left" in out


def test_snakemake_report_bundles_tables_and_plots(finished_run: Path):
    snakemake(finished_run, "--report", "report.html")
    html = (finished_run / "report.html").read_text(encoding="utf-8", errors="replace")
    assert len(html) > 10_000
    for name in ("demo_summary.html", "demo_fusion.html", "demo_confusion.png", "demo_potion_examples.png"):
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


PAPER_HMDB51 = [str(REPO / "config" / "paper.yaml"), str(REPO / "config" / "hmdb51.yaml")]


def snakemake_plain(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """Snakemake in ``workdir`` with only the given arguments (the defaults: config/config.yaml)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([*SNAKEMAKE, "--directory", str(workdir), *args], cwd=workdir,
                          capture_output=True, text=True, env=env, timeout=300)


def test_a_dataset_run_without_its_data_stops_before_any_job(tmp_path: Path):
    """The real-data command with no data/ and no checkpoint: one line per missing thing."""
    proc = snakemake_plain(tmp_path, "--cores", "2", "all", "--configfile", *PAPER_HMDB51)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert [e.split(":")[1] for e in errors] == [
        " missing dataset.video_root", " missing dataset.split_dir",
        " missing pose.options.openpifpaf.checkpoint"], proc.stderr
    assert "openpifpaf-state-dict" in errors[-1]
    assert "Job stats" not in proc.stdout + proc.stderr and not (tmp_path / "results").exists()


def test_a_dataset_dry_run_plans_only_its_own_fusions(tmp_path: Path):
    """Nothing of the demo leaks into another dataset: paper.yaml's fusion, on 3 splits."""
    proc = snakemake_plain(tmp_path, "-n", "--quiet", "rules", "all", "--configfile", *PAPER_HMDB51)
    assert proc.returncode == 0, proc.stderr
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, flags=re.M))
    assert jobs["fusion"] == "3" and jobs["train"] == str(3 * 7)
    assert proc.stderr.count("warning: missing ") == 3  # a dry run lists what a run would need


def test_a_schema_error_through_snakemake_is_one_line(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 0\n")
    proc = snakemake_plain(tmp_path, "-n", "all", "--configfile", str(REPO / "config" / "demo.yaml"),
                           str(bad))
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "bad.yaml" in errors[0] and "train.epochs: 0 is less than" in errors[0]
    assert len(proc.stderr.splitlines()) <= 3, proc.stderr


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
