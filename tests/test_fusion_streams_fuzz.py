"""Fuzz of the external-stream reader: seeded truncations, byte flips, cell type swaps, dropped
and repeated lines of a CSV stream, and truncations and byte flips of a .npy stream and its ids.

Each damaged file either parses to exactly the values it holds (every accepted number equals
Python's ``float`` of the cell as written; .npy: equals the stored matrix) or is refused with a
one-line ``UserError``; never another exception, never a guessed value, never a slow read."""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import numpy as np
import pytest

from jmrn.errors import UserError
from jmrn.fusion import checked_columns, read_external

CLASSES = ["c0", "c1", "c2"]
TOKENS = ["abc", "", " ", "nan", "NaN", "inf", "-inf", "+inf", "Infinity", "1e400", "-1e400",
          "1e-400", "True", "0x10", "1_000", " 1.5 ", "1,5", '"', "[1]", "None", "١", "１", "+1",
          "-0", "1.", ".5", "1e5", "1e", "--1", "0.1.2", "\x00", "é", "2" * 40]
CASES = 200
SECONDS_PER_CASE = 2.0


def base_csv(rng: np.random.Generator) -> bytes:
    values = rng.normal(0, 3, (8, len(CLASSES)))
    lines = ["video_id," + ",".join(CLASSES)]
    lines += [f"v {i}," + ",".join(repr(float(v)) for v in row) for i, row in enumerate(values)]
    return ("\n".join(lines) + "\n").encode()


def damaged_csv(data: bytes, rng: np.random.Generator) -> bytes:
    kind = rng.integers(6)
    if kind == 0:  # truncated anywhere
        return data[:rng.integers(len(data) + 1)]
    if kind == 1:  # one to three bytes flipped
        out = bytearray(data)
        for _ in range(rng.integers(1, 4)):
            out[rng.integers(len(out))] = int(rng.integers(256))
        return bytes(out)
    lines = data.decode().splitlines()
    if kind == 2:  # a cell of another type
        row = int(rng.integers(len(lines)))
        cells = lines[row].split(",")
        cells[rng.integers(len(cells))] = str(rng.choice(TOKENS))
        lines[row] = ",".join(cells)
    elif kind == 3:  # a line dropped
        del lines[rng.integers(len(lines))]
    elif kind == 4:  # a line repeated
        row = int(rng.integers(len(lines)))
        lines.insert(row, lines[row])
    else:  # a header cell renamed
        header = lines[0].split(",")
        header[rng.integers(len(header))] = str(rng.choice(["c9", "", "video_id", "c0", "id"]))
        lines[0] = ",".join(header)
    return ("\n".join(lines) + "\n").encode()


def expected_csv(data: bytes) -> dict[str, list[str]]:
    """The file's rows as written (video id -> class cells), read independently of jmrn."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    header = rows[0]
    return {r[header.index("video_id")]: [r[header.index(c)] for c in CLASSES] for r in rows[1:] if r}


def outcome(spec: dict[str, str]):
    """The parsed table, or the UserError; with the time the read took."""
    start = time.perf_counter()
    try:
        result = checked_columns(read_external(spec, "test", 1), CLASSES, "stream")
    except UserError as exc:
        result = exc
    return result, time.perf_counter() - start


def assert_refused_on_one_line(result) -> None:
    text = str(result)
    assert text and "\n" not in text and "\r" not in text, repr(text)


@pytest.mark.parametrize("seed", range(4))
def test_damaged_csv_streams_parse_exactly_or_fail_on_one_line(tmp_path: Path, seed: int):
    rng = np.random.default_rng(seed)
    path = tmp_path / "s.csv"
    accepted = 0
    for case in range(CASES * 3 // 4 // 4):
        data = damaged_csv(base_csv(rng), rng)
        path.write_bytes(data)
        result, seconds = outcome({"test": str(path)})
        assert seconds < SECONDS_PER_CASE, (case, data)
        if isinstance(result, UserError):
            assert_refused_on_one_line(result)
            continue
        accepted += 1
        written = expected_csv(data)
        assert sorted(result["video_id"]) == sorted(written), (case, data)
        for vid, values in zip(result["video_id"], result[CLASSES].to_numpy()):
            cells = written[vid]
            assert [float(c) for c in cells] == values.tolist(), (case, data, cells)
            assert np.isfinite(values).all()
    assert accepted, "no damaged file was accepted: the oracle checked nothing"


def damaged_npy(tmp_path: Path, rng: np.random.Generator) -> dict[str, str]:
    values = rng.normal(0, 3, (8, len(CLASSES)))
    buffer = io.BytesIO()
    np.save(buffer, values)
    data = bytearray(buffer.getvalue())
    ids = "".join(f"v {i}\n" for i in range(8)).encode()
    target = rng.integers(4)
    if target == 0:
        data = data[:rng.integers(len(data) + 1)]
    elif target == 1:
        for _ in range(rng.integers(1, 4)):
            data[rng.integers(len(data))] = int(rng.integers(256))
    elif target == 2:
        ids = ids[:rng.integers(len(ids) + 1)]
    else:
        ids = bytearray(ids)
        ids[rng.integers(len(ids))] = int(rng.integers(256))
        ids = bytes(ids)
    (tmp_path / "s.npy").write_bytes(bytes(data))
    (tmp_path / "s.txt").write_bytes(ids)
    return {"test": str(tmp_path / "s.npy"), "test_ids": str(tmp_path / "s.txt"), "classes": CLASSES}


def test_damaged_npy_streams_parse_exactly_or_fail_on_one_line(tmp_path: Path):
    rng = np.random.default_rng(100)
    accepted = 0
    for case in range(CASES // 4):
        spec = damaged_npy(tmp_path, rng)
        result, seconds = outcome(spec)
        assert seconds < SECONDS_PER_CASE, case
        if isinstance(result, UserError):
            assert_refused_on_one_line(result)
            continue
        accepted += 1
        stored = np.load(spec["test"], allow_pickle=False).astype(np.float64)
        ids = [line for line in Path(spec["test_ids"]).read_text("utf-8").splitlines() if line]
        assert result["video_id"].tolist() == ids, case
        assert (result[CLASSES].to_numpy() == stored).all(), case
    assert accepted, "no damaged file was accepted: the oracle checked nothing"
