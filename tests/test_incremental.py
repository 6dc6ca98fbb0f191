"""A change reruns only what depends on it: pose shards and trainings are content-addressed
(jmrn.dag), so a rewritten manifest or PoTion store does not cascade."""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from test_pipeline import REPO, SNAKEMAKE, snakemake, tiny_config

from jmrn.store import PotionStore
from jmrn.tables import read_manifest, shard_of

pytestmark = pytest.mark.slow

IGNORED = ("logs", "benchmarks", ".snakemake")


def write_config(work: Path, cfg: dict) -> None:
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))


@pytest.fixture
def finished(finished_run: Path) -> Path:
    """The session's finished tiny run (2 splits, potion + jmrn, seed 0): copied, never changed."""
    return finished_run


def copy_run(finished: Path, tmp_path: Path, change) -> tuple[Path, dict]:
    work = tmp_path / "w"
    shutil.copytree(finished, work, ignore=shutil.ignore_patterns("report.html"))
    cfg = copy.deepcopy(tiny_config(work))
    change(cfg)
    write_config(work, cfg)
    return work, cfg


def plan(work: Path) -> dict[str, int]:
    proc = snakemake(work, "-n", "--quiet", "rules", "all")
    out = proc.stdout + proc.stderr
    return {line.split()[0]: int(line.split()[1]) for line in out.splitlines()
            if len(line.split()) == 2 and line.split()[1].isdigit() and line.split()[0] != "total"}


def stamps(work: Path) -> dict[str, int]:
    """Modification time of every result file (logs and benchmarks aside)."""
    res = work / "results"
    return {str(p.relative_to(res)): p.stat().st_mtime_ns for p in res.rglob("*")
            if p.is_file() and not any(part in IGNORED for part in p.relative_to(res).parts)}


def rewritten(before: dict[str, int], after: dict[str, int]) -> set[str]:
    return {p for p, t in after.items() if before.get(p) != t}


@pytest.mark.parametrize("change,expected", [
    (lambda c: c["run_variants"].append("jmrn_paa"), {"train": 2, "export": 2, "report": 1, "all": 1}),
    (lambda c: c.update(seeds=[0, 1]), {"train": 4, "export": 4, "fusion": 2, "report": 1, "all": 1}),
    (lambda c: c["fusion"].update({"jmrn+potion": ["jmrn", "potion"]}), {"fusion": 2, "report": 1, "all": 1}),
    (lambda c: c["report"].update(focus_variant="potion"), {"report": 1, "all": 1}),
], ids=["variant", "seed", "fusion", "report option"])
def test_adding_runs_plans_only_those(finished, tmp_path, change, expected):
    work, _ = copy_run(finished, tmp_path, change)
    assert plan(work) == expected


def executed(proc) -> dict[str, int]:
    """Jobs a real run executed, by rule (from Snakemake's job headers)."""
    counts: dict[str, int] = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        words = line.split()
        if len(words) == 2 and words[0] in ("rule", "localrule", "checkpoint", "localcheckpoint") \
                and words[1].endswith(":"):
            counts[words[1][:-1]] = counts.get(words[1][:-1], 0) + 1
    return counts


# A change of the dataset section reruns the manifest, a checkpoint: what depends on its content
# is decided once the new manifest exists, so these scenarios are checked on real runs (a dry
# run lists every job downstream of a manifest that must be rebuilt).


def test_dataset_option_that_changes_no_video_reruns_no_pose_potion_or_training(finished, tmp_path):
    work, _ = copy_run(finished, tmp_path, lambda c: c["dataset"].update(test_fraction=0.25))
    before = stamps(work)
    jobs = executed(snakemake(work, "all"))
    assert {k: n for k, n in jobs.items() if k != "all"} == {"manifest": 1}  # same manifest content
    changed = rewritten(before, stamps(work))
    assert not [p for p in changed if p.startswith(("demo/heatmaps", "demo/potion.zarr", "demo/split"))]


def test_adding_a_split_runs_only_the_new_split(finished, tmp_path):
    work, _ = copy_run(finished, tmp_path, lambda c: c["dataset"].update(splits=[1, 2, 3]))
    before = stamps(work)
    jobs = executed(snakemake(work, "all"))
    # demo_dataset writes the demo's split files (its videos come out the same)
    assert jobs == {"demo_dataset": 1, "manifest": 1, "split_videos": 1, "train": 2, "export": 2,
                    "fusion": 1, "report": 1, "all": 1}
    changed = rewritten(before, stamps(work))
    assert not [p for p in changed
                if p.startswith(("demo/heatmaps", "demo/potion.zarr", "demo/split1/", "demo/split2/"))]
    assert {"demo/split3/jmrn/seed0/model.pt", "demo/split3/potion/seed0/model.pt"} <= changed
    again = snakemake(work, "-n", "all")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_adding_videos_reruns_their_shards_potion_and_their_splits(finished, tmp_path):
    work, cfg = copy_run(finished, tmp_path, lambda c: c["demo"].update(videos_per_class=9))
    old_ids = set(read_manifest(work / "results/demo/manifest.csv")["video_id"])
    before = stamps(work)
    jobs = executed(snakemake(work, "all"))
    changed = rewritten(before, stamps(work))
    manifest = read_manifest(work / "results/demo/manifest.csv")
    new = manifest[~manifest["video_id"].isin(old_ids)]
    assert len(new) == 4  # one more video per class
    touched = {shard_of(v, 2) for v in new["video_id"]}
    holding = [k for k in (1, 2) if new[f"split{k}"].isin(["train", "test"]).any()]
    assert jobs["pose"] == len(touched) and jobs["potion"] == 1
    assert jobs["train"] == 2 * len(holding)  # potion and jmrn of each split that holds them
    for s in range(2):
        shard_files = [p for p in changed if p.startswith(f"demo/heatmaps/shard{s:03d}.zarr")]
        assert bool(shard_files) == (s in touched), (s, touched)
    assert any(p.startswith("demo/potion.zarr") for p in changed)
    for k in (1, 2):  # exactly the splits that hold the new videos retrain
        assert (f"demo/split{k}/jmrn/seed0/model.pt" in changed) == (k in holding), k
    # The same files as a run from scratch with the new config
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    write_config(scratch, cfg)
    snakemake(scratch, "all")
    for rel in ("demo/split1/jmrn/seed0/model.pt", "demo/split1/potion/seed0/logits.csv",
                "demo/split1/jmrn/seed0/metrics.json", "demo/manifest.csv"):
        assert (work / "results" / rel).read_bytes() == (scratch / "results" / rel).read_bytes(), rel


def test_store_deleted_by_a_failed_rebuild_is_rebuilt_not_kept(finished, tmp_path):
    """A PoTion job that fails after a settings change deletes the store; the next run rebuilds it
    with the new settings and retrains on it, instead of keeping the old settings' results."""
    work, cfg = copy_run(finished, tmp_path, lambda c: c["potion"].update(normalisation="max"))
    chunk = next(p for p in sorted((work / "results/demo/heatmaps/shard000.zarr").rglob("*"))
                 if p.is_file() and "/c/" in str(p))
    intact = chunk.read_bytes()
    chunk.write_bytes(b"\0" * len(intact))  # an unreadable heatmap: the rebuild fails
    proc = subprocess.run([*SNAKEMAKE, "--directory", str(work), "--configfile",
                           str(work / "config.yaml"), "--cores", "2", "all"],
                          cwd=work, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode != 0 and not (work / "results/demo/potion.zarr").exists()
    chunk.write_bytes(intact)
    jobs = executed(snakemake(work, "all"))
    assert jobs["potion"] == 1 and jobs["train"] == 4 and jobs["export"] == 4
    assert PotionStore(work / "results/demo/potion.zarr").attrs["normalisation"] == "max"
