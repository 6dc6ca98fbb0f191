"""What jmrn mends in the SLURM executor plugin, and the run-folder lock, without a cluster."""
from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from jmrn import slurm
from jmrn.errors import UserError
from jmrn.io import run_folder_lock

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("state, expected", [("CANCELLED by 0", "CANCELLED"),
                                             ("CANCELLED by 1000", "CANCELLED"),
                                             ("TIMEOUT", "TIMEOUT"), ("OUT_OF_MEMORY", "OUT_OF_MEMORY"),
                                             ("", "")])
def test_states_are_cut_to_their_first_word(state, expected):
    assert slurm.normalise_state(state) == expected


def test_the_plugin_sees_a_cancelled_job_as_cancelled():
    """The plugin compares states with its list of failures word for word: `CANCELLED by 0`,
    as sacct prints a scancel, would be taken for a running job, forever."""
    plugin = pytest.importorskip("snakemake_executor_plugin_slurm")
    assert slurm.install() in (True, False)
    assert getattr(plugin, "_jmrn_patched")
    command = f"{sys.executable} -c \"print('12|CANCELLED by 0'); print('13|TIMEOUT'); print('14|RUNNING')\""
    status, _ = asyncio.run(plugin.query_job_status(command, logging.getLogger("test")))
    assert status == {"12": "CANCELLED", "13": "TIMEOUT", "14": "RUNNING"}
    assert slurm.install() is False  # once


def test_a_failure_report_ends_with_the_log(tmp_path):
    log = tmp_path / "123.log"
    log.write_text("".join(f"line {i}\n" for i in range(40)) + "slurmstepd: error: *** JOB 123 CANCELLED ***\n")
    report = slurm.failure_report(None, log)
    assert report.splitlines()[0] == f"last lines of {log}:"
    assert report.splitlines()[-1].strip() == "slurmstepd: error: *** JOB 123 CANCELLED ***"
    assert len(report.splitlines()) == 1 + slurm.LOG_TAIL_LINES
    assert slurm.failure_report(None, tmp_path / "missing.log") == ""


def test_job_names_of_the_profile_are_recognised():
    assert slurm._ours("jmrn_0f8c2a4e-1b2c-4d3e-8f90-a1b2c3d4e5f6")
    assert slurm._ours("0f8c2a4e-1b2c-4d3e-8f90-a1b2c3d4e5f6")  # a run without the prefix
    assert not slurm._ours("interactive") and not slurm._ours("jmrn_x")


def test_the_profile_names_jobs_with_the_prefix_the_helper_looks_for():
    import yaml

    profile = yaml.safe_load((REPO / "workflow/profiles/slurm/config.yaml").read_text())
    assert profile["slurm-jobname-prefix"] == slurm.JOBNAME_PREFIX


HOLD = """
import sys, time
from jmrn.io import run_folder_lock
with run_folder_lock(sys.argv[1], "train"):
    print("held", flush=True)
    time.sleep(30)
"""


def test_a_run_folder_is_written_by_one_job_at_a_time(tmp_path):
    folder = tmp_path / "split1" / "jmrn" / "seed0"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=r"being written by train \(pid \d+"):
            with run_folder_lock(folder, "train"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with run_folder_lock(folder, "export"):  # a killed holder leaves no lock behind
        assert "export" in (folder / ".jmrn.lock").read_text()
