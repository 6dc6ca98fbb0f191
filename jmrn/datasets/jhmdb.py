"""JHMDB: HMDB51's layout and split-file format (21 classes, 3 splits) plus ground-truth joints.

``<joint_root>/<class>/<video>/joint_positions.mat`` holds ``pos_img`` (2 x 15 x T, image pixel
x/y of the 15-joint puppet, MATLAB 1-based); with ``dataset.joint_root`` set, each manifest row
names its file in the ``keypoints`` column and the ``keypoints`` pose backend (``layout:
jhmdb15``) renders heatmaps from it instead of running a pose network on the video.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from jmrn.datasets import hmdb51
from jmrn.datasets.files import require_dir
from jmrn.datasets.report import DatasetProblems

JOINT_FILE = "joint_positions.mat"


def load(video_root: str | Path, split_dir: str | Path, joint_root: str | Path | None,
         splits: list[int], problems: DatasetProblems) -> pd.DataFrame:
    """HMDB51-style rows; with ``joint_root`` also the path of each video's joint file."""
    rows = hmdb51.load(video_root, split_dir, splits, problems)
    if joint_root:
        root = require_dir(joint_root, "dataset.joint_root")
        paths = [root / cls / vid / JOINT_FILE for cls, vid in zip(rows["label_name"], rows["video_id"])]
        for path in paths:
            if not path.is_file():
                problems.add("missing joint_positions.mat (video marked unusable)", str(path))
        rows["keypoints"] = [str(p) for p in paths]
    return rows


def read_joint_positions(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(keypoints 1 x T x 15 x 2 in 0-based pixels, scores 1 x T x 15: 1 where annotated)."""
    from scipy.io import loadmat

    try:
        pos = np.asarray(loadmat(str(path), variable_names=["pos_img"])["pos_img"], np.float32)
    except (KeyError, ValueError, TypeError) as exc:  # content; OSError is a storage fault
        raise ValueError(f"{path}: no readable 'pos_img' ({exc})") from exc
    if pos.ndim != 3 or pos.shape[0] != 2 or pos.shape[1] != 15:
        raise ValueError(f"{path}: pos_img has shape {pos.shape}, expected 2 x 15 x T")
    kp = pos.transpose(2, 1, 0)[None] - 1.0  # 1 x T x 15 x 2
    score = np.isfinite(kp).all(axis=-1).astype(np.float32)
    return np.nan_to_num(kp), score
