"""Model zoo: every variant in the config names one of these architectures and its options."""
from __future__ import annotations

from typing import Any

from torch import nn

from jmrn.models.jmrn_net import JMRN
from jmrn.models.layers import count_parameters
from jmrn.models.potion_net import PotionNet

ARCHITECTURES = ("potion", "jmrn")


def build_model(arch: str, joints: int, channels: int, num_classes: int, **options: Any) -> nn.Module:
    """Instantiate an architecture with the variant's options (width, ablation switches...)."""
    if arch == "potion":
        return PotionNet(joints, channels, num_classes, **options)
    if arch == "jmrn":
        return JMRN(joints, channels, num_classes, **options)
    raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")


__all__ = ["ARCHITECTURES", "JMRN", "PotionNet", "build_model", "count_parameters"]
