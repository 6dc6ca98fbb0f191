"""Before any job: the input files a config names (dataset, pose checkpoint or files, other
streams' logits) that do not exist, one line each with what to do, so that a run stops at once
instead of after queueing hundreds of jobs."""
from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

CHECKPOINT_HELP = ("get openpifpaf's shufflenetv2k16 checkpoint on a machine with internet and "
                   "convert it with `python -m jmrn openpifpaf-state-dict`: "
                   "docs/pose-backends.md#openpifpaf-checkpoint")
DATASET_HELP = "the dataset's published layout is in docs/datasets.md"

# Dataset keys holding paths, per adapter. The demo writes its own data.
DATASET_PATHS = {
    "hmdb51": ("video_root", "split_dir"),
    "jhmdb": ("video_root", "split_dir", "joint_root"),
    "charades": ("video_root", "annotation_dir"),
    "ava": ("video_root", "annotation_dir", "proposals"),
    "skeleton": ("annotation", "label_names"),
    "folder": ("video_root",),
    "csv": ("annotation",),
}
POSE_FILE_BACKENDS = ("openpose", "openpose_heatmaps", "alphapose")  # read other tools' output


def _is_local_file(name: str) -> bool:
    """A checkpoint given as a path (rather than a name openpifpaf downloads)."""
    return "/" in name or "\\" in name or name.endswith((".pt", ".pth", ".pkl"))


def _dataset_paths(dataset: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for key in DATASET_PATHS.get(dataset["adapter"], ()):
        if dataset.get(key):
            yield f"dataset.{key}", str(dataset[key])
    if dataset["adapter"] == "kinetics_mimetics":
        for source in ("train_source", "test_source"):
            for key in ("annotation", "video_root"):
                yield f"dataset.{source}.{key}", str(dataset[source][key])


def _pose_paths(pose: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    backend = pose["backend"]
    options = (pose.get("options") or {}).get(backend) or {}
    if backend == "openpifpaf":
        checkpoint = options.get("checkpoint")
        if checkpoint and _is_local_file(str(checkpoint)):
            yield "pose.options.openpifpaf.checkpoint", str(checkpoint), CHECKPOINT_HELP
    elif backend in POSE_FILE_BACKENDS and options.get("root"):
        yield f"pose.options.{backend}.root", str(options["root"]), f"point it at {backend}'s output, one entry per video"


def _external_paths(config: dict[str, Any]) -> Iterator[tuple[str, str]]:
    splits = config["dataset"]["splits"]
    for name, spec in (config.get("external_logits") or {}).items():
        for key in ("train", "val", "test", "train_ids", "val_ids", "test_ids", "action_list"):
            if spec.get(key):
                for path in sorted({str(spec[key]).replace("{split}", str(s)) for s in splits}):
                    yield f"external_logits.{name}.{key}", path


def missing_inputs(config: dict[str, Any], base: str | Path = ".") -> list[str]:
    """One line per input file or folder the config names that does not exist (paths relative
    to ``base``, the directory Snakemake runs in)."""
    root = Path(base)
    missing = []
    if config["dataset"]["adapter"] != "demo":
        for key, path in _dataset_paths(config["dataset"]):
            if not (root / path).exists():
                missing.append(f"{key}: {path} does not exist; {DATASET_HELP}")
    for key, path, help_text in _pose_paths(config["pose"]):
        if not (root / path).exists():
            missing.append(f"{key}: {path} does not exist; {help_text}")
    for key, path in _external_paths(config):
        if not (root / path).exists():
            missing.append(f"{key}: {path} does not exist")
    return missing


# Snakemake invocations that run no job, so need no input: a dry run, reports, listings.
NO_JOB_FLAGS = ("--dry-run", "--dryrun", "--report", "--lint", "--list", "--list-rules",
                "--list-target-rules", "--summary", "--detailed-summary", "--dag", "--rulegraph",
                "--filegraph", "--unlock", "--cleanup-metadata", "--touch", "--containerize",
                "--archive", "--delete-all-output", "--delete-temp-output")


def runs_jobs(argv: Sequence[str]) -> bool:
    """Whether a Snakemake command line would run jobs (not ``-n``, ``--report``, ...)."""
    for arg in argv:
        if arg.split("=", 1)[0] in NO_JOB_FLAGS or re.fullmatch(r"-[A-Za-z]*[nlt][A-Za-z]*", arg):
            return False  # a long flag, or short ones such as -n, -np, -l, -t
    return True
