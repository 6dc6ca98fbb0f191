"""Using what was trained: a run's bundle (model.pt + model_card.json) describes itself, predicts
new videos the way the pipeline treats its own, and scores a configured dataset exactly as the
run's export did."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from test_pipeline import snakemake, tiny_config
from test_skeleton_pickle import write_skeleton_file

from jmrn.cli import main
from jmrn.errors import UserError
from jmrn.predict import load_bundle, predict_videos
from jmrn.io import read_video_table

pytestmark = pytest.mark.slow
REAL_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_clips"
RUN = "results/demo/split1/jmrn/seed0"


def copy_bundle(run: Path, to: Path, **card_changes) -> Path:
    """A copy of a run's bundle with some card fields changed."""
    to.mkdir(parents=True)
    shutil.copy(run / "model.pt", to / "model.pt")
    card = json.loads((run / "model_card.json").read_text())
    card.update(card_changes)
    (to / "model_card.json").write_text(json.dumps(card))
    return to


def test_model_card_describes_the_run(finished_run, capsys):
    run = finished_run / RUN
    card = json.loads((run / "model_card.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert card["classes"] == ["jump", "run", "walk", "wave"] and card["map_shape"] == [18, 3, 16, 21]
    assert card["variant"] == "jmrn" and card["n_parameters"] == metrics["n_parameters"]
    assert card["pose"]["backend"] == "markers" and card["potion"]["normalisation"] == "area"
    assert card["metrics"]["mean_class_accuracy"] == metrics["mean_class_accuracy"]
    assert card["split"] == 1 and card["seed"] == 0 and len(card["data_digest"]) == 16
    assert main(["model-card", str(run)]) == 0
    out = capsys.readouterr().out
    assert "jmrn (jmrn, " in out and "classes        4: jump, run, walk, wave" in out


def test_prediction_of_a_test_video_equals_the_runs_logits(finished_run, tmp_path, capsys):
    """Decode -> pose -> PoTion -> model as the pipeline does: the same probabilities as the
    softmax of the run's own logits for those videos, one row per video, sheets written."""
    run = finished_run / RUN
    logits = read_video_table(run / "logits.csv")
    test = logits[logits["subset"] == "test"]
    videos = [next((finished_run / "results/demo/raw/videos").rglob(f"{v}.avi")) for v in test["video_id"]]
    assert main(["predict", str(run), *map(str, videos), "--out", str(tmp_path / "out")]) == 0
    shown = capsys.readouterr().out
    table = read_video_table(tmp_path / "out" / "predictions.csv")
    probs = read_video_table(tmp_path / "out" / "probabilities.csv")
    classes = ["jump", "run", "walk", "wave"]
    assert len(table) == len(videos) == len(probs) and (table["status"] == "ok").all()
    np.testing.assert_allclose(probs[classes].sum(axis=1), 1.0, atol=1e-6)
    expected = torch.tensor(test[classes].to_numpy(float)).softmax(dim=1).numpy()
    np.testing.assert_allclose(probs[classes].to_numpy(float), expected, atol=1e-5)
    assert (table["top1"].to_numpy() == np.array(classes)[expected.argmax(axis=1)]).all()
    assert len(list((tmp_path / "out" / "sheets").glob("*.png"))) == len(videos)
    assert shown.count("1. ") == len(videos)


def test_evaluate_reproduces_the_runs_metrics_exactly(finished_run, tmp_path, capsys):
    run = finished_run / RUN
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tiny_config(finished_run)))
    out = tmp_path / "eval"
    out.mkdir()
    (out / "notes.txt").write_text("the user's own file, not written by evaluate")
    assert main(["evaluate", str(run), "--configfile", str(tmp_path / "config.yaml"),
                 "--results", str(finished_run / "results"), "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text()) == json.loads((run / "metrics.json").read_text())
    assert (out / "logits.csv").read_bytes() == (run / "logits.csv").read_bytes()
    assert "| jump" in (out / "per_class.md").read_text()
    assert "number of runs (one) in parentheses" in (out / "per_class.md").read_text()
    printed = capsys.readouterr().out
    assert "mean_class_accuracy" in printed
    written = sorted(p.name for p in out.iterdir() if p.name != "notes.txt")
    assert {"metrics.json", "logits.csv", "joint_weights.csv", "videos.json"} <= set(written)
    assert f"wrote {', '.join(written)} in {out}/" in printed  # names every file it wrote, only those


def test_another_splits_test_videos_that_the_model_trained_on_are_counted():
    from jmrn.evaluate import trained_on_test_videos

    tables = {k: {"videos": {"video_id": ["a", "b", "c", "d"], f"split{k}": subsets}}
              for k, subsets in ((1, ["train", "train", "test", "test"]),
                                 (2, ["test", "train", "test", "train"]))}
    card = {"split": 1, "dataset": {"name": "hmdb51"}}
    assert trained_on_test_videos(card, "hmdb51", tables, 2) == 1  # "a": trained on, tested on
    assert trained_on_test_videos(card, "hmdb51", tables, 1) == 0  # its own split
    assert trained_on_test_videos(card, "mimetics", tables, 2) == 0  # another dataset


def test_evaluate_refuses_maps_made_otherwise(finished_run, tmp_path):
    bundle = copy_bundle(finished_run / RUN, tmp_path / "b", potion={"channels": 3, "normalisation": "max"})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tiny_config(finished_run)))
    from jmrn.evaluate import evaluate_bundle

    with pytest.raises(UserError, match=r"not made as the model's were: potion.normalisation 'area' \(model: 'max'\)"):
        evaluate_bundle(bundle, tiny_config(finished_run), tmp_path / "out",
                        results=finished_run / "results")


def test_bundle_problems_are_one_line(finished_run, tmp_path, capsys):
    run = finished_run / RUN
    video = next((finished_run / "results/demo/raw/videos").rglob("*.avi"))
    other_joints = copy_bundle(run, tmp_path / "j", joints=[f"kinect_{i}" for i in range(20)])
    file_poses = copy_bundle(run, tmp_path / "k", pose={"backend": "keypoints", "height": 16, "width": 21})
    altered = copy_bundle(run, tmp_path / "w")
    (altered / "model.pt").write_bytes((altered / "model.pt").read_bytes() + b"\0")
    cases = [(other_joints, "no conversion between these layouts"),
             (file_poses, "reads files other tools wrote"),
             (altered, "not the weights its card describes"),
             (tmp_path / "nothing", "no model card")]
    for bundle, message in cases:
        assert main(["predict", str(bundle), str(video), "--out", str(tmp_path / "o")]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_unreadable_videos_are_rows_not_a_crash(finished_run, tmp_path, capsys):
    import os

    broken = tmp_path / "broken (1).avi"
    broken.write_bytes(b"not a video")
    video = next((finished_run / "results/demo/raw/videos").rglob("*.avi"))
    latin1 = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.avi"))  # OpenCV would crash on it
    shutil.copy(video, latin1)
    table = predict_videos(load_bundle(finished_run / RUN), [broken, video, latin1], tmp_path / "out")
    assert table["status"].tolist()[1] == "ok" and table["status"].iloc[0].startswith("VideoError")
    assert "not valid UTF-8" in table["status"].iloc[2]
    assert table["frames"].iloc[0] == table["frames"].iloc[2] == 0 < table["frames"].iloc[1]
    assert len(read_video_table(tmp_path / "out" / "probabilities.csv")) == 3
    assert main(["predict", str(finished_run / RUN), str(broken), "--out", str(tmp_path / "o2")]) == 1
    out, err = capsys.readouterr()
    assert "none of the 1 videos could be read" in err and "contact sheets" not in out
    assert list(read_video_table(tmp_path / "o2" / "predictions.csv").columns)[:4] == \
        ["video", "status", "frames", "top1"]
    assert main(["predict", str(finished_run / RUN), str(video), "--out", str(broken)]) == 1
    assert "cannot write there" in capsys.readouterr().err


@pytest.fixture(scope="module")
def skeleton_run(tmp_path_factory) -> Path:
    """A PoTion model trained on a keypoint file (tiny epochs): poses that came from files."""
    work = tmp_path_factory.mktemp("skeleton")
    write_skeleton_file(work / "skel.pkl")
    (work / "labels.txt").write_text("clap\nwave\nbow\n")
    cfg = tiny_config(work)
    cfg["dataset"] = {"name": "skel", "adapter": "skeleton", "annotation": str(work / "skel.pkl"),
                      "label_names": str(work / "labels.txt"), "splits": [1],
                      "split_map": {"1": {"train": "train", "test": "val"}}}
    cfg["pose"].update(backend="keypoints", shards=1, options={"keypoints": {"layout": "coco17"}})
    cfg["train"].update(epochs=1, val_fraction=0.2)
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(work, "results/skel/split1/potion/seed0/model_card.json")
    return work / "results/skel/split1/potion/seed0"


@pytest.mark.skipif(not REAL_CLIPS.is_dir(), reason="the real clips are not present")
def test_a_keypoint_trained_model_predicts_real_clips_with_a_pixel_backend(skeleton_run, tmp_path, capsys):
    pytest.importorskip("mediapipe")
    clip = REAL_CLIPS / "test.avi"
    assert main(["predict", str(skeleton_run), str(clip), "--out", str(tmp_path / "a")]) == 1
    assert "reads files other tools wrote" in capsys.readouterr().err
    assert main(["predict", str(skeleton_run), str(REAL_CLIPS), "--backend", "mediapipe",
                 "--option", "batch_size=8", "--top", "3", "--out", str(tmp_path / "b")]) == 0
    table = read_video_table(tmp_path / "b" / "predictions.csv")
    probs = read_video_table(tmp_path / "b" / "probabilities.csv")
    assert len(table) == 3 and (table["status"] == "ok").all() and "top3" in table
    np.testing.assert_allclose(probs[["clap", "wave", "bow"]].sum(axis=1), 1.0, atol=1e-6)
    assert len(list((tmp_path / "b" / "sheets").glob("*.png"))) == 3
