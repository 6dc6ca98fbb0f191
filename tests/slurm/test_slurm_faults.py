"""The faults a shared cluster produces, under the README's `split2` command on the local cluster:
a training cancelled with `scancel`, an export killed at its time limit, a training killed for
memory, and Snakemake itself killed with jobs running. Each run ends (or is recovered with
`python -m jmrn slurm --cancel`) with models and metrics byte-identical to a local run.

Needs `bash tests/slurm/start-local-slurm.sh` (its cluster kills jobs over their memory).
"""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_pipeline import REPO, snakemake as local_snakemake  # noqa: E402
from test_slurm import RUN_SPLIT2, cluster_env, make_checkout, sacct, slurm_config  # noqa: E402,F401

from jmrn.slurm import squeue_jobs  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

EPOCHS = 150  # a training of some 20 s: long enough to be caught running, with a checkpoint
RUN = Path("results/demo/split2")
RUNS = [RUN / v / "seed0" for v in ("potion", "jmrn")]
RUN_FILES = ("model.pt", "history.csv", "logits.csv", "metrics.json", "joint_weights.csv", "confusion.csv")


def fault_config(work: Path) -> dict:
    cfg = slurm_config(work)
    cfg["train"]["epochs"] = EPOCHS
    return cfg


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """`split2` of the fault config run locally."""
    work = tmp_path_factory.mktemp("local")
    (work / "config.yaml").write_text(yaml.safe_dump(fault_config(work)))
    local_snakemake(work, "split2")
    return work


@pytest.fixture
def checkout(tmp_path, cluster_env) -> Path:
    work = tmp_path / "checkout"
    make_checkout(work, fault_config(work))
    link = subprocess.run(["bash", "run.sh", "link-profile"], cwd=work, env=cluster_env,
                          capture_output=True, text=True)
    assert link.returncode == 0, link.stderr
    return work


class Run:
    """A command running in the background, its output in a file."""

    def __init__(self, work: Path, command: str, env: dict, name: str = "run"):
        self.command, self.log = command, work / f"{name}.out"
        self.proc = subprocess.Popen(shlex.split(command), cwd=work, env=env, text=True,
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def finish(self, timeout: int) -> str:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGINT)  # the plugin ignores SIGTERM
            self.proc.wait(timeout=60)
            raise AssertionError(f"`{self.command}` did not finish in {timeout} s:\n{self.text()[-4000:]}")
        return self.text()


def wait_until(predicate, timeout: float, what: str) -> float:
    """Seconds until ``predicate()`` held; fails after ``timeout``."""
    start = time.time()
    while time.time() - start < timeout:
        if predicate():
            return time.time() - start
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout} s")


def running_job(work: Path, rule: str, variant: str = "jmrn") -> dict | None:
    for job in squeue_jobs(work):
        if job["State"] == "RUNNING" and job["Comment"].startswith(f"rule_{rule}_") and variant in job["Comment"]:
            return job
    return None


def training_checkpointed(work: Path) -> dict | None:
    """The split-2 jmrn training, running, once it wrote a checkpoint."""
    job = running_job(work, "train")
    return job if job and (work / RUN / "jmrn/seed0/checkpoint.pt").exists() else None


def assert_same_as(work: Path, reference: Path) -> None:
    for run in RUNS:
        for name in RUN_FILES:
            assert (work / run / name).read_bytes() == (reference / run / name).read_bytes(), run / name
        assert not (work / run / "checkpoint.pt").exists()


def test_scancel_of_a_running_training_is_retried_and_resumes(checkout, cluster_env, reference):
    run = Run(checkout, RUN_SPLIT2, cluster_env)
    wait_until(lambda: training_checkpointed(checkout), 400, "a checkpointed training")
    job = training_checkpointed(checkout)
    cancelled = time.time()
    subprocess.run(["scancel", job["JobID"]], check=True)
    noticed = wait_until(lambda: f"SLURM-job '{job['JobID']}' failed" in run.text(), 240,
                         "the cancel noticed")
    out = run.finish(600)
    print(f"scancel noticed after {noticed:.0f} s; run ended {time.time() - cancelled:.0f} s after it")
    assert run.proc.returncode == 0, out[-4000:]
    assert "State CANCELLED" in out  # the console says what happened
    log = (checkout / "results/demo/logs/train/split2_jmrn_seed0.log").read_text()
    assert "resuming from" in log  # the retry went on from the checkpoint, not from scratch
    assert_same_as(checkout, reference)


SLOW_FIRST_EXPORT = """\
import os, re, sys, time
_marker = os.environ.get("JMRN_TEST_SLOW_EXPORT")
# a SLURM job of rule export (`--target-jobs export:dataset=demo,seed=0,split=2,variant=...`)
_export = any(re.match(r"export:.*split=", a) for a in sys.argv)
if _marker and _export:
    try:  # the first export job only (created atomically): it outlives its 1-minute limit
        os.close(os.open(_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        time.sleep(400)
    except FileExistsError:
        pass
"""


def test_export_timeout_keeps_the_training(checkout, cluster_env, reference, tmp_path):
    """An export killed at its time limit is retried with twice the time (an override that
    scales with the attempt); the finished training is neither deleted nor redone."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SLOW_FIRST_EXPORT)
    env = {**cluster_env, "PYTHONPATH": str(hook), "JMRN_TEST_SLOW_EXPORT": str(tmp_path / "slowed")}
    run = Run(checkout, f"{RUN_SPLIT2} --set-resources 'export:runtime=attempt'", env)
    out = run.finish(900)
    assert run.proc.returncode == 0, out[-4000:]
    assert "State TIMEOUT" in out, out[-4000:]
    ids = re.findall(r"SLURM-job '(\d+)' failed", out)
    records = sacct(ids)
    assert [r["State"] for r in records] == ["TIMEOUT"] and records[0]["TimelimitRaw"] == "1"
    submitted = sacct(re.findall(r"has been submitted with SLURM jobid (\d+)", out))
    # each training ran once: the timed-out export cost nothing; its retry had twice the time
    assert sum(r["Comment"].startswith("rule_train_") for r in submitted) == 2
    exports = [r for r in submitted if r["Comment"].startswith("rule_export_")]
    assert sorted(r["TimelimitRaw"] for r in exports) == ["1", "1", "2"], exports
    for run_dir in RUNS:
        assert "resuming from" not in (checkout / "results/demo/logs/train" /
                                       f"split2_{run_dir.parent.name}_seed0.log").read_text()
    assert_same_as(checkout, reference)


def test_training_killed_for_memory_is_retried_with_twice_the_memory(checkout, cluster_env, reference):
    """With a memory request under what training uses (set to scale with the attempt), the
    cluster kills it; the retry asks for twice as much and finishes."""
    command = f"{RUN_SPLIT2} --set-resources 'train:mem_mb=600*attempt'"
    run = Run(checkout, command, cluster_env)
    out = run.finish(900)
    assert run.proc.returncode == 0, out[-4000:]
    assert "Exceeded job memory limit" in out or "State OUT_OF_MEMORY" in out, out[-4000:]
    failed = re.findall(r"SLURM-job '(\d+)' failed", out)
    assert failed
    retried = sacct(re.findall(r"has been submitted with SLURM jobid (\d+)", out))
    train = [r for r in retried if r["Comment"].startswith("rule_train")]
    assert {r["ReqMem"] for r in train if r["JobIDRaw"] in failed} == {"600M"}
    assert {r["ReqMem"] for r in train if r["State"] == "COMPLETED"} == {"1200M"}
    assert_same_as(checkout, reference)


def test_killed_snakemake_orphans_are_cancelled_and_the_rerun_matches(checkout, cluster_env, reference):
    run = Run(checkout, RUN_SPLIT2, cluster_env)
    wait_until(lambda: training_checkpointed(checkout), 400, "a checkpointed training")
    run.proc.kill()  # SIGKILL: Snakemake cancels nothing and keeps its lock
    run.proc.wait()
    orphans = squeue_jobs(checkout)
    assert orphans and all(j["Name"].startswith("jmrn_") for j in orphans), orphans
    helper = subprocess.run([str(REPO / ".venv/bin/python"), "-m", "jmrn", "slurm", "--cancel",
                             "split2", "--configfile", "config/demo.yaml"], cwd=checkout,
                            env={**cluster_env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert helper.returncode == 0, helper.stderr
    assert all(j["JobID"] in helper.stdout for j in orphans) and "rule_train" in helper.stdout
    assert "cancelled" in helper.stdout and "removed Snakemake's lock" in helper.stdout
    assert f"rerun with: {RUN_SPLIT2}" in helper.stdout
    wait_until(lambda: not squeue_jobs(checkout), 60, "the orphans gone")
    rerun = Run(checkout, RUN_SPLIT2, cluster_env, name="rerun")
    out = rerun.finish(900)
    assert rerun.proc.returncode == 0, out[-4000:]
    assert_same_as(checkout, reference)
