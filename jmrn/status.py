"""``python -m jmrn status``: how far a run is, without opening its logs.

Per stage, the jobs done out of those planned come from Snakemake's own log of the latest run
(``.snakemake/log/``: its job table and "Finished jobid" lines); for each job whose log has no
benchmark file yet (running, or stopped), the last progress bar of its log gives the position
(videos of a pose shard, epochs of a training) and tqdm's estimate of the time left.
"""
from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

PIPELINE_ORDER = ["demo_dataset", "manifest", "shard_videos", "pose", "potion", "split_videos",
                  "train", "export", "fusion", "report", "all"]
JOB_STATS_ROW = re.compile(r"^(\w+)\s+(\d+)$")
FINISHED = re.compile(r"Finished jobid: \d+ \(Rule: (\w+)\)")
PROGRESS = re.compile(r"INFO [\w.]+: (?P<what>.*?):\s+\d+%\|.*?\|\s*(?P<done>\d+)/(?P<total>\d+) "
                      r"\[(?P<elapsed>[\d:]+)<(?P<left>[\d:?]+)")


@dataclass
class StageCount:
    rule: str
    done: int
    total: int


def latest_snakemake_log(workdir: Path) -> Path | None:
    """The newest log of a run that planned jobs (not a report, a dry run or a refused run)."""
    for log in sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"), reverse=True):
        if "Job stats:" in log.read_text(encoding="utf-8", errors="replace"):
            return log
    return None


def stage_counts(log_text: str) -> list[StageCount]:
    """Jobs per rule planned at the start of a run (its "Job stats" table) and finished since."""
    planned: dict[str, int] = {}
    lines = log_text.splitlines()
    if "Job stats:" in lines:
        for line in lines[lines.index("Job stats:") + 3:]:
            match = JOB_STATS_ROW.match(line.strip())
            if not match or match.group(1) == "total":
                break
            planned[match.group(1)] = int(match.group(2))
    finished = Counter(FINISHED.findall(log_text))
    rules = sorted(set(planned) | set(finished),
                   key=lambda r: (PIPELINE_ORDER.index(r) if r in PIPELINE_ORDER else len(PIPELINE_ORDER), r))
    return [StageCount(r, finished.get(r, 0), max(planned.get(r, 0), finished.get(r, 0)))
            for r in rules]


@dataclass
class JobProgress:
    job: str  # the log's path below results/
    what: str
    done: int
    total: int
    left: str  # tqdm's estimate, H:MM:SS or MM:SS
    idle_s: float  # seconds since the log last changed


def running_jobs(results: Path, now: float | None = None) -> list[JobProgress]:
    """Jobs whose log exists but whose benchmark file does not (the rule writes that last),
    with the last progress bar of the log."""
    now = time.time() if now is None else now
    jobs = []
    for log in sorted(results.glob("*/logs/**/*.log")):
        dataset_dir = log.parents[len(log.relative_to(results).parts) - 2]
        relative = log.relative_to(dataset_dir / "logs")
        if (dataset_dir / "benchmarks" / relative.with_suffix(".tsv")).exists():
            continue
        matches = list(PROGRESS.finditer(log.read_text(encoding="utf-8", errors="replace")))
        if not matches:
            continue
        last = matches[-1]
        jobs.append(JobProgress(str(log.relative_to(results)), last["what"], int(last["done"]),
                                int(last["total"]), last["left"], now - log.stat().st_mtime))
    return jobs


def print_status(results: str | Path = "results", workdir: str | Path = ".") -> None:
    results, workdir = Path(results), Path(workdir)
    log = latest_snakemake_log(workdir)
    if log is None:
        print(f"no Snakemake run found in {workdir.resolve()}/.snakemake/log")
    else:
        text = log.read_text(encoding="utf-8", errors="replace")
        state = ("finished" if "steps (100%) done" in text else
                 "stopped with an error" if "Error in rule" in text or "Exiting because" in text
                 else "running, or interrupted")
        print(f"latest run: {log.name} ({state})")
        for stage in stage_counts(text):
            print(f"  {stage.rule:<13} {stage.done:>5} / {stage.total} done")
    jobs = running_jobs(results)
    if jobs:
        print("jobs with a log and no result yet:")
    for job in jobs:
        idle = f", log idle {job.idle_s / 60:.0f} min" if job.idle_s > 120 else ""
        print(f"  {job.job}: {job.what} {job.done}/{job.total}, about {job.left} left{idle}")
