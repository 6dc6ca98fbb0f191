"""Injected faults in AVA's files (issue #29, item 11): each malformed line is recorded as a
problem and skipped, each unusable file refused in one line naming it; no value is ever changed
silently. A fuzz test holds every reader to that on random truncations, byte flips and swapped
field types."""
from __future__ import annotations

import errno
import logging
import math
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jmrn import ava_files
from jmrn.ava_files import (ANNOTATION_COLUMNS, DETECTION_COLUMNS, EXCLUDED_COLUMNS,
                            PROPOSAL_COLUMNS)
from jmrn.datasets import ava
from jmrn.datasets.report import DatasetProblems
from jmrn.errors import UserError

GOOD = "-5KQ66BBWC4,0902,0.077,0.151,0.283,0.811,12,1"
ACTIONS = 'item {\n  name: "bend/bow"\n  id: 1\n}\nitem {\n  name: "talk to"\n  id: 2\n}\n'


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


def boxes_of(path: Path, columns: list[str] = ANNOTATION_COLUMNS) -> tuple[pd.DataFrame, DatasetProblems]:
    problems = DatasetProblems()
    return ava_files.read_boxes(path, columns, problems), problems


def one_line(exc: pytest.ExceptionInfo, *words: str) -> None:
    """The error is a UserError on one line holding every word."""
    message = str(exc.value)
    assert isinstance(exc.value, UserError) and "\n" not in message
    for word in words:
        assert word in message, (word, message)


def ava_dir(tmp_path: Path, train: str, val: str = GOOD + "\n", proposals: str | None = None) -> dict:
    """A dataset config on a tiny annotation folder (no videos: readers fail before those)."""
    ann = tmp_path / "ann"
    ann.mkdir()
    write(ann / "ava_action_list_v2.1.pbtxt", ACTIONS.replace("id: 2", "id: 12"))
    write(ann / "ava_train_v2.1.csv", train)
    write(ann / "ava_val_v2.1.csv", val)
    (tmp_path / "videos").mkdir()
    cfg = {"video_root": str(tmp_path / "videos"), "annotation_dir": str(ann), "version": "2.1",
           "window_s": 1.0, "sample_fps": 10, "proposal_min_score": 0.5}
    if proposals is not None:
        cfg["proposals"] = str(write(tmp_path / "proposals.csv", proposals))
    return cfg


# --- one test per reported fault ------------------------------------------------------------

@pytest.mark.parametrize("columns, name", [(PROPOSAL_COLUMNS, "proposals.csv"),
                                           (ANNOTATION_COLUMNS, "ava_train_v2.1.csv"),
                                           (DETECTION_COLUMNS, "detections.csv")])
def test_empty_box_file_is_refused_in_one_line(tmp_path, columns, name):
    path = write(tmp_path / name, "")
    with pytest.raises(UserError) as exc:
        boxes_of(path, columns)
    one_line(exc, str(path), "empty")


def test_empty_excluded_file_excludes_nothing(tmp_path):
    problems = DatasetProblems()
    assert ava_files.read_excluded(write(tmp_path / "ex.csv", "\n"), problems) == set()
    assert not problems.items


def test_empty_train_file_stops_the_manifest(tmp_path):
    with pytest.raises(UserError) as exc:
        ava.load(ava_dir(tmp_path, train=""), [1], DatasetProblems())
    one_line(exc, "ava_train_v2.1.csv", "empty")


def test_line_with_ten_fields_is_recorded(tmp_path):
    path = write(tmp_path / "b.csv", f"{GOOD}\n{GOOD},7,8\n{GOOD.replace('0902', '0903')}\n")
    boxes, problems = boxes_of(path)
    assert boxes["timestamp"].tolist() == [902, 903]
    assert problems.items[ava_files.BAD_BOX_LINE] == ["b.csv:2: 10 fields, expected 8"]


def test_infinite_timestamp_is_recorded(tmp_path):
    path = write(tmp_path / "b.csv", f"{GOOD}\n{GOOD.replace('0902', 'inf')}\n")
    boxes, problems = boxes_of(path)
    assert len(boxes) == 1
    assert problems.items[ava_files.BAD_BOX_LINE] == [
        "b.csv:2: timestamp 'inf' is not a whole number (seconds) from 0 to 999999999"]


def test_non_integer_excluded_timestamp_is_recorded(tmp_path):
    problems = DatasetProblems()
    path = write(tmp_path / "ex.csv", "vid,0902\nvid,0903.5\nvid,x\nvid,0904\n")
    assert ava_files.read_excluded(path, problems) == {("vid", 902), ("vid", 904)}
    assert [d.split(":")[1] for d in problems.items[ava_files.BAD_EXCLUDED_LINE]] == ["2", "3"]


@pytest.mark.parametrize("reader", ["boxes", "excluded", "actions", "detections"])
def test_latin1_byte_is_refused_with_its_offset_and_line(tmp_path, reader):
    if reader == "actions":
        data = ACTIONS.encode().replace(b"talk to", b"caf\xe9")
        offset = data.index(b"\xe9")
        path = write(tmp_path / "list.pbtxt", data)
        call = lambda: ava_files.read_action_list(path)  # noqa: E731
    else:
        data = f"{GOOD}\n".encode() + GOOD.encode().replace(b"C4,", b"\xe9,") + b"\n"
        offset = data.index(b"\xe9")
        path = write(tmp_path / "b.csv", data)
        call = {"boxes": lambda: boxes_of(path),
                "excluded": lambda: ava_files.read_excluded(path, DatasetProblems()),
                "detections": lambda: ava_files.detection_logits(
                    path, write(tmp_path / "l.pbtxt", ACTIONS), pd.DataFrame())}[reader]
    line = data[:offset].count(b"\n") + 1
    with pytest.raises(UserError) as exc:
        call()
    one_line(exc, str(path), "UTF-8", f"offset {offset}", f"line {line}", "0xe9")


def test_all_training_boxes_bad_is_refused_naming_the_file(tmp_path):
    train = "\n".join([GOOD.replace("0.283", "1.283"), GOOD.replace("0902", "x"),
                       GOOD.replace("0.283", "0.05")])
    with pytest.raises(UserError) as exc:
        ava.load(ava_dir(tmp_path, train=train + "\n"), [1], DatasetProblems())
    one_line(exc, "ava_train_v2.1.csv", "none of its 3 lines is usable", "line 1: x2 '1.283'")


def test_huge_timestamp_is_recorded_not_wrapped(tmp_path):
    path = write(tmp_path / "b.csv", f"{GOOD}\n{GOOD.replace('0902', '1e30')}\n")
    boxes, problems = boxes_of(path)
    assert boxes["timestamp"].tolist() == [902]
    assert "'1e30'" in problems.items[ava_files.BAD_BOX_LINE][0]


@pytest.mark.parametrize("column, text", [("timestamp", "0002.6"), ("action", "12.7"),
                                          ("person", "1.5")])
def test_fractional_whole_number_is_recorded_not_truncated(tmp_path, column, text):
    fields = GOOD.split(",")
    fields[ANNOTATION_COLUMNS.index(column)] = text
    path = write(tmp_path / "b.csv", f"{GOOD}\n{','.join(fields)}\n")
    boxes, problems = boxes_of(path)
    assert len(boxes) == 1 and boxes.loc[0, "timestamp"] == 902
    assert problems.items[ava_files.BAD_BOX_LINE][0].startswith(f"b.csv:2: {column} '{text}'")


def test_duplicate_action_names_are_refused(tmp_path):
    path = write(tmp_path / "list.pbtxt", ACTIONS.replace("talk to", "bend/bow"))
    with pytest.raises(UserError) as exc:
        ava_files.read_action_list(path)
    one_line(exc, str(path), "'bend/bow'", "twice")
    path = write(tmp_path / "ids.pbtxt", ACTIONS.replace("id: 2", "id: 1"))
    with pytest.raises(UserError) as exc:
        ava_files.read_action_list(path)
    one_line(exc, str(path), "id 1", "twice")
    with pytest.raises(UserError):  # an id written 2.5 is not read as 2
        ava_files.read_action_list(write(tmp_path / "f.pbtxt", ACTIONS.replace("id: 2", "id: 2.5")))


def detector(tmp_path: Path, scores: list[str]) -> tuple[Path, Path, pd.DataFrame]:
    """Detections of one box (one line per action 1, 2) and our matching box."""
    path = write(tmp_path / "det.csv", "".join(f"v,0902,0.1,0.1,0.5,0.5,{i},{s}\n"
                                               for i, s in enumerate(scores, 1)))
    boxes = pd.DataFrame({"video": ["v"], "timestamp": [902], "x1": [0.1], "y1": [0.1],
                          "x2": [0.5], "y2": [0.5]}, index=["v@0902#00"])
    return path, write(tmp_path / "list.pbtxt", ACTIONS), boxes


def test_nan_detector_score_is_recorded_not_made_a_probability(tmp_path, caplog):
    path, actions, boxes = detector(tmp_path, ["0.9", "nan"])
    with caplog.at_level(logging.WARNING):
        logits = ava_files.detection_logits(path, actions, boxes)
    assert "det.csv:2: score 'nan' is not a finite number" in caplog.text
    assert logits.loc[0, "bend/bow"] == pytest.approx(math.log(0.9 / 0.1))
    problems = DatasetProblems()
    ava_files.detection_logits(path, actions, boxes, problems)
    assert len(problems.items[ava_files.BAD_BOX_LINE]) == 1


@pytest.mark.parametrize("scores, hint", [(["90", "4.5"], "divide by 100"),
                                          (["2.2", "-1.3"], "apply a sigmoid")])
def test_detector_scores_outside_0_1_are_refused(tmp_path, scores, hint):
    path, actions, boxes = detector(tmp_path, scores)
    with pytest.raises(UserError) as exc:
        ava_files.detection_logits(path, actions, boxes)
    low, high = sorted(float(s) for s in scores)
    one_line(exc, str(path), "2 of 2 scores", f"{low:g} to {high:g}", "[0, 1]", hint)


def test_proposal_scores_outside_0_1_are_refused(tmp_path):
    path = write(tmp_path / "p.csv", "v,0902,0.1,0.1,0.5,0.5,,0.9\nv,0902,0.2,0.1,0.5,0.5,,85\n")
    with pytest.raises(UserError) as exc:
        boxes_of(path, PROPOSAL_COLUMNS)
    one_line(exc, str(path), "1 of 2 scores", "divide by 100")


def test_storage_error_names_the_file(tmp_path, monkeypatch):
    path = write(tmp_path / "b.csv", GOOD + "\n")

    def failing_read(self):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(Path, "read_bytes", failing_read)
    with pytest.raises(OSError) as exc:
        boxes_of(path)
    assert exc.value.errno == errno.EIO and str(path) in str(exc.value)


# --- fuzz ------------------------------------------------------------------------------------

SWAPS = ["nan", "inf", "-inf", "1e30", "-1", "0002.6", "abc", "", "1.5", "-0.0", " 7 ", "0x10",
         "1_0", "\uff11\uff12", "NaN", "9" * 25, "2.0", "1e-400", '"', "0.5,0.5", "\t"]
KINDS = {"train": ANNOTATION_COLUMNS, "proposals": PROPOSAL_COLUMNS, "excluded": EXCLUDED_COLUMNS,
         "detections": DETECTION_COLUMNS, "actions": None}


def clean_file(kind: str, rng: np.random.Generator) -> str:
    """A valid file of ``kind`` with a few random lines."""
    if kind == "actions":
        return "".join(f'item {{\n  name: "action {i}"\n  id: {i}\n}}\n' for i in range(1, 6))
    lines = []
    for _ in range(rng.integers(3, 9)):
        x1, y1 = rng.uniform(0, 0.5, 2)
        video, ts = f"vid{rng.integers(3)}", f"{rng.integers(900, 905):04d}"
        box = f"{x1:.3f},{y1:.3f},{x1 + 0.3:.3f},{y1 + 0.4:.3f}"
        lines.append({"train": f"{video},{ts},{box},{rng.integers(1, 6)},{rng.integers(9)}",
                      "proposals": f"{video},{ts},{box},,{rng.uniform():.6f}",
                      "excluded": f"{video},{ts}",
                      "detections": f"{video},{ts},{box},{rng.integers(1, 6)},{rng.uniform():.6f}"}[kind])
    return "\n".join(lines) + "\n"


def mutate(text: str, rng: np.random.Generator) -> bytes:
    """The text truncated, with bytes flipped, or with one field (an action list: one id or
    name) swapped for another type."""
    data = text.encode("utf-8")
    how = rng.integers(3)
    if how == 2 and text.startswith("item"):
        items = text.split("}\n")
        at = int(rng.integers(len(items) - 1))
        swap = str(rng.choice([*SWAPS, '"action 1"', "007", "3", "label_id: 9"]))
        items[at] = re.sub(r"id: \d+" if rng.random() < 0.5 else r'"[^"]*"', lambda _: swap, items[at])
        return "}\n".join(items).encode("utf-8")
    if how == 0:
        return data[:rng.integers(len(data) + 1)]
    if how == 1:
        data = bytearray(data)
        for at in rng.integers(len(data), size=rng.integers(1, 4)):
            data[at] = int(rng.choice([rng.integers(256), *b",\n\r\"0.-e \xff\x00"]))
        return bytes(data)
    lines = text.split("\n")
    row = int(rng.integers(max(1, len(lines) - 1)))
    fields = lines[row].split(",")
    fields[rng.integers(len(fields))] = str(rng.choice(SWAPS))
    lines[row] = ",".join(fields)
    return "\n".join(lines).encode("utf-8")


def reference_rows(data: bytes, columns: list[str]) -> tuple[set[tuple], int]:
    """What the file says, read independently: each line of the right width whose fields all
    convert with Python's float(), as a tuple; and the number of non-blank lines."""
    lines = [s for s in re.split(r"\r\n|\r|\n", data.decode("utf-8-sig")) if s.strip(" \t")]
    rows = set()
    for line in lines:
        fields = line.split(",")
        if len(fields) != len(columns):
            continue
        try:
            rows.add((fields[0].strip(), *(float(f) for c, f in zip(columns[1:], fields[1:])
                                           if c != "label")))
        except ValueError:
            continue
    return rows, len(lines)


def check_records(path: Path, data: bytes, columns: list[str]) -> None:
    """Accepted rows are lines of the file, value for value; every other line is recorded."""
    problems = DatasetProblems()
    rows = ava_files.read_records(path, columns, problems, "bad", required=False)
    said, n_lines = reference_rows(data, columns)
    kept = [c for c in columns if c != "label"]
    assert list(rows.columns) == kept
    for row in rows.itertuples(index=False):
        assert tuple(float(v) if i else v for i, v in enumerate(row)) in said, row
    assert len(rows) + len(problems.items.get("bad", [])) == n_lines


def check_detections(path: Path, data: bytes, actions: Path) -> None:
    """Every logit is the log-odds of a score the file gives (or of the 1e-6 default)."""
    said, _ = reference_rows(data, DETECTION_COLUMNS)
    boxes = pd.DataFrame([r[:6] for r in said], columns=["video", "timestamp", "x1", "y1", "x2", "y2"])
    logits = ava_files.detection_logits(path, actions, boxes, DatasetProblems())
    probs = 1 / (1 + np.exp(-logits.drop(columns="video_id").to_numpy(float)))
    allowed = np.clip(np.array([r[-1] for r in said] + [0.0]), 1e-6, 1 - 1e-6)
    assert np.isclose(probs.reshape(-1, 1), allowed.reshape(1, -1), rtol=1e-9, atol=0).any(axis=1).all()


def check_actions(path: Path, data: bytes) -> None:
    """Each accepted action is one item of the file, its name and id as written there."""
    actions = ava_files.read_action_list(path)
    bodies = re.findall(r"item\s*\{(.*?)\}", data.decode("utf-8-sig"), flags=re.S)
    assert len(actions) == len(bodies) and len(set(actions.values())) == len(actions)
    for ident, name in actions.items():
        assert any(re.search(rf'(?<!\w)name:\s*"{re.escape(name)}"', body)
                   and re.search(rf"(?<!\w)(?:label_)?id:\s*0*{ident}(?![^\s}}])", body) for body in bodies)


def test_fuzzed_ava_files_fail_only_in_one_line_and_keep_every_value(tmp_path):
    rng = np.random.default_rng(29)
    actions = write(tmp_path / "actions.pbtxt", clean_file("actions", rng))
    outcomes = {"read": 0, "refused": 0}
    started = time.perf_counter()
    for case in range(200):
        kind = list(KINDS)[case % len(KINDS)]
        data = mutate(clean_file(kind, rng), rng)
        path = write(tmp_path / f"{case}.{kind}", data)
        try:
            if kind == "actions":
                check_actions(path, data)
            elif kind == "detections":
                check_records(path, data, DETECTION_COLUMNS)
                check_detections(path, data, actions)
            else:
                check_records(path, data, KINDS[kind])
                if kind == "excluded":
                    ava_files.read_excluded(path, DatasetProblems())
            outcomes["read"] += 1
        except UserError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc), str(exc)
            outcomes["refused"] += 1
    assert time.perf_counter() - started < 20
    assert outcomes["read"] > 100 and outcomes["refused"] > 10, outcomes
