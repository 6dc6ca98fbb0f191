"""Every dataset adapter on tiny fixtures in the publisher's exact format, manifest -> PoTion.

Videos are copies of the generated demo clips (moving-light displays) renamed the way each
dataset names its files, including HMDB51-style quirks: spaces, quotes, &, #, parentheses.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jmrn.aggregate import build_potion_store
from jmrn.datasets.files import holdout_splits
from jmrn.datasets.manifest import build_manifest, class_names, label_targets, read_manifest
from jmrn.datasets.report import DatasetError
from jmrn.pose.extract import extract_shard
from jmrn.store import PotionStore

MARKERS = {"backend": "markers", "height": 8, "width": 11, "on_bad_video": "skip"}
POTION = {"channels": 3, "normalisation": "area"}


def demo_videos(tiny_demo: Path) -> dict[str, list[Path]]:
    """class -> its demo videos (4 classes x 6)."""
    root = tiny_demo / "videos"
    return {d.name: sorted(d.iterdir()) for d in sorted(root.iterdir())}


def to_potion(dataset: dict, tmp: Path, pose: dict = MARKERS) -> tuple[pd.DataFrame, PotionStore]:
    """manifest -> one pose shard -> PoTion store, as the pipeline runs them."""
    build_manifest(dataset, tmp / "manifest.csv")
    extract_shard(tmp / "manifest.csv", 0, 1, pose, tmp / "shard.zarr")
    build_potion_store(tmp / "manifest.csv", [tmp / "shard.zarr"], POTION, tmp / "potion.zarr",
                       tmp / "failed.csv")
    return read_manifest(tmp / "manifest.csv"), PotionStore(tmp / "potion.zarr")


def assert_potion_covers_usable(manifest: pd.DataFrame, store: PotionStore, tmp: Path) -> None:
    usable = set(manifest.loc[manifest["status"] == "ok", "video_id"])
    assert set(store.index) == usable and usable
    failed = pd.read_csv(tmp / "failed.csv", dtype=str, keep_default_na=False)
    assert set(failed["video_id"]) == set(manifest["video_id"]) - usable  # none silently lost


# --- JHMDB -------------------------------------------------------------------------------

def write_jhmdb(tiny_demo: Path, root: Path) -> Path:
    """videos/<class>/<video>.avi, splits/<class>_test_split1.txt, joint_positions/.../*.mat."""
    from scipy.io import savemat

    for cls, videos in list(demo_videos(tiny_demo).items())[:2]:
        (root / "videos" / cls).mkdir(parents=True)
        lines = []
        for i, src in enumerate(videos[:4]):
            shutil.copy(src, root / "videos" / cls / src.name)
            lines.append(f"{src.name} {2 if i % 2 else 1}")
            joints = root / "joint_positions" / cls / src.stem
            joints.mkdir(parents=True)
            t = np.arange(10)
            pos = np.zeros((2, 15, 10))
            pos[0] = 101 + 10 * np.arange(15)[:, None] + t  # x, 1-based like MATLAB
            pos[1] = 81 + 5 * np.arange(15)[:, None]
            savemat(joints / "joint_positions.mat", {"pos_img": pos, "scale": np.ones(10)})
        (root / "splits").mkdir(exist_ok=True)
        (root / "splits" / f"{cls}_test_split1.txt").write_text("\n".join(lines) + "\n")
    return root


def test_jhmdb_ground_truth_joints_to_potion(tiny_demo, tmp_path):
    root = write_jhmdb(tiny_demo, tmp_path / "jhmdb")
    victim = next((root / "joint_positions").glob("*/*/joint_positions.mat"))
    victim.unlink()
    dataset = {"adapter": "jhmdb", "video_root": str(root / "videos"), "split_dir": str(root / "splits"),
               "joint_root": str(root / "joint_positions"), "splits": [1]}
    pose = {"backend": "keypoints", "height": 60, "width": 80, "on_bad_video": "skip",
            "options": {"keypoints": {"layout": "jhmdb15"}}}
    manifest, store = to_potion(dataset, tmp_path, pose)
    assert "keypoints" in manifest and len(manifest) == 8
    lost = manifest[manifest["video_id"] == victim.parent.name].iloc[0]
    assert lost["status"] == "missing keypoints file"
    assert_potion_covers_usable(manifest, store, tmp_path)
    # The face (JHMDB joint 2) is our nose: its heatmap follows x = 120 + t (0-based source
    # pixels, 320x240 -> 80x60 output, scale 1/4), y = 90 -> output row 22.125 (centre shift).
    from jmrn.pose.keypoints import KeypointsBackend
    from jmrn.pose.skeleton import JOINTS

    row = manifest[manifest["status"] == "ok"].iloc[0].to_dict()
    maps = np.concatenate(list(KeypointsBackend(60, 80, layout="jhmdb15").heatmaps(row)))
    nose = maps[:, JOINTS.index("nose")]
    assert maps.shape[0] == 10
    peak_y, peak_x = np.unravel_index(nose[0].argmax(), nose[0].shape)
    assert (peak_y, peak_x) == (22, 30)  # x: 120 / 4 - 0.375 = 29.6
    assert maps[:, JOINTS.index("left_eye")].max() == 0  # the puppet has no eyes


# --- Charades ----------------------------------------------------------------------------

def write_charades(tiny_demo: Path, root: Path) -> Path:
    """Charades_v1_{classes.txt,train.csv,test.csv} and videos <id>.mp4."""
    (root / "videos").mkdir(parents=True)
    videos = [v for vs in demo_videos(tiny_demo).values() for v in vs[:3]]
    ids = [f"{c}{n}" for c, n in zip("ABCDEFGHIJKL", range(46, 58))][: len(videos)]
    for vid, src in zip(ids, videos):
        shutil.copy(src, root / "videos" / f"{vid}.mp4")  # OpenCV reads by content, not suffix
    (root / "Charades_v1_classes.txt").write_text(
        "c000 Holding some clothes\nc001 Putting clothes somewhere\nc002 Taking some clothes from somewhere\n")
    head = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"

    def line(vid: str, actions: str) -> str:
        return f'{vid},S1,Kitchen,6,7,Yes,"A person, smiling, walks in.",clothes,"",{actions},30.0\n'

    actions = ["c000 0.00 5.00;c001 2.00 9.10", "c001 1.00 3.00", "c002 0.00 4.00;c000 3.0 8.0",
               "c000 1.00 2.00", "c002 0.50 6.00", "c001 0.00 1.00;c002 1.00 2.00"]
    train = head + "".join(line(v, a) for v, a in zip(ids[:6], actions))
    train += line(ids[0], "c001 0 1")  # duplicate id
    test = head + "".join(line(v, a) for v, a in zip(ids[6:11], actions))
    test += line(ids[11], "")  # a test video with no action
    test += line("ZZZZZ", "c000 0 1;c999 1 2")  # unknown class + missing video
    (root / "Charades_v1_train.csv").write_text(train)
    (root / "Charades_v1_test.csv").write_text(test)
    return root


def test_charades_multilabel_manifest_and_potion(tiny_demo, tmp_path, caplog):
    root = write_charades(tiny_demo, tmp_path / "charades")
    dataset = {"adapter": "charades", "video_root": str(root / "videos"),
               "annotation_dir": str(root), "splits": [1]}
    with caplog.at_level(logging.WARNING):
        manifest, store = to_potion(dataset, tmp_path)
    assert {"labels", "label_names"} <= set(manifest.columns) and "label" not in manifest
    assert class_names(manifest)[0] == "c000 Holding some clothes"
    a = manifest.set_index("video_id")
    assert a.loc["A46", "labels"] == "0;1" and a.loc["A46", "split1"] == "train"
    assert a.loc["L57", "labels"] == "" and a.loc["L57", "split1"] == "test"  # kept
    assert a.loc["ZZZZZ", "labels"] == "0" and a.loc["ZZZZZ", "status"] == "missing file"
    assert "duplicate video id (later entry ignored): 1" in caplog.text
    assert "bad action entry (skipped): 1" in caplog.text and "c999" in caplog.text
    targets = label_targets(manifest, 3)
    assert targets.shape == (13, 3) and targets[manifest["video_id"] == "A46"].tolist() == [[1, 1, 0]]
    assert_potion_covers_usable(manifest, store, tmp_path)


def test_charades_trains_with_bce_and_reports_map(tiny_demo, tmp_path):
    from jmrn.export import export_variant
    from jmrn.fusion import fuse
    from jmrn.train import train_variant

    root = write_charades(tiny_demo, tmp_path / "charades")
    dataset = {"adapter": "charades", "video_root": str(root / "videos"),
               "annotation_dir": str(root), "splits": [1]}
    to_potion(dataset, tmp_path)
    train = {"epochs": 2, "batch_size": 4, "lr": 1e-3, "patience": 2, "device": "cpu",
             "val_fraction": 0.0}
    logits = {}
    variants = {"potion": {"arch": "potion", "model": {"width": 0.125}},
                "jmrn": {"arch": "jmrn", "model": {"width": 0.125}, "contrastive": True}}
    for name, variant in variants.items():
        out = tmp_path / name
        out.mkdir()
        train_variant(str(tmp_path / "potion.zarr"), str(tmp_path / "manifest.csv"), 1,
                      {**variant, "name": name}, train, 0,
                      str(out / "model.pt"), str(out / "history.csv"))
        metrics = export_variant(str(tmp_path / "potion.zarr"), str(tmp_path / "manifest.csv"), 1,
                                 {**variant, "name": name}, str(out / "model.pt"), "cpu",
                                 str(out / "logits.csv"), str(out / "metrics.json"),
                                 str(out / "joint_weights.csv"), seed=0, val_fraction=0.0,
                                 out_confusion=str(out / "confusion.csv"))
        assert 0 <= metrics["mAP"] <= 1 and "mean_class_accuracy" not in metrics
        assert metrics["per_class_metric"] == "AP" and len(metrics["per_class"]) == 3
        assert metrics["n_test"] == 6  # the no-action test video counts, the missing one cannot
        table = pd.read_csv(out / "logits.csv", dtype={"labels": str}, keep_default_na=False)
        assert list(table.columns[:3]) == ["video_id", "subset", "labels"]
        logits[name] = str(out / "logits.csv")
    fusion_dir = tmp_path / "split1" / "fusion" / "both"
    fusion_dir.mkdir(parents=True)
    result = fuse(["potion", "jmrn"], logits, {}, 1, str(fusion_dir / "weights.json"),
                  str(fusion_dir / "logits.csv"), str(fusion_dir / "metrics.json"),
                  identity={"fusion": "both", "split": 1, "seed": 0})
    assert result["fit"]["subset"] == "train"  # no validation rows: the logged fallback
    assert np.asarray(result["weights"]["potion"]).shape == (3,)  # per class for multi-label
    learned = [m for m in result["test"] if m not in ("potion", "jmrn", "average")]
    assert len(learned) == 1 and 0 <= result["test"][learned[0]]["mAP"] <= 1

    from jmrn.report import build_report

    outputs = {f"{kind}_{ext}": str(tmp_path / "report" / f"{kind}.{ext}")
               for kind in ("summary", "ablation", "fusion", "per_class") for ext in ("md", "csv", "html")}
    outputs.update({key: str(tmp_path / "report" / f"{key}.png") for key in (
        "learning_curves", "confusion", "joint_weights", "per_class_accuracy", "potion_examples")})
    (tmp_path / "report").mkdir()
    build_report("charades", str(tmp_path / "manifest.csv"), str(tmp_path / "potion.zarr"),
                 [str(tmp_path / n / "metrics.json") for n in logits],
                 [str(tmp_path / n / "history.csv") for n in logits], list(logits), [1, 1],
                 [str(tmp_path / "jmrn" / "confusion.csv")], [str(fusion_dir / "metrics.json")],
                 str(tmp_path / "jmrn" / "joint_weights.csv"), outputs,
                 variants={n: {**v, "augment": None} for n, v in variants.items()}, metric="mAP",
                 adapter="charades", poses="openpifpaf", focus="jmrn")
    summary = pd.read_csv(outputs["summary_csv"])
    assert summary["split1_mean (%)"].between(0, 100).all() and len(summary) == 2
    assert (summary["runs"] == 1).all()
    assert "# charades: mAP" in Path(outputs["summary_md"]).read_text()
    ablation = pd.read_csv(outputs["ablation_csv"])
    assert "paper, split 1 (%), OpenPose" in ablation.columns and set(ablation["poses"]) == {"openpifpaf"}
    assert all(Path(outputs[k]).stat().st_size > 1000 for k in ("confusion", "joint_weights",
                                                                "per_class_accuracy", "potion_examples"))
    per_class = pd.read_csv(outputs["per_class_csv"])
    assert set(per_class["variant"]) == {"potion", "jmrn"} and (per_class["runs"] <= 1).all()
    assert "<table" in Path(outputs["per_class_html"]).read_text() and "per-class test AP" in \
        Path(outputs["per_class_md"]).read_text()


# --- Kinetics -> Mimetics -----------------------------------------------------------------

def write_kinetics_mimetics(tiny_demo: Path, root: Path) -> tuple[Path, Path]:
    """Kinetics clips in class folders (label names with spaces), Mimetics clips flat."""
    classes = list(demo_videos(tiny_demo).items())
    names = {classes[0][0]: "air drumming", classes[1][0]: "juggling balls", classes[2][0]: "yoga"}
    kin, mim = root / "kinetics", root / "mimetics"
    rows_k = ["label,youtube_id,time_start,time_end,split"]
    rows_m = ["label,youtube_id,time_start,time_end"]
    for c, (cls, videos) in enumerate(classes[:3]):
        label = names[cls]
        (kin / "train" / label).mkdir(parents=True)
        for i, src in enumerate(videos[:4]):
            yid = f"k{c}-_x{i}A"
            shutil.copy(src, kin / "train" / label / f"{yid}_{10 * i:06d}_{10 * i + 10:06d}.mp4")
            rows_k.append(f'"{label}",{yid},{10 * i},{10 * i + 10},train')
        rows_k.append(f'"{label}",k{c}val,0,10,val')  # another subset: ignored
        if c < 2:  # yoga is not a Mimetics class
            (mim / "clips").mkdir(parents=True, exist_ok=True)
            for i, src in enumerate(videos[4:6]):
                shutil.copy(src, mim / "clips" / f"m{c}{i}_{i:06d}_{i + 5:06d}.mp4")
                rows_m.append(f"{label},m{c}{i},{i}.0,{i + 5}.0")
    rows_m.append("playing bagpipes,mbag,0,5")  # no training videos for it
    rows_m.append("air drumming,mgone,0,5")  # listed, file missing
    (kin / "train.csv").write_text("\n".join(rows_k) + "\n")
    (mim / "mimetics.csv").write_text("\n".join(rows_m) + "\n")
    return kin, mim


def test_kinetics_to_mimetics(tiny_demo, tmp_path, caplog):
    kin, mim = write_kinetics_mimetics(tiny_demo, tmp_path)
    dataset = {"adapter": "kinetics_mimetics", "splits": [1],
               "train_source": {"annotation": str(kin / "train.csv"), "video_root": str(kin / "train")},
               "test_source": {"annotation": str(mim / "mimetics.csv"), "video_root": str(mim / "clips")}}
    with caplog.at_level(logging.WARNING):
        manifest, store = to_potion(dataset, tmp_path)
    assert class_names(manifest) == ["air drumming", "juggling balls"]  # shared classes only
    train = manifest[manifest["split1"] == "train"]
    test = manifest[manifest["split1"] == "test"]
    assert len(train) == 8 and (train["status"] == "ok").all()
    assert "k0-_x1A_000010_000020" in set(train["video_id"])
    assert set(test["video_id"]) == {"m00_000000_000005", "m01_000001_000006", "m10_000000_000005",
                                     "m11_000001_000006", "mgone_000000_000005"}
    assert test.set_index("video_id").loc["mgone_000000_000005", "status"] == "missing file"
    assert "test class without training videos (test video dropped): 1" in caplog.text
    assert "playing bagpipes" in caplog.text
    assert_potion_covers_usable(manifest, store, tmp_path)


def test_train_test_pair_needs_one_split(tmp_path):
    src = {"annotation": str(tmp_path / "x.csv"), "video_root": str(tmp_path)}
    with pytest.raises(DatasetError, match=r"set dataset.splits: \[1\]"):
        build_manifest({"adapter": "kinetics_mimetics", "splits": [1, 2], "train_source": src,
                        "test_source": src}, tmp_path / "m.csv")


# --- custom folders and CSVs ---------------------------------------------------------------

def test_folder_adapter_holds_out_per_class(tiny_demo, tmp_path):
    dataset = {"adapter": "folder", "video_root": str(tiny_demo / "videos"), "splits": [1, 2],
               "test_fraction": 0.34}
    manifest, store = to_potion(dataset, tmp_path)
    assert len(manifest) == 24 and (manifest["status"] == "ok").all()
    for k in (1, 2):
        per_class = manifest.groupby("label_name")[f"split{k}"].apply(lambda s: (s == "test").sum())
        assert (per_class == 2).all()  # round(6 * 0.34) of each class
    assert (manifest["split1"] != manifest["split2"]).any()  # splits differ
    again = build_manifest(dataset, tmp_path / "again.csv")
    assert again["split1"].tolist() == manifest["split1"].tolist()  # deterministic
    assert_potion_covers_usable(manifest, store, tmp_path)


@pytest.mark.parametrize("adapter", ["folder", "hmdb51"])
def test_empty_class_folder_is_recorded_not_dropped_unseen(tiny_demo, tmp_path, caplog, adapter):
    videos = tmp_path / "videos"
    shutil.copytree(tiny_demo / "videos", videos)
    (videos / "wave (empty)").mkdir()
    dataset = {"adapter": adapter, "video_root": str(videos), "split_dir": str(tiny_demo / "splits"),
               "splits": [1]}
    with caplog.at_level(logging.WARNING):
        manifest = build_manifest(dataset, tmp_path / "m.csv")
    assert "class folder without videos" in caplog.text and "wave (empty)" in caplog.text
    assert "wave (empty)" not in set(manifest["label_name"])
    with pytest.raises(DatasetError, match="class folder without videos"):
        build_manifest({**dataset, "on_problem": "fail"}, tmp_path / "m2.csv")


def test_holdout_keeps_a_training_video_per_class():
    split = holdout_splits({"a": ["x"], "b": ["y", "z"]}, [1], 0.9)
    assert split["x"] == {"split1": "train"}
    assert sorted(v["split1"] for k, v in split.items() if k != "x") == ["test", "train"]


def test_csv_adapter_relative_paths_splits_and_bad_lines(tiny_demo, tmp_path, caplog):
    data = tmp_path / "my data"
    shutil.copytree(tiny_demo / "videos", data / "clips")
    rows = ["path,label,split"]
    for d in sorted((data / "clips").iterdir()):
        for i, f in enumerate(sorted(d.iterdir())):
            rel = f.relative_to(data).as_posix()
            rows.append(f'"{rel}",{d.name},{"test" if i < 2 else "train"}')
    rows.append('"clips/nowhere/gone (1).avi",ghost,train')  # missing file
    rows.append('"clips/x.avi",ghost,validation')  # bad split value
    rows.append('"clips/spare.avi",ghost,-')  # in no split: kept, reported
    (data / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    dataset = {"adapter": "csv", "annotation": str(data / "labels.csv"), "splits": [1]}
    with caplog.at_level(logging.WARNING):
        manifest, store = to_potion(dataset, tmp_path)
    assert "bad split value (line skipped): 1" in caplog.text and "'validation'" in caplog.text
    assert "video in no split (kept, unused): 1 — e.g. clips/spare.avi" in caplog.text
    gone = manifest.set_index("video_id").loc["clips/nowhere/gone (1).avi"]
    assert gone["status"] == "missing file" and gone["label_name"] == "ghost"
    assert (manifest.groupby("label_name")["split1"].apply(lambda s: (s == "test").sum()).drop("ghost") == 2).all()
    assert_potion_covers_usable(manifest, store, tmp_path)
    with pytest.raises(DatasetError, match=r"^dataset problems .*bad split value"):
        build_manifest({**dataset, "on_problem": "fail"}, tmp_path / "strict.csv")


def test_csv_split_columns_must_cover_the_configured_splits(tmp_path):
    (tmp_path / "l.csv").write_text("path,label,split1\na.avi,x,train\n")
    with pytest.raises(DatasetError, match=r"split columns for splits \[1\] but dataset.splits is \[1, 2\]"):
        build_manifest({"adapter": "csv", "annotation": str(tmp_path / "l.csv"), "splits": [1, 2]},
                       tmp_path / "m.csv")


def test_stage_runner_turns_dataset_errors_into_one_line(tmp_path):
    """A wrong path in the config ends the rule with one actionable line, not a traceback."""
    from types import SimpleNamespace

    from jmrn.stages import run

    smk = SimpleNamespace(
        log=[str(tmp_path / "manifest.log")], rule="manifest", threads=1,
        wildcards={"dataset": "x"}, output=SimpleNamespace(manifest=str(tmp_path / "m.csv")),
        params=SimpleNamespace(stage="manifest", dataset={
            "adapter": "hmdb51", "video_root": "data/nowhere", "split_dir": "data/nowhere", "splits": [1]}))
    with pytest.raises(SystemExit) as exit_info:
        run(smk)
    message = str(exit_info.value)
    assert message == "error: folder data/nowhere does not exist (config dataset.video_root)"
    assert "Traceback" not in (tmp_path / "manifest.log").read_text()
