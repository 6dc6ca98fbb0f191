"""A merged config's effective training recipe, one line per setting, as config/README.md's
recipe table states it (``python -m jmrn recipe FILE ...`` prints it; a test holds the table
to it)."""
from __future__ import annotations

from typing import Any

import numpy as np

from jmrn.config import resolve_variant

FULL_MODEL = "jmrn_paa_cl"


def _number(value: float) -> str:
    return np.format_float_positional(float(value), trim="-")


def ramp_end(config: dict[str, Any]) -> int:
    """The epoch (1-based) in which lambda reaches ``train.contrastive_weight``."""
    ramp = config["train"].get("contrastive_ramp") or {}
    return int(ramp.get("start", 0)) + max(int(ramp.get("length", 0)), 1)


def effective_recipe(config: dict[str, Any], variant: str = FULL_MODEL) -> dict[str, str]:
    """What one variant (by default the full model) trains with, keyed by config key."""
    train = config["train"]
    resolved = resolve_variant(config, variant)
    model, augment = resolved["model"], resolved["augment"] or {}
    ramp = train.get("contrastive_ramp") or {}
    crop = resolved["crop"]
    return {
        "train.epochs": str(train["epochs"]),
        "train.batch_size": str(train["batch_size"]),
        "train.lr": np.format_float_scientific(float(train["lr"]), trim="-", exp_digits=1),
        "train.eval_every": str(train.get("eval_every", 5)),
        "train.patience": str(train["patience"]),
        "train.temperature": _number(train.get("temperature", 0.3)),
        "train.contrastive_weight": _number(train.get("contrastive_weight", 0.05)),
        "train.contrastive_ramp": f"start {ramp.get('start', 0)}, length {ramp.get('length', 0)}",
        "train.classify_both_views": str(bool(train.get("classify_both_views", True))).lower(),
        "model.c_dim": str(model.get("c_dim", 128)),
        "model.dropout": _number(model.get("dropout", 0.0)),
        "augment.global_jitter": _number(augment.get("global_jitter", 0.0)),
        "augment.group_jitter": _number(augment.get("group_jitter", 0.0)),
        "augment.flip": str(bool(augment.get("flip", False))).lower(),
        "augment.crop": f"{crop[0]} × {crop[1]}" if crop else "none",
    }


def recipe_table(configs: dict[str, dict[str, Any]]) -> str:
    """Markdown: one row per setting, one column per named config."""
    recipes = {name: effective_recipe(config) for name, config in configs.items()}
    keys = list(next(iter(recipes.values())))
    lines = ["| key | " + " | ".join(recipes) + " |", "|---" * (len(recipes) + 1) + "|"]
    lines += [f"| `{key}` | " + " | ".join(r[key] for r in recipes.values()) + " |" for key in keys]
    return "\n".join(lines)
