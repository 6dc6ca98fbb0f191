"""HMDB51 layout: ``<root>/<class>/<video>.avi`` and ``<split_dir>/<class>_test_split<k>.txt``.

Split lines are ``<video file name> <code>`` with 1 = train, 2 = test, 0 = not used. The demo
dataset is written in this layout too.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from jmrn.datasets.report import DatasetProblems

log = logging.getLogger(__name__)

SPLIT_CODES = {"1": "train", "2": "test", "0": "-"}
SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<k>\d+)\.txt$")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm")


def parse_split_file(path: Path, problems: DatasetProblems) -> dict[str, str]:
    """Map video file name -> train/test/- for one class and split; bad lines are recorded."""
    result: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        name, _, code = line.rstrip().rpartition(" ")
        if not name or code not in SPLIT_CODES:
            problems.add("bad split line", f"{path.name}:{lineno}: {line.strip()!r} "
                         "(expected '<video> <0|1|2>')")
            continue
        result[name.strip()] = SPLIT_CODES[code]
    return result


def load(video_root: str | Path, split_dir: str | Path, splits: list[int],
         problems: DatasetProblems) -> pd.DataFrame:
    """Rows (video_id, path, label_name, split1..k) for every video found or listed."""
    video_root, split_dir = Path(video_root), Path(split_dir)
    if not video_root.is_dir():
        raise FileNotFoundError(f"video folder {video_root} does not exist (config dataset.video_root)")
    if not split_dir.is_dir():
        raise FileNotFoundError(f"split folder {split_dir} does not exist (config dataset.split_dir)")
    classes = sorted(p.name for p in video_root.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"no class folders under {video_root}")
    rows: dict[str, dict] = {}
    for cls in classes:
        for f in sorted((video_root / cls).iterdir()):
            if f.suffix.lower() not in VIDEO_SUFFIXES:
                continue
            if f.name in rows:
                problems.add("duplicate video name", f"{f} (also in {rows[f.name]['path']})")
                continue
            rows[f.name] = {"video_id": f.stem, "path": str(f), "label_name": cls}
    for k in splits:
        column = f"split{k}"
        for row in rows.values():
            row[column] = "-"
        files = sorted(split_dir.glob(f"*_test_split{k}.txt"))
        if not files:
            raise FileNotFoundError(f"no '*_test_split{k}.txt' files in {split_dir}")
        for path in files:
            cls = SPLIT_FILE.match(path.name).group("cls")
            if cls not in classes:
                problems.add("split file for unknown class", f"{path.name}: no folder {video_root / cls}")
                continue
            for name, code in parse_split_file(path, problems).items():
                if name not in rows:
                    problems.add("listed video missing", f"{path.name}: {name}")
                    continue
                if rows[name]["label_name"] != cls:
                    problems.add("video listed under another class",
                                 f"{path.name}: {name} is in folder {rows[name]['label_name']}")
                    continue
                rows[name][column] = code
    for row in rows.values():
        if all(row[f"split{k}"] == "-" for k in splits):
            problems.add("video in no split", row["path"])
    return pd.DataFrame(list(rows.values()))
