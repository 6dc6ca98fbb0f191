"""Building blocks shared by the PoTion baseline and JMRN."""
from __future__ import annotations

from torch import nn


def scaled(channels: int, width: float) -> int:
    """Channel count after the width multiplier (at least 8)."""
    return max(8, int(round(channels * width)))


def _dropped(dropout: float) -> list[nn.Module]:
    """Dropout2d after a convolution block, as the public model places it; none at rate 0
    (so a model without dropout has exactly the same modules and state-dict keys)."""
    return [nn.Dropout2d(dropout)] if dropout > 0 else []


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1, kernel: int = 3, groups: int = 1,
                 dropout: float = 0.0) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False, groups=groups),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        *_dropped(dropout),
    )


def conv_relu(c_in: int, c_out: int, stride: int = 1, kernel: int = 3, groups: int = 1,
              dropout: float = 0.0) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups),
        nn.ReLU(inplace=True),
        *_dropped(dropout),
    )


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
