"""Learned scalar late fusion (paper Tables 3-5): one positive weight per modality.

Weights are fitted on the training videos' logits by minimising cross-entropy with the
backbones frozen; plain averaging of softmax scores is reported beside it for comparison.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from jmrn.io import atomic_path, write_json
from jmrn.metrics import classification_metrics

log = logging.getLogger(__name__)

META_COLUMNS = ("video_id", "subset", "label")


def fit_scalar_weights(logits: np.ndarray, labels: np.ndarray, steps: int = 300,
                       lr: float = 0.05) -> np.ndarray:
    """Positive weights w (M,) minimising CE of sum_m w_m * logits[m] (logits: M x N x K)."""
    z = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.int64)
    raw = torch.zeros(z.shape[0], dtype=torch.float64, requires_grad=True)  # w = softplus(raw)
    opt = torch.optim.LBFGS([raw], lr=lr, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        fused = torch.einsum("m,mnk->nk", F.softplus(raw), z)
        loss = F.cross_entropy(fused, y)
        loss.backward()
        return loss

    opt.step(closure)
    return F.softplus(raw).detach().numpy()


def load_modalities(paths: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Align several logits.csv files on (video_id, subset); returns meta, M x N x K, classes."""
    tables = [pd.read_csv(p, dtype={"video_id": str}, keep_default_na=False) for p in paths]
    classes = [c for c in tables[0].columns if c not in META_COLUMNS]
    base = tables[0][list(META_COLUMNS)]
    stacked = []
    for path, t in zip(paths, tables):
        other = [c for c in t.columns if c not in META_COLUMNS]
        if other != classes:
            raise ValueError(f"{path}: class columns differ from {paths[0]}")
        merged = base.merge(t, on=["video_id", "subset"], how="left", suffixes=("", "_m"))
        if merged[classes].isna().any().any():
            missing = merged.loc[merged[classes].isna().any(axis=1), "video_id"].head(3).tolist()
            raise ValueError(f"{path}: no logits for some videos, e.g. {missing}")
        stacked.append(merged[classes].to_numpy(np.float64))
    return base.reset_index(drop=True), np.stack(stacked), classes


def fuse(names: Sequence[str], paths: Sequence[str], out_weights: str, out_logits: str,
         out_metrics: str) -> dict:
    """Fit fusion weights on the train rows and evaluate every combination on the test rows."""
    meta, logits, classes = load_modalities(paths)
    train = (meta["subset"] == "train").to_numpy()
    test = ~train
    y = meta["label"].to_numpy(np.int64)
    weights = fit_scalar_weights(logits[:, train], y[train])
    fused = np.einsum("m,mnk->nk", weights, logits)
    probs = torch.softmax(torch.as_tensor(logits), dim=-1).numpy()
    rows = {name: classification_metrics(y[test], logits[m, test]) for m, name in enumerate(names)}
    rows["average"] = classification_metrics(y[test], probs[:, test].mean(axis=0))
    rows["learned"] = classification_metrics(y[test], fused[test])
    train_fit = {
        "learned_train_loss": float(F.cross_entropy(torch.as_tensor(fused[train]), torch.as_tensor(y[train]))),
        **{f"{name}_train_loss": float(F.cross_entropy(torch.as_tensor(logits[m, train]),
                                                        torch.as_tensor(y[train])))
           for m, name in enumerate(names)},
    }
    write_json(out_weights, {"modalities": list(names), "weights": weights.tolist()})
    table = pd.DataFrame(fused, columns=classes)
    for i, col in enumerate(META_COLUMNS):
        table.insert(i, col, meta[col])
    with atomic_path(out_logits) as tmp:
        table.to_csv(tmp, index=False)
    result = {"test": rows, "train": train_fit, "weights": dict(zip(names, weights.tolist()))}
    write_json(out_metrics, result)
    log.info("fusion of %s: weights %s, test mean class acc %.4f (average %.4f)", list(names),
             np.round(weights, 4).tolist(), rows["learned"]["mean_class_accuracy"],
             rows["average"]["mean_class_accuracy"])
    return result
