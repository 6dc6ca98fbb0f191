"""Export stage: logits of the training and test videos, metrics and selector joint weights."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import torch

from jmrn.io import atomic_path, write_json
from jmrn.datasets.manifest import label_table
from jmrn.metrics import evaluate
from jmrn.pose.skeleton import JOINTS
from jmrn.train import build_variant_model, load_split, predict, resolve_device

log = logging.getLogger(__name__)


def export_variant(potion_path: str, manifest_csv: str, split: int, variant: dict[str, Any],
                   model_path: str, device: str, out_logits: str, out_metrics: str,
                   out_joint_weights: str, threads: int = 1) -> dict[str, float]:
    """Write logits.csv (train and test rows), metrics.json (test) and joint_weights.csv."""
    torch.set_num_threads(max(1, threads))
    dev = resolve_device(device)
    frames, weights_rows = [], []
    metrics: dict[str, Any] = {}
    model = None
    for subset in ("train", "test"):
        ids, x, y, classes = load_split(potion_path, manifest_csv, split, subset)
        if model is None:
            model = build_variant_model(variant, tuple(x.shape[1:]), len(classes))
            model.load_state_dict(torch.load(model_path, map_location="cpu", weights_only=True))
        out = predict(model, x, len(classes), device=dev)
        meta = pd.concat([pd.DataFrame({"video_id": ids, "subset": subset}), label_table(y.numpy())],
                         axis=1)
        frames.append(pd.concat([meta, pd.DataFrame(out["logits"], columns=classes)], axis=1))
        if "joint_weights" in out:
            weights_rows.append(pd.concat([meta, pd.DataFrame(out["joint_weights"], columns=list(JOINTS))],
                                          axis=1))
        if subset == "test":
            metrics = evaluate(y.numpy(), out["logits"])
    with atomic_path(out_logits) as tmp:
        pd.concat(frames).to_csv(tmp, index=False)
    with atomic_path(out_joint_weights) as tmp:
        cols = [*frames[0].columns[:3], *JOINTS]
        (pd.concat(weights_rows) if weights_rows else pd.DataFrame(columns=cols)).to_csv(tmp, index=False)
    metrics.update(split=split, variant=variant.get("name", ""),
                   n_classes=int(len(frames[0].columns) - 3))
    metrics = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in metrics.items()}
    write_json(out_metrics, metrics)
    log.info("split %d %s on %d test videos: %s", split, metrics["variant"], metrics["n_test"],
             ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                       if k in ("mean_class_accuracy", "top1", "top5", "mAP") and v is not None))
    return metrics
