"""The manifest: one row per video with labels, split membership, probed video facts and status.

Columns: video_id, path, label, label_name, split1..k, frames, fps, width,
height, status, group. ``group`` names what videos must not be split across training and
validation (the source video of HMDB51/JHMDB clips, the YouTube video of Kinetics clips, the
subject of a skeleton set): ``dataset.group_pattern`` or the adapter's default below. Multi-label datasets (Charades) have ``labels`` / ``label_names`` (";"-joined)
instead of ``label`` / ``label_name``; datasets with ground-truth joints add ``keypoints`` (the
joint file of each video). ``status`` is ``ok`` or why the video cannot be used; such videos stay
in the manifest (and in failed.csv later) instead of disappearing.
"""
from __future__ import annotations

import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd
from tqdm import tqdm

from jmrn.datasets import ava, charades, custom, hmdb51, jhmdb, kinetics, skeleton
from jmrn.datasets.files import holdout_splits
from jmrn.datasets.report import DatasetError, DatasetProblems
from jmrn.io import LogWriter
from jmrn.tables import (  # noqa: F401  (re-exported: the manifest's readers live there)
    LABEL_SEPARATOR, class_names, is_multilabel, label_table, label_targets, parse_labels,
    read_manifest, shard_of, split_subset, write_csv)
from jmrn.video import probe_fields

log = logging.getLogger(__name__)

FORMULA_STARTS = ("=", "+", "-", "@")
ADAPTERS = ("demo", "hmdb51", "jhmdb", "charades", "kinetics_mimetics", "ava", "skeleton", "folder",
            "csv")
TRUTH_COLUMNS = ["video", "timestamp", "x1", "y1", "x2", "y2", "class", "subset"]


def _load_rows(dataset: dict[str, Any], splits: list[int], problems: DatasetProblems) -> pd.DataFrame:
    """The adapter's rows: video_id, path, label_name (or label_names lists), split1..k, ..."""
    adapter = dataset["adapter"]
    if adapter in ("demo", "hmdb51"):
        return hmdb51.load(dataset["video_root"], dataset["split_dir"], splits, problems)
    if adapter == "jhmdb":
        return jhmdb.load(dataset["video_root"], dataset["split_dir"], dataset.get("joint_root"),
                          splits, problems)
    if adapter == "charades":
        return charades.load(dataset["video_root"], dataset["annotation_dir"], splits, problems)
    if adapter == "ava":
        return ava.load(dataset, splits, problems)
    if adapter == "kinetics_mimetics":
        return kinetics.load(dataset["train_source"], dataset["test_source"], splits, problems)
    if adapter == "skeleton":
        return skeleton.load(dataset["annotation"], dataset["split_map"], splits,
                             dataset.get("label_names"), problems)
    if adapter == "folder":
        return custom.load_folder(dataset["video_root"], problems)
    if adapter == "csv":
        return custom.load_csv(dataset["annotation"], splits, problems)
    raise DatasetError(f"unknown dataset adapter {adapter!r}; available: {', '.join(ADAPTERS)}")


# Regexes on the video id whose first capture group (or whole match) is the video's group.
# HMDB51-style names end in the clip index of their source video: "<source>_<k>".
DEFAULT_GROUP_PATTERNS = {
    "demo": r"^(.*)_\d+$",
    "hmdb51": r"^(.*)_\d+$",
    "jhmdb": r"^(.*)_\d+$",
    "kinetics_mimetics": r"^(.*)_\d{6}_\d{6}$",
    "ava": r"^(.*)@\d+#\d+$",  # a person box of a keyframe: grouped by its video
}


def video_groups(video_ids: pd.Series, pattern: str | None) -> list[str]:
    """The group of each video: the pattern's first capture group (or whole match), else the id."""
    if not pattern:
        return video_ids.tolist()
    regex = re.compile(pattern)
    groups = []
    for vid in video_ids:
        match = regex.search(vid)
        if match is None:
            groups.append(vid)
        else:
            groups.append(match.group(1) if regex.groups else match.group(0))
    return groups


def _encode_labels(rows: pd.DataFrame, classes: list[str] | None
                   ) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Class indices from names: ``label`` (single-label) or ``labels`` ("3;17", multi-label).

    ``classes`` is the adapter's class order (Charades' file, the shared Kinetics classes);
    without it classes are sorted by name."""
    multilabel = "label_names" in rows
    if multilabel:
        classes = list(classes or sorted({n for ns in rows["label_names"] for n in ns}))
    else:
        classes = list(classes or sorted(rows["label_name"].unique()))
    bad = [c for c in classes if LABEL_SEPARATOR in c]
    if multilabel and bad:
        raise DatasetError(f"class names may not contain {LABEL_SEPARATOR!r}: {bad[:3]}")
    formulas = [c for c in classes if c[:1] in FORMULA_STARTS]
    if formulas:
        raise DatasetError(f"class names may not start with {' '.join(FORMULA_STARTS)} (spreadsheets "
                           f"run such CSV cells as formulas): {formulas[:3]}; rename those classes")
    index = {c: i for i, c in enumerate(classes)}
    if multilabel:
        rows["labels"] = [LABEL_SEPARATOR.join(str(index[n]) for n in ns) for ns in rows["label_names"]]
        rows["label_names"] = [LABEL_SEPARATOR.join(ns) for ns in rows["label_names"]]
        return rows, classes, ["labels", "label_names"]
    rows["label"] = rows["label_name"].map(index)
    return rows, classes, ["label", "label_name"]


def _drop_duplicate_ids(rows: pd.DataFrame, problems: DatasetProblems) -> pd.DataFrame:
    dup = rows["video_id"].duplicated(keep="first")
    for _, row in rows[dup].iterrows():
        problems.add("duplicate video id (later one ignored)", f"{row['video_id']}: {row['path']}")
    return rows[~dup]


def _assign_splits(rows: pd.DataFrame, splits: list[int], test_fraction: float,
                   problems: DatasetProblems) -> pd.DataFrame:
    """Rows without split columns (folders, CSVs without them) get the stratified hold-out;
    videos that end up in no split are reported (they stay in the manifest, unused)."""
    columns = [f"split{k}" for k in splits]
    if not any(c in rows for c in columns):
        by_class = rows.groupby("label_name", sort=True)["video_id"].apply(list).to_dict()
        assignment = holdout_splits(by_class, splits, test_fraction)
        for c in columns:
            rows[c] = [assignment[v][c] for v in rows["video_id"]]
    unused = (rows[columns] == "-").all(axis=1)
    for vid in rows.loc[unused, "video_id"]:
        problems.add("video in no split (kept, unused)", vid)
    return rows


def check_classes(manifest: pd.DataFrame, splits: list[int], classes: list[str]) -> None:
    """A classifier needs two classes with usable videos, and (single-label) every test class
    needs training videos in the same split; else one line says what is wrong."""
    usable = manifest[manifest["status"] == "ok"]
    if "label" not in usable:
        return
    present = sorted({classes[i] for i in usable["label"]})
    if len(present) < 2:
        raise DatasetError(f"only {len(present)} class has usable videos ({present}); a classifier "
                           "needs at least 2 — check the dataset paths and failed videos")
    for k in splits:
        train = set(usable.loc[usable[f"split{k}"] == "train", "label"])
        test = set(usable.loc[usable[f"split{k}"] == "test", "label"])
        orphans = sorted(classes[i] for i in test - train)
        if orphans:
            raise DatasetError(f"split {k}: test videos of {len(orphans)} classes without any usable "
                               f"training video, e.g. {orphans[:3]}")


def build_manifest(dataset: dict[str, Any], out_csv: str | os.PathLike, threads: int = 1,
                   out_truth: str | os.PathLike | None = None) -> pd.DataFrame:
    """Build and write ``manifest.csv`` for the configured dataset, and for datasets of person
    boxes (AVA) their ground-truth boxes to ``out_truth`` (what frame-mAP is computed against).

    Problems (missing files, bad lines, unknown classes, duplicates, videos in no split) are
    logged as counts with examples and recorded (unusable rows keep a ``status``), or stop the
    job on one line with ``dataset.on_problem: fail``."""
    splits = list(dataset["splits"])
    problems = DatasetProblems()
    rows = _load_rows(dataset, splits, problems)
    if rows.empty:
        raise DatasetError(f"the {dataset['adapter']} adapter found no videos; check the dataset paths")
    adapter_classes = rows.attrs.get("classes")
    truth = rows.attrs.get("ground_truth")
    rows = _drop_duplicate_ids(rows, problems).reset_index(drop=True)
    rows = _assign_splits(rows, splits, float(dataset.get("test_fraction", 0.3)), problems)
    problems.settle(dataset.get("on_problem", "warn"))
    rows, classes, label_columns = _encode_labels(rows, adapter_classes)
    if "status" in rows:  # the adapter already knows frames and sizes (keypoint files)
        manifest = rows
    else:
        with ThreadPoolExecutor(max(1, threads)) as pool:
            probed = list(tqdm(pool.map(probe_fields, rows["path"]), total=len(rows), desc="probe",
                               file=LogWriter(log), mininterval=5.0))
        manifest = pd.concat([rows, pd.DataFrame(probed, index=rows.index)], axis=1)
    extra = []
    if "keypoints" in manifest:  # ground-truth joint files: unusable without them
        extra = ["keypoints"]
        absent = ~manifest["keypoints"].map(lambda p: bool(p) and os.path.isfile(p))
        manifest.loc[absent & (manifest["status"] == "ok"), "status"] = "missing keypoints file"
    extra += [c for c in ava.INSTANCE_COLUMNS if c in manifest]
    pattern = dataset.get("group_pattern") or DEFAULT_GROUP_PATTERNS.get(dataset["adapter"])
    manifest["group"] = video_groups(manifest["video_id"], pattern)
    columns = ["video_id", "path", *label_columns, *[f"split{k}" for k in splits],
               "frames", "fps", "width", "height", "status", "group", *extra]
    manifest = manifest[columns].sort_values("video_id", kind="stable").reset_index(drop=True)
    check_classes(manifest, splits, classes)
    bad = manifest[manifest["status"] != "ok"]
    log.info("manifest: %d videos, %d classes, %d unusable", len(manifest), len(classes), len(bad))
    for _, row in bad.head(10).iterrows():
        log.warning("unusable video %s: %s", row["path"], row["status"])
    write_csv(manifest, out_csv)
    if out_truth is not None:
        write_csv(truth[TRUTH_COLUMNS] if truth is not None else pd.DataFrame(columns=TRUTH_COLUMNS),
                  out_truth)
    return manifest
