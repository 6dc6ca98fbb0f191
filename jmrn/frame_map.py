"""Frame-level mAP at IoU 0.5, as AVA's protocol computes it (paper Table 5).

Detections and ground truth are boxes at keyframes: ``(video, timestamp, x1, y1, x2, y2)`` in
normalised coordinates, a class and (detections) a score. Per class, detections are ranked by
score over all keyframes; a detection is a true positive when the ground-truth box of its
keyframe that it overlaps most has IoU >= the threshold and was not matched before (each
ground-truth box is matched once; a duplicate is a false positive). AP is PASCAL VOC's area
under the precision envelope; classes without ground truth are left out of the mean. As the
official evaluator (``get_ava_performance.py``) reads a result file, only the
``max_per_keyframe`` highest-scoring (box, class) detections of each keyframe are kept (50;
0 keeps all, as SlowFast's in-memory evaluation does).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

BOX = ["x1", "y1", "x2", "y2"]
KEY = ["video", "timestamp"]
OFFICIAL_MAX_PER_KEYFRAME = 50  # get_ava_performance.py reads at most 50 detections per keyframe


def box_iou(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """IoU of ``boxes`` (N x 4, x1 y1 x2 y2) with ``box`` (4,), or pairwise with ``box`` (N x 4);
    areas without +1."""
    ix = np.clip(np.minimum(boxes[..., 2], box[..., 2]) - np.maximum(boxes[..., 0], box[..., 0]), 0, None)
    iy = np.clip(np.minimum(boxes[..., 3], box[..., 3]) - np.maximum(boxes[..., 1], box[..., 1]), 0, None)
    inter = ix * iy
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    union = area + (box[..., 2] - box[..., 0]) * (box[..., 3] - box[..., 1]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def at_keyframes(table: pd.DataFrame, keys: set[tuple[str, int]]) -> np.ndarray:
    """Boolean mask of the rows of ``table`` (video, timestamp, ...) whose keyframe is in ``keys``
    (one hashed lookup of all rows, not a Python test per row)."""
    if not keys:
        return np.zeros(len(table), bool)
    rows = pd.MultiIndex.from_arrays([table["video"].astype(str), table["timestamp"].astype(np.int64)])
    return rows.isin(pd.MultiIndex.from_tuples(list(keys))).astype(bool)


def voc_average_precision(tp: np.ndarray, n_positives: int) -> float:
    """AP from true-positive flags in score order: area under the monotone precision envelope."""
    if n_positives == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    hits = np.cumsum(tp)
    precision = hits / np.arange(1, len(tp) + 1)
    recall = hits / n_positives
    precision = np.concatenate([[0.0], precision, [0.0]])
    recall = np.concatenate([[0.0], recall, [recall[-1]]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    changed = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[changed] - recall[changed - 1]) * precision[changed]))


def class_true_positives(detections: pd.DataFrame, truth: pd.DataFrame, iou: float) -> np.ndarray:
    """Flags of one class's detections, sorted by descending score (stable), as matched.

    Vectorised greedy matching: each detection's candidate is the ground-truth box of its
    keyframe that it overlaps most (the first of equals); a detection is a true positive when
    that overlap is >= ``iou`` and no higher-ranked detection took the same box.
    ``class_true_positives_reference`` is the same, one detection at a time."""
    ranked = detections.sort_values("score", ascending=False, kind="stable")
    tp = np.zeros(len(ranked), bool)
    if not len(ranked) or not len(truth):
        return tp
    det = pd.DataFrame({"video": ranked["video"].to_numpy(), "timestamp": ranked["timestamp"].to_numpy(),
                        "det": np.arange(len(ranked))})
    gt = pd.DataFrame({"video": truth["video"].to_numpy(), "timestamp": truth["timestamp"].to_numpy(),
                       "gt": np.arange(len(truth))})
    pairs = det.merge(gt, on=KEY)  # every detection with every box of its keyframe
    if not len(pairs):
        return tp
    d, g = pairs["det"].to_numpy(), pairs["gt"].to_numpy()
    overlap = box_iou(ranked[BOX].to_numpy(float)[d], truth[BOX].to_numpy(float)[g])
    order = np.lexsort((g, -overlap, d))  # per detection: best overlap first, then box order
    d, g, overlap = d[order], g[order], overlap[order]
    first = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])  # each detection's candidate
    matched = first[overlap[first] >= iou]  # in rank order
    d, g = d[matched], g[matched]
    _, taker = np.unique(g, return_index=True)  # the highest-ranked detection of each box
    tp[d[taker]] = True
    return tp


def class_true_positives_reference(detections: pd.DataFrame, truth: pd.DataFrame,
                                   iou: float) -> np.ndarray:
    """``class_true_positives`` written as the protocol reads, one detection at a time (the
    reference that tests and bench_frame_map.py compare against)."""
    boxes: dict[tuple, np.ndarray] = {k: g[BOX].to_numpy(float) for k, g in truth.groupby(KEY)}
    taken: dict[tuple, np.ndarray] = {k: np.zeros(len(b), bool) for k, b in boxes.items()}
    ranked = detections.sort_values("score", ascending=False, kind="stable")
    tp = np.zeros(len(ranked), bool)
    for i, (key, box) in enumerate(zip(zip(ranked["video"], ranked["timestamp"]),
                                       ranked[BOX].to_numpy(float))):
        if key not in boxes:
            continue
        overlaps = box_iou(boxes[key], box)
        best = int(overlaps.argmax())
        if overlaps[best] >= iou and not taken[key][best]:
            taken[key][best] = True
            tp[i] = True
    return tp


def top_per_keyframe(detections: pd.DataFrame, limit: int) -> pd.DataFrame:
    """The ``limit`` highest-scoring detections of each keyframe (0: all). Equal scores keep
    the higher class id first, as the official reader's heap of (score, class, box) does."""
    if limit <= 0 or not len(detections):
        return detections
    ranked = detections.sort_values(["score", "class"], ascending=False, kind="stable")
    return ranked[ranked.groupby(KEY, sort=False).cumcount().to_numpy() < limit]


def frame_average_precisions(detections: pd.DataFrame, truth: pd.DataFrame,
                             classes: int | list[int], iou: float = 0.5,
                             excluded: set[tuple[str, int]] | None = None,
                             max_per_keyframe: int = OFFICIAL_MAX_PER_KEYFRAME) -> dict[int, float]:
    """AP per class. ``detections``: video, timestamp, x1..y2, class, score (at most
    ``max_per_keyframe`` per keyframe are kept, 0: all); ``truth``: video, timestamp, x1..y2,
    class (duplicate rows of one box and class count once); keyframes in ``excluded`` are
    dropped from both."""
    classes = list(range(classes)) if isinstance(classes, int) else list(classes)
    detections = top_per_keyframe(detections, max_per_keyframe)
    if excluded:
        detections = detections[~at_keyframes(detections, excluded)]
        truth = truth[~at_keyframes(truth, excluded)]
    truth = truth.drop_duplicates([*KEY, *BOX, "class"])
    by_class_det = dict(tuple(detections.groupby("class")))
    by_class_gt = dict(tuple(truth.groupby("class")))
    empty_det = detections.iloc[:0]
    result: dict[int, float] = {}
    for c in classes:
        gt = by_class_gt.get(c, truth.iloc[:0])
        tp = class_true_positives(by_class_det.get(c, empty_det), gt, iou)
        result[c] = voc_average_precision(tp, len(gt))
    return result


def frame_map(detections: pd.DataFrame, truth: pd.DataFrame, classes: int | list[int],
              iou: float = 0.5, excluded: set[tuple[str, int]] | None = None,
              max_per_keyframe: int = OFFICIAL_MAX_PER_KEYFRAME) -> float:
    """Mean of the per-class APs over the classes that have ground truth."""
    aps = [a for a in frame_average_precisions(detections, truth, classes, iou, excluded,
                                               max_per_keyframe).values()
           if not np.isnan(a)]
    return float(np.mean(aps)) if aps else float("nan")


def detections_from_scores(boxes: pd.DataFrame, scores: np.ndarray) -> pd.DataFrame:
    """One detection per box and class: ``boxes`` (video, timestamp, x1..y2; N rows) and their
    class scores (N x K) in the long layout the evaluator ranks."""
    n, k = scores.shape
    rep = boxes[[*KEY, *BOX]].loc[boxes.index.repeat(k)].reset_index(drop=True)
    return rep.assign(**{"class": np.tile(np.arange(k), n), "score": scores.reshape(-1)})



class KeyframeEvaluator:
    """Frame-mAP of per-box scores for one split, from its table (``split<k>/videos.*.json``):
    the boxes of its instances and the ground truth. Test scores are compared with the test
    keyframes' ground truth (keyframes without any detection count as missed); validation
    scores (boxes held out of training) with the ground truth of their keyframes; at most
    ``max_per_keyframe`` detections per keyframe count (0: all)."""

    def __init__(self, table: dict, max_per_keyframe: int = OFFICIAL_MAX_PER_KEYFRAME) -> None:
        self.max_per_keyframe = max_per_keyframe
        videos = pd.DataFrame(table["videos"])
        self.boxes = videos.set_index(videos["video_id"].astype(str))[["source", "timestamp", *BOX]] \
            .rename(columns={"source": "video"})
        self.truth = pd.DataFrame(table["ground_truth"])
        self.classes = len(table["classes"])

    @staticmethod
    def from_table(table: dict | None, max_per_keyframe: int = OFFICIAL_MAX_PER_KEYFRAME
                   ) -> "KeyframeEvaluator | None":
        """The evaluator of a split table (``tables.read_split_json``), or None when its rows
        are not person boxes (or there is no table: a whole manifest)."""
        if table is None or "ground_truth" not in table:
            return None
        return KeyframeEvaluator(table, max_per_keyframe)

    def frame_map(self, ids: list[str], scores: np.ndarray, subset: str) -> float:
        boxes = self.boxes.loc[ids].reset_index(drop=True)
        detections = detections_from_scores(boxes, np.asarray(scores, np.float64))
        if subset == "test":
            truth = self.truth[self.truth["subset"] == "test"]
        else:
            keys = set(zip(boxes["video"], boxes["timestamp"]))
            truth = self.truth[(self.truth["subset"] == "train").to_numpy() & at_keyframes(self.truth, keys)]
        return frame_map(detections, truth, self.classes, max_per_keyframe=self.max_per_keyframe)
