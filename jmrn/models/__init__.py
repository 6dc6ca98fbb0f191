"""Model zoo: every variant in the config names one of these architectures and its options."""
from __future__ import annotations

import math
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


# The option scaled to match another model's size: the whole width of the PoTion network, the
# per-joint extractor's width of JMRN (the rest of JMRN stays the full model's).
SIZE_KNOB = {"potion": "width", "jmrn": "extractor_width"}


def match_parameters(arch: str, options: dict[str, Any], target: int, joints: int, channels: int,
                     num_classes: int, tolerance: float = 0.1) -> dict[str, Any]:
    """``options`` with the architecture's size knob (SIZE_KNOB) set so that the model has
    ``target`` parameters to within ``tolerance`` (bisection on a log scale; channel counts are
    integers, so the closest count found is used). Deterministic: same inputs, same options."""
    knob = SIZE_KNOB[arch]
    base = float(options.get(knob, 1.0))

    def count(scale: float) -> int:
        return count_parameters(build_model(arch, joints, channels, num_classes,
                                            **{**options, knob: round(base * scale, 6)}))

    lo, hi = math.log(1 / 64), math.log(16.0)
    best = (abs(count(1.0) / target - 1), 1.0)
    for _ in range(40):
        mid = (lo + hi) / 2
        n = count(math.exp(mid))
        best = min(best, (abs(n / target - 1), math.exp(mid)))
        if best[0] < 0.005:
            break
        lo, hi = (mid, hi) if n < target else (lo, mid)
    if best[0] > tolerance:
        raise ValueError(f"cannot match {target} parameters with {arch} options {options} "
                         f"(closest is {best[0]:.0%} away); change the variant's model options")
    return {**options, knob: round(base * best[1], 6)}


__all__ = ["ARCHITECTURES", "JMRN", "PotionNet", "SIZE_KNOB", "build_model", "count_parameters",
           "match_parameters"]
