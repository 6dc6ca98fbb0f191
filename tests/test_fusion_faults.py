"""Faults of issue #29 (round 2): external logit streams that are not finite or malformed, config
names that would escape their results folder, and ids from outside that a spreadsheet would run
as formulas in failed.csv, manifest.csv and the report tables."""
from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jmrn.cli import main
from jmrn.errors import UserError
from jmrn.fusion import fuse
from jmrn.tables import read_manifest, write_csv

REPO = Path(__file__).resolve().parents[1]
DEMO = str(REPO / "config" / "demo.yaml")
K = 3
CLASSES = [f"c{i}" for i in range(K)]


# --- external streams ----------------------------------------------------------------------

def streams(tmp_path: Path, n: int = 60) -> tuple[dict[str, str], dict[str, pd.DataFrame]]:
    """Our logits (train/val/test rows) and an external stream's files per subset (val, test)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, K, n)
    subsets = np.select([np.arange(n) < 20, np.arange(n) < 40], ["train", "val"], "test")
    ids = [f"v {i}" for i in range(n)]
    ours = pd.DataFrame(np.eye(K)[y] * 1.5 + rng.normal(0, 1.5, (n, K)), columns=CLASSES)
    ours.insert(0, "label", y)
    ours.insert(0, "subset", subsets)
    ours.insert(0, "video_id", ids)
    ours.to_csv(tmp_path / "ours.csv", index=False)
    rgb = pd.DataFrame(np.eye(K)[y] * 3.0 + rng.normal(0, 1.5, (n, K)), columns=CLASSES)
    rgb.insert(0, "video_id", ids)
    parts = {s: rgb[subsets == s].reset_index(drop=True) for s in ("val", "test")}
    return {"ours": str(tmp_path / "ours.csv")}, parts


def write_parts(tmp_path: Path, parts: dict[str, pd.DataFrame]) -> dict[str, str]:
    spec = {}
    for subset, part in parts.items():
        part.to_csv(tmp_path / f"rgb_{subset}.csv", index=False)
        spec[subset] = str(tmp_path / f"rgb_{subset}.csv")
    return spec


def run_fusion(tmp_path: Path, internal: dict[str, str], spec: dict[str, str]) -> dict:
    return fuse(["ours", "rgb"], internal, {"rgb": spec}, 1, str(tmp_path / "w.json"),
                str(tmp_path / "l.csv"), str(tmp_path / "m.json"))


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text, text
    return text


@pytest.mark.parametrize("subset,value", [("test", np.inf), ("val", np.inf), ("val", -np.inf),
                                          ("test", -np.inf)])
def test_infinite_external_logits_are_refused_naming_file_count_and_video(tmp_path, subset, value):
    """Fault 4: +inf landed in the fused logits; ±inf in validation rows broke the fit."""
    internal, parts = streams(tmp_path)
    parts[subset].loc[[3, 5], "c1"] = value
    parts[subset].loc[5, "c2"] = value
    spec = write_parts(tmp_path, parts)
    with pytest.raises(UserError) as exc:
        run_fusion(tmp_path, internal, spec)
    text = one_line(exc)
    assert spec[subset] in text and "3 non-finite values" in text and "2 videos" in text
    assert repr(parts[subset].loc[3, "video_id"]) in text
    assert not (tmp_path / "l.csv").exists()


def test_overflowing_number_and_infinite_npy_are_refused(tmp_path):
    internal, parts = streams(tmp_path)
    spec = write_parts(tmp_path, parts)
    text = Path(spec["val"]).read_text().splitlines()
    cells = text[2].split(",")
    cells[1] = "1e400"  # a float64 overflow: parsed as inf
    text[2] = ",".join(cells)
    Path(spec["val"]).write_text("\n".join(text) + "\n")
    with pytest.raises(UserError, match=r"rgb_val\.csv: 1 non-finite values .* first video 'v 21'"):
        run_fusion(tmp_path, internal, spec)
    values = parts["test"][CLASSES].to_numpy().copy()
    values[0, 0] = np.inf
    np.save(tmp_path / "t.npy", values)
    (tmp_path / "t.txt").write_text("\n".join(parts["test"]["video_id"]) + "\n")
    npy = {**write_parts(tmp_path, parts), "test": str(tmp_path / "t.npy"),
           "test_ids": str(tmp_path / "t.txt")}
    with pytest.raises(UserError, match=r"t\.npy: 1 non-finite values \(NaN or ±inf\) in 1 videos, first video 'v 40'"):
        run_fusion(tmp_path, internal, npy)


def drop_row(t):
    return t.iloc[1:]


@pytest.mark.parametrize("damage,message", [
    (drop_row, r"no logits for 1 videos, e.g. \['v 20'\]"),
    (lambda t: t.rename(columns={"c2": "c9"}), r"missing \['c2'\], unexpected \['c9'\]"),
    (lambda t: t.drop(columns="c2"), r"missing \['c2'\], unexpected \[\]"),
    (lambda t: pd.concat([t, t.iloc[:1]]), r"1 duplicate video ids, first 'v 20'"),
    (lambda t: t.rename(columns={"video_id": "id"}), r"no video_id column"),
    (lambda t: t.assign(c0=t["c0"].astype(object).where(t.index != 2, "abc")),
     r"1 values that are not numbers, first 'abc' of video 'v 22' in column 'c0'"),
    (lambda t: t.assign(c0=t["c0"].astype(object).where(t.index != 2, "")), r"not numbers, first ''"),
    (lambda t: t.assign(c0=np.where(t.index == 2, np.nan, t["c0"])), r"1 values that are not numbers, first ''"),
    (lambda t: t.assign(c0=t["c0"].astype(object).where(t.index != 2, "NaN")), r"1 non-finite values"),
    (lambda t: t.assign(video_id=t["video_id"].where(t.index != 4, "")), r"1 rows without a video_id"),
    (lambda t: t[["video_id"]], r"no class columns"),
])
def test_stream_errors_are_one_line_user_errors_naming_the_file(tmp_path, damage, message):
    """Fault 13: each of these was a ValueError traceback (or not caught at all)."""
    internal, parts = streams(tmp_path)
    parts["val"] = damage(parts["val"])
    spec = write_parts(tmp_path, parts)
    with pytest.raises(UserError, match=message) as exc:
        run_fusion(tmp_path, internal, spec)
    assert spec["val"] in one_line(exc)


@pytest.mark.parametrize("content,message", [
    (b"", r"the file is empty"),
    (b"video_id,c0,c1,c2\nv 20,1,2,3,4,5\n", r"malformed CSV: line 2 has 6 fields, the header 4 \(1 such lines\)"),
    (b"video_id,c0,c1,c2\nv 20,1,2,\xff\n", r"not UTF-8 text"),
    (b'video_id,c0,c1,c2\n"v 20,1,2,3\n', r"malformed CSV at line 2 \(unexpected end of data\)"),
    (b"video_id,c0,c0,c2\nv 20,1,2,3\n", r"column 'c0' appears twice"),
    (b"video_id,c0,c1,c2\nv 20,1,2\n", r"line 2 has 3 fields"),
])
def test_empty_or_malformed_stream_file_is_one_line(tmp_path, content, message):
    internal, parts = streams(tmp_path)
    spec = write_parts(tmp_path, parts)
    Path(spec["val"]).write_bytes(content)
    with pytest.raises(UserError, match=message) as exc:
        run_fusion(tmp_path, internal, spec)
    assert spec["val"] in one_line(exc)


@pytest.mark.parametrize("values,ids,message", [
    (np.zeros((20, K)), 19, r"shape \(20, 3\) does not match 19 ids"),
    (np.array([["a"] * K] * 20), 20, r"holds <U1 values; logits must be real numbers"),
    (np.zeros((20, K), dtype=complex), 20, r"holds complex128 values"),
    (np.zeros(20), 20, r"shape \(20,\) does not match"),
    (np.zeros((20, K + 1)), 20, r"4 columns of logits but 3 classes"),
])
def test_bad_npy_streams_are_one_line(tmp_path, values, ids, message):
    internal, parts = streams(tmp_path)
    np.save(tmp_path / "v.npy", values)
    (tmp_path / "v.txt").write_text("\n".join(parts["val"]["video_id"][:ids]) + "\n")
    spec = {**write_parts(tmp_path, parts), "val": str(tmp_path / "v.npy"),
            "val_ids": str(tmp_path / "v.txt")}
    with pytest.raises(UserError, match=message) as exc:
        run_fusion(tmp_path, internal, spec)
    assert "v.npy" in one_line(exc)
    (tmp_path / "v.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(UserError, match=r"v\.npy: not a readable \.npy matrix"):
        run_fusion(tmp_path, internal, spec)


def test_fusion_stage_prints_a_stream_error_as_one_line(tmp_path, capsys):
    """What the user sees from the Snakemake job: ``error: <one line>``, no traceback."""
    from types import SimpleNamespace

    from jmrn import stages

    internal, parts = streams(tmp_path)
    parts["test"].loc[0, "c0"] = np.inf
    spec = write_parts(tmp_path, parts)
    smk = SimpleNamespace(
        log=[str(tmp_path / "fusion.log")], rule="fusion", wildcards=SimpleNamespace(
            items=lambda: [], fusion="f", split="1", seed="0"), threads=1,
        params=SimpleNamespace(stage="fusion", modalities=["ours", "rgb"], variants=["ours"],
                               external={"rgb": spec}, ava_max_detections=50),
        input=SimpleNamespace(variant_logits=[internal["ours"]]),
        output=SimpleNamespace(weights=str(tmp_path / "w.json"), logits=str(tmp_path / "l.csv"),
                               metrics=str(tmp_path / "m.json")))
    with pytest.raises(SystemExit) as exc:
        stages.run(smk)
    message = str(exc.value.code)
    assert message.startswith("error: ") and "\n" not in message and "non-finite" in message


# --- names that become folders ---------------------------------------------------------------

@pytest.mark.parametrize("text,message", [
    ("fusion:\n  ../potion: [potion, jmrn]\n", r"fusion: '\.\./potion' does not match"),
    ("fusion:\n  a/b: [potion, jmrn]\n", r"fusion: 'a/b' does not match"),
    ("fusion:\n  ..: [potion, jmrn]\n", r"fusion: '\.\.' does not match"),
    ("fusion:\n  .hidden: [potion, jmrn]\n", r"fusion: '\.hidden' does not match"),
    ("fusion:\n  potion: [potion, jmrn]\n", r"fusion 'potion' has the name of a variant"),
    ("variants:\n  ../x: {arch: potion}\n", r"variants: '\.\./x' does not match"),
    ("variants:\n  fusion: {arch: potion}\n", r"variants name 'fusion' is reserved"),
    ("external_logits:\n  ../rgb: {test: x.csv}\n", r"external_logits: '\.\./rgb' does not match"),
])
def test_unsafe_or_colliding_names_are_refused_by_check_config(tmp_path, capsys, text, message):
    """Fault 7: a fusion named ../potion wrote into split1/potion/seed0/."""
    path = tmp_path / "names.yaml"
    path.write_text(text)
    assert main(["check-config", DEMO, str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    import re

    assert re.search(message, err), err


def test_snakemake_refuses_an_escaping_fusion_name_before_any_job(tmp_path):
    (tmp_path / "names.yaml").write_text("fusion:\n  ../potion: [potion, jmrn]\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                           "--directory", str(tmp_path), "-n", "all", "--configfile", DEMO,
                           str(tmp_path / "names.yaml")], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "fusion: '../potion' does not match" in errors[0], proc.stderr
    assert not (tmp_path / "results").exists()


# --- ids a spreadsheet would run as formulas ---------------------------------------------------

ODD_IDS = ["=cmd|' /C calc'!A0", "@SUM(1)", "+1", "-2", "'quoted", "''twice", "\tTab", "\rcr",
           "name with spaces", 'it\'s "q" & #1 (ü)', "日本語 ü", "plain", "a=b", "x-1"]


def test_escape_is_reversible_and_covers_formula_starts():
    from jmrn.tables import escape_csv_text, unescape_csv_text

    values = pd.Series(ODD_IDS + [None], dtype=object)
    escaped = escape_csv_text(values)
    assert not escaped.dropna().str.match(r"^[=+\-@\t\r]").any()
    assert escaped.iloc[0] == "'=cmd|' /C calc'!A0" and escaped.iloc[4] == "''quoted"
    assert escaped.iloc[8] == "name with spaces" and escaped.iloc[-1] is None
    assert unescape_csv_text(escaped).tolist() == values.tolist()


def cells(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def assert_no_formula_cell(path: Path, columns: tuple[str, ...] = ("video_id", "path")) -> None:
    """No cell of ``columns`` (text from outside) starts as a spreadsheet formula."""
    header, *rows = cells(path)
    chosen = [i for i, h in enumerate(header) if h in columns]
    bad = [row[i] for row in rows for i in chosen if row[i][:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert chosen and not bad, f"{path.name}: {bad}"


def test_manifest_and_failed_csv_escape_odd_ids_and_round_trip(tiny_demo, tmp_path):
    """Fault 9: ids from the CSV adapter reached failed.csv and manifest.csv as formulas."""
    from test_datasets import to_potion

    data = tmp_path / "data"
    videos = sorted((tiny_demo / "videos").glob("*/*.avi"))
    rows, real = ["path,label,split"], ["@SUM(1).avi", "+1.avi", "-2.avi", 'it\'s "q" & #1 (ü).avi',
                                        "'quoted.avi"]
    data.mkdir()
    for i, src in enumerate(videos[:12]):
        name = real[i] if i < len(real) else f"v{i}.avi"
        shutil.copy(src, data / name)
        rows.append(",".join(['"' + name.replace('"', '""') + '"', f"k{i % 2}",
                              "test" if i % 4 == 0 else "train"]))
    for gone in ("=cmd|' /C calc'!A0", "-3 missing.avi", "=HYPERLINK(x)"):
        rows.append(",".join(['"' + gone.replace('"', '""') + '"', "k0", "train"]))
    (data / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    manifest, store = to_potion({"adapter": "csv", "annotation": str(data / "labels.csv"),
                                 "splits": [1]}, tmp_path)
    expected = {*real, *[f"v{i}.avi" for i in range(len(real), 12)], "=cmd|' /C calc'!A0",
                "-3 missing.avi", "=HYPERLINK(x)"}
    assert set(manifest["video_id"]) == expected  # read back exactly
    assert set(store.index) == expected - {"=cmd|' /C calc'!A0", "-3 missing.avi", "=HYPERLINK(x)"}
    for name in ("manifest.csv", "failed.csv"):
        assert_no_formula_cell(tmp_path / name)
    failed = read_manifest(tmp_path / "failed.csv")
    assert set(failed["video_id"]) == {"=cmd|' /C calc'!A0", "-3 missing.avi", "=HYPERLINK(x)"}
    raw = {row[0] for row in cells(tmp_path / "failed.csv")[1:]}
    assert "'=cmd|' /C calc'!A0" in raw and "'-3 missing.avi" in raw


def test_write_csv_round_trips_every_odd_id(tmp_path):
    frame = pd.DataFrame({"video_id": ODD_IDS, "split1": ["-"] * len(ODD_IDS),
                          "path": [f"/d/{v}" for v in ODD_IDS], "frames": range(len(ODD_IDS))})
    write_csv(frame, tmp_path / "m.csv")
    back = read_manifest(tmp_path / "m.csv")
    assert back["video_id"].tolist() == ODD_IDS and back["path"].tolist() == frame["path"].tolist()
    assert back["split1"].tolist() == ["-"] * len(ODD_IDS)  # our own values are left alone
    ids = [row[0] for row in cells(tmp_path / "m.csv")[1:]]
    assert not [v for v in ids if v[:1] in "=+-@\t\r"]


def test_logits_written_by_fusion_escape_ids_and_fusion_reads_them_back(tmp_path):
    internal, parts = streams(tmp_path)
    ours = pd.read_csv(internal["ours"])
    names = [v for v in ODD_IDS if "\r" not in v]  # the test writes the stream with pandas
    odd = {f"v {i}": names[i % len(names)] + f"#{i}" for i in range(len(ours))}
    write_csv(ours.assign(video_id=ours["video_id"].map(odd)), tmp_path / "ours.csv")
    for part in parts.values():
        part["video_id"] = part["video_id"].map(odd)
    spec = write_parts(tmp_path, parts)  # a stream's file holds the ids as they are
    result = run_fusion(tmp_path, internal, spec)
    assert result["fit"]["n"] == 20
    assert_no_formula_cell(tmp_path / "l.csv")
    from jmrn.io import read_video_table

    back = read_video_table(tmp_path / "l.csv")
    assert set(back["video_id"]) == {odd[f"v {i}"] for i in range(20, 60)}


def test_markdown_and_html_cells_are_escaped(tmp_path):
    from jmrn.report import write_table
    from jmrn.tables import markdown_frame

    frame = pd.DataFrame({"class": ["a|b", "line\nbreak", "<script>x</script>", "=1+1"],
                          "value": [1.0, 2.0, 3.0, 4.0]})
    write_table(frame, tmp_path / "t.csv", tmp_path / "t.md", "t", html_path=tmp_path / "t.html")
    md = (tmp_path / "t.md").read_text()
    assert "a\\|b" in md and "line break" in md and len(md.strip().splitlines()) == 2 + 2 + 4
    html = (tmp_path / "t.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert_no_formula_cell(tmp_path / "t.csv", ("class",))
    assert markdown_frame(frame)["class"].tolist()[0] == "a\\|b"
