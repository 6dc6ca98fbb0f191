"""Frame-mAP@0.5 (AVA's protocol) against hand-computed cases."""
import numpy as np
import pandas as pd
import pytest

from jmrn.frame_map import at_keyframes, box_iou, detections_from_scores, frame_average_precisions, \
    frame_map, top_per_keyframe, voc_average_precision


def table(rows, score=True):
    cols = ["video", "timestamp", "x1", "y1", "x2", "y2", "class"] + (["score"] if score else [])
    return pd.DataFrame(rows, columns=cols)


GT = table([("v", 902, 0.1, 0.1, 0.5, 0.9, 0), ("v", 902, 0.6, 0.1, 0.9, 0.9, 0),
            ("v", 903, 0.1, 0.1, 0.5, 0.9, 1)], score=False)


def test_perfect_detections_give_one():
    det = GT.assign(score=[0.9, 0.8, 0.7])
    assert frame_map(det, GT, 2) == 1.0


def test_duplicate_detection_is_a_false_positive():
    det = table([("v", 902, 0.1, 0.1, 0.5, 0.9, 0, 0.9), ("v", 902, 0.1, 0.1, 0.5, 0.9, 0, 0.8),
                 ("v", 902, 0.6, 0.1, 0.9, 0.9, 0, 0.7)])
    # ranks: TP, FP (same GT box again), TP -> precision 1, 1/2, 2/3 at recall 0.5, 0.5, 1.0;
    # envelope: 1 up to recall 0.5, 2/3 up to 1.0 -> AP = 0.5 * 1 + 0.5 * 2/3
    aps = frame_average_precisions(det, GT, 2)
    assert aps[0] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert np.isnan(frame_average_precisions(det, GT.iloc[:2], 2)[1])  # class 1: no GT left


def iou_box(target_iou):
    """A box whose IoU with (0, 0, 1, 1) is ``target_iou``: (0, 0, t, 1)."""
    return (0.0, 0.0, target_iou, 1.0)


@pytest.mark.parametrize("overlap, expected", [(0.49, 0.0), (0.51, 1.0), (0.5, 1.0)])
def test_iou_threshold(overlap, expected):
    gt = table([("v", 1, 0.0, 0.0, 1.0, 1.0, 0)], score=False)
    det = table([("v", 1, *iou_box(overlap), 0, 0.5)])
    assert box_iou(det[["x1", "y1", "x2", "y2"]].to_numpy(), np.array([0, 0, 1, 1.0]))[0] == \
        pytest.approx(overlap)
    assert frame_map(det, gt, 1) == expected


def test_class_without_ground_truth_is_left_out_of_the_mean():
    det = table([("v", 902, 0.1, 0.1, 0.5, 0.9, 0, 0.9), ("v", 902, 0.1, 0.1, 0.5, 0.9, 2, 0.9)])
    gt = GT.iloc[:1]
    aps = frame_average_precisions(det, gt, 3)
    assert aps[0] == 1.0 and np.isnan(aps[1]) and np.isnan(aps[2])
    assert frame_map(det, gt, 3) == 1.0  # class 2's detection is not a penalty: no GT for it


def test_ranking_and_other_keyframes():
    # class 0: a wrong keyframe ranked first (FP), then the two true boxes -> precisions
    # 0, 1/2, 2/3 at recalls 0, 0.5, 1 -> envelope 2/3 everywhere -> AP 2/3
    det = table([("v", 903, 0.1, 0.1, 0.5, 0.9, 0, 0.99), ("v", 902, 0.1, 0.1, 0.5, 0.9, 0, 0.9),
                 ("v", 902, 0.6, 0.1, 0.9, 0.9, 0, 0.8)])
    assert frame_average_precisions(det, GT, [0])[0] == pytest.approx(2 / 3)
    # a missed GT box caps recall: one of two found first -> AP 0.5
    assert frame_average_precisions(det.iloc[1:2], GT, [0])[0] == pytest.approx(0.5)


def test_excluded_keyframes_are_dropped_from_both():
    det = table([("v", 902, 0.1, 0.1, 0.5, 0.9, 0, 0.9)])
    assert frame_map(det, GT, [0]) == pytest.approx(0.5)
    assert frame_map(det, GT[GT["timestamp"] == 902].iloc[:1], [0]) == 1.0
    gt = pd.concat([GT.iloc[:1], table([("w", 5, 0, 0, 1, 1, 0)], score=False)])
    assert frame_map(det, gt, [0]) == pytest.approx(0.5)
    assert frame_map(det, gt, [0], excluded={("w", 5)}) == 1.0


def test_at_keyframes_marks_the_rows_of_the_given_keyframes():
    rows = table([("a b", 902, 0, 0, 1, 1, 0, 1.0), ("a b", 903, 0, 0, 1, 1, 0, 1.0),
                  ("c", 902, 0, 0, 1, 1, 0, 1.0), ("a b", 902, 0, 0, 1, 1, 1, 1.0)])
    assert at_keyframes(rows, {("a b", 902), ("x", 903)}).tolist() == [True, False, False, True]
    assert at_keyframes(rows, {("c", 902)}).tolist() == [False, False, True, False]
    assert at_keyframes(rows, set()).tolist() == [False] * 4
    assert at_keyframes(rows.iloc[:0], {("c", 902)}).tolist() == []


def test_voc_ap_and_long_layout():
    assert voc_average_precision(np.array([True, False, True]), 4) == pytest.approx(0.25 + 0.25 * 2 / 3)
    assert voc_average_precision(np.array([], bool), 3) == 0.0
    boxes = GT.iloc[:2][["video", "timestamp", "x1", "y1", "x2", "y2"]]
    long = detections_from_scores(boxes, np.array([[0.9, 0.1], [0.8, 0.2]]))
    assert len(long) == 4 and long["class"].tolist() == [0, 1, 0, 1]
    assert long["score"].tolist() == [0.9, 0.1, 0.8, 0.2]
    assert frame_map(long, GT.iloc[:2], 2) == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_vectorised_matching_equals_the_one_at_a_time_reference(seed):
    """Random keyframes with crowded, duplicated and tied boxes and tied scores: the same
    true positives as the protocol's loop."""
    from jmrn.frame_map import class_true_positives, class_true_positives_reference

    rng = np.random.default_rng(seed)
    corners = rng.choice(np.linspace(0, 0.5, 6), (60, 2))
    boxes = np.hstack([corners, corners + rng.choice([0.2, 0.3, 0.5], (60, 2))])
    keys = [("a", 1), ("a", 2), ("b", 1), ("c", 7)]

    def rows(n, score):
        picks = rng.integers(0, len(boxes), n)
        where = rng.integers(0, len(keys), n)
        return table([(*keys[w], *boxes[p], 0, *([round(rng.random(), 1)] if score else []))
                      for w, p in zip(where, picks)], score=score)

    truth = rows(25, score=False)
    truth = pd.concat([truth, truth.iloc[:3]])  # duplicate boxes: ties in IoU
    det = rows(200, score=True)  # scores rounded to 0.1: many ties in rank
    for threshold in (0.3, 0.5, 0.7):
        want = class_true_positives_reference(det, truth, threshold)
        got = class_true_positives(det, truth, threshold)
        assert want.any() and (got == want).all()
    assert not class_true_positives(det, truth.iloc[:0], 0.5).any()
    assert len(class_true_positives(det.iloc[:0], truth, 0.5)) == 0


def test_at_most_n_detections_per_keyframe_as_the_official_reader():
    """One ground-truth box of class 0 at keyframe v/902, where three detections of other
    classes score above the true one, and a class-0 false positive at another keyframe ranked
    first. Keeping all (or 4 per keyframe): FP then TP, AP 1/2 (classes 1-3 have no ground
    truth). Keeping 3 per keyframe drops the true detection (v's 4th score): AP 0."""
    gt = table([("v", 902, 0.1, 0.1, 0.5, 0.9, 0)], score=False)
    box = (0.1, 0.1, 0.5, 0.9)
    det = table([("v", 902, *box, 1, 0.9), ("v", 902, *box, 2, 0.8), ("v", 902, *box, 3, 0.7),
                 ("v", 902, *box, 0, 0.6),
                 ("w", 10, *box, 0, 0.95)])  # another keyframe: its own 3, a false positive
    assert frame_map(det, gt, 4, max_per_keyframe=0) == pytest.approx(0.5)  # FP ranked first
    assert frame_map(det, gt, 4, max_per_keyframe=4) == pytest.approx(0.5)
    assert frame_map(det, gt, 4, max_per_keyframe=3) == 0.0
    kept = top_per_keyframe(det, 3)
    assert sorted(kept["class"].tolist()) == [0, 1, 2, 3] and len(kept) == 4
    assert 0.6 not in kept["score"].tolist()  # v's lowest-scoring detection went
    ties = table([("v", 1, *box, c, 0.5) for c in range(4)])
    assert sorted(top_per_keyframe(ties, 2)["class"]) == [2, 3]  # equal scores: higher class first


def test_keyframe_evaluator_default_is_the_official_cap():
    from jmrn.frame_map import OFFICIAL_MAX_PER_KEYFRAME, KeyframeEvaluator

    table_ = {"videos": [{"video_id": "b0", "source": "v", "timestamp": 902, "x1": 0.1,
                          "y1": 0.1, "x2": 0.5, "y2": 0.9}],
              "ground_truth": [{"video": "v", "timestamp": 902, "x1": 0.1, "y1": 0.1, "x2": 0.5,
                                "y2": 0.9, "class": 0, "subset": "test"}],
              "classes": ["a"] * 60}
    assert OFFICIAL_MAX_PER_KEYFRAME == 50
    scores = np.zeros((1, 60))
    scores[0, 1:51] = 1.0  # 50 other classes above the true one
    assert KeyframeEvaluator.from_table(table_).frame_map(["b0"], scores, "test") == 0.0
    assert KeyframeEvaluator.from_table(table_, 0).frame_map(["b0"], scores, "test") == 1.0
