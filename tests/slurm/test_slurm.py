"""The README's SLURM commands, exactly as written, on a real one-node cluster with accounting.

Needs `bash tests/slurm/start-local-slurm.sh` (root, Debian; CI does this): slurmctld, slurmd,
slurmdbd + MariaDB, partitions `cpu` (default) and `gpu`, 2 fake GPUs. Each test runs a
checkout whose config/demo.yaml is the tiny demo (a folder of links to this repository), with
the profile linked by `bash run.sh link-profile`, and checks what SLURM's accounting recorded.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_pipeline import REPO, tiny_config  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# The README's commands (its SLURM section); test_commands_are_the_readme_s checks they are there.
RUN_ALL = ".venv/bin/snakemake --profile slurm all --configfile config/demo.yaml"
RUN_SPLIT2 = ".venv/bin/snakemake --profile slurm split2 --configfile config/demo.yaml"
RUN_ALL_SQUEUE = (".venv/bin/snakemake --profile slurm all --configfile config/demo.yaml "
                  "--slurm-status-command squeue")
CHECKOUT = ("Snakefile", "rules", "jmrn", "workflow", "profiles", "envs", "run.sh", ".venv")
SACCT_FIELDS = ["JobID", "JobIDRaw", "Partition", "AllocCPUS", "ReqMem", "TimelimitRaw", "ReqTRES",
                "State", "Comment"]


def slurm_is_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return out.returncode == 0 and any(s.startswith(("idle", "mix", "alloc")) for s in out.stdout.split())


def make_checkout(work: Path, config: dict) -> None:
    """A checkout of this repository whose config/demo.yaml is `config`."""
    work.mkdir(parents=True, exist_ok=True)
    for name in CHECKOUT:
        (work / name).symlink_to(REPO / name)
    (work / "config").mkdir()
    (work / "config" / "config.yaml").symlink_to(REPO / "config" / "config.yaml")
    (work / "config" / "demo.yaml").write_text(yaml.safe_dump(config))


def readme_run(work: Path, command: str, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run a README command line as written; SIGINT on timeout (the plugin ignores SIGTERM)."""
    proc = subprocess.Popen(shlex.split(command), cwd=work, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        raise AssertionError(f"`{command}` did not finish in {timeout} s:\n{out[-4000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, out, "")


def submitted_jobs(text: str) -> list[str]:
    """SLURM job ids that Snakemake reported submitting (single jobs and job arrays)."""
    return (re.findall(r"has been submitted with SLURM jobid (\d+)", text)
            + re.findall(r"Submitted array job with .* SLURM job ID (\d+)", text))


def sacct(job_ids: list[str]) -> list[dict[str, str]]:
    """Accounting records (allocations only) of these jobs, array tasks included."""
    for _ in range(50):  # slurmdbd may be a moment behind slurmctld
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", ",".join(job_ids), "-o",
                              ",".join(SACCT_FIELDS)], capture_output=True, text=True, check=True)
        rows = [dict(zip(SACCT_FIELDS, line.split("|"))) for line in out.stdout.splitlines() if line]
        if rows and all(r["State"] not in ("PENDING", "RUNNING") for r in rows):
            return rows
        time.sleep(0.2)
    return rows


def node_limits() -> tuple[int, int]:
    """The node's memory (MB) and the partitions' time limit (minutes)."""
    node = subprocess.run(["scontrol", "show", "node", "-o"], capture_output=True, text=True).stdout
    memory = int(re.search(r"RealMemory=(\d+)", node).group(1))
    part = subprocess.run(["scontrol", "show", "partition", "-o"], capture_output=True, text=True).stdout
    days, hours, minutes, _ = map(int, re.search(r"MaxTime=(\d+)-(\d+):(\d+):(\d+)", part).groups())
    return memory, (days * 24 + hours) * 60 + minutes


def rule_of(record: dict[str, str]) -> str:
    """The rule of a job, from the comment the plugin gives it (rule_<rule>_wildcards_...)."""
    m = re.match(r"(rule|group)_([a-z0-9]+)", record["Comment"])
    assert m, record
    return m.group(2)


def mem_mb(record: dict[str, str]) -> int:
    value = record["ReqMem"]
    return int(float(value[:-1]) * (1024 if value.endswith("G") else 1))


@pytest.fixture(scope="module")
def cluster_env(tmp_path_factory) -> dict:
    """The environment for SLURM commands, with a private XDG config (its own profile link);
    test_slurm_faults.py imports it."""
    if not slurm_is_up():
        pytest.skip("no SLURM cluster (run tests/slurm/start-local-slurm.sh)")
    xdg = tmp_path_factory.mktemp("xdg")
    return {**os.environ, "XDG_CONFIG_HOME": str(xdg)}


def slurm_config(work: Path) -> dict:
    cfg = tiny_config(work)
    cfg["slurm"] = {"cpu_partition": "cpu", "gpu_partition": "gpu"}
    return cfg


@pytest.fixture(scope="module")
def readme_slurm_run(tmp_path_factory, cluster_env):
    """`.venv/bin/snakemake --profile slurm all` in a fresh checkout: (workdir, output)."""
    work = tmp_path_factory.mktemp("slurm") / "checkout"
    make_checkout(work, slurm_config(work))
    link = subprocess.run(["bash", "run.sh", "link-profile"], cwd=work, env=cluster_env,
                          capture_output=True, text=True)
    assert link.returncode == 0, link.stderr
    proc = readme_run(work, RUN_ALL, cluster_env)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return work, proc.stdout


def test_commands_are_the_readme_s():
    text = (REPO / "README.md").read_text() + (REPO / "docs" / "slurm.md").read_text()
    lines = {line.split("#")[0].strip() for line in text.splitlines()}
    assert {RUN_ALL, RUN_SPLIT2, RUN_ALL_SQUEUE} <= lines


def test_every_job_asks_for_what_it_uses(readme_slurm_run):
    work, out = readme_slurm_run
    records = sacct(submitted_jobs(out))
    config = yaml.safe_load((work / "config" / "demo.yaml").read_text())
    memory, max_minutes = node_limits()
    # The schema's threads per job kind; train and export are separate jobs (train.threads).
    threads = {"manifest": 2, "pose": 2, "potion": 1, "train": config["train"]["threads"],
               "export": config["train"]["threads"]}
    assert {rule_of(r) for r in records} == set(threads)  # the rest ran beside Snakemake
    for r in records:
        assert int(r["AllocCPUS"]) == threads[rule_of(r)], r
        assert r["State"] == "COMPLETED" and r["Partition"] == "cpu", r
        assert mem_mb(r) <= memory and int(r["TimelimitRaw"]) <= max_minutes, r
        assert "gres/gpu" not in r["ReqTRES"], r  # nothing here uses a GPU
    pose = [r for r in records if rule_of(r) == "pose"]
    assert len(pose) == 2 and len({r["JobID"].split("_")[0] for r in pose}) == 1  # one array
    assert all("_" in r["JobID"] for r in pose)


def test_outputs_match_a_local_run(readme_slurm_run, finished_run):
    slurm, _ = readme_slurm_run
    for split in (1, 2):
        for variant in ("potion", "jmrn"):
            run = Path("results/demo") / f"split{split}" / variant / "seed0"
            assert (slurm / run / "model.pt").read_bytes() == (finished_run / run / "model.pt").read_bytes()
            assert json.loads((slurm / run / "metrics.json").read_text()) == \
                json.loads((finished_run / run / "metrics.json").read_text())
    assert (slurm / "results/tables/demo_summary.md").read_text() == \
        (finished_run / "results/tables/demo_summary.md").read_text()


def copy_run(src: Path, dst: Path) -> Path:
    """A copy of a finished checkout (links stay links; SLURM logs and locks are left out)."""
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns("slurm_logs", "locks"))
    return dst


def test_one_split_rebuilds_on_its_own(readme_slurm_run, cluster_env, tmp_path):
    work = copy_run(readme_slurm_run[0], tmp_path / "checkout")
    model = work / "results/demo/split2/jmrn/seed0/model.pt"
    before = model.read_bytes()
    others = {p: p.stat().st_mtime_ns for p in (work / "results/demo/split1").rglob("*") if p.is_file()}
    model.unlink()
    proc = readme_run(work, RUN_SPLIT2, cluster_env)
    assert proc.returncode == 0, proc.stdout[-4000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, flags=re.M))
    assert jobs == {"train": "1", "export": "1", "fusion": "1", "split2": "1", "total": "4"}, jobs
    assert model.read_bytes() == before  # same config and seed: the same model, byte for byte
    assert all(p.stat().st_mtime_ns == t for p, t in others.items())


def test_gpu_jobs_fail_cleanly_then_rerun_without_accounting(readme_slurm_run, cluster_env, tmp_path):
    """GPU trainings go to the gpu partition with a GPU; on this CPU-only node they fail, are
    retried once with twice the memory and time, and are reported with their log. With the
    config restored, the no-accounting command (sacct answering like a cluster without
    slurmdbd) reruns only what failed."""
    work = copy_run(readme_slurm_run[0], tmp_path / "checkout")
    (work / "results/demo/split2/jmrn/seed0/model.pt").unlink()
    good = (work / "config/demo.yaml").read_text()
    gpu = yaml.safe_load(good)
    gpu["train"].update(gpus=1, device="cuda")
    (work / "config/demo.yaml").write_text(yaml.safe_dump(gpu))
    proc = readme_run(work, RUN_SPLIT2, cluster_env)
    assert proc.returncode != 0
    assert re.search(r"slurm_logs/rule_train/\S+/\d+\.log", proc.stdout), proc.stdout[-3000:]
    # The error says what SLURM recorded and how the job's log ends.
    assert "SLURM: State FAILED, ExitCode 1:0" in proc.stdout and "last lines of" in proc.stdout
    records = sacct(submitted_jobs(proc.stdout))  # split2's trainings (the GPU setting is in both)
    assert records and all(rule_of(r) == "train" and r["State"] == "FAILED" for r in records), records
    assert all(r["Partition"] == "gpu" and "gres/gpu=1" in r["ReqTRES"] for r in records), records
    first, retry = min(mem_mb(r) for r in records), max(mem_mb(r) for r in records)
    assert retry == 2 * first  # the retry asks for twice the memory and time
    assert max(int(r["TimelimitRaw"]) for r in records) == 2 * min(int(r["TimelimitRaw"]) for r in records)
    logs = list((work / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert any("cuda" in p.read_text().lower() for p in logs)

    (work / "config/demo.yaml").write_text(good)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real = shutil.which("sacct")
    (bin_dir / "sacct").write_text(  # what sacct says when the cluster keeps no accounting
        f'#!/bin/sh\n[ "$1" = --version ] && exec {real} "$@"\n'
        'echo "sacct: error: Slurm accounting storage is disabled" >&2\nexit 1\n')
    (bin_dir / "sacct").chmod(0o755)
    env = {**cluster_env, "PATH": f"{bin_dir}:{cluster_env['PATH']}"}
    proc = readme_run(work, RUN_ALL_SQUEUE, env)
    assert proc.returncode == 0, proc.stdout[-4000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, flags=re.M))
    # Both split-2 runs: the failed GPU attempt of the potion run had removed its old outputs.
    assert jobs == {"train": "2", "export": "2", "fusion": "1", "report": "1", "all": "1",
                    "total": "7"}, jobs
