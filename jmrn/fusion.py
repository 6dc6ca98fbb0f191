"""Learned scalar late fusion (paper Tables 3-5) of our variants and external streams.

Each modality contributes logits for the same videos and classes. One non-negative weight per
modality (single-label) or per modality and class (multi-label) is fitted with the backbones
frozen, on logits of videos the models did not train on: the validation subset of the split
(``subset == "val"`` in our logits.csv; ``val`` files for external streams). Training logits
of models that fit their training set make a fit trust the most overfit stream, so they are
used only when some stream has no validation logits, with a warning, and the tables say so.

The fit minimises the task loss plus ``alpha * sum_m (w_m - mean(w))^2`` (a pull towards equal
weights), with ``alpha`` chosen by K-fold cross-validation on the fitting set; iterations, final
loss, gradient norm and whether the weights moved at all are recorded. External streams (RGB,
flow, ...) come as a CSV (``video_id`` + one column per class) or a ``.npy`` matrix with a text
file of ids, one pair per subset; ids and classes are checked against the reference modality.
"""
from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from jmrn.frame_map import OFFICIAL_MAX_PER_KEYFRAME, KeyframeEvaluator
from jmrn.io import VIDEO_TABLE_META, atomic_path, read_video_table, value_columns, write_json
from jmrn.metrics import evaluate
from jmrn.tables import label_targets, read_split_json

log = logging.getLogger(__name__)

ALPHAS = (0.0, 0.01, 0.1, 1.0, 10.0, 1000.0)  # strengths of the pull towards equal weights
CV_FOLDS = 5


@dataclass
class FusionFit:
    """Fitted weights (M, or M x K) and how the fit went."""
    weights: np.ndarray
    alpha: float
    iterations: int
    loss: float
    grad_norm: float
    converged: bool
    moved: bool
    cv_loss: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict:
        d = asdict(self)
        d["weights"] = self.weights.tolist()
        return d


def _loss_fn(z: torch.Tensor, target: torch.Tensor, multilabel: bool, alpha: float):
    def loss(raw: torch.Tensor) -> torch.Tensor:
        w = F.softplus(raw)
        penalty = ((w - w.mean(dim=0, keepdim=True)) ** 2).sum()
        return task_loss(apply_weights(w, z), target, multilabel) + alpha * penalty
    return loss


def fit_scalar_weights(logits: np.ndarray, labels: np.ndarray, multilabel: bool = False,
                       alpha: float = 0.0, steps: int = 500) -> FusionFit:
    """Non-negative weights for sum_m w_m * logits[m] (logits: M x N x K), started from equal
    weights 1/M (logit averaging) and regularised towards equal weights by ``alpha``.

    Single-label: M weights, softmax cross-entropy, ``labels`` = N class indices.
    Multi-label: M x K weights (one per modality and class), BCE, ``labels`` = N x K multi-hot.
    """
    z = torch.as_tensor(logits, dtype=torch.float64)
    m = z.shape[0]
    shape = (m, z.shape[2]) if multilabel else (m,)
    start = float(np.log(np.expm1(1.0 / m)))  # softplus(start) = 1/M
    raw = torch.full(shape, start, dtype=torch.float64, requires_grad=True)
    target = torch.as_tensor(labels, dtype=torch.float64 if multilabel else torch.int64)
    objective = _loss_fn(z, target, multilabel, alpha)
    opt = torch.optim.LBFGS([raw], lr=1.0, max_iter=steps, tolerance_grad=1e-9,
                            tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = objective(raw)
        loss.backward()
        return loss

    opt.step(closure)
    loss = closure()
    grad_norm = float(raw.grad.norm())
    weights = F.softplus(raw).detach().numpy()
    return FusionFit(weights=weights, alpha=alpha, iterations=int(opt.state[raw].get("n_iter", 0)),
                     loss=float(loss.detach()), grad_norm=grad_norm, converged=grad_norm < 1e-5,
                     moved=bool(np.abs(weights - 1.0 / m).max() > 1e-6))


def _folds(n: int, k: int) -> np.ndarray:
    """Deterministic fold index of each of n rows (a hash of the row number, no seed)."""
    order = sorted(range(n), key=lambda i: zlib.crc32(f"fold:{i}".encode()))
    folds = np.empty(n, dtype=np.int64)
    folds[order] = np.arange(n) % k
    return folds


def fit_fusion(logits: np.ndarray, labels: np.ndarray, multilabel: bool = False,
               alphas: Sequence[float] = ALPHAS, folds: int = CV_FOLDS) -> FusionFit:
    """Choose alpha by K-fold cross-validation on the fitting set (held-out task loss; ties go
    to the stronger pull towards equal weights), then fit all of it with that alpha."""
    n = logits.shape[1]
    k = min(folds, n)
    cv: dict[str, float] = {}
    if k >= 2:
        fold = _folds(n, k)
        z_all = torch.as_tensor(logits, dtype=torch.float64)
        target = torch.as_tensor(labels, dtype=torch.float64 if multilabel else torch.int64)
        for alpha in alphas:
            held = []
            for f in range(k):
                inside, out = fold != f, fold == f
                w = fit_scalar_weights(logits[:, inside], labels[inside], multilabel, alpha).weights
                fused = apply_weights(torch.as_tensor(w), z_all[:, torch.as_tensor(out)])
                held.append(float(task_loss(fused, target[torch.as_tensor(out)], multilabel)) * out.sum())
            cv[repr(alpha)] = sum(held) / n
        best = min(cv.values())
        alpha = max(a for a in alphas if cv[repr(a)] <= best + 1e-12)
    else:
        alpha = max(alphas)
    result = fit_scalar_weights(logits, labels, multilabel, alpha)
    result.cv_loss = cv
    return result


def apply_weights(weights: torch.Tensor | np.ndarray, logits: torch.Tensor | np.ndarray):
    """sum over modalities of weight x logits; weights M (scalars) or M x K (per class)."""
    if weights.ndim == 1:
        return (weights[:, None, None] * logits).sum(0)
    return (weights[:, None, :] * logits).sum(0)


def task_loss(fused: torch.Tensor, target: torch.Tensor, multilabel: bool) -> torch.Tensor:
    if multilabel:
        return F.binary_cross_entropy_with_logits(fused, target)
    return F.cross_entropy(fused, target)


def read_external(spec: Mapping[str, str], subset: str, split: int,
                  boxes: pd.DataFrame | None = None) -> pd.DataFrame:
    """One subset of an external stream as a table (video_id + class columns); a detector's
    per-box scores (``format: ava_detections``) are matched to our person ``boxes``."""
    if subset not in spec:
        raise ValueError(f"external stream has no {subset!r} entry (it has {sorted(spec)})")
    path = Path(spec[subset].format(split=split))
    if not path.is_file():
        raise FileNotFoundError(f"external logits file {path} does not exist")
    if spec.get("format") == "ava_detections":
        if boxes is None or "action_list" not in spec:
            raise ValueError("format ava_detections needs a dataset of person boxes (adapter ava) "
                             "and the stream's action_list")
        from jmrn.ava_files import detection_logits

        return detection_logits(path, spec["action_list"], boxes)
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
                    external: Mapping[str, Mapping[str, str]], split: int,
                    boxes: pd.DataFrame | None = None
                    ) -> tuple[pd.DataFrame, np.ndarray, list[str], str]:
    """Reference rows (video_id, subset, label or labels), logits M x N x K, class names and
    the subset the fusion is fitted on ("val" when every stream has validation logits, else
    "train"). Rows are those of the fitting subset and the test subset."""
    first = next((n for n in names if n in internal), None)
    if first is None:
        raise ValueError("a fusion needs at least one of our variants (it defines labels and subsets)")
    ref_table = read_video_table(internal[first])
    classes = value_columns(ref_table)
    has_val = (ref_table["subset"] == "val").any()
    missing_val = [n for n in names if n in external and "val" not in external[n]]
    fit_subset = "val" if has_val and not missing_val else "train"
    if fit_subset == "train":
        why = (f"external streams without a 'val' entry: {missing_val}" if missing_val
               else "our logits have no validation rows (train.val_fraction is 0)")
        log.warning("fusion fitted on TRAINING logits (%s): weights favour overfit streams", why)
    subsets = (fit_subset, "test")
    ref_table = ref_table[ref_table["subset"].isin(subsets)]
    reference = ref_table[[c for c in VIDEO_TABLE_META if c in ref_table]].reset_index(drop=True)
    stacked = []
    for name in names:
        if name in internal:
            table = read_video_table(internal[name])
        else:
            table = pd.concat([checked_columns(read_external(external[name], s, split, boxes), classes,
                                               f"{name} ({s})").assign(subset=s)
                               for s in subsets], ignore_index=True)
        stacked.append(align(reference, table, classes, name))
    return reference, np.stack(stacked), classes, fit_subset


def fuse(names: Sequence[str], internal: Mapping[str, str], external: Mapping[str, Mapping[str, str]],
         split: int, out_weights: str, out_logits: str, out_metrics: str,
         identity: Mapping[str, object] | None = None, split_table: str | None = None,
         max_per_keyframe: int = OFFICIAL_MAX_PER_KEYFRAME) -> dict:
    """Fit fusion weights on the validation rows (training rows as a logged fallback) and
    evaluate each modality, score averaging and the learned fusion on the test rows.
    ``identity`` (fusion name, split, seed) is written into metrics.json and weights.json;
    with the ``split_table`` of person boxes (AVA) each row also gets frame-mAP@0.5 (at most
    ``max_per_keyframe`` detections per keyframe)."""
    keyframes = KeyframeEvaluator.from_table(read_split_json(split_table), max_per_keyframe) \
        if split_table else None
    meta, logits, classes, fit_subset = load_modalities(
        names, internal, external, split, keyframes.boxes if keyframes is not None else None)
    fit_rows = (meta["subset"] == fit_subset).to_numpy()
    test = (meta["subset"] == "test").to_numpy()
    y = label_targets(meta, len(classes))
    multilabel = y.ndim == 2
    result_fit = fit_fusion(logits[:, fit_rows], y[fit_rows], multilabel=multilabel)
    weights = result_fit.weights
    fused = apply_weights(weights, logits)
    z = torch.as_tensor(logits)
    probs = (torch.sigmoid(z) if multilabel else torch.softmax(z, dim=-1)).numpy()
    learned = "learned" if result_fit.moved else "equal weights (fit did not move)"
    if not result_fit.moved:
        log.warning("the fusion weights did not move from equal weights: nothing was learned")
    rows = {name: evaluate(y[test], logits[m, test]) for m, name in enumerate(names)}
    rows["average"] = evaluate(y[test], probs[:, test].mean(axis=0))
    rows[learned] = evaluate(y[test], fused[test])
    if keyframes is not None:
        test_ids = meta.loc[test, "video_id"].tolist()
        scored = {**{name: logits[m] for m, name in enumerate(names)},
                  "average": probs.mean(axis=0), learned: fused}
        for name, values in scored.items():
            rows[name]["frame_mAP"] = keyframes.frame_map(test_ids, values[test], "test")
    target = torch.as_tensor(y[fit_rows], dtype=torch.float64 if multilabel else torch.int64)

    def fit_loss(values: np.ndarray) -> float:
        return float(task_loss(torch.as_tensor(values[fit_rows]), target, multilabel))

    fit = {"subset": fit_subset, "n": int(fit_rows.sum()), **result_fit.summary(),
           "losses": {"learned": fit_loss(fused),
                      **{name: fit_loss(logits[m]) for m, name in enumerate(names)}}}
    ident = dict(identity or {})
    write_json(out_weights, {**ident, "modalities": list(names), **result_fit.summary(),
                             "fit_subset": fit_subset})
    table = pd.DataFrame(fused, columns=classes)
    for i, col in enumerate(meta.columns):
        table.insert(i, col, meta[col])
    with atomic_path(out_logits) as tmp:
        table.to_csv(tmp, index=False)
    result = {**ident, "modalities": list(names), "methods": list(rows), "test": rows, "fit": fit,
              "weights": dict(zip(names, weights.tolist()))}
    write_json(out_metrics, result)
    headline = "mAP" if multilabel else "mean_class_accuracy"
    log.info("fusion of %s on %d %s videos (alpha %g, %d iterations): weights %s, test %s %.4f "
             "(average %.4f)", list(names), fit["n"], fit_subset, result_fit.alpha,
             result_fit.iterations, np.round(weights, 4).tolist(), headline,
             rows[learned][headline], rows["average"][headline])
    return result
