"""mmaction2 / pyskl 2D skeleton pickles (public HRNet keypoints of HMDB51, UCF101, NTU, ...).

Format: ``{'split': {name: [frame_dir, ...]}, 'annotations': [{frame_dir, label, img_shape,
total_frames, keypoint M x T x V x 2, keypoint_score M x T x V}, ...]}``. The config maps its
split names onto our numbered splits; the file is read with the restricted unpickler.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import pandas as pd

from jmrn.datasets.files import require_file
from jmrn.datasets.report import DatasetError, DatasetProblems
from jmrn.safe_pickle import safe_load


@functools.lru_cache(maxsize=2)
def read_skeleton_file(path: str) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    """(frame_dir -> annotation, split name -> frame_dirs), unpickled once per process."""
    data = safe_load(path)
    if not isinstance(data, dict) or "annotations" not in data:
        raise DatasetError(f"{path}: not an mmaction2 skeleton file (no 'annotations' key)")
    annotations = {str(a["frame_dir"]): a for a in data["annotations"]}
    splits = {str(k): [str(v) for v in vs] for k, vs in data.get("split", {}).items()}
    return annotations, splits


def load_annotations(path: str) -> dict[str, dict[str, Any]]:
    """frame_dir -> annotation dict of a skeleton file."""
    return read_skeleton_file(path)[0]


def read_label_names(path: str | os.PathLike | None, n: int) -> list[str]:
    """Class names from a text file (one per line, in label order) or ``class_<i>``."""
    if not path:
        return [f"class_{i:03d}" for i in range(n)]
    names = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(names) < n:
        raise DatasetError(f"{path} names {len(names)} classes but the labels go up to {n - 1}")
    return names


def load(annotation: str, split_map: dict[str, dict[str, str]], splits: list[int],
         label_names: str | None, problems: DatasetProblems) -> pd.DataFrame:
    """Manifest rows for every annotation; probing comes from the annotation itself."""
    require_file(annotation, "dataset.annotation")
    annotations, published = read_skeleton_file(str(annotation))
    names = read_label_names(label_names, 1 + max(int(a["label"]) for a in annotations.values()))
    membership: dict[str, dict[str, str]] = {vid: {} for vid in annotations}
    for k in splits:
        mapping = split_map.get(str(k))
        if not mapping:
            raise DatasetError(f"dataset.split_map has no entry for split {k}")
        for subset, name in mapping.items():
            if name not in published:
                raise DatasetError(f"split {name!r} (config dataset.split_map) is not in {annotation}; "
                                   f"it has {sorted(published)}")
            for vid in published[name]:
                if vid not in annotations:
                    problems.add("split entry without annotation", f"{name}: {vid}")
                    continue
                membership[vid][f"split{k}"] = subset
    rows = []
    for vid, a in annotations.items():
        kp = a.get("keypoint")
        frames = int(a.get("total_frames", 0))
        ok = kp is not None and getattr(kp, "ndim", 0) == 4 and kp.shape[1] > 0
        row = {"video_id": vid, "path": str(annotation), "label_name": names[int(a["label"])],
               "frames": frames, "fps": 0.0, "width": int(a["img_shape"][1]),
               "height": int(a["img_shape"][0]), "status": "ok" if ok else "no keypoints"}
        for k in splits:
            row[f"split{k}"] = membership[vid].get(f"split{k}", "-")
        rows.append(row)
    return pd.DataFrame(rows)
