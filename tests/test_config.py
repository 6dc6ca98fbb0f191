"""Config checks: overlays validated as Snakemake merges them, per-backend options, one-line
errors for syntax errors, typos, bad values and a GPU that is not there."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from jmrn.cli import main, merged_config
from jmrn.device import resolve_device
from jmrn.errors import UserError

REPO = Path(__file__).resolve().parents[1]
DEMO = str(REPO / "config" / "demo.yaml")


@pytest.mark.parametrize("files", [["config/demo.yaml"], ["config/utd_mhad.yaml"], ["config/paper.yaml", "config/hmdb51.yaml"],
                                   ["config/paper.yaml", "config/charades.yaml"],
                                   ["config/paper.yaml", "config/jhmdb.yaml"],
                                   ["config/paper.yaml", "config/ava.yaml"],
                                   ["config/paper.yaml", "config/kinetics_mimetics.yaml"],
                                   ["config/paper.yaml", "config/mmaction_skeleton.yaml"],
                                   ["config/paper.yaml", "config/custom.yaml"]])
def test_shipped_configs_and_overlays_are_valid(files):
    config = merged_config([str(REPO / f) for f in files])
    assert config["train"]["val_fraction"] == 0.1  # the schema's defaults are filled in
    assert config["evaluation"]["ava_max_detections_per_keyframe"] == 50


def test_a_crop_larger_than_the_maps_is_refused(tmp_path):
    bad = tmp_path / "crop.yaml"
    bad.write_text("augment:\n  crop: {height: 32, width: 64}\n")  # the demo's maps: 32 x 43
    with pytest.raises(UserError, match=r"augment.crop 32 x 64 is larger than the PoTion maps \(32 x 43\)"):
        merged_config([DEMO, str(bad)])


@pytest.mark.parametrize("text,message", [
    ("train:\n  epochs: 3\n bad: [\n", r"bad\.yaml:3:2: YAML syntax error"),
    ("pose:\n  options: {markers: {min_pixel: 3}}\n",
     r"pose\.options\.markers: Additional properties are not allowed \('min_pixel'"),
    ("pose:\n  options: {markers: {batch_size: '8'}}\n",
     r"pose\.options\.markers\.batch_size: '8' is not of type 'integer'"),
    ("pose:\n  options: {markers: {batch_size: 0}}\n",
     r"pose\.options\.markers\.batch_size: 0 is less than the minimum of 1"),
    ("pose:\n  options: {openpifpaf: {batch_size: -1}}\n", r"pose\.options\.openpifpaf\.batch_size: -1 is less"),
    ("pose:\n  options: {hrnet: {}}\n", r"pose\.options: Additional properties are not allowed \('hrnet'"),
    ("seeds: [-1]\n", r"seeds\.0: -1 is less than the minimum of 0"),
    ("seeds: [1099511627776]\n", r"seeds\.0: 1099511627776 is greater than the maximum"),
    ("variants:\n  jmrn: {match_parameters: nope}\n", r"match_parameters names 'nope'"),
    ("- a list\n", r"must be a mapping"),
])
def test_bad_config_is_one_line_naming_file_and_key(tmp_path, capsys, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        merged_config([DEMO, str(path)])
    assert main(["check-config", DEMO, str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_asking_for_a_missing_gpu_is_one_line():
    with pytest.raises(UserError, match=r"device 'cuda' .* has 0 usable CUDA GPUs"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_backend_options_are_checked_when_built_directly():
    from jmrn.pose.base import make_backend

    with pytest.raises(TypeError, match="min_pixel"):
        make_backend("markers", 8, 11, {"min_pixel": 3})
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        make_backend("markers", 8, 11, {"batch_size": 0})


def test_no_dataset_chosen_is_one_line(capsys):
    assert main(["check-config"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--configfile config/demo.yaml" in err


def test_check_config_lists_missing_inputs_and_prints_the_merged_config(tmp_path, monkeypatch, capsys):
    """Without data or checkpoint the config is valid, and every missing input is one line
    saying what it is (the checkpoint line: how to get it)."""
    import yaml

    monkeypatch.chdir(tmp_path)
    files = [str(REPO / "config" / "paper.yaml"), str(REPO / "config" / "hmdb51.yaml")]
    assert main(["check-config", "--print", *files]) == 0
    out = capsys.readouterr().out
    merged = yaml.safe_load(out[:out.index("config ok")])
    assert merged["dataset"]["name"] == "hmdb51" and merged["train"]["batch_size"] == 128
    missing = [line for line in out.splitlines() if line.startswith("missing: ")]
    assert [m.split(":")[1].strip() for m in missing] == [
        "dataset.video_root", "dataset.split_dir", "pose.options.openpifpaf.checkpoint"]
    assert "python -m jmrn openpifpaf-state-dict" in missing[-1]
    (tmp_path / "data/hmdb51/videos").mkdir(parents=True)
    (tmp_path / "data/hmdb51/splits").mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "models/shufflenetv2k16.pt").write_bytes(b"")
    assert main(["check-config", *files]) == 0
    assert capsys.readouterr().out.strip() == "config ok"


@pytest.mark.parametrize("argv,runs", [
    (["snakemake", "--cores", "2", "all"], True), (["snakemake", "-n"], False),
    (["snakemake", "-np", "all"], False), (["snakemake", "--dry-run"], False),
    (["snakemake", "--report", "r.html"], False), (["snakemake", "--profile", "slurm", "all"], True),
])
def test_which_command_lines_run_jobs(argv, runs):
    from jmrn.preflight import runs_jobs

    assert runs_jobs(argv) is runs


def test_pose_jobs_see_only_their_backends_options():
    """config.yaml's openpifpaf options must not rerun a keypoints run's pose jobs."""
    from jmrn.config import pose_settings

    config = merged_config([str(REPO / "config" / "utd_mhad.yaml")])
    assert "openpifpaf" in config["pose"]["options"]
    assert pose_settings(config)["options"] == {"keypoints": config["pose"]["options"]["keypoints"]}
    demo = merged_config([DEMO])
    assert pose_settings(demo)["options"] == {"markers": {"batch_size": 16}}


def test_per_class_table_skips_runs_without_per_class_scores():
    import pandas as pd

    from jmrn.report import per_class_table

    runs = pd.DataFrame([{"variant": "a", "per_class": {"x": 0.5, "y": 1.0}},
                         {"variant": "a", "per_class": {"x": 1.0, "y": 0.0}},
                         {"variant": "b"}])  # written before per-class scores existed
    numeric, shown = per_class_table(runs)
    assert numeric[["class", "variant", "mean (%)", "runs"]].values.tolist() == [
        ["x", "a", 75.0, 2], ["y", "a", 50.0, 2]]
    assert shown.columns.tolist() == ["class", "a"] and shown["a"].tolist()[0] == "75.00 ± 35.36 (2)"


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


@pytest.mark.parametrize("content, message", [
    (b"seeds: [0]\nnote: caf\xe9\n", r"not UTF-8 text \(byte 0xe9 at offset 20, line 2\)"),
    (bytes(range(256)), r"not UTF-8 text|YAML syntax error"),
    (BILLION_LAUGHS.encode(), r"expands to more than 100,000 values"),
], ids=["latin-1", "binary", "alias bomb"])
def test_overlay_that_is_not_a_small_utf8_yaml_is_one_line(tmp_path, capsys, content, message):
    import time

    path = tmp_path / "overlay.yaml"
    path.write_bytes(content)
    start = time.perf_counter()
    assert main(["check-config", DEMO, str(path)]) == 1
    err = capsys.readouterr().err
    assert time.perf_counter() - start < 10
    assert err.startswith("error: ") and err.count("\n") == 1 and re.search(message, err), err


def test_config_overlay_fuzz_gives_a_result_or_one_line(tmp_path, capsys):
    """Truncated, byte-flipped and type-swapped overlays: check-config accepts or refuses with one
    line, never a traceback, and what it accepts is what the file says."""
    import time

    import yaml

    rng = np.random.default_rng(29)
    source = Path(DEMO).read_bytes()
    swaps = [0, -1, 1.5, "x", None, True, [], {}, [1, "a"], 1e400]
    start = time.perf_counter()
    for case in range(120):
        kind = case % 3
        if kind == 0:
            data = source[:rng.integers(1, len(source))]
        elif kind == 1:
            data = bytearray(source)
            for at in rng.integers(0, len(data), size=rng.integers(1, 4)):
                data[at] = int(rng.integers(0, 256))
            data = bytes(data)
        else:
            config = yaml.safe_load(source)
            section = sorted(config)[rng.integers(len(config))]
            if isinstance(config[section], dict) and config[section]:
                key = sorted(config[section])[rng.integers(len(config[section]))]
                config[section][key] = swaps[rng.integers(len(swaps))]
            else:
                config[section] = swaps[rng.integers(len(swaps))]
            data = yaml.safe_dump(config).encode()
        path = tmp_path / f"fuzz{case}.yaml"
        path.write_bytes(data)
        code = main(["check-config", "--print", str(path)])
        out, err = capsys.readouterr()
        assert code in (0, 1), (case, err)
        if code == 1:
            assert err.startswith("error: ") and err.count("\n") == 1, (case, data, err)
        else:
            given = yaml.safe_load(data.decode("utf-8")) or {}
            printed = yaml.safe_load(out.split("\nconfig ok")[0])
            for section, value in given.items():
                if not isinstance(value, dict):
                    assert printed[section] == value, (case, section)
                else:
                    for key, inner in value.items():
                        if not isinstance(inner, dict):
                            assert printed[section][key] == inner, (case, section, key)
    assert time.perf_counter() - start < 60


@pytest.mark.parametrize("command", ["demo-data", "check-config", "recipe", "status", "slurm",
                                     "openpifpaf-state-dict", "model-card", "predict", "evaluate",
                                     "keypoints", "keypoints to-pickle", "keypoints export"])
def test_every_command_is_listed_and_says_what_it_does_in_its_help(command, capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    overview = capsys.readouterr().out.split("positional arguments")[0]
    assert f"python -m jmrn {command}" in overview  # the module's summary lists it
    with pytest.raises(SystemExit):
        main([*command.split(), "--help"])
    rest = capsys.readouterr().out.partition("\n\n")[2]  # after the usage lines
    assert rest.split("\n\n")[0].strip() and not rest.startswith(("positional", "options"))
