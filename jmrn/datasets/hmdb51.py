"""HMDB51 layout: ``<root>/<class>/<video>.avi`` and ``<split_dir>/<class>_test_split<k>.txt``.

Split lines are ``<video file name> <code>`` with 1 = train, 2 = test, 0 = not used. JHMDB and
the demo dataset use this layout too.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from jmrn.datasets.files import class_videos, require_dir
from jmrn.datasets.report import DatasetError, DatasetProblems

log = logging.getLogger(__name__)

SPLIT_CODES = {"1": "train", "2": "test", "0": "-"}
SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<k>\d+)\.txt$")


def parse_split_file(path: Path, problems: DatasetProblems) -> dict[str, str]:
    """Map video file name -> train/test/- for one class and split; bad lines are recorded."""
    result: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problems.add("split file is not UTF-8 text (skipped)", f"{path.name}: byte {exc.start}")
        return result
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, _, code = line.rstrip().rpartition(" ")
        if not name.strip() or code not in SPLIT_CODES:
            problems.add("bad split line (skipped)", f"{path.name}:{lineno}: {line.strip()!r} "
                         "(expected '<video file> <0|1|2>')")
            continue
        result[name.strip()] = SPLIT_CODES[code]
    return result


def load(video_root: str | Path, split_dir: str | Path, splits: list[int],
         problems: DatasetProblems) -> pd.DataFrame:
    """Rows (video_id, path, label_name, split1..k) for every video found or listed.

    A video a split file lists but the folder lacks keeps a row at its expected path, so the
    probe marks it ``missing file`` in the manifest (and failed.csv) instead of it vanishing."""
    video_root = require_dir(video_root, "dataset.video_root")
    split_dir = require_dir(split_dir, "dataset.split_dir")
    videos = class_videos(video_root, problems, keep_empty=True)
    classes = sorted(videos)
    if not classes:
        raise DatasetError(f"no class folders under {video_root} (config dataset.video_root)")
    rows: dict[str, dict] = {}
    for cls in classes:
        for f in videos[cls]:
            if f.name in rows:
                problems.add("duplicate video name (second copy ignored)",
                             f"{f} (also in {rows[f.name]['path']})")
                continue
            rows[f.name] = {"video_id": f.stem, "path": str(f), "label_name": cls}
    for k in splits:
        column = f"split{k}"
        files = sorted(split_dir.glob(f"*_test_split{k}.txt"))
        if not files:
            raise DatasetError(f"no '*_test_split{k}.txt' files in {split_dir} "
                               f"(config dataset.split_dir, dataset.splits)")
        for path in files:
            cls = SPLIT_FILE.match(path.name).group("cls")
            if cls not in classes:
                problems.add("split file of an unknown class (skipped)",
                             f"{path.name}: no folder {video_root / cls}")
                continue
            for name, code in parse_split_file(path, problems).items():
                if name not in rows:
                    problems.add("listed video missing (kept as 'missing file')", f"{path.name}: {name}")
                    rows[name] = {"video_id": Path(name).stem, "path": str(video_root / cls / name),
                                  "label_name": cls}
                elif rows[name]["label_name"] != cls:
                    problems.add("video listed under another class (entry skipped)",
                                 f"{path.name}: {name} is in folder {rows[name]['label_name']}")
                    continue
                rows[name][column] = code
    for row in rows.values():
        for k in splits:
            row.setdefault(f"split{k}", "-")
    return pd.DataFrame(list(rows.values()))
