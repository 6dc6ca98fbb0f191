"""Evaluation metrics: mean per-class accuracy (HMDB51/JHMDB), top-k, and mAP (Charades)."""
from __future__ import annotations

import numpy as np


def mean_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Average over the classes present in ``y_true`` of the fraction predicted correctly."""
    classes = np.unique(y_true)
    if len(classes) == 0:
        return float("nan")
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in classes]))


def top_k_accuracy(y_true: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Fraction of samples whose true class is among the k highest scores."""
    if len(y_true) == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return float(np.mean((top == y_true[:, None]).any(axis=1)))


def average_precision(relevant: np.ndarray, scores: np.ndarray) -> float:
    """AP of one class: mean precision at the rank of each positive (ties broken by order)."""
    order = np.argsort(-scores, kind="stable")
    hits = relevant[order].astype(bool)
    if not hits.any():
        return float("nan")
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def mean_average_precision(targets: np.ndarray, scores: np.ndarray) -> float:
    """mAP over classes with at least one positive (targets: N x K multi-hot)."""
    aps = [average_precision(targets[:, k], scores[:, k]) for k in range(targets.shape[1])]
    aps = [a for a in aps if not np.isnan(a)]
    return float(np.mean(aps)) if aps else float("nan")


def classification_metrics(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """The single-label metrics reported for every split and variant."""
    pred = scores.argmax(axis=1)
    onehot = np.eye(scores.shape[1])[y_true] if len(y_true) else np.zeros((0, scores.shape[1]))
    return {
        "mean_class_accuracy": mean_class_accuracy(y_true, pred),
        "top1": top_k_accuracy(y_true, scores, 1),
        "top5": top_k_accuracy(y_true, scores, 5),
        "mAP": mean_average_precision(onehot, scores),
        "n_test": int(len(y_true)),
    }


def top1_hits(targets: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per video (targets N x K, one- or multi-hot): is the top-scored class a true one?"""
    if not len(targets):
        return np.zeros(0, bool)
    return targets[np.arange(len(targets)), scores.argmax(axis=1)] > 0


def multilabel_metrics(targets: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Charades-style metrics: mAP over classes with a positive test video (videos without any
    action stay in the ranking), and how often the top-scored class is one of the labels."""
    hits = top1_hits(targets, scores)
    return {
        "mAP": mean_average_precision(targets, scores),
        "top1": float(hits.mean()) if len(hits) else float("nan"),
        "n_test": int(len(targets)),
    }


def per_class_scores(targets: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per class: the share of its test videos whose top-1 prediction is right (single-label:
    N class indices; sklearn's per-class recall), or its AP (multi-label: N x K multi-hot);
    NaN for a class without a test video."""
    from sklearn.metrics import recall_score

    k = scores.shape[1]
    if targets.ndim == 2:
        return np.array([average_precision(targets[:, c], scores[:, c]) for c in range(k)])
    if not len(targets):
        return np.full(k, np.nan)
    return recall_score(targets, scores.argmax(axis=1), labels=np.arange(k), average=None,
                        zero_division=np.nan)


def confusion_counts(targets: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """K x K counts, rows the true class, columns the top-1 prediction (sklearn's confusion
    matrix); a multi-label video counts once for each of its labels."""
    from sklearn.metrics import confusion_matrix

    k = scores.shape[1]
    predicted = scores.argmax(axis=1) if len(scores) else np.zeros(0, int)
    if targets.ndim == 2:
        return (targets.T @ np.eye(k)[predicted]).astype(np.int64)
    return confusion_matrix(targets, predicted, labels=np.arange(k))


def evaluate(targets: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Single-label metrics for N class indices, multi-label ones for N x K multi-hot targets."""
    if targets.ndim == 2:
        return multilabel_metrics(targets, scores)
    return classification_metrics(targets, scores)
