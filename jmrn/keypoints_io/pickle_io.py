"""The pyskl / mmaction2 2D skeleton pickle: annotations, joint layouts, value checks, writing.

A pickle is ``{'split': {name: [frame_dir, ...]}, 'annotations': [{frame_dir, label,
img_shape (h, w), original_shape, total_frames, keypoint M x T x V x 2 float32 (pixels),
keypoint_score M x T x V float32}, ...]}`` (what ``jmrn.datasets.skeleton`` reads); class names
go to ``<out>.labels.txt`` beside it, one per line in label order (``dataset.label_names``).
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jmrn.errors import UserError
from jmrn.io import atomic_path
from jmrn.pose.keypoints import LAYOUTS as RENDER_LAYOUTS

# Output layouts: what the ``keypoints`` backend reads (pose.options.keypoints.layout).
OUT_LAYOUTS = ("coco17", "openpose18", "jmrn18")


def input_layouts() -> dict[str, tuple[str, ...]]:
    """Joint layouts a per-video file may be in, by name (loaded on demand: their modules
    import OpenCV)."""
    from jmrn.pose.mediapipe_backend import MEDIAPIPE33
    from jmrn.pose.pose_files import BODY25, HALPE26

    return {**RENDER_LAYOUTS, "body25": BODY25, "halpe26": HALPE26, "mediapipe33": MEDIAPIPE33}


def value_problem(kp: np.ndarray, score: np.ndarray) -> str | None:
    """Why M x T x V x 2 keypoints with M x T x V scores cannot be written, or None; names the
    first bad value (a non-finite coordinate or score, a negative score)."""
    if kp.ndim != 4 or kp.shape[-1] != 2 or score.shape != kp.shape[:-1]:
        return f"keypoints {kp.shape} and scores {score.shape} are not M x T x V x 2 and M x T x V"
    if kp.shape[1] == 0:
        return "no frames"
    for what, values, bad in (("non-finite coordinate", kp, ~np.isfinite(kp)),
                              ("non-finite score", score, ~np.isfinite(score)),
                              ("negative score", score, score < 0)):
        if bad.any():
            at = tuple(np.argwhere(bad)[0])
            return f"{what} {values[at]} at person {at[0]}, frame {at[1]}, joint {at[2]}"
    return None


def annotation(frame_dir: str, label: int, kp: np.ndarray, score: np.ndarray,
               img_shape: tuple[int, int]) -> dict[str, Any]:
    """One pickle annotation (arrays as float32, plain ints elsewhere)."""
    shape = (int(img_shape[0]), int(img_shape[1]))
    return {"frame_dir": frame_dir, "label": int(label), "img_shape": shape, "original_shape": shape,
            "total_frames": int(kp.shape[1]), "keypoint": np.ascontiguousarray(kp, np.float32),
            "keypoint_score": np.ascontiguousarray(score, np.float32)}


@dataclass
class Conversion:
    """What a converter produced: annotations, published splits, class names, and the files it
    skipped or remarked on (each with its reason)."""

    classes: list[str]
    annotations: list[dict[str, Any]] = field(default_factory=list)
    split: dict[str, list[str]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict, repr=False)  # video id -> its file

    def add(self, source: str, ann: dict[str, Any], subsets: dict[str, str]) -> None:
        """Keep ``ann`` (read from ``source``) and list it in the named splits, unless its values
        or its id are unusable: then the file is recorded as skipped."""
        why = value_problem(ann["keypoint"], ann["keypoint_score"])
        if why is None and ann["frame_dir"] in self.seen:
            why = f"video id {ann['frame_dir']!r} already taken by {self.seen[ann['frame_dir']]}"
        if why is not None:
            self.skipped.append((source, why))
            return
        self.annotations.append(ann)
        self.seen[ann["frame_dir"]] = source
        for name in subsets.values():
            self.split.setdefault(name, []).append(ann["frame_dir"])

    def skip(self, source: str, reason: str) -> None:
        self.skipped.append((source, reason))


def write_pickle(out: str | os.PathLike, result: Conversion) -> Path:
    """Write the pickle (protocol 4, readable by pyskl, mmaction2 and the restricted unpickler)
    and its ``.labels.txt`` atomically; returns the labels file's path."""
    if not result.annotations:
        reasons = "; ".join(f"{s}: {r}" for s, r in result.skipped[:3])
        raise UserError("no video could be converted" + (f" ({reasons})" if reasons else
                                                         " (no input files found)"))
    out = Path(out)
    labels = out.with_name(out.name.removesuffix(".pkl") + ".labels.txt")
    data = {"split": {k: list(v) for k, v in sorted(result.split.items())},
            "annotations": result.annotations}
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        pickle.dump(data, fh, protocol=4)
    with atomic_path(labels) as tmp:
        tmp.write_text("".join(f"{name}\n" for name in result.classes), encoding="utf-8")
    return labels
