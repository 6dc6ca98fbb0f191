"""What each job asks a scheduler for: threads, memory, time, GPUs, partition and account.

One home for every job's resources, read from the config's ``resources`` and ``slurm``
sections (defaults in the schema), so that a profile holds only executor settings and a user
overrides one key at a time (``--set-resources train:mem_mb=8000`` or a config overlay).
Training and export memory grows with the split: its PoTion maps are held in memory as
stored, float16. A retried job gets ``attempt`` times the memory and time of its first try.
"""
from __future__ import annotations

import math
from typing import Any

# Held in memory by training and export besides the maps: an input batch, its augmented
# copy and the model's activations, relative to the maps themselves.
MAP_MEMORY_FACTOR = 1.5


def resident_mib(peak: bool = True) -> float:
    """This process's peak (or current) resident memory in MiB, from /proc/self/status on Linux.
    Not getrusage's ru_maxrss: a child started by fork and exec inherits its parent's peak."""
    key = "VmHWM:" if peak else "VmRSS:"
    with open("/proc/self/status", encoding="ascii") as fh:
        kib = next(int(line.split()[1]) for line in fh if line.startswith(key))
    return kib / 1024


def uses_gpu(config: dict[str, Any], kind: str) -> int:
    """GPUs a job of this kind uses: pose with a network backend unless it is told to run on
    the CPU; training and export when ``train.gpus`` > 0. Zero for everything else."""
    if kind == "pose":
        if config["pose"]["backend"] != "openpifpaf":
            return 0
        device = config["pose"].get("options", {}).get("openpifpaf", {}).get("device", "auto")
        return 0 if device == "cpu" else 1
    if kind in ("train", "export"):
        return int(config["train"]["gpus"])
    return 0


def threads(config: dict[str, Any], kind: str) -> int:
    """CPU threads (= ``--cpus-per-task`` on SLURM) of a job kind."""
    if kind in ("train", "export"):
        return int(config["train"]["threads"])
    return int(config["resources"][kind]["threads"])


def maps_bytes(n_videos: int, map_shape: tuple[int, ...]) -> int:
    """Bytes of ``n_videos`` PoTion maps of ``map_shape`` (J x C x H x W) held in memory
    (float16, as stored; batches become float32 on the training device)."""
    return n_videos * math.prod(map_shape) * 2


def maps_mb(n_videos: int, map_shape: tuple[int, ...]) -> int:
    """``maps_bytes`` in megabytes, rounded up."""
    return math.ceil(maps_bytes(n_videos, map_shape) / 1e6)


def memory_mb(config: dict[str, Any], kind: str, attempt: int = 1, data_mb: int = 0) -> int:
    """Memory of a job kind: its configured base plus the maps it holds, times the attempt.
    Maps beyond ``train.max_memory_gb`` are streamed from the store (``jmrn.maps``), not held."""
    base = int(config["resources"][kind]["mem_mb"])
    if data_mb > config["train"]["max_memory_gb"] * 1000:
        data_mb = 0
    return (base + math.ceil(MAP_MEMORY_FACTOR * data_mb)) * max(1, int(attempt))


def runtime_min(config: dict[str, Any], kind: str, attempt: int = 1) -> int:
    """Time limit in minutes of a job kind, times the attempt."""
    return int(config["resources"][kind]["runtime"]) * max(1, int(attempt))


def placement(config: dict[str, Any], kind: str) -> dict[str, str]:
    """``slurm_partition`` / ``slurm_account`` of a job kind, only where the config sets them
    (an unset key leaves the cluster's default and a command line's ``--default-resources``)."""
    slurm = config["slurm"]
    partition = slurm["gpu_partition"] if uses_gpu(config, kind) else slurm["cpu_partition"]
    out = {}
    if partition:
        out["slurm_partition"] = partition
    if slurm["account"]:
        out["slurm_account"] = slurm["account"]
    return out


def fixed_resources(config: dict[str, Any], kind: str) -> dict[str, Any]:
    """The resources of a job kind that do not depend on the job: placement and GPUs."""
    out: dict[str, Any] = dict(placement(config, kind))
    gpus = uses_gpu(config, kind)
    if gpus:
        out["gpu"] = gpus
    return out
