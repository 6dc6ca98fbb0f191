"""The manifest: one row per video with labels, split membership, probed video facts and status.

Columns (DESIGN.md §2): video_id, path, label, label_name, split1..k, frames, fps, width,
height, status. ``status`` is ``ok`` or why the video cannot be used; such videos stay in the
manifest (and in failed.csv later) instead of disappearing.
"""
from __future__ import annotations

import logging
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd
from tqdm import tqdm

from jmrn.datasets import hmdb51, skeleton
from jmrn.datasets.report import DatasetProblems
from jmrn.io import LogWriter, atomic_path
from jmrn.video import VideoError, probe

log = logging.getLogger(__name__)

ADAPTERS = ("demo", "hmdb51", "skeleton")


def _probe_row(path: str) -> dict[str, Any]:
    try:
        info = probe(path)
    except VideoError as exc:
        return {"frames": 0, "fps": 0.0, "width": 0, "height": 0, "status": str(exc)}
    return {"frames": info.frames, "fps": info.fps, "width": info.width, "height": info.height,
            "status": "ok"}


def build_manifest(dataset: dict[str, Any], out_csv: str | os.PathLike, threads: int = 1) -> pd.DataFrame:
    """Build and write ``manifest.csv`` for the configured dataset."""
    adapter = dataset["adapter"]
    splits = list(dataset["splits"])
    problems = DatasetProblems()
    if adapter in ("demo", "hmdb51"):
        rows = hmdb51.load(dataset["video_root"], dataset["split_dir"], splits, problems)
    elif adapter == "skeleton":
        rows = skeleton.load(dataset["annotation"], dataset["split_map"], splits,
                             dataset.get("label_names"), problems)
    else:
        raise ValueError(f"unknown dataset adapter {adapter!r}; available: {', '.join(ADAPTERS)}")
    problems.log()
    classes = sorted(rows["label_name"].unique())
    rows["label"] = rows["label_name"].map({c: i for i, c in enumerate(classes)})
    if "status" in rows:  # the adapter already knows frames and sizes (keypoint files)
        manifest = rows
    else:
        with ThreadPoolExecutor(max(1, threads)) as pool:
            probed = list(tqdm(pool.map(_probe_row, rows["path"]), total=len(rows), desc="probe",
                               file=LogWriter(log), mininterval=5.0))
        manifest = pd.concat([rows, pd.DataFrame(probed, index=rows.index)], axis=1)
    columns = ["video_id", "path", "label", "label_name", *[f"split{k}" for k in splits],
               "frames", "fps", "width", "height", "status"]
    manifest = manifest[columns].sort_values("video_id", kind="stable").reset_index(drop=True)
    dup = manifest["video_id"].duplicated(keep=False)
    if dup.any():
        raise ValueError(f"{dup.sum()} rows share a video_id, e.g. "
                         f"{manifest.loc[dup, 'video_id'].head(3).tolist()}")
    bad = manifest[manifest["status"] != "ok"]
    log.info("manifest: %d videos, %d classes, %d unusable", len(manifest), len(classes), len(bad))
    for _, row in bad.head(10).iterrows():
        log.warning("unusable video %s: %s", row["path"], row["status"])
    write_csv(manifest, out_csv)
    return manifest


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a CSV atomically (UTF-8, no index)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, encoding="utf-8")


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Load a manifest with ids and names kept as strings (never parsed as numbers)."""
    return pd.read_csv(path, dtype={"video_id": str, "path": str, "label_name": str},
                       keep_default_na=False, encoding="utf-8")


def class_names(manifest: pd.DataFrame) -> list[str]:
    """Class names in label order."""
    pairs = manifest[["label", "label_name"]].drop_duplicates().sort_values("label")
    return pairs["label_name"].tolist()


def split_subset(manifest: pd.DataFrame, split: int, subset: str) -> pd.DataFrame:
    """Usable rows of one split's ``train`` or ``test`` subset."""
    column = f"split{split}"
    if column not in manifest:
        raise KeyError(f"split {split} is not in the manifest (columns: {list(manifest.columns)})")
    return manifest[(manifest[column] == subset) & (manifest["status"] == "ok")]


def shard_of(video_id: str, n_shards: int) -> int:
    """Stable shard index of a video (crc32 of its id): known without reading the manifest."""
    return zlib.crc32(video_id.encode("utf-8")) % n_shards

