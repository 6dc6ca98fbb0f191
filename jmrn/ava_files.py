"""AVA's published file formats (box CSVs, action list, excluded keyframes, detector scores):
readers shared by the dataset adapter and fusion, without the video stack."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from jmrn.datasets.report import DatasetError, DatasetProblems
from jmrn.frame_map import BOX, box_iou

ANNOTATION_COLUMNS = ["video", "timestamp", *BOX, "action", "person"]
DETECTION_COLUMNS = ["video", "timestamp", *BOX, "action", "score"]
PROPOSAL_COLUMNS = ["video", "timestamp", *BOX, "label", "score"]
# A detector's box is the same as one of ours when their IoU reaches this (CSV rounding).
SAME_BOX_IOU = 0.9


def read_action_list(path: Path) -> dict[int, str]:
    """Action id -> name, in id order, from AVA's ``item { name: "..." id: N }`` list."""
    text = path.read_text(encoding="utf-8")
    items = re.findall(r"item\s*\{(.*?)\}", text, flags=re.S)
    actions = {}
    for body in items:
        name = re.search(r'name:\s*"([^"]*)"', body)
        ident = re.search(r"(?:label_)?id:\s*(\d+)", body)
        if not name or not ident:
            raise DatasetError(f"{path}: an item without name or id: {body.strip()[:80]!r}")
        actions[int(ident.group(1))] = name.group(1)
    if not actions:
        raise DatasetError(f"{path}: no 'item {{ name: ... id: ... }}' entries")
    return dict(sorted(actions.items()))


def read_boxes(path: Path, columns: list[str], problems: DatasetProblems) -> pd.DataFrame:
    """An AVA box CSV (no header) with coordinates checked; bad lines are recorded and skipped.
    A column named ``label`` is not read (the proposal files' class column)."""
    table = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, encoding="utf-8")
    if table.shape[1] < len(columns):
        raise DatasetError(f"{path}: expected {len(columns)} columns ({', '.join(columns)}), "
                           f"found {table.shape[1]}")
    table = table.iloc[:, :len(columns)]
    table.columns = columns
    numeric = [c for c in columns if c not in ("video", "label")]
    values = table[numeric].apply(pd.to_numeric, errors="coerce")
    coords = values[BOX]
    bad = values.isna().any(axis=1) | (coords < 0).any(axis=1) | (coords > 1).any(axis=1) \
        | (values["x2"] <= values["x1"]) | (values["y2"] <= values["y1"])
    for lineno in np.flatnonzero(bad.to_numpy()) + 1:
        problems.add("bad box line (skipped)", f"{path.name}:{lineno}")
    out = pd.concat([table[["video"]], values], axis=1)[~bad].reset_index(drop=True)
    out["timestamp"] = out["timestamp"].astype(int)
    return out


def read_excluded(path: Path | None) -> set[tuple[str, int]]:
    """Keyframes AVA leaves out of training and evaluation."""
    if path is None or not path.is_file():
        return set()
    table = pd.read_csv(path, header=None, dtype=str, keep_default_na=False)
    return {(v.strip(), int(t)) for v, t in zip(table[0], table[1])}


def detection_logits(path: str | Path, action_list: str | Path, boxes: pd.DataFrame) -> pd.DataFrame:
    """A detector's per-box action scores in AVA's result layout (video, timestamp, x1..y2,
    action id, score; SlowFast's output CSV) as logits of our instances: ``boxes`` (index:
    instance id; video, timestamp, x1..y2) are matched to the detector's boxes of their keyframe
    at IoU >= 0.9; columns are the action list's class names; probabilities become log-odds
    (a class the detector gives no score for a box: probability 1e-6). Unmatched instances get
    no row (fusion names them)."""
    actions = read_action_list(Path(action_list))
    table = read_boxes(Path(path), DETECTION_COLUMNS, DatasetProblems())
    table = table[table["action"].astype(int).isin(list(actions))]
    table = table.assign(name=table["action"].astype(int).map(actions))
    wide = table.pivot_table(index=["video", "timestamp", *BOX], columns="name", values="score",
                             aggfunc="max").reindex(columns=list(actions.values())).reset_index()
    probs = np.clip(wide[list(actions.values())].fillna(0.0).to_numpy(np.float64), 1e-6, 1 - 1e-6)
    logits = np.log(probs) - np.log1p(-probs)
    by_key = {k: np.asarray(idx) for k, idx in wide.groupby(["video", "timestamp"]).indices.items()}
    coords = wide[BOX].to_numpy(float)
    ids, rows = [], []
    for vid, key, box in zip(boxes.index, zip(boxes["video"], boxes["timestamp"]),
                             boxes[BOX].to_numpy(float)):
        candidates = by_key.get(key)
        if candidates is None:
            continue
        overlaps = box_iou(coords[candidates], box)
        best = int(overlaps.argmax())
        if overlaps[best] >= SAME_BOX_IOU:
            ids.append(vid)
            rows.append(logits[candidates[best]])
    out = pd.DataFrame(np.array(rows).reshape(len(rows), len(actions)), columns=list(actions.values()))
    out.insert(0, "video_id", ids)
    return out
