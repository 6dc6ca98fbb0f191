"""Per-video tables (manifest, logits): reading, labels, split subsets and the validation split.

A low module on purpose: training, export, fusion and report import it without pulling in the
dataset adapters. The manifest columns are documented in ``jmrn.datasets.manifest``.
"""
from __future__ import annotations

import hashlib
import os
import zlib
from collections import defaultdict

import numpy as np
import pandas as pd

LABEL_SEPARATOR = ";"
SUBSETS = ("train", "val", "test")

# --- cells that came from outside (video ids, paths, names, reasons) in the tables we write ---
#
# A spreadsheet runs a CSV cell that starts with = + - @ (or a tab or carriage return) as a
# formula ("=cmd|' /C calc'!A0"). Following OWASP's advice such a cell is written with a leading
# apostrophe, which spreadsheets show as text. So that our own readers get the original text
# back, a cell that already starts with an apostrophe gets one too: the escape is reversible, and
# ``read_manifest`` / ``jmrn.io.read_video_table`` remove exactly one leading apostrophe. Only
# the columns in ``OUTSIDE_TEXT`` are escaped (ours, such as ``split1``'s "-", are left alone).

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
OUTSIDE_TEXT = ("video_id", "path", "label_name", "label_names", "group", "source", "keypoints",
                "video", "status", "reason")


def escape_csv_text(values: pd.Series) -> pd.Series:
    """Cells with a leading apostrophe where a spreadsheet would run them as formulas (or where
    they already start with one, so that ``unescape_csv_text`` restores every cell exactly)."""
    text = values.astype(str)
    risky = text.str.startswith(FORMULA_STARTS + ("'",))
    return values.where(~risky | values.isna(), "'" + text)


def unescape_csv_text(values: pd.Series) -> pd.Series:
    """The inverse of ``escape_csv_text``: one leading apostrophe removed."""
    text = values.astype(str)
    return values.where(~text.str.startswith("'") | values.isna(), text.str[1:])


def is_text(column: pd.Series) -> bool:
    """Whether a column holds text (object or pandas string dtype)."""
    return column.dtype == object or pd.api.types.is_string_dtype(column.dtype)


def escaped_frame(frame: pd.DataFrame, columns: tuple[str, ...] | None = OUTSIDE_TEXT) -> pd.DataFrame:
    """A copy with the text cells of ``columns`` (None: every text column) escaped for CSV."""
    chosen = [c for c in frame.columns if (columns is None or c in columns) and is_text(frame[c])]
    if not chosen:
        return frame
    return frame.assign(**{c: escape_csv_text(frame[c]) for c in chosen})


def markdown_cell(value: object) -> str:
    """A table cell for Markdown: ``|`` escaped, line breaks as spaces (one row stays one row)."""
    text = str(value)
    for old, new in (("\\", "\\\\"), ("|", "\\|"), ("\r\n", " "), ("\n", " "), ("\r", " ")):
        text = text.replace(old, new)
    return text


def markdown_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose header and text cells are safe in a Markdown table (numbers untouched)."""
    shown = frame.rename(columns=lambda c: markdown_cell(c) if isinstance(c, str) else c)
    text = [c for c in shown.columns if is_text(shown[c])]
    return shown.assign(**{c: shown[c].map(lambda v: markdown_cell(v) if isinstance(v, str) else v)
                           for c in text}) if text else shown


def html_cell(value: object) -> str:
    """A cell (or any text from outside) for HTML: ``& < > " '`` escaped."""
    import html

    return html.escape(str(value), quote=True)


def write_csv(frame: pd.DataFrame, path: str | os.PathLike,
              escape: tuple[str, ...] | None = OUTSIDE_TEXT) -> None:
    """Write a CSV atomically (UTF-8, no index), text from outside escaped (``escaped_frame``)."""
    from jmrn.io import atomic_path

    import csv

    frame = escaped_frame(frame, escape)
    # pandas quotes a cell with "\n" but not one with a lone "\r", which readers take as a line
    # break: then every text cell is quoted
    carriage = any(frame[c].astype(str).str.contains("\r", regex=False).any()
                   for c in frame.columns if is_text(frame[c]))
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, encoding="utf-8",
                     quoting=csv.QUOTE_NONNUMERIC if carriage else csv.QUOTE_MINIMAL)


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Load a manifest (or shard table, ground truth) as ``write_csv`` wrote it: ids and names
    kept as strings (never parsed as numbers), the formula escape removed."""
    text = {c: str for c in ("video_id", "path", "label_name", "labels", "label_names",
                             "keypoints", "group", "source", "clip_frames", "video")}
    table = pd.read_csv(path, dtype=text, keep_default_na=False, encoding="utf-8")
    return unescape_columns(table)


def unescape_columns(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the ``OUTSIDE_TEXT`` columns that ``write_csv`` escaped restored."""
    chosen = [c for c in OUTSIDE_TEXT if c in table and is_text(table[c])]
    return table.assign(**{c: unescape_csv_text(table[c]) for c in chosen}) if chosen else table


def is_multilabel(table: pd.DataFrame) -> bool:
    """Multi-label tables (manifest, logits) carry ``labels`` ("3;17") instead of ``label``."""
    return "labels" in table.columns


def parse_labels(field: str) -> list[int]:
    """Class indices of one multi-label ``labels`` field ("" = no action)."""
    return [int(v) for v in str(field).split(LABEL_SEPARATOR) if v != ""]


def class_names(manifest: pd.DataFrame) -> list[str]:
    """Class names in label order (multi-label: every class some video carries)."""
    if is_multilabel(manifest):
        pairs = {}
        for labels, names in zip(manifest["labels"], manifest["label_names"]):
            pairs.update(zip(parse_labels(labels), [n for n in names.split(LABEL_SEPARATOR) if n]))
        return [pairs.get(i, f"class_{i:03d}") for i in range(max(pairs, default=-1) + 1)]
    pairs = manifest[["label", "label_name"]].drop_duplicates().sort_values("label")
    return pairs["label_name"].tolist()


def label_table(targets: np.ndarray) -> pd.DataFrame:
    """The label column of exported tables: ``label`` indices, or ``labels`` "3;17" strings."""
    if targets.ndim == 2:
        return pd.DataFrame({"labels": [LABEL_SEPARATOR.join(map(str, np.flatnonzero(t))) for t in targets]})
    return pd.DataFrame({"label": targets})


def label_targets(table: pd.DataFrame, num_classes: int) -> np.ndarray:
    """N class indices (int64), or N x K multi-hot (float32) for multi-label tables."""
    if not is_multilabel(table):
        return table["label"].to_numpy(dtype=np.int64)
    hot = np.zeros((len(table), num_classes), np.float32)
    for i, field in enumerate(table["labels"]):
        hot[i, parse_labels(field)] = 1.0
    return hot


def shard_of(video_id: str, n_shards: int) -> int:
    """Stable shard index of a video (crc32 of its id): known without reading the manifest."""
    return zlib.crc32(video_id.encode("utf-8")) % n_shards


def _row_classes(rows: pd.DataFrame) -> list[tuple[str, ...]]:
    """The classes of each row, as strings; a multi-label video without an action is "-"."""
    if is_multilabel(rows):
        return [tuple(str(c) for c in parse_labels(f)) or ("-",) for f in rows["labels"]]
    return [(str(c),) for c in rows["label"]]


def validation_ids(rows: pd.DataFrame, fraction: float, salt: str) -> set[str]:
    """The video ids of one training set that are held out for validation.

    Stratified, grouped and deterministic without a seed: groups (the manifest's ``group``
    column, e.g. the source video of HMDB51 clips or the subject of a skeleton set; each video
    its own group without it) are visited in the order of a hash of ``salt`` and the group, and
    a group is taken while one of its classes holds fewer validation videos than
    ``round(fraction * n_class)`` (at least 1), provided every class it holds keeps another
    group for training. Whole groups move, so no group straddles training and validation."""
    if fraction <= 0 or rows.empty:
        return set()
    groups = rows["group"].astype(str).tolist() if "group" in rows else rows["video_id"].tolist()
    members: dict[str, list[str]] = defaultdict(list)
    group_counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    class_size: dict[str, int] = defaultdict(int)
    for vid, group, classes in zip(rows["video_id"], groups, _row_classes(rows)):
        members[group].append(vid)
        for c in classes:
            group_counts[group][c] += 1
            class_size[c] += 1
    target = {c: max(1, round(fraction * n)) for c, n in class_size.items()}
    in_val = dict.fromkeys(class_size, 0)
    train_groups_left = dict.fromkeys(class_size, 0)
    for counts in group_counts.values():
        for c in counts:
            train_groups_left[c] += 1

    def rank(group: str) -> tuple[str, str]:
        return hashlib.sha256(f"{salt}:{group}".encode("utf-8")).hexdigest(), group

    chosen: set[str] = set()
    for group in sorted(members, key=rank):
        counts = group_counts[group]
        wanted = any(in_val[c] < target[c] for c in counts)
        keeps_training = all(train_groups_left[c] > 1 for c in counts)
        if wanted and keeps_training:
            chosen.add(group)
            for c, n in counts.items():
                in_val[c] += n
                train_groups_left[c] -= 1
    return {vid for g in chosen for vid in members[g]}


def split_subset(manifest: pd.DataFrame, split: int, subset: str,
                 val_fraction: float = 0.0) -> pd.DataFrame:
    """Usable rows of one split's ``train``, ``val`` or ``test`` subset.

    ``val`` is carved out of the split's training rows by :func:`validation_ids`; with a
    ``val_fraction`` the ``train`` subset excludes them. The test rows never take part."""
    column = f"split{split}"
    if column not in manifest:
        raise KeyError(f"split {split} is not in the manifest (columns: {list(manifest.columns)})")
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; known: {SUBSETS}")
    usable = manifest["status"] == "ok"
    if subset == "test":
        return manifest[(manifest[column] == "test") & usable]
    training = manifest[(manifest[column] == "train") & usable]
    held_out = training["video_id"].isin(validation_ids(training, val_fraction, f"split{split}"))
    return training[held_out] if subset == "val" else training[~held_out]


# --- what a pose shard and a split's training depend on (content-addressed in the DAG) -------

SHARD_COLUMNS = ("video_id", "path", "frames", "fps", "width", "height", "status", "keypoints",
                 "clip_frames")


def merge_frame_ranges(fields: list[str]) -> str:
    """Union of "start:stop:step" ranges on one step grid, as few ranges as possible."""
    spans = sorted(tuple(int(v) for v in f.split(":")) for f in fields if f)
    merged: list[list[int]] = []
    for start, stop, step in spans:
        if merged and start <= merged[-1][1] and step == merged[-1][2]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop, step])
    return ";".join(f"{a}:{b}:{c}" for a, b, c in merged)


def pose_rows(manifest: pd.DataFrame) -> pd.DataFrame:
    """The rows pose extraction works on: the manifest itself, or, when its rows are person
    instances of longer videos (``source``, AVA), one row per source video whose
    ``clip_frames`` are the union of its usable instances' clips (each frame computed once)."""
    if "source" not in manifest:
        return manifest
    rows = []
    for source, group in manifest.groupby("source", sort=True):
        ok = group[group["status"] == "ok"]
        first = (ok if len(ok) else group).iloc[0]
        rows.append({"video_id": source, "path": first["path"],
                     **{c: first[c] for c in ("frames", "fps", "width", "height", "status")},
                     "clip_frames": merge_frame_ranges(ok["clip_frames"].tolist())})
    return pd.DataFrame(rows, columns=["video_id", "path", "frames", "fps", "width", "height",
                                       "status", "clip_frames"])


def table_digest(frame: pd.DataFrame) -> str:
    """Short, stable hash of a table's CSV text (column order and values)."""
    return hashlib.sha256(frame.to_csv(index=False).encode("utf-8")).hexdigest()[:16]


def shard_tables(manifest: pd.DataFrame, n_shards: int) -> dict[int, pd.DataFrame]:
    """Per shard, the manifest columns its pose job reads (never labels or splits), in id order."""
    manifest = pose_rows(manifest)
    columns = [c for c in SHARD_COLUMNS if c in manifest]
    ordered = manifest.sort_values("video_id", kind="stable")
    shard = ordered["video_id"].map(lambda v: shard_of(v, n_shards))
    groups = {s: part[columns].reset_index(drop=True) for s, part in ordered.groupby(shard, sort=True)}
    empty = ordered.iloc[:0][columns].reset_index(drop=True)
    return {s: groups.get(s, empty) for s in range(n_shards)}


BOX_COLUMNS = ("source", "timestamp", "x1", "y1", "x2", "y2")


def ground_truth_path(manifest_csv: str | os.PathLike) -> str:
    """The ground-truth boxes written beside a manifest of person boxes (AVA)."""
    return os.path.join(os.path.dirname(os.fspath(manifest_csv)), "ground_truth.csv")


def split_table(manifest: pd.DataFrame, split: int, crc32: dict[str, int],
                truth: pd.DataFrame | None = None) -> dict:
    """What one split's training and export read: its usable videos in the PoTion store with
    their subset, label(s), group and the crc32 of their PoTion map, and the class names; for
    person boxes (AVA) also each box and the ground truth of the split's keyframes (what
    frame-mAP is computed against). Its hash changes exactly when a model of this split, or its
    evaluation, would come out different."""
    column = f"split{split}"
    if column not in manifest:
        raise KeyError(f"split {split} is not in the manifest")
    labels = ["labels", "label_names"] if is_multilabel(manifest) else ["label", "label_name"]
    rows = manifest[manifest[column].isin(["train", "test"]) & (manifest["status"] == "ok")
                    & manifest["video_id"].isin(crc32)]
    rows = rows.sort_values("video_id", kind="stable")
    table = {c: rows[c].tolist() for c in ["video_id", *labels, "group", column, *BOX_COLUMNS]
             if c in rows}
    table["crc32"] = [int(crc32[v]) for v in rows["video_id"]]
    result = {"split": split, "classes": class_names(manifest), "videos": table}
    if truth is not None and "source" in rows:  # every keyframe's, detected or not
        result["ground_truth"] = {c: truth[c].tolist() for c in
                                  ("video", "timestamp", "x1", "y1", "x2", "y2", "class", "subset")}
    return result


def split_digest(table: dict) -> str:
    """Short, stable hash of a split table (``config.fingerprint``)."""
    from jmrn.config import fingerprint

    return fingerprint(table)


def read_split_json(path: str | os.PathLike) -> dict | None:
    """A split table (``split<k>/videos.<digest>.json``, what the pipeline's train, export and
    fusion jobs read), or None for a path that is not one (a whole manifest ``.csv``)."""
    import json

    if not str(path).endswith(".json"):
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def read_split_source(source: str | os.PathLike | dict) -> tuple[pd.DataFrame, list[str]]:
    """Rows in the manifest's columns and the class names, from a split table (its ``.json``
    path, or the table ``read_split_json`` returned) or a whole manifest (``.csv``)."""
    table = source if isinstance(source, dict) else read_split_json(source)
    if table is not None:
        rows = pd.DataFrame(table["videos"]).assign(status="ok")
        for c in ("video_id", "labels", "label_names", "label_name", "group", "source"):
            if c in rows:
                rows[c] = rows[c].astype(str)
        return rows, list(table["classes"])
    manifest = read_manifest(source)
    return manifest, class_names(manifest)
