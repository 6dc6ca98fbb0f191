"""Per-video keypoint files (``.npy``, ``.json``, ``.csv``) to the skeleton pickle.

One file per video, its stem the video id, found recursively under the root:

- ``.npy``: a numeric array T x J x 2 (x, y in pixels), T x J x 3 (x, y, score), or the same with
  persons first (M x T x J x 2|3); without a score every joint has score 1.
- ``.json``: the same nested lists, either the whole document or its ``"keypoints"`` member;
  an object may add ``"img_shape": [height, width]`` (that video's frame size).
- ``.csv``: one row per (person, frame, joint) with a header: ``frame,joint,x,y`` and optionally
  ``score`` and ``person`` (default 0); ``joint`` is an index into the layout or a joint name;
  T is the largest frame number + 1 and a joint without a row is "not found" (0, 0, score 0).

Joints are in the order of ``--layout``; the class is the file's parent folder, or the
``label`` column of a labels CSV (``video,label[,split]``, ``split`` = train | test); without a
split column, a stratified hold-out (``jmrn.datasets.files.holdout_splits``) assigns train/test.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from jmrn.datasets.files import holdout_splits
from jmrn.errors import UserError
from jmrn.keypoints_io.pickle_io import Conversion, annotation, value_problem
from jmrn.pose.keypoints import reorder

SUFFIXES = (".npy", ".json", ".csv")
MAX_VALUES = 2**26  # joints (persons x frames x layout) a CSV may describe
Video = tuple[np.ndarray, np.ndarray, tuple[int, int] | None]  # kp, score, img_shape or None


def split_channels(values: np.ndarray, n_joints: int) -> tuple[np.ndarray, np.ndarray]:
    """(M x T x J x 2 keypoints, M x T x J scores) of a T|M x T x J x 2|3 numeric array."""
    if values.dtype.kind not in "iuf":
        raise UserError(f"values must be numbers, not {values.dtype} (null, text or ragged lists?)")
    if values.ndim == 3:
        values = values[None]
    if values.ndim != 4 or values.shape[-1] not in (2, 3):
        raise UserError(f"shape {values.shape} is not T x J x 2|3 or M x T x J x 2|3")
    if values.shape[2] != n_joints:
        raise UserError(f"{values.shape[2]} joints, but the layout has {n_joints}")
    values = values.astype(np.float32)
    score = values[..., 2] if values.shape[-1] == 3 else np.ones(values.shape[:-1], np.float32)
    return values[..., :2], score


def read_npy(path: Path, names: tuple[str, ...]) -> Video:
    """A ``.npy`` file's keypoints (no pickled objects are loaded)."""
    try:
        values = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as exc:  # not .npy, truncated, or pickled objects
        raise UserError(f"not a numeric .npy array ({exc})") from exc
    return (*split_channels(values, len(names)), None)


def read_json(path: Path, names: tuple[str, ...]) -> Video:
    """A ``.json`` file's keypoints and, if it gives one, its frame size."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"not UTF-8 JSON ({exc})") from exc
    shape = None
    if isinstance(doc, dict):
        if "keypoints" not in doc:
            raise UserError('a JSON object must hold "keypoints"')
        if "img_shape" in doc:
            hw = doc["img_shape"]
            if not (isinstance(hw, list) and len(hw) == 2 and all(
                    isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in hw)):
                raise UserError(f'"img_shape" must be [height, width] in whole pixels, not {hw!r}')
            shape = (hw[0], hw[1])
        doc = doc["keypoints"]
    try:
        values = np.array(doc)
    except ValueError as exc:  # ragged lists
        raise UserError(f"keypoints are not a regular array ({exc})") from exc
    return (*split_channels(values, len(names)), shape)


def read_csv(path: Path, names: tuple[str, ...]) -> Video:
    """A ``.csv`` file's keypoints (one row per person, frame and joint)."""
    try:
        table = pd.read_csv(path, dtype={"joint": str}, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"not a readable CSV ({exc})") from exc
    missing = [c for c in ("frame", "joint", "x", "y") if c not in table]
    if missing or table.empty:
        raise UserError(f"needs the columns frame,joint,x,y[,score][,person] and rows; missing {missing}")
    table["person"] = table["person"] if "person" in table else 0
    index = {n: i for i, n in enumerate(names)} | {str(i): i for i in range(len(names))}
    joint = table["joint"].map(index)
    if joint.isna().any():
        raise UserError(f"joint {table['joint'][joint.isna()].iloc[0]!r} is neither an index below "
                        f"{len(names)} nor a name of the layout")
    numbers = {}
    for column in ("frame", "person", "x", "y", *(["score"] if "score" in table else [])):
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(np.float64)
        bad = np.isnan(values)  # text, an empty cell or nan
        if column in ("frame", "person"):
            with np.errstate(invalid="ignore"):
                bad |= ~np.isfinite(values) | (values < 0) | (values % 1 != 0)
        if bad.any():
            kind = "whole numbers >= 0" if column in ("frame", "person") else "finite numbers"
            row = int(np.argmax(bad))
            raise UserError(f"column {column!r} must hold {kind} (line {row + 2}: "
                            f"{table[column].iloc[row]!r})")
        numbers[column] = values
    frame, person = numbers["frame"].astype(np.int64), numbers["person"].astype(np.int64)
    j = joint.to_numpy(np.int64)
    key = (person * (frame.max() + 1) + frame) * len(names) + j
    if len(np.unique(key)) != len(key):
        raise UserError("a (person, frame, joint) appears in more than one row")
    if (person.max() + 1) * (frame.max() + 1) * len(names) > MAX_VALUES:
        raise UserError(f"frame {frame.max()} or person {person.max()} is too large: that would "
                        f"be more than {MAX_VALUES} joints")
    kp = np.zeros((person.max() + 1, frame.max() + 1, len(names), 2), np.float32)
    score = np.zeros(kp.shape[:-1], np.float32)
    kp[person, frame, j] = np.stack([numbers["x"], numbers["y"]], axis=1)
    score[person, frame, j] = numbers["score"] if "score" in numbers else 1.0
    return kp, score, None


READERS = {".npy": read_npy, ".json": read_json, ".csv": read_csv}


def read_labels(path: str | os.PathLike) -> dict[str, tuple[str, str | None]]:
    """video id -> (class name, train | test | None) from a labels CSV (``video,label[,split]``)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    if not {"video", "label"} <= set(table.columns):
        raise UserError(f"{path}: a labels CSV needs the columns video,label[,split]")
    if "split" in table:
        bad = table[~table["split"].isin(["train", "test"])]
        if len(bad):
            raise UserError(f"{path}: split must be train or test, not {bad['split'].iloc[0]!r} "
                            f"(video {bad['video'].iloc[0]!r})")
    if table["video"].duplicated().any():
        raise UserError(f"{path}: video {table['video'][table['video'].duplicated()].iloc[0]!r} "
                        "is listed twice")
    splits = table["split"] if "split" in table else [None] * len(table)
    return {v: (c, s) for v, c, s in zip(table["video"], table["label"], splits)}


def infer_shape(videos: list[tuple[np.ndarray, np.ndarray]]) -> tuple[int, int]:
    """The smallest frame holding every found joint of every video: (ceil(max y) + 1,
    ceil(max x) + 1); coordinates within [0, 1] are refused as normalised."""
    found = [kp[score > 0] for kp, score in videos]
    points = np.concatenate(found) if found else np.zeros((0, 2))
    if not len(points):
        raise UserError("no joint has a score above 0, so the frame size cannot be inferred; "
                        "give --img-shape HEIGHT WIDTH")
    high = points.max(axis=0)
    if high.max() <= 1.0:
        raise UserError("every coordinate is within [0, 1]: they look normalised; give the frame "
                        "size with --img-shape HEIGHT WIDTH and add --normalized")
    return math.ceil(high[1]) + 1, math.ceil(high[0]) + 1


def convert(root: str | os.PathLike, names: tuple[str, ...], out_names: tuple[str, ...],
            labels_csv: str | os.PathLike | None = None, img_shape: tuple[int, int] | None = None,
            normalized: bool = False, test_fraction: float = 0.3) -> Conversion:
    """Every keypoint file under ``root`` as one annotation; unreadable files are skipped with
    their reason."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"folder {root} does not exist")
    if normalized and img_shape is None:
        raise UserError("--normalized needs the frame size: give --img-shape HEIGHT WIDTH")
    labels = read_labels(labels_csv) if labels_csv else None
    result = Conversion(classes=[])
    read: dict[str, tuple[str, str, str | None, np.ndarray, np.ndarray, tuple[int, int] | None]] = {}
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()):
        vid, source = path.stem, str(path)
        if labels is not None and vid not in labels:
            result.skip(source, f"video {vid!r} is not in {labels_csv}")
            continue
        if labels is None and path.parent == root:
            result.skip(source, "not in a class folder (or give --labels)")
            continue
        if vid in read:
            result.skip(source, f"video id {vid!r} already taken by {read[vid][0]}")
            continue
        try:
            kp, score, shape = READERS[path.suffix.lower()](path, names)
        except UserError as exc:
            result.skip(source, str(exc))
            continue
        why = value_problem(kp, score)
        if why is not None:
            result.skip(source, why)
            continue
        label, subset = labels[vid] if labels is not None else (path.parent.name, None)
        read[vid] = (source, label, subset, kp, score, shape)
    if labels is not None:
        for vid in sorted(set(labels) - set(read) - {Path(s).stem for s, _ in result.skipped}):
            result.notes.append((str(labels_csv), f"video {vid!r} has no keypoint file"))
    if normalized:
        for entry in read.values():
            entry[3][...] *= np.array([img_shape[1], img_shape[0]], np.float32)
    shape = img_shape or (infer_shape([(e[3], e[4]) for e in read.values() if e[5] is None])
                          if any(e[5] is None for e in read.values()) else None)
    result.classes = sorted({e[1] for e in read.values()})
    index = {c: i for i, c in enumerate(result.classes)}
    if any(e[2] is None for e in read.values()):
        by_class: dict[str, list[str]] = {}
        for vid, e in read.items():
            by_class.setdefault(e[1], []).append(vid)
        held = holdout_splits(by_class, [1], test_fraction)
    for vid, (source, label, subset, kp, score, own_shape) in read.items():
        kp, score = reorder(kp, score, names, out_names)
        subset = subset or held[vid]["split1"]
        result.add(source, annotation(vid, index[label], kp, score, own_shape or shape), {subset: subset})
    return result
