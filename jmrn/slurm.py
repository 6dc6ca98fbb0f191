"""What the SLURM executor plugin (snakemake-executor-plugin-slurm 2.8) gets wrong, mended in
the Snakemake process that submits the jobs, and the recovery helper ``python -m jmrn slurm``.

* ``sacct`` reports a cancelled job as ``CANCELLED by <uid>``; the plugin compares the whole
  string with ``CANCELLED`` and so takes the job for a running one, forever. Every state is cut
  to its first word before the plugin sees it (``squeue`` already prints the bare word).
* A failed job's error says why: SLURM's state, exit code, elapsed time and limit, memory asked
  and used, and the last lines of its SLURM log (which the plugin keeps for failed jobs).

``install()`` is called by the Snakefile; it does nothing where the plugin is not loaded (a
local run, a job inside SLURM) and patches once.
"""
from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Any, Iterable

JOBNAME_PREFIX = "jmrn"  # workflow/profiles/slurm/config.yaml: slurm-jobname-prefix
LOG_TAIL_LINES = 15
_PATCHED = "_jmrn_patched"


def normalise_state(state: str) -> str:
    """``CANCELLED by 1000`` -> ``CANCELLED``; every other state is one word already."""
    return state.split()[0] if state and state.strip() else state


def _run(cmd: list[str], timeout: float = 20) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout if out.returncode == 0 else ""


def log_tail(path: str | os.PathLike | None, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last ``lines`` non-empty lines of a log file (none when it is not there)."""
    if not path:
        return []
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def accounting(jobid: str) -> dict[str, str]:
    """State, exit code, time and memory of one job (or array task) from ``sacct``; peak
    memory is the largest of its steps'. Empty where sacct does not answer."""
    fields = ["JobID", "State", "ExitCode", "Elapsed", "Timelimit", "ReqMem", "MaxRSS", "NodeList"]
    out = _run(["sacct", "-P", "-n", "-j", jobid, "-o", ",".join(fields)])
    rows = [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line.count("|") == len(fields) - 1]
    if not rows:
        return {}
    main = rows[0]
    rss = [_mb(r["MaxRSS"]) for r in rows if r["MaxRSS"]]
    info = {k: main[k] for k in ("State", "ExitCode", "Elapsed", "Timelimit", "ReqMem", "NodeList")}
    if rss:
        info["MaxRSS"] = f"{max(rss):.0f}M"
    return info


def _mb(value: str) -> float:
    units = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
    try:
        return float(value[:-1]) * units[value[-1]] if value[-1] in units else float(value) / 2**20
    except (ValueError, IndexError):
        return 0.0


def failure_report(jobid: str | None, logfile: str | os.PathLike | None) -> str:
    """The lines added to a failed job's error: what SLURM recorded and the log's last lines."""
    lines = []
    info = accounting(jobid) if jobid else {}
    if info:
        lines.append("SLURM: " + ", ".join(f"{k} {v}" for k, v in info.items() if v))
    if info.get("State", "").startswith(("OUT_OF_MEMORY",)):
        lines.append("killed for memory: the retry asks for twice the memory (resources.<kind>.mem_mb)")
    elif info.get("State", "").startswith("TIMEOUT"):
        lines.append("killed at its time limit: the retry asks for twice the time (resources.<kind>.runtime)")
    tail = log_tail(logfile)
    if tail:
        lines.append(f"last lines of {logfile}:")
        lines.extend("    " + line for line in tail)
    return "\n".join(lines)


def install() -> bool:
    """Patch the SLURM executor plugin where this process loaded it; True when patched."""
    import sys

    plugin = sys.modules.get("snakemake_executor_plugin_slurm")
    if plugin is None or getattr(plugin, _PATCHED, False):
        return False
    original_query = plugin.query_job_status

    async def query_job_status(command: str, logger: Any):
        status, duration = await original_query(command, logger)
        if status is not None:
            status = {jobid: normalise_state(state) for jobid, state in status.items()}
        return status, duration

    plugin.query_job_status = query_job_status
    executor = plugin.Executor
    original_report = executor.report_job_error

    def report_job_error(self, job_info, msg=None, **kwargs):
        try:
            extra = failure_report(getattr(job_info, "external_jobid", None),
                                   (getattr(job_info, "aux", None) or {}).get("slurm_logfile"))
        except Exception as exc:  # never lose the error itself over its details
            extra = f"(no SLURM details: {exc})"
        msg = "\n".join(part for part in (msg, extra) if part) or None
        return original_report(self, job_info, msg=msg, **kwargs)

    executor.report_job_error = report_job_error
    setattr(plugin, _PATCHED, True)
    return True


# ---------------------------------------------------------------------------------------------
# Recovery after Snakemake was killed: the jobs it left in SLURM, found by their working directory
# (this checkout) and job name (the profile's prefix), cancelled, then the lock removed.

def squeue_jobs(checkout: str | os.PathLike, user: str | None = None) -> list[dict[str, str]]:
    """This checkout's queued and running jobs: id, state, name, comment (rule and wildcards)."""
    fields = ["JobID", "State", "Name", "Comment", "WorkDir", "TimeUsed"]
    fmt = "%i|%T|%j|%k|%Z|%M"
    cmd = ["squeue", "-h", "-o", fmt, "-u", user or _user()]
    rows = [dict(zip(fields, line.split("|", len(fields) - 1))) for line in _run(cmd).splitlines() if line]
    here = Path(checkout).resolve()
    return [r for r in rows if _same_dir(r.get("WorkDir", ""), here) and _ours(r.get("Name", ""))]


def _user() -> str:
    import getpass

    return getpass.getuser()


def _same_dir(path: str, here: Path) -> bool:
    try:
        return bool(path) and Path(path).resolve() == here
    except OSError:
        return False


def _ours(name: str) -> bool:
    """A job name the plugin gives: ``jmrn_<uuid>`` (the profile's prefix) or a bare uuid."""
    import re

    return bool(re.fullmatch(rf"({JOBNAME_PREFIX}_)?[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-"
                             r"[0-9a-f]{4}-[0-9a-f]{12}", name))


def format_jobs(jobs: Iterable[dict[str, str]]) -> str:
    return "\n".join(f"  {j['JobID']:>12}  {j['State']:<10} {j['TimeUsed']:>10}  {j['Comment']}"
                     for j in jobs)


def recover(checkout: str | os.PathLike, cancel: bool, unlock: bool, snakemake: str,
            extra_args: list[str]) -> int:
    """List (and with ``cancel`` end) this checkout's jobs left in SLURM, remove Snakemake's
    lock, and print the command that reruns what they had not finished."""
    jobs = squeue_jobs(checkout)
    if not jobs:
        print("no jobs of this checkout in squeue")
    else:
        print(f"{len(jobs)} job(s) of this checkout in squeue (id, state, time, rule and wildcards):")
        print(format_jobs(jobs))
        if cancel:
            ids = [j["JobID"] for j in jobs]
            subprocess.run(["scancel", *ids], check=False)
            print(f"cancelled {len(ids)} job(s)")
        else:
            print("they still run: a rerun now would start the same jobs again; "
                  "end them with: python -m jmrn slurm --cancel")
    locks = Path(checkout) / ".snakemake" / "locks"
    if unlock and locks.is_dir() and any(locks.iterdir()):
        if jobs and not cancel:
            print("leaving Snakemake's lock in place while those jobs run")
        else:
            for lock in locks.iterdir():
                lock.unlink()
            print(f"removed Snakemake's lock ({locks})")
    args = " ".join(shlex.quote(a) for a in extra_args) or "all --configfile <your config files>"
    print(f"rerun with: {snakemake} --profile slurm {args}")
    return 0
