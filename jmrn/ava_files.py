"""AVA's published file formats (box CSVs, action list, excluded keyframes, detector scores):
readers shared by the dataset adapter and fusion, without the video stack."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from jmrn.datasets.report import DatasetError, DatasetProblems
from jmrn.frame_map import BOX, box_iou
from jmrn.io import read_utf8_text

ANNOTATION_COLUMNS = ["video", "timestamp", *BOX, "action", "person"]
DETECTION_COLUMNS = ["video", "timestamp", *BOX, "action", "score"]
PROPOSAL_COLUMNS = ["video", "timestamp", *BOX, "label", "score"]
EXCLUDED_COLUMNS = ["video", "timestamp"]
# A detector's box is the same as one of ours when their IoU reaches this (CSV rounding).
SAME_BOX_IOU = 0.9
# Timestamps (seconds) and ids are whole numbers below this: exact as float64 and int64.
MAX_WHOLE = 10**9
BAD_BOX_LINE = "bad box line (skipped)"
BAD_EXCLUDED_LINE = "bad excluded-keyframe line (skipped)"

_ITEM = re.compile(r"item\s*\{(.*?)\}", flags=re.S)
_FIELD = re.compile(r'\s*(\w+):\s*("[^"]*"|[^\s"{}]+)')
_COMMENT = re.compile(r"^[ \t]*#[^\n]*", flags=re.M)


def read_action_list(path: Path) -> dict[int, str]:
    """Action id -> name, in id order, from AVA's ``item { name: "..." id: N }`` list. Text
    outside the items (but comments), an item that is not ``key: value`` pairs, a missing,
    repeated or non-integer id and a repeated or empty name are refused in one line."""
    text = _COMMENT.sub("", read_utf8_text(path))
    stray = _ITEM.sub("", text).strip()
    if stray:
        raise DatasetError(f"{path}: text outside 'item {{ ... }}' entries: {stray[:60]!r}")
    actions: dict[int, str] = {}
    for body in _ITEM.findall(text):
        fields = _item_fields(path, body)
        ident = fields.get("id", fields.get("label_id"))
        if not fields.get("name", "").startswith('"') or ident is None:
            raise DatasetError(f"{path}: an item without a quoted name or an id: {body.strip()[:80]!r}")
        name = fields["name"][1:-1]
        number = _action_id(path, name, ident)
        _check_new_action(path, actions, number, name)
        actions[number] = name
    if not actions:
        raise DatasetError(f"{path}: no 'item {{ name: ... id: ... }}' entries")
    return dict(sorted(actions.items()))


def _item_fields(path: Path, body: str) -> dict[str, str]:
    """The ``key: value`` pairs of one item (values as written), or a one-line error."""
    if not re.fullmatch(rf"(?:{_FIELD.pattern})*\s*", body):
        raise DatasetError(f"{path}: an item is not 'key: value' pairs: {body.strip()[:80]!r}")
    pairs = _FIELD.findall(body)
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise DatasetError(f"{path}: an item repeats a key: {body.strip()[:80]!r}")
    return dict(pairs)


def _action_id(path: Path, name: str, token: str) -> int:
    """The id written ``token`` of action ``name``: digits below 10^9, or a one-line error."""
    if not re.fullmatch(r"[0-9]{1,9}", token):
        raise DatasetError(f"{path}: action {name!r} has id {token!r}; ids are whole numbers "
                           f"from 0 to {MAX_WHOLE - 1}")
    return int(token)


def _check_new_action(path: Path, actions: dict[int, str], number: int, name: str) -> None:
    """Refuse (one line) an empty name, or an id or name the list already holds."""
    if not name.strip():
        raise DatasetError(f"{path}: action id {number} has an empty name")
    if number in actions:
        raise DatasetError(f"{path}: action id {number} is listed twice ({actions[number]!r} and "
                           f"{name!r}); every action needs its own id")
    if name in actions.values():
        first = next(k for k, v in actions.items() if v == name)
        raise DatasetError(f"{path}: action name {name!r} is listed twice (ids {first} and "
                           f"{number}); class names must be unique")


def line_shapes(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Per line of ``text`` (LF-separated): its number of comma-separated fields and whether
    it holds anything but spaces and tabs (counted on the bytes, not line by line)."""
    data = np.frombuffer(text.encode("utf-8"), np.uint8)
    ends = np.flatnonzero(data == ord("\n"))
    if not len(data) or data[-1] != ord("\n"):
        ends = np.append(ends, len(data))
    starts = np.r_[0, ends[:-1] + 1]
    commas = per_line(ends, data == ord(","))
    spaces = per_line(ends, (data == ord(" ")) | (data == ord("\t")))
    return commas + 1, ends - starts > spaces


def per_line(ends: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """How many of the bytes flagged in ``hits`` each line (ending at ``ends``) holds."""
    return np.bincount(np.searchsorted(ends, np.flatnonzero(hits)), minlength=len(ends))


def record(problems: DatasetProblems, kind: str, path: Path, reasons: pd.Series) -> None:
    """Record one problem per line: ``<file>:<line>: <reason>`` (``reasons`` indexed by line)."""
    if len(reasons):
        problems.add_many(kind, (f"{Path(path).name}:" + reasons.index.astype(str) + ": "
                                 + reasons.astype(str)).tolist())


def read_fields(path: Path, columns: list[str]) -> tuple[pd.DataFrame, int, pd.Series]:
    """The lines holding ``len(columns)`` comma-separated fields, parsed by pandas as strings
    (index: line number), the number of non-blank lines, and why the others were not parsed
    (index: line number). Lines end as pandas ends them (LF, CR LF or CR); blank lines (spaces
    and tabs at most) are ignored. No quoting: AVA's files have none."""
    text = read_utf8_text(path).replace("\r\n", "\n").replace("\r", "\n")
    fields, filled = line_shapes(text)
    numbers = np.arange(1, len(fields) + 1)
    wrong = filled & (fields != len(columns))
    reasons = pd.Series(fields[wrong], index=numbers[wrong]).astype(str) \
        + f" fields, expected {len(columns)}"
    good = filled & ~wrong
    if not good.any():
        return pd.DataFrame(columns=columns, dtype=object), int(filled.sum()), reasons
    if not good.all():
        text = "\n".join(np.array(text.split("\n")[:len(good)], dtype=object)[good])
    table = pd.read_csv(io.StringIO(text), header=None, names=columns, dtype=str,
                        keep_default_na=False, quoting=csv.QUOTE_NONE, skip_blank_lines=False,
                        index_col=False)
    if len(table) != good.sum():  # pandas split the lines otherwise: never guess which is which
        raise DatasetError(f"{path}: could not be split into lines of comma-separated fields")
    table.index = numbers[good]
    return table, int(filled.sum()), reasons


def whole_numbers(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Values of ``text`` and whether each is a whole number in [0, 10^9) (finite, exact)."""
    values = pd.to_numeric(text, errors="coerce").astype(np.float64)
    ok = values.ge(0) & values.lt(MAX_WHOLE) & values.eq(np.floor(values))
    return values, ok


def _checks(table: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[pd.Series, str, str]]]:
    """The numeric columns of ``table`` and the checks each row must pass: (passes, column whose
    value is quoted or "", reason), in the order a failure is reported."""
    values = pd.DataFrame({"video": table["video"].str.strip()}, index=table.index)
    checks = [(values["video"].ne(""), "", "empty video id")]
    for column, what in (("timestamp", "seconds"), ("action", "action id"), ("person", "person id")):
        if column in table:
            values[column], ok = whole_numbers(table[column])
            checks.append((ok, column, f"is not a whole number ({what}) from 0 to {MAX_WHOLE - 1}"))
    for column in BOX:
        if column in table:
            values[column] = pd.to_numeric(table[column], errors="coerce").astype(np.float64)
            checks.append((values[column].between(0, 1), column, "is not a number in [0, 1]"))
    if "x1" in values:
        checks.append((values["x2"].gt(values["x1"]) & values["y2"].gt(values["y1"]), "",
                       "empty box (x2 <= x1 or y2 <= y1)"))
    if "score" in table:
        values["score"] = pd.to_numeric(table["score"], errors="coerce").astype(np.float64)
        checks.append((pd.Series(np.isfinite(values["score"]), index=table.index), "score",
                       "is not a finite number"))
    return values, checks


def failures(table: pd.DataFrame, checks: list[tuple[pd.Series, str, str]]) -> pd.Series:
    """Each failing row's first failed check as a reason (index: line number)."""
    reasons = pd.Series(pd.NA, index=table.index, dtype=object)
    for ok, column, reason in checks:
        fresh = ~ok & reasons.isna()
        if fresh.any():
            quoted = table.loc[fresh, column].map(repr) + " " if column else ""
            reasons[fresh] = (f"{column} " if column else "") + quoted + reason
    return reasons.dropna()


def read_records(path: Path, columns: list[str], problems: DatasetProblems, kind: str,
                 required: bool = True) -> pd.DataFrame:
    """Checked rows of one of AVA's headerless CSVs: timestamps and ids whole numbers, box
    corners in [0, 1] with x1 < x2 and y1 < y2, scores finite probabilities. A bad line is
    recorded under ``kind`` and skipped; an empty file (when ``required``), a file without
    a usable line or a score outside [0, 1] is refused in one line. A column named ``label``
    (the proposal files' class column) is not read."""
    table, n_lines, reasons = read_fields(path, columns)
    if not n_lines and required:
        raise DatasetError(f"{path}: the file is empty; expected lines of {len(columns)} "
                           f"comma-separated fields ({', '.join(columns)})")
    values, checks = _checks(table)
    reasons = pd.concat([reasons, failures(table, checks)]).sort_index()
    record(problems, kind, path, reasons)
    if n_lines and len(reasons) == n_lines:
        raise DatasetError(f"{path}: none of its {n_lines} lines is usable (line "
                           f"{reasons.index[0]}: {reasons.iloc[0]}); expected {len(columns)} "
                           f"comma-separated fields ({', '.join(columns)})")
    kept = ~table.index.isin(reasons.index)
    out = _typed(table[kept], values[kept])
    if "score" in out:
        check_probabilities(path, out["score"])
    return out


def _typed(table: pd.DataFrame, values: pd.DataFrame) -> pd.DataFrame:
    """Checked rows as typed columns in the file's order (video stripped; whole numbers as
    int64), index reset."""
    out = values[[c for c in table.columns if c in values]].copy()
    for column in ("timestamp", "action", "person"):
        if column in out:
            out[column] = out[column].astype(np.int64)
    return out.reset_index(drop=True)


def check_probabilities(path: Path, scores: pd.Series) -> None:
    """Refuse (one line) finite scores outside [0, 1]: the file's count and range, and a hint."""
    outside = ~scores.between(0, 1)
    if outside.any():
        low, high = scores.min(), scores.max()
        hint = "percentages: divide by 100" if low >= 0 and high <= 100 else \
            "logits: apply a sigmoid" if low < 0 else "neither probabilities nor percentages"
        raise DatasetError(f"{path}: {int(outside.sum())} of {len(scores)} scores are outside "
                           f"[0, 1] (seen {low:.6g} to {high:.6g}); scores must be probabilities "
                           f"in [0, 1]; these look like {hint}")


def read_boxes(path: Path, columns: list[str], problems: DatasetProblems,
               required: bool = True) -> pd.DataFrame:
    """An AVA box CSV (no header) with every field checked (see ``read_records``); bad lines
    are recorded and skipped."""
    return read_records(path, columns, problems, BAD_BOX_LINE, required)


def read_excluded(path: Path | None, problems: DatasetProblems) -> set[tuple[str, int]]:
    """Keyframes AVA leaves out of training and evaluation; no file or an empty one: none.
    Bad lines are recorded and skipped."""
    if path is None or not path.is_file():
        return set()
    rows = read_records(path, EXCLUDED_COLUMNS, problems, BAD_EXCLUDED_LINE, required=False)
    return set(zip(rows["video"], rows["timestamp"].tolist()))


def detection_logits(path: str | Path, action_list: str | Path, boxes: pd.DataFrame,
                     problems: DatasetProblems | None = None) -> pd.DataFrame:
    """A detector's per-box action scores in AVA's result layout (video, timestamp, x1..y2,
    action id, score; SlowFast's output CSV) as logits of our instances: ``boxes`` (index:
    instance id; video, timestamp, x1..y2) are matched to the detector's boxes of their keyframe
    at IoU >= 0.9; columns are the action list's class names; probabilities become log-odds
    (kept within 1e-6 of 0 and 1; a class the detector gives no score for a box: probability
    1e-6). Scores must be probabilities: a line with a NaN or infinite score (or another bad
    field) is recorded in ``problems`` and skipped (without ``problems``: logged as a warning),
    a score outside [0, 1] refuses the file. Unmatched instances get no row (fusion names them)."""
    actions = read_action_list(Path(action_list))
    own = problems is None
    problems = DatasetProblems() if problems is None else problems
    table = read_boxes(Path(path), DETECTION_COLUMNS, problems)
    if own:
        problems.log()
    table = table[table["action"].isin(list(actions))]
    if table.empty:
        raise DatasetError(f"{path}: no score is for an action of {action_list} (action ids "
                           f"{min(actions)}..{max(actions)}); is it the detector's output for "
                           "this action list?")
    table = table.assign(name=table["action"].map(actions))
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
