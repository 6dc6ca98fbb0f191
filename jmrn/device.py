"""Where tensors run: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, checked against the machine;
and how a training or export job's process reuses host memory."""
from __future__ import annotations

import ctypes
import logging

import torch

from jmrn.errors import UserError

log = logging.getLogger(__name__)

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
KEEP_BELOW_BYTES = 2**30  # blocks up to this size come from (and go back to) the reused heap


def resolve_device(name: str) -> torch.device:
    """``auto`` (a GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N``; asking for a GPU
    this machine does not have is a one-line error, not a CUDA traceback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= available:
            raise UserError(f"device {name!r} (train.device or pose.options.openpifpaf.device) but this "
                            f"machine has {available} usable CUDA GPUs; use 'auto' or 'cpu', or "
                            "ask the scheduler for a GPU (train.gpus)")
    return device


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse rather than hand it back to the kernel,
    for the rest of this process: called by the training and export jobs' processes.

    By default a block above malloc's mmap threshold (at most 32 MiB) gets fresh pages that
    fault in, zeroed, on first touch and are unmapped when freed, and the heap's free top is
    trimmed. A training step allocates and frees its activations every step (up to about
    200 MB each at 64 x 86 for JMRN's folded extractor batch), so it would pay those page
    faults every step. The price: the process keeps its peak memory until it exits, and that
    peak is higher (figures in docs/benchmarks.md). Returns False where the C library has no
    glibc mallopt (macOS, musl, Windows) or refuses the settings."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        log.debug("this C library has no glibc mallopt: freed memory goes back to the system")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    # glibc versions that cap the mmap threshold (at 32 MiB) refuse 1 GiB: there, no block is
    # mmapped at all, so large ones come from the heap as well
    kept = mallopt(M_MMAP_THRESHOLD, KEEP_BELOW_BYTES) or mallopt(M_MMAP_MAX, 0)
    untrimmed = mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
    if not (kept and untrimmed):
        log.debug("mallopt refused to keep freed memory: it goes back to the system")
    return bool(kept and untrimmed)
