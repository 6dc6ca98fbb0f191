"""Export stage: logits of the training, validation and test videos, metrics and joint weights."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import torch

from jmrn.frame_map import OFFICIAL_MAX_PER_KEYFRAME, KeyframeEvaluator
from jmrn.io import atomic_path, write_json
from jmrn.metrics import confusion_counts, evaluate, per_class_scores
from jmrn.models import count_parameters
from jmrn.pose.skeleton import JOINTS
from jmrn.tables import label_table, read_split_json, write_csv
from jmrn.train import build_variant_model, load_split, predict, resolve_device

log = logging.getLogger(__name__)

HEADLINES = ("mean_class_accuracy", "top1", "top5", "mAP", "frame_mAP")


def _no_nan(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in metrics.items()}


def export_variant(potion_path: str, videos: str, split: int, variant: dict[str, Any],
                   model_path: str, device: str, out_logits: str, out_metrics: str,
                   out_joint_weights: str, seed: int, val_fraction: float,
                   out_confusion: str | None = None,
                   precision: str = "fp32", threads: int = 1, max_memory_gb: float | None = None,
                   loader_workers: int = 0,
                   max_per_keyframe: int = OFFICIAL_MAX_PER_KEYFRAME) -> dict[str, Any]:
    """Write logits.csv (train, val and test rows: fusion fits on val), metrics.json (test
    metrics with per-class accuracy, or AP for multi-label data; val metrics; and what
    identifies the run: split, variant, seed, threads, size), joint_weights.csv (selector
    weights per video) and confusion.csv (test counts, true class x top-1 prediction). Person
    boxes (AVA) also get frame-mAP@0.5 with at most ``max_per_keyframe`` detections per keyframe."""
    torch.set_num_threads(max(1, threads))
    dev = resolve_device(device)
    table = read_split_json(videos)  # read once: for the rows and for AVA's keyframes
    data = load_split(potion_path, videos if table is None else table, split,
                      ("train", "val", "test"), val_fraction, max_memory_gb)
    first = data["train"]
    model = build_variant_model(variant, tuple(first.x.shape[1:]), len(first.classes))
    model.load_state_dict(torch.load(model_path, map_location="cpu", weights_only=True))
    keyframes = KeyframeEvaluator.from_table(table, max_per_keyframe)
    frames, weights_rows, scores, logits = [], [], {}, {}
    for subset, part in data.items():
        out = predict(model, part.x, len(part.classes), device=dev, precision=precision,
                      workers=loader_workers, crop=variant.get("crop"))
        logits[subset] = out["logits"]
        meta = pd.concat([pd.DataFrame({"video_id": part.ids, "subset": subset}),
                          label_table(part.y.numpy())], axis=1)
        frames.append(pd.concat([meta, pd.DataFrame(out["logits"], columns=part.classes)], axis=1))
        if "joint_weights" in out:
            weights_rows.append(pd.concat([meta, pd.DataFrame(out["joint_weights"], columns=list(JOINTS))],
                                          axis=1))
        scores[subset] = evaluate(part.y.numpy(), out["logits"])
        if keyframes is not None:  # person boxes (AVA): frame-mAP@0.5 against the ground truth
            scores[subset]["frame_mAP"] = keyframes.frame_map(part.ids, out["logits"], subset)
    write_csv(pd.concat(frames), out_logits)  # ids from outside escaped for spreadsheets
    cols = [*frames[0].columns[:3], *JOINTS]
    write_csv(pd.concat(weights_rows) if weights_rows else pd.DataFrame(columns=cols), out_joint_weights)
    test = data["test"]
    per_class = per_class_scores(test.y.numpy(), logits["test"])
    if out_confusion is not None:
        with atomic_path(out_confusion) as tmp:
            pd.DataFrame(confusion_counts(test.y.numpy(), logits["test"]), columns=test.classes,
                         index=pd.Index(test.classes, name="true")).to_csv(tmp)
    metrics = _no_nan(scores["test"])
    metrics["per_class"] = _no_nan(dict(zip(test.classes, map(float, per_class))))
    metrics["per_class_metric"] = "AP" if test.y.dim() == 2 else "accuracy"
    metrics.update(
        split=split, variant=variant.get("name", ""), seed=seed, threads=max(1, threads),
        torch=torch.__version__, n_classes=len(first.classes), n_train=len(first.ids),
        n_parameters=count_parameters(model), val=_no_nan(scores["val"]),
    )
    write_json(out_metrics, metrics)
    log.info("split %d %s seed %d on %d test videos: %s", split, metrics["variant"], seed,
             metrics["n_test"], ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                                          if k in HEADLINES and v is not None))
    return metrics
