"""Kinetics -> Mimetics: train on the Kinetics classes Mimetics shares, test on Mimetics.

Both annotation CSVs have the Kinetics columns ``label,youtube_id,time_start,time_end[,split]``
and clips are files named ``<youtube_id>_<start:06d>_<end:06d>.<ext>`` anywhere under the
source's ``video_root`` (flat or in class folders). Split 1 trains on ``train_source`` (rows
whose ``split`` is ``train`` when the column exists) and tests on ``test_source``.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from jmrn.datasets.files import index_videos, require_dir, require_file
from jmrn.datasets.report import DatasetError, DatasetProblems

COLUMNS = ("label", "youtube_id", "time_start", "time_end")


def clip_name(youtube_id: str, start: str, end: str) -> str:
    """``<youtube_id>_<start:06d>_<end:06d>`` (Kinetics' clip naming)."""
    return f"{youtube_id}_{int(float(start)):06d}_{int(float(end)):06d}"


def read_source(source: dict[str, Any], key: str, subset: str | None,
                problems: DatasetProblems) -> pd.DataFrame:
    """Rows (video_id, path, label_name) of one source CSV, optionally only one ``split`` value."""
    csv = require_file(source["annotation"], f"dataset.{key}.annotation")
    root = require_dir(source["video_root"], f"dataset.{key}.video_root")
    table = pd.read_csv(csv, dtype=str, keep_default_na=False, encoding="utf-8")
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError(f"{csv}: missing columns {missing} (expected {','.join(COLUMNS)}[,split])")
    if subset and "split" in table.columns:
        table = table[table["split"].str.strip() == subset]
    videos = index_videos(root, problems)
    rows = []
    for lineno, r in zip(table.index + 2, table.itertuples(index=False)):
        try:
            name = clip_name(r.youtube_id.strip(), r.time_start, r.time_end)
        except ValueError:
            problems.add("bad annotation line (skipped)", f"{csv.name}:{lineno}: {r.time_start!r}, {r.time_end!r}")
            continue
        label = r.label.strip()
        path = videos.get(name)
        if path is None:
            problems.add(f"{key} clip missing (kept as 'missing file')", f"{csv.name}:{lineno}: {name}")
            path = root / label / f"{name}.mp4"
        rows.append({"video_id": name, "path": str(path), "label_name": label})
    return pd.DataFrame(rows, columns=["video_id", "path", "label_name"])


def load(train_source: dict[str, Any], test_source: dict[str, Any], splits: list[int],
         problems: DatasetProblems) -> pd.DataFrame:
    """Kinetics train rows of the test classes (split1 = train) and test rows (split1 = test)."""
    if list(splits) != [1]:
        raise DatasetError(f"a train/test dataset pair is one split; set dataset.splits: [1] (got {splits})")
    test = read_source(test_source, "test_source", None, problems)
    train = read_source(train_source, "train_source", "train", problems)
    test_classes = set(test["label_name"])
    train = train[train["label_name"].isin(test_classes)]
    classes = sorted(set(train["label_name"]))
    unknown = test[~test["label_name"].isin(classes)]
    if not classes:
        raise DatasetError("no class of test_source has training videos in train_source "
                           f"(test classes e.g. {sorted(test_classes)[:3]})")
    for _, row in unknown.iterrows():
        problems.add("test class without training videos (test video dropped)",
                     f"{row['video_id']} ({row['label_name']})")
    test = test[test["label_name"].isin(classes)]
    frame = pd.concat([train.assign(split1="train"), test.assign(split1="test")], ignore_index=True)
    frame.attrs["classes"] = classes
    return frame
