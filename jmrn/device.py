"""Where tensors run: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, checked against the machine."""
from __future__ import annotations

import torch

from jmrn.errors import UserError


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
