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

import csv
import io
import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from jmrn.errors import UserError
from jmrn.frame_map import OFFICIAL_MAX_PER_KEYFRAME, KeyframeEvaluator
from jmrn.io import VIDEO_TABLE_META, read_utf8_text, read_video_table, value_columns, write_json
from jmrn.metrics import evaluate
from jmrn.tables import label_targets, read_split_json, write_csv

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


def _shown(value: object, limit: int = 60) -> str:
    """A value from a file, quoted for a one-line message (line breaks escaped, long ones cut)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def checked_values(table: pd.DataFrame, where: str) -> pd.DataFrame:
    """``table`` with its value columns as float64, or a one-line ``UserError`` naming ``where``
    (the file): ids present and unique, every value a finite number as written."""
    if "video_id" not in table:
        raise UserError(f"{where}: no video_id column (columns: {_shown(list(table.columns)[:6], 120)})")
    ids = table["video_id"]
    blank = ids.isna() | (ids.astype(str) == "")
    if blank.any():
        raise UserError(f"{where}: {int(blank.sum())} rows without a video_id "
                        f"(first at data row {int(np.flatnonzero(blank.to_numpy())[0]) + 1})")
    dup = ids.duplicated()
    if dup.any():
        raise UserError(f"{where}: {int(dup.sum())} duplicate video ids, first {_shown(ids[dup].iloc[0])}")
    columns = value_columns(table)
    if not columns:
        raise UserError(f"{where}: no class columns")
    raw = table[columns]
    if all(pd.api.types.is_numeric_dtype(raw[c]) and not pd.api.types.is_bool_dtype(raw[c])
           for c in columns):
        values = raw.to_numpy(np.float64)
    else:  # text as read: a cell that is not a plain number is refused, never guessed at
        parsed = raw.apply(lambda col: pd.to_numeric(col.astype(str).str.strip(), errors="coerce"))
        values = parsed.to_numpy(np.float64)
        text = raw.astype(str).to_numpy()
        spelled_nan = np.isin(np.char.lower(np.char.strip(text.astype(str))), ["nan", "-nan", "+nan"])
        bad = np.isnan(values) & ~spelled_nan
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise UserError(f"{where}: {int(bad.sum())} values that are not numbers, first "
                            f"{_shown(text[row, col])} of video {_shown(ids.iloc[row])} in column "
                            f"{_shown(columns[col])}")
    finite = np.isfinite(values)
    if not finite.all():
        rows = ~finite.all(axis=1)
        raise UserError(f"{where}: {int((~finite).sum())} non-finite values (NaN or ±inf) in "
                        f"{int(rows.sum())} videos, first video {_shown(ids[rows].iloc[0])}; "
                        "logits must be finite numbers")
    out = pd.DataFrame(values, columns=columns, index=table.index)
    out.insert(0, "video_id", ids.astype(str))
    return out.reset_index(drop=True)


def _read_ids(path: Path) -> list[str]:
    """The ids of a ``.npy`` stream, one per line (empty lines skipped, nothing else changed)."""
    text = read_utf8_text(path)
    return [line for line in text.splitlines() if line]


def _read_npy(path: Path, ids_path: Path, classes: Sequence[str] | None) -> pd.DataFrame:
    """A ``.npy`` matrix of real numbers (N x K) and its N ids as a table."""
    try:
        values = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno is not None:
            raise OSError(exc.errno, f"{path}: cannot read it ({exc.strerror})") from exc
        raise UserError(f"{path}: not a readable .npy matrix ({str(exc).splitlines()[0][:120]})") from exc
    except (ValueError, EOFError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise UserError(f"{path}: not a readable .npy matrix ({first})") from exc
    if not isinstance(values, np.ndarray) or values.dtype.kind not in "iuf":
        kind = getattr(values, "dtype", type(values).__name__)
        raise UserError(f"{path}: holds {kind} values; logits must be real numbers (int or float)")
    if values.dtype.kind in "iu" and values.size and np.abs(values.astype(np.float64)).max() > 2 ** 53:
        raise UserError(f"{path}: integers beyond 2**53 cannot be read as logits without change")
    ids = _read_ids(ids_path)
    if values.ndim != 2 or len(values) != len(ids):
        raise UserError(f"{path}: shape {values.shape} does not match {len(ids)} ids in {ids_path}")
    if classes and len(classes) != values.shape[1]:
        raise UserError(f"{path}: {values.shape[1]} columns but the stream's classes name {len(classes)}")
    table = pd.DataFrame(values.astype(np.float64), columns=list(classes) if classes else None)
    table.insert(0, "video_id", ids)
    return table


def _read_csv(path: Path) -> pd.DataFrame:
    """A stream's CSV exactly as written: every cell text, every line as many fields as the
    header (pandas would silently take extra leading fields as an index or drop trailing ones)."""
    text = read_utf8_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        rows, lines = [], []
        for row in reader:
            if row:  # blank lines carry nothing
                rows.append(row)
                lines.append(reader.line_num)
    except csv.Error as exc:
        raise UserError(f"{path}: malformed CSV at line {reader.line_num} ({exc})") from exc
    if not header or header == [""] * len(header):
        raise UserError(f"{path}: the file is empty (expected a header video_id,<class>,...)")
    if len(set(header)) != len(header):
        dup = next(h for h in header if header.count(h) > 1)
        raise UserError(f"{path}: column {_shown(dup)} appears twice in the header")
    widths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    wrong = np.flatnonzero(widths != len(header))
    if wrong.size:
        i = int(wrong[0])
        raise UserError(f"{path}: malformed CSV: line {lines[i]} has {widths[i]} fields, the header "
                        f"{len(header)} ({wrong.size} such lines)")
    return pd.DataFrame(rows, columns=header, dtype=object)


def stream_path(spec: Mapping[str, str], subset: str, split: int) -> Path:
    """The file of one subset of an external stream (``{split}`` filled in)."""
    if subset not in spec:
        raise UserError(f"external stream has no {subset!r} entry (it has {sorted(spec)})")
    return Path(str(spec[subset]).format(split=split))


def read_external(spec: Mapping[str, str], subset: str, split: int,
                  boxes: pd.DataFrame | None = None) -> pd.DataFrame:
    """One subset of an external stream as a table (video_id + class columns, float64); a
    detector's per-box scores (``format: ava_detections``) are matched to our person ``boxes``.

    Every problem with the file's content is a one-line ``UserError`` naming it (malformed or
    empty file, missing ids, duplicates, a value that is not a finite number); a file that cannot
    be read is an ``OSError`` naming it. Accepted values are exactly the file's."""
    path = stream_path(spec, subset, split)
    if not path.is_file():
        raise FileNotFoundError(f"external logits file {path} does not exist")
    if spec.get("format") == "ava_detections":
        if boxes is None or "action_list" not in spec:
            raise UserError("format ava_detections needs a dataset of person boxes (adapter ava) "
                            "and the stream's action_list")
        from jmrn.ava_files import detection_logits

        return checked_values(detection_logits(path, spec["action_list"], boxes), str(path))
    if path.suffix == ".npy":
        if f"{subset}_ids" not in spec:
            raise UserError(f"{path}: a .npy stream needs {subset}_ids (a text file of its ids)")
        table = _read_npy(path, Path(str(spec[f"{subset}_ids"]).format(split=split)), spec.get("classes"))
    else:
        table = _read_csv(path)
    return checked_values(table, str(path))


def checked_columns(table: pd.DataFrame, classes: list[str], name: str) -> pd.DataFrame:
    """The table with its class columns named and ordered as ``classes``, or a one-line error."""
    other = value_columns(table)
    if other and all(isinstance(c, int) for c in other):  # .npy without class names: positional
        if len(other) != len(classes):
            raise UserError(f"{name}: {len(other)} columns of logits but {len(classes)} classes")
        table = table.rename(columns=dict(zip(other, classes)))
        other = classes
    missing_cls = [c for c in classes if c not in other]
    extra_cls = [c for c in other if c not in classes]
    if missing_cls or extra_cls:
        raise UserError(f"{name}: class columns differ from the dataset's — missing "
                        f"{_shown(missing_cls[:5], 200)}, unexpected {_shown(extra_cls[:5], 200)}")
    return table


def align(reference: pd.DataFrame, table: pd.DataFrame, classes: list[str], name: str) -> np.ndarray:
    """Logits of ``table`` in the reference's row and class order, or a one-line error naming
    ``name`` (the stream and its file)."""
    table = checked_columns(table, classes, name)
    keys = ["video_id", "subset"] if "subset" in table else ["video_id"]
    if table.duplicated(keys).any():
        dup = table.loc[table.duplicated(keys), "video_id"].head(3).tolist()
        raise UserError(f"{name}: duplicate video ids, e.g. {_shown(dup, 200)}")
    merged = reference[keys].merge(table[keys + classes], on=keys, how="left", indicator=True)
    absent = (merged["_merge"] == "left_only").to_numpy()
    if absent.any():
        missing = merged.loc[absent, "video_id"].tolist()
        raise UserError(f"{name}: no logits for {len(missing)} videos, e.g. {_shown(missing[:3], 200)}")
    values = merged[classes].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        ids = merged.loc[bad, "video_id"].tolist()
        raise UserError(f"{name}: NaN, ±inf or non-numeric logits for {len(ids)} videos, e.g. "
                        f"{_shown(ids[:3], 200)}")
    return values


def load_modalities(names: Sequence[str], internal: Mapping[str, str],
                    external: Mapping[str, Mapping[str, str]], split: int,
                    boxes: pd.DataFrame | None = None
                    ) -> tuple[pd.DataFrame, np.ndarray, list[str], str]:
    """Reference rows (video_id, subset, label or labels), logits M x N x K, class names and
    the subset the fusion is fitted on ("val" when every stream has validation logits, else
    "train"). Rows are those of the fitting subset and the test subset; each external file is
    checked against the reference rows of its subset, and errors name the file."""
    first = next((n for n in names if n in internal), None)
    if first is None:
        raise UserError("a fusion needs at least one of our variants (it defines labels and subsets)")
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
            stacked.append(align(reference, read_video_table(internal[name]), classes,
                                 f"{name} ({internal[name]})"))
            continue
        values = np.empty((len(reference), len(classes)))
        for s in subsets:
            rows = (reference["subset"] == s).to_numpy()
            where = f"{name} ({stream_path(external[name], s, split)})"
            try:
                table = read_external(external[name], s, split, boxes)
            except UserError as exc:
                raise UserError(f"{name}: {exc}") from exc
            table = checked_columns(table, classes, where)
            values[rows] = align(reference[rows].drop(columns="subset"), table, classes, where)
        stacked.append(values)
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
    write_csv(table, out_logits)  # ids from outside escaped for spreadsheets
    result = {**ident, "modalities": list(names), "methods": list(rows), "test": rows, "fit": fit,
              "weights": dict(zip(names, weights.tolist()))}
    write_json(out_metrics, result)
    headline = "mAP" if multilabel else "mean_class_accuracy"
    log.info("fusion of %s on %d %s videos (alpha %g, %d iterations): weights %s, test %s %.4f "
             "(average %.4f)", list(names), fit["n"], fit_subset, result_fit.alpha,
             result_fit.iterations, np.round(weights, 4).tolist(), headline,
             rows[learned][headline], rows["average"][headline])
    return result
