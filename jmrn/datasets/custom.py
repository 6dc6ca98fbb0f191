"""Users' own data: a folder of ``<class>/<video>`` files, or a CSV ``path,label[,split]``.

Rows without split columns get the manifest's stratified, seed-free hold-out of
``dataset.test_fraction`` of every class (see ``files.holdout_splits``). A CSV ``split`` column
(``train``, ``test`` or ``-``) defines split 1; columns ``split1..k`` define several.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from jmrn.datasets.files import class_videos, require_dir, require_file
from jmrn.datasets.report import DatasetError, DatasetProblems

SUBSETS = ("train", "test", "-")


def load_folder(video_root: str | Path, problems: DatasetProblems) -> pd.DataFrame:
    """Every video of every class folder (no split columns: the manifest holds out). A video's
    id is its path under the root (``walk/000.avi``): unique by construction, so videos
    numbered per class never collide."""
    root = require_dir(video_root, "dataset.video_root")
    rows = [{"video_id": f"{cls}/{f.name}", "path": str(f), "label_name": cls}
            for cls, videos in class_videos(root, problems).items() for f in videos]
    if not rows:
        raise DatasetError(f"no videos in class folders under {root} (config dataset.video_root)")
    return pd.DataFrame(rows)


def load_csv(annotation: str | Path, splits: list[int], problems: DatasetProblems) -> pd.DataFrame:
    """Rows of a ``path,label[,split | split1..k]`` CSV; relative paths start at the CSV's folder."""
    csv = require_file(annotation, "dataset.annotation")
    try:
        table = pd.read_csv(csv, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{csv}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it "
                           "as UTF-8") from exc
    if not {"path", "label"} <= set(table.columns):
        raise DatasetError(f"{csv}: needs columns 'path' and 'label' (has {list(table.columns)})")
    split_columns = {k: f"split{k}" if f"split{k}" in table.columns else None for k in splits}
    if "split" in table.columns and split_columns.get(1) is None:
        split_columns[1] = "split"
    given = {k: c for k, c in split_columns.items() if c}
    if given and len(given) != len(splits):
        raise DatasetError(f"{csv}: has split columns for splits {sorted(given)} but dataset.splits "
                           f"is {splits}; add the missing columns or drop those splits")
    rows = []
    for lineno, r in zip(table.index + 2, table.to_dict("records")):
        path, label = Path(r["path"].strip()), r["label"].strip()
        if not r["path"].strip() or not label:
            problems.add("bad CSV line (skipped)", f"{csv.name}:{lineno}: empty path or label")
            continue
        row = {"video_id": path.as_posix(),  # the path as listed: unique by construction
               "path": str(path if path.is_absolute() else csv.parent / path),
               "label_name": label}
        bad = [r[c] for c in given.values() if r[c].strip() not in SUBSETS]
        if bad:
            problems.add("bad split value (line skipped)", f"{csv.name}:{lineno}: {bad[0]!r} "
                         f"(expected one of {', '.join(SUBSETS)})")
            continue
        row.update({f"split{k}": r[c].strip() for k, c in given.items()})
        rows.append(row)
    if not rows:
        raise DatasetError(f"{csv}: no usable lines")
    return pd.DataFrame(rows)
