"""The tiny demo DAG through `snakemake --profile slurm` on a real (local, one-node) SLURM.

Needs a running cluster: `bash tests/slurm/start-local-slurm.sh` (root, Debian); CI does this.
Job status is polled with squeue here because the local cluster runs without accounting
(slurmdbd); on real clusters the profile's default (sacct) applies.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_pipeline import REPO, tiny_config  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

FAST_POLLING = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
                "--seconds-between-status-checks", "2"]
SMALL_JOBS = ["--set-resources", "pose:mem_mb=1000", "pose:runtime=30", "train:mem_mb=2000",
              "train:runtime=30"]


def slurm_is_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return out.returncode == 0 and any(s.startswith(("idle", "mix", "alloc")) for s in out.stdout.split())


def run(workdir: Path, *args: str, xdg: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), *args, "--configfile", str(workdir / "config.yaml")]
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CONFIG_HOME": str(xdg)}
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, timeout=1200)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if not slurm_is_up():
        pytest.skip("no SLURM cluster (run tests/slurm/start-local-slurm.sh)")
    xdg = tmp_path_factory.mktemp("xdg")
    (xdg / "snakemake").mkdir()
    (xdg / "snakemake" / "slurm").symlink_to(REPO / "workflow" / "profiles" / "slurm")
    out = {}
    for mode in ("slurm", "local"):
        work = tmp_path_factory.mktemp(mode)
        (work / "config.yaml").write_text(yaml.safe_dump(tiny_config(work)))
        args = ["all", "--profile", "slurm", *FAST_POLLING, *SMALL_JOBS] if mode == "slurm" else ["all", "--cores", "2"]
        proc = run(work, *args, xdg=xdg)
        assert proc.returncode == 0, f"{mode} run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        out[mode] = (work, proc)
    return out


def test_jobs_ran_as_slurm_jobs(runs):
    work, proc = runs["slurm"]
    text = proc.stdout + proc.stderr
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)/rule_(\w+)/", text)
    rules = {rule for _, _, rule in submitted}
    assert {"manifest", "pose", "potion", "train", "export", "fusion", "report"} <= rules, text[-3000:]
    assert len({job for job, _, _ in submitted}) == len(submitted)  # one SLURM job per rule job


def test_outputs_match_a_local_run(runs):
    slurm, _ = runs["slurm"]
    local, _ = runs["local"]
    for split in (1, 2):
        for variant in ("potion", "jmrn"):
            rel = Path("results/demo") / f"split{split}" / variant / "seed0" / "metrics.json"
            assert json.loads((slurm / rel).read_text()) == json.loads((local / rel).read_text())
    assert (slurm / "results/tables/summary.md").read_text() == (local / "results/tables/summary.md").read_text()


def test_failed_job_is_reported_with_its_log_and_rerun_alone(runs, tmp_path):
    slurm, _ = runs["slurm"]
    work = tmp_path / "fail"
    shutil.copytree(slurm, work, ignore=shutil.ignore_patterns("slurm_logs", "locks", "incomplete"))
    (work / "results/demo/split2/jmrn/seed0/model.pt").unlink()
    good = (work / "config.yaml").read_text()
    broken = yaml.safe_load(good)
    broken["train"]["device"] = "cuda"  # the node has no CUDA: the train job fails on SLURM
    (work / "config.yaml").write_text(yaml.safe_dump(broken))
    xdg = tmp_path / "xdg"
    profile = ["--profile", str(REPO / "workflow/profiles/slurm"), *FAST_POLLING, *SMALL_JOBS,
               "--retries", "0"]
    proc = run(work, "results/demo/split2/jmrn/seed0/model.pt", *profile, xdg=xdg)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert re.search(r"slurm_logs/rule_train/\S*\d+\.log", text), text[-3000:]
    logs = list((work / ".snakemake" / "slurm_logs" / "rule_train").rglob("*.log"))
    assert logs and "cuda" in logs[0].read_text().lower()
    assert not (work / "results/demo/split2/jmrn/seed0/model.pt").exists()
    (work / "config.yaml").write_text(good)
    dry = run(work, "-n", "--cores", "1", "all", xdg=xdg)
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", dry.stdout + dry.stderr, flags=re.M))
    assert jobs == {"train": "1", "export": "1", "fusion": "1", "report": "1", "all": "1",
                    "total": "5"}
    proc = run(work, "all", *profile, xdg=xdg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work / "results/demo/split2/jmrn/seed0/model.pt").exists()
