"""Learned scalar late fusion (paper Tables 3-5) of our variants and external streams.

Each modality contributes logits for the same videos and classes. One positive weight per
modality (single-label) or per modality and class (multi-label) is fitted on the training
videos' logits by minimising the task loss with the backbones frozen; plain averaging of the
modalities' scores is reported beside it. External streams (RGB, flow, ...) come as a CSV
(``video_id`` + one column per class) or a ``.npy`` matrix with a text file of ids, one pair
per subset; ids and classes are checked against the reference modality.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from jmrn.io import VIDEO_TABLE_META, atomic_path, read_video_table, value_columns, write_json
from jmrn.datasets.manifest import label_targets
from jmrn.metrics import evaluate

log = logging.getLogger(__name__)

def fit_scalar_weights(logits: np.ndarray, labels: np.ndarray, multilabel: bool = False,
                       steps: int = 300) -> np.ndarray:
    """Positive weights for sum_m w_m * logits[m] (logits: M x N x K).

    Single-label: M weights, softmax cross-entropy, ``labels`` = N class indices.
    Multi-label: M x K weights (one per modality and class), BCE, ``labels`` = N x K multi-hot.
    """
    z = torch.as_tensor(logits, dtype=torch.float64)
    shape = (z.shape[0], z.shape[2]) if multilabel else (z.shape[0],)
    raw = torch.zeros(shape, dtype=torch.float64, requires_grad=True)  # w = softplus(raw) > 0
    target = torch.as_tensor(labels, dtype=torch.float64 if multilabel else torch.int64)
    opt = torch.optim.LBFGS([raw], lr=0.05, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = task_loss(apply_weights(F.softplus(raw), z), target, multilabel)
        loss.backward()
        return loss

    opt.step(closure)
    return F.softplus(raw).detach().numpy()


def apply_weights(weights: torch.Tensor | np.ndarray, logits: torch.Tensor | np.ndarray):
    """sum over modalities of weight x logits; weights M (scalars) or M x K (per class)."""
    if weights.ndim == 1:
        return (weights[:, None, None] * logits).sum(0)
    return (weights[:, None, :] * logits).sum(0)


def task_loss(fused: torch.Tensor, target: torch.Tensor, multilabel: bool) -> torch.Tensor:
    if multilabel:
        return F.binary_cross_entropy_with_logits(fused, target)
    return F.cross_entropy(fused, target)


def read_external(spec: Mapping[str, str], subset: str, split: int) -> pd.DataFrame:
    """One subset of an external stream as a table (video_id + class columns)."""
    path = Path(spec[subset].format(split=split))
    if not path.is_file():
        raise FileNotFoundError(f"external logits file {path} does not exist")
    if path.suffix == ".npy":
        ids_path = Path(spec[f"{subset}_ids"].format(split=split))
        ids = [line.strip() for line in ids_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        values = np.load(path, allow_pickle=False)
        if values.ndim != 2 or len(values) != len(ids):
            raise ValueError(f"{path}: shape {values.shape} does not match {len(ids)} ids in {ids_path}")
        classes = spec.get("classes")
        table = pd.DataFrame(values, columns=classes if classes else None)
        table.insert(0, "video_id", ids)
        return table
    return read_video_table(path)


def checked_columns(table: pd.DataFrame, classes: list[str], name: str) -> pd.DataFrame:
    """The table with its class columns named and ordered as ``classes``, or a clear error."""
    other = value_columns(table)
    if other and all(isinstance(c, int) for c in other):  # .npy without class names: positional
        if len(other) != len(classes):
            raise ValueError(f"{name}: {len(other)} columns of logits but {len(classes)} classes")
        table = table.rename(columns=dict(zip(other, classes)))
        other = classes
    missing_cls = [c for c in classes if c not in other]
    extra_cls = [c for c in other if c not in classes]
    if missing_cls or extra_cls:
        raise ValueError(f"{name}: class columns differ from the dataset's — missing "
                         f"{missing_cls[:5]}, unexpected {extra_cls[:5]}")
    return table


def align(reference: pd.DataFrame, table: pd.DataFrame, classes: list[str], name: str) -> np.ndarray:
    """Logits of ``table`` in the reference's row and class order, with clear errors."""
    table = checked_columns(table, classes, name)
    if table["video_id"].duplicated().any():
        dup = table.loc[table["video_id"].duplicated(), "video_id"].head(3).tolist()
        raise ValueError(f"{name}: duplicate video ids, e.g. {dup}")
    keys = ["video_id", "subset"] if "subset" in table else ["video_id"]
    merged = reference[keys].merge(table[keys + classes], on=keys, how="left")
    values = merged[classes].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    missing = merged.loc[np.isnan(values).all(axis=1), "video_id"].tolist()
    if missing:
        raise ValueError(f"{name}: no logits for {len(missing)} videos, e.g. {missing[:3]}")
    bad = merged.loc[np.isnan(values).any(axis=1), "video_id"].tolist()
    if bad:
        raise ValueError(f"{name}: NaN or non-numeric logits for {len(bad)} videos, e.g. {bad[:3]}")
    return values


def load_modalities(names: Sequence[str], internal: Mapping[str, str],
                    external: Mapping[str, Mapping[str, str]], split: int
                    ) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Reference rows (video_id, subset, label or labels), logits M x N x K and class names."""
    first = next((n for n in names if n in internal), None)
    if first is None:
        raise ValueError("a fusion needs at least one of our variants (it defines labels and subsets)")
    ref_table = read_video_table(internal[first])
    classes = value_columns(ref_table)
    reference = ref_table[[c for c in VIDEO_TABLE_META if c in ref_table]].reset_index(drop=True)
    stacked = []
    for name in names:
        if name in internal:
            table = read_video_table(internal[name])
        else:
            table = pd.concat([checked_columns(read_external(external[name], s, split), classes,
                                               f"{name} ({s})").assign(subset=s)
                               for s in ("train", "test")], ignore_index=True)
        stacked.append(align(reference, table, classes, name))
    return reference, np.stack(stacked), classes


def fuse(names: Sequence[str], internal: Mapping[str, str], external: Mapping[str, Mapping[str, str]],
         split: int, out_weights: str, out_logits: str, out_metrics: str) -> dict:
    """Fit fusion weights on the train rows and evaluate every combination on the test rows."""
    meta, logits, classes = load_modalities(names, internal, external, split)
    train = (meta["subset"] == "train").to_numpy()
    test = ~train
    y = label_targets(meta, len(classes))
    multilabel = y.ndim == 2
    weights = fit_scalar_weights(logits[:, train], y[train], multilabel=multilabel)
    fused = apply_weights(weights, logits)
    z = torch.as_tensor(logits)
    probs = (torch.sigmoid(z) if multilabel else torch.softmax(z, dim=-1)).numpy()
    rows = {name: evaluate(y[test], logits[m, test]) for m, name in enumerate(names)}
    rows["average"] = evaluate(y[test], probs[:, test].mean(axis=0))
    rows["learned"] = evaluate(y[test], fused[test])

    def train_loss(z: np.ndarray) -> float:
        target = torch.as_tensor(y[train], dtype=torch.float64 if multilabel else torch.int64)
        return float(task_loss(torch.as_tensor(z[train]), target, multilabel))

    train_fit = {"learned_train_loss": train_loss(fused),
                 **{f"{name}_train_loss": train_loss(logits[m]) for m, name in enumerate(names)}}
    write_json(out_weights, {"modalities": list(names), "weights": weights.tolist()})
    table = pd.DataFrame(fused, columns=classes)
    for i, col in enumerate(meta.columns):
        table.insert(i, col, meta[col])
    with atomic_path(out_logits) as tmp:
        table.to_csv(tmp, index=False)
    result = {"test": rows, "train": train_fit, "weights": dict(zip(names, weights.tolist()))}
    write_json(out_metrics, result)
    headline = "mAP" if multilabel else "mean_class_accuracy"
    log.info("fusion of %s: weights %s, test %s %.4f (average %.4f)", list(names),
             np.round(weights, 4).tolist(), headline, rows["learned"][headline], rows["average"][headline])
    return result
