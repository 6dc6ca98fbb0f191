"""AVA Actions (v2.1, v2.2): one manifest row per person box at a keyframe.

Files as AVA publishes them, in ``dataset.annotation_dir``: ``ava_{train,val}_v<version>.csv``
(no header: video_id, timestamp, x1, y1, x2, y2 normalised, action_id, person_id; one row per
box and action), ``ava_action_list_v<version>*.pbtxt`` (the evaluated classes),
``ava_{train,val}_excluded_timestamps_v<version>.csv`` (video_id, timestamp). Videos are
``<video_id>.<ext>`` under ``video_root`` (mkv, mp4, webm, ...; found by ``index_videos``);
timestamps are seconds from the video's start.

Split 1 is AVA's: training instances are the ground-truth boxes of the train file; test
instances are the detector's boxes (``dataset.proposals``: SlowFast's proposal CSV, the same
columns with a score last, kept above ``dataset.proposal_min_score``) or, without one, the
val file's ground-truth boxes. A detected box takes the labels of the ground-truth box it
overlaps most at IoU >= 0.5 (only for the per-box metrics and losses; frame-mAP is computed
against the ground truth itself, ``ground_truth`` in the frame's attrs). Each instance is a
clip of ``dataset.window_s`` seconds either side of its keyframe, sampled at
``dataset.sample_fps`` on a grid shared by all instances of a video (``clip_frames``
"start:stop:step"), so the pose stage computes each frame once for every person and keyframe.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from jmrn.ava_files import (ANNOTATION_COLUMNS, PROPOSAL_COLUMNS, read_action_list, read_boxes,
                            read_excluded)
from jmrn.datasets.files import index_videos, require_dir, require_file
from jmrn.datasets.report import DatasetError, DatasetProblems
from jmrn.frame_map import BOX, at_keyframes, box_iou
from jmrn.video import probe_fields

INSTANCE_COLUMNS = ("source", "timestamp", *BOX, "score", "clip_frames")
MATCH_IOU = 0.5


def instance_id(video: str, timestamp: int, k: int) -> str:
    """``<video>@<timestamp>#<k>``: the k-th box of a keyframe (boxes in coordinate order)."""
    return f"{video}@{timestamp:04d}#{k:02d}"


def clip_frames(timestamp: float, fps: float, window_s: float, sample_fps: float,
                n_frames: int) -> str:
    """The frames of one keyframe's clip as "start:stop:step" (stop exclusive) on a grid of
    multiples of ``step``, shared by every clip of the video; "" if none is in the video."""
    step = max(1, round(fps / sample_fps)) if sample_fps > 0 else 1
    start = max(0, math.ceil((timestamp - window_s) * fps / step) * step)
    stop = min(n_frames, math.floor((timestamp + window_s) * fps) + 1)
    return f"{start}:{stop}:{step}" if stop > start else ""


def unique_boxes(frame: pd.DataFrame, labels_of: dict[int, str]) -> pd.DataFrame:
    """One row per (video, timestamp, box) with its evaluated action names (sorted by id)."""
    frame = frame.assign(name=frame["action"].astype(int).map(labels_of))
    keys = ["video", "timestamp", *BOX]
    grouped = frame.groupby(keys, sort=True)["name"].agg(
        lambda names: sorted({n for n in names if isinstance(n, str)}, key=list(labels_of.values()).index))
    return grouped.rename("label_names").reset_index()


def assign_labels(detected: pd.DataFrame, truth: pd.DataFrame) -> list[list[str]]:
    """Labels of each detected box: those of the ground-truth box of its keyframe it overlaps
    most, when the IoU is >= 0.5; none otherwise."""
    by_key = {k: (g[BOX].to_numpy(float), g["label_names"].tolist())
              for k, g in truth.groupby(["video", "timestamp"])}
    out = []
    for key, box in zip(zip(detected["video"], detected["timestamp"]), detected[BOX].to_numpy(float)):
        boxes, names = by_key.get(key, (np.zeros((0, 4)), []))
        if not len(boxes):
            out.append([])
            continue
        overlaps = box_iou(boxes, box)
        best = int(overlaps.argmax())
        out.append(list(names[best]) if overlaps[best] >= MATCH_IOU else [])
    return out


def _instances(boxes: pd.DataFrame, subset: str, sources: dict[str, dict], window_s: float,
               sample_fps: float) -> list[dict]:
    rows = []
    for (video, ts), group in boxes.groupby(["video", "timestamp"], sort=True):
        info = sources[video]
        clip = clip_frames(ts, info["fps"], window_s, sample_fps, info["frames"]) \
            if info["status"] == "ok" else ""
        status = info["status"] if info["status"] != "ok" else \
            ("ok" if clip else f"keyframe {ts} s is outside the video")
        for k, row in enumerate(group.sort_values(BOX, kind="stable").to_dict("records")):
            rows.append({"video_id": instance_id(video, int(ts), k), "path": info["path"],
                         "label_names": row["label_names"], "split1": subset,
                         **{c: info[c] for c in ("frames", "fps", "width", "height")},
                         "status": status, "source": video, "timestamp": int(ts),
                         **{c: float(row[c]) for c in BOX}, "score": float(row.get("score", 1.0)),
                         "clip_frames": clip})
    return rows


def without_keyframes(frame: pd.DataFrame, keys: set[tuple[str, int]]) -> pd.DataFrame:
    """The rows of ``frame`` whose keyframe is not in ``keys`` (AVA's excluded timestamps)."""
    return frame[~at_keyframes(frame, keys)]


def _files(ann: Path, version: str) -> dict[str, Path | None]:
    lists = sorted(ann.glob(f"ava_action_list_v{version}*.pbtxt"))
    if not lists:
        raise DatasetError(f"no ava_action_list_v{version}*.pbtxt in {ann} (config "
                           "dataset.annotation_dir, dataset.version)")
    excluded = {s: ann / f"ava_{s}_excluded_timestamps_v{version}.csv" for s in ("train", "val")}
    return {"actions": lists[0],
            "train": require_file(ann / f"ava_train_v{version}.csv", "dataset.annotation_dir"),
            "val": require_file(ann / f"ava_val_v{version}.csv", "dataset.annotation_dir"),
            **{f"excluded_{s}": p if p.is_file() else None for s, p in excluded.items()}}


def load(dataset: dict, splits: Iterable[int], problems: DatasetProblems,
         threads: int = 4) -> pd.DataFrame:
    """Instance rows (see the module docstring); ``attrs``: ``classes`` and ``ground_truth``
    (video, timestamp, x1..y2, class index, subset; excluded keyframes dropped)."""
    if list(splits) != [1]:
        raise DatasetError(f"AVA has one split (train / val); set dataset.splits: [1] (got {list(splits)})")
    root = require_dir(dataset["video_root"], "dataset.video_root")
    ann = require_dir(dataset["annotation_dir"], "dataset.annotation_dir")
    files = _files(ann, str(dataset["version"]))
    actions = read_action_list(files["actions"])
    classes = list(actions.values())
    excluded = read_excluded(files["excluded_train"], problems) \
        | read_excluded(files["excluded_val"], problems)
    truth = {s: without_keyframes(read_boxes(files[s], ANNOTATION_COLUMNS, problems), excluded)
             for s in ("train", "val")}
    if truth["train"].empty:
        raise DatasetError(f"{files['train']}: every box is at an excluded keyframe; no training "
                           "instance is left")
    unknown = {s: sorted(set(t["action"].astype(int)) - set(actions)) for s, t in truth.items()}
    for s, ids in unknown.items():
        if ids:  # AVA's files hold all 80 actions; the protocol evaluates the listed ones
            problems.add("actions outside the action list (ignored)", f"{s}: ids {ids[:10]}")
    gt_boxes = {s: unique_boxes(t, actions) for s, t in truth.items()}
    if dataset.get("proposals"):
        proposals = read_boxes(require_file(dataset["proposals"], "dataset.proposals"),
                               PROPOSAL_COLUMNS, problems)
        proposals = without_keyframes(proposals[proposals["score"] >= dataset["proposal_min_score"]],
                                      excluded)
        if proposals.empty:
            raise DatasetError(f"{dataset['proposals']}: no proposal outside the excluded keyframes "
                               f"scores at least {dataset['proposal_min_score']} "
                               "(config dataset.proposal_min_score)")
        proposals = proposals.drop_duplicates(["video", "timestamp", *BOX]).reset_index(drop=True)
        test_boxes = proposals.assign(label_names=assign_labels(proposals, gt_boxes["val"]))
    else:
        test_boxes = gt_boxes["val"].assign(score=1.0)
    videos = sorted(set(gt_boxes["train"]["video"]) | set(test_boxes["video"]))
    found = index_videos(root, problems)
    paths = {v: found.get(v) for v in videos}
    with ThreadPoolExecutor(max(1, threads)) as pool:
        sources = dict(zip(videos, pool.map(probe_fields, [paths[v] for v in videos])))
    for v in videos:
        sources[v]["path"] = str(paths[v] or root / f"{v}.mkv")
    window, rate = float(dataset["window_s"]), float(dataset["sample_fps"])
    rows = _instances(gt_boxes["train"].assign(score=1.0), "train", sources, window, rate)
    rows += _instances(test_boxes, "test", sources, window, rate)
    frame = pd.DataFrame(rows)
    index = {name: i for i, name in enumerate(classes)}
    ground_truth = pd.concat([
        t.assign(subset=s).explode("label_names").dropna(subset=["label_names"])
        for s, t in (("train", gt_boxes["train"]), ("test", gt_boxes["val"]))])
    ground_truth["class"] = ground_truth.pop("label_names").map(index).astype(int)
    frame.attrs["classes"] = classes
    frame.attrs["ground_truth"] = ground_truth.reset_index(drop=True)
    return frame
