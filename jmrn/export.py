"""Export stage: logits of the training, validation and test videos, metrics and joint weights."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import torch

from jmrn.device import resolve_device
from jmrn.errors import UserError
from jmrn.frame_map import OFFICIAL_MAX_PER_KEYFRAME, KeyframeEvaluator
from jmrn.io import atomic_path, write_json
from jmrn.maps import Maps, iterate_batches, sequential_batches
from jmrn.model_card import build_card, write_card
from jmrn.metrics import confusion_counts, evaluate, per_class_scores
from jmrn.models import count_parameters
from jmrn.pose.skeleton import JOINTS
from jmrn.store import PotionStore
from jmrn.tables import label_table, read_split_json, write_csv
from jmrn.train import build_variant_model, load_split, predict

log = logging.getLogger(__name__)

HEADLINES = ("mean_class_accuracy", "top1", "top5", "mAP", "frame_mAP")


def class_columns(trained_on: list[str], classes: list[str]) -> list[int]:
    """Positions of ``classes`` among the model's ``trained_on`` classes (by name)."""
    unknown = [c for c in classes if c not in trained_on]
    if unknown:
        raise UserError(f"{len(unknown)} classes of the data are not among the model's "
                        f"{len(trained_on)}: {', '.join(map(repr, unknown[:5]))}")
    return [trained_on.index(c) for c in classes]


def absent_joints(maps: Maps, joints: list[str]) -> list[str]:
    """Joints whose maps are zero in every given video: the pose source never gave them (a
    layout without eyes, say), so a model reading other poses must see them zero too."""
    peak = torch.zeros(len(joints))
    for batch in iterate_batches(maps, sequential_batches(len(maps), 256)):
        peak = torch.maximum(peak, batch.float().abs().amax(dim=(0, 2, 3, 4)))
    return [j for j, p in zip(joints, peak.tolist()) if p == 0]


def _no_nan(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in metrics.items()}


def export_variant(potion_path: str, videos: str, split: int, variant: dict[str, Any],
                   model_path: str, device: str, out_logits: str, out_metrics: str,
                   out_joint_weights: str, seed: int, val_fraction: float,
                   out_confusion: str | None = None,
                   precision: str = "fp32", threads: int = 1, max_memory_gb: float | None = None,
                   loader_workers: int = 0,
                   max_per_keyframe: int = OFFICIAL_MAX_PER_KEYFRAME,
                   out_card: str | None = None, provenance: dict[str, Any] | None = None,
                   model_classes: list[str] | None = None) -> dict[str, Any]:
    """Write logits.csv (train, val and test rows: fusion fits on val), metrics.json (test
    metrics with per-class accuracy, or AP for multi-label data; val metrics; and what
    identifies the run: split, variant, seed, threads, size), joint_weights.csv (selector
    weights per video) and confusion.csv (test counts, true class x top-1 prediction). Person
    boxes (AVA) also get frame-mAP@0.5 with at most ``max_per_keyframe`` detections per keyframe.

    ``out_card``: also write the model card (``jmrn.model_card``; ``provenance`` holds the run's
    dataset, pose and training settings). ``model_classes``: the classes the model was trained
    on, when they are not this data's (a bundle scored on another dataset): its logits are
    taken for this data's classes, by name."""
    torch.set_num_threads(max(1, threads))
    dev = resolve_device(device)
    table = read_split_json(videos)  # read once: for the rows and for AVA's keyframes
    data = load_split(potion_path, videos if table is None else table, split,
                      ("train", "val", "test"), val_fraction, max_memory_gb)
    first = data["train"]
    trained_on = model_classes or first.classes
    columns = class_columns(trained_on, first.classes)
    model = build_variant_model(variant, tuple(first.x.shape[1:]), len(trained_on))
    model.load_state_dict(torch.load(model_path, map_location="cpu", weights_only=True))
    keyframes = KeyframeEvaluator.from_table(table, max_per_keyframe)
    frames, weights_rows, scores, logits = [], [], {}, {}
    for subset, part in data.items():
        out = predict(model, part.x, len(trained_on), device=dev, precision=precision,
                      workers=loader_workers, crop=variant.get("crop"))
        out["logits"] = out["logits"][:, columns]
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
    if out_card is not None:
        write_card(out_card, build_card(
            variant=variant, n_parameters=metrics["n_parameters"], classes=list(trained_on),
            multilabel=test.y.dim() == 2, joints=list(JOINTS),
            absent_joints=absent_joints(first.x, list(JOINTS)), map_shape=tuple(first.x.shape[1:]),
            potion_attrs=PotionStore(potion_path).attrs, provenance=provenance or {}, split=split,
            seed=seed, metrics=metrics, weights=model_path, torch_version=torch.__version__))
    log.info("split %d %s seed %d on %d test videos: %s", split, metrics["variant"], seed,
             metrics["n_test"], ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                                          if k in HEADLINES and v is not None))
    return metrics
