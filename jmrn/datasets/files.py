"""File-system helpers shared by the dataset adapters: checked paths, video lookup, hold-out splits."""
from __future__ import annotations

import os
import zlib
from collections.abc import Iterable
from pathlib import Path

from jmrn.datasets.report import DatasetError, DatasetProblems

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm")


def require_dir(path: str | os.PathLike, key: str) -> Path:
    """The folder named by config key ``key``, or a one-line error saying which key to fix."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"folder {path} does not exist (config {key})")
    return path


def require_file(path: str | os.PathLike, key: str) -> Path:
    """The file named by config key ``key``, or a one-line error saying which key to fix."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"file {path} does not exist (config {key})")
    return path


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith(".")


def utf8_name(path: Path, problems: DatasetProblems) -> bool:
    """Whether a file name found on disk is valid UTF-8. Other bytes cannot be written to the
    UTF-8 tables nor handed to OpenCV safely, so such a file is recorded and skipped."""
    try:
        os.fsencode(path.name).decode("utf-8")
        return True
    except UnicodeDecodeError:
        problems.add("file name is not valid UTF-8 (skipped; rename it)",
                     repr(os.fsencode(path))[2:-1])
        return False


def class_videos(root: Path, problems: DatasetProblems, keep_empty: bool = False) -> dict[str, list[Path]]:
    """The videos of each class folder under ``root``, by class name. A folder without videos
    is recorded, never dropped unseen; ``keep_empty`` keeps it (split files may list its videos,
    which then become 'missing file' rows)."""
    classes = {d.name: sorted(f for f in d.iterdir() if is_video(f) and utf8_name(f, problems))
               for d in sorted(p for p in root.iterdir() if p.is_dir() and utf8_name(p, problems))}
    for name in [c for c, videos in classes.items() if not videos]:
        problems.add("class folder without videos" + ("" if keep_empty else " (class left out)"),
                     str(root / name))
        if not keep_empty:
            del classes[name]
    return classes


def index_videos(root: Path, problems: DatasetProblems) -> dict[str, Path]:
    """Every video under ``root`` (recursively) by file stem; one walk, whatever the layout."""
    found: dict[str, Path] = {}
    for folder, _, names in os.walk(root):
        for name in sorted(names):
            path = Path(folder, name)
            if not is_video(path) or not utf8_name(path, problems):
                continue
            if path.stem in found:
                problems.add("duplicate video name", f"{path} (also {found[path.stem]})")
                continue
            found[path.stem] = path
    return found


def holdout_splits(ids_by_class: dict[str, list[str]], splits: Iterable[int],
                   test_fraction: float) -> dict[str, dict[str, str]]:
    """Stratified train/test hold-out per split for data without split files.

    Deterministic without a seed: within each class, videos are ranked by crc32 of
    ``"<split>:<video_id>"`` and the first ``round(n * test_fraction)`` (at least one when a class
    has two or more videos) are test. Returns video_id -> {"split<k>": "train" | "test"}."""
    result: dict[str, dict[str, str]] = {}
    for ids in ids_by_class.values():
        for k in splits:
            ranked = sorted(ids, key=lambda v: (zlib.crc32(f"{k}:{v}".encode("utf-8")), v))
            n_test = round(len(ranked) * test_fraction)
            n_test = min(max(n_test, 1 if len(ranked) >= 2 else 0), len(ranked) - 1)
            for rank, vid in enumerate(ranked):
                result.setdefault(vid, {})[f"split{k}"] = "test" if rank < n_test else "train"
    return result
