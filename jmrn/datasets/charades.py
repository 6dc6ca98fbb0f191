"""Charades: untrimmed videos, 157 classes, multi-label over the whole video.

``Charades_v1_classes.txt`` lines are ``c092 <description>``; ``Charades_v1_train.csv`` and
``Charades_v1_test.csv`` have an ``id`` column and an ``actions`` column like
``c092 11.90 21.20;c147 0.00 12.60`` (empty when nothing happens). Videos are
``<video_root>/<id>.mp4``. There is one official split: train.csv is its train set, test.csv its
test set. Videos without actions are kept (all-zero target); mAP skips classes with no positive.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from jmrn.datasets.files import require_dir, require_file
from jmrn.datasets.report import DatasetError, DatasetProblems

FILES = {"classes": "Charades_v1_classes.txt", "train": "Charades_v1_train.csv",
         "test": "Charades_v1_test.csv"}


def read_classes(path: Path) -> dict[str, str]:
    """Class id -> ``"<id> <description>"`` in file order."""
    classes: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        cid, _, text = line.strip().partition(" ")
        if not text:
            raise DatasetError(f"{path}:{lineno}: expected '<class id> <description>', got {line!r}")
        classes[cid] = f"{cid} {text.strip()}"
    return classes


def parse_actions(field: str, classes: dict[str, str], where: str,
                  problems: DatasetProblems) -> list[str]:
    """Class ids of an ``actions`` field (``c092 11.90 21.20;...``), each once, in class order."""
    found = set()
    for item in filter(None, (part.strip() for part in field.split(";"))):
        parts = item.split()
        if len(parts) != 3 or parts[0] not in classes:
            problems.add("bad action entry (skipped)", f"{where}: {item!r}")
            continue
        found.add(parts[0])
    return [c for c in classes if c in found]


def load(video_root: str | Path, annotation_dir: str | Path, splits: list[int],
         problems: DatasetProblems) -> pd.DataFrame:
    """Rows with ``label_names`` lists (multi-label); split1 = the official train/test."""
    if list(splits) != [1]:
        raise DatasetError(f"Charades has one official split; set dataset.splits: [1] (got {splits})")
    root = require_dir(video_root, "dataset.video_root")
    ann = require_dir(annotation_dir, "dataset.annotation_dir")
    classes = read_classes(require_file(ann / FILES["classes"], "dataset.annotation_dir"))
    rows: dict[str, dict] = {}
    for subset in ("train", "test"):
        path = require_file(ann / FILES[subset], "dataset.annotation_dir")
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        if not {"id", "actions"} <= set(table.columns):
            raise DatasetError(f"{path}: needs columns 'id' and 'actions', has {list(table.columns)}")
        for lineno, (vid, actions) in enumerate(zip(table["id"], table["actions"]), 2):
            vid = vid.strip()
            if vid in rows:
                problems.add("duplicate video id (later entry ignored)", f"{path.name}:{lineno}: {vid}")
                continue
            names = parse_actions(actions, classes, f"{path.name}:{lineno}", problems)
            rows[vid] = {"video_id": vid, "path": str(root / f"{vid}.mp4"),
                         "label_names": [classes[c] for c in names], "split1": subset}
    frame = pd.DataFrame(list(rows.values()))
    frame.attrs["classes"] = list(classes.values())
    return frame
