"""AVA: the adapter on AVA's published formats, per-person PoTion with context channels, and
the whole DAG on a generated AVA-format set (frame-mAP checked against a hand computation)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from jmrn import ava_files
from jmrn.datasets import ava, ava_demo
from jmrn.datasets.report import DatasetProblems
from jmrn.frame_map import frame_map
from jmrn.person_potion import BoxSampler, box_in_heatmap, resample_matrix
from jmrn.tables import merge_frame_ranges, pose_rows
from jmrn.video import parse_frame_ranges

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    root = tmp_path_factory.mktemp("ava")
    return ava_demo.generate(root, train_videos=8, val_videos=4, seconds=5, keyframes=(2, 3))


def dataset_config(paths, **extra):
    return {"name": "ava", "adapter": "ava", "video_root": str(paths["video_root"]),
            "annotation_dir": str(paths["annotation_dir"]), "proposals": str(paths["proposals"]),
            "proposal_min_score": 0.8, "version": "2.1", "window_s": 1.0, "sample_fps": 12.5,
            "splits": [1], **extra}


def test_action_list_and_box_files(tmp_path):
    (tmp_path / "list.pbtxt").write_text('item {\n  name: "bend/bow (at the waist)"\n  id: 1\n}\n'
                                         'item {\n  name: "talk to (e.g., self, a person)"\n  id: 79\n}\n')
    assert ava_files.read_action_list(tmp_path / "list.pbtxt") == {1: "bend/bow (at the waist)",
                                                             79: "talk to (e.g., self, a person)"}
    (tmp_path / "b.csv").write_text("-5KQ66BBWC4,0902,0.077,0.151,0.283,0.811,80,1\n"
                                    "-5KQ66BBWC4,0902,0.5,0.1,0.4,0.9,12,2\n"  # x2 < x1
                                    "-5KQ66BBWC4,0903,0.1,0.1,0.2,x,12,2\n")
    problems = DatasetProblems()
    boxes = ava_files.read_boxes(tmp_path / "b.csv", ava_files.ANNOTATION_COLUMNS, problems)
    assert len(boxes) == 1 and boxes.loc[0, "video"] == "-5KQ66BBWC4" and boxes.loc[0, "timestamp"] == 902
    assert len(problems.items["bad box line (skipped)"]) == 2


def test_clip_frames_share_one_grid():
    assert ava.clip_frames(902, 30.0, 1.0, 10, 60000) == "27030:27091:3"
    assert ava.clip_frames(903, 30.0, 1.0, 10, 60000) == "27060:27121:3"
    merged = merge_frame_ranges(["27060:27121:3", "27030:27091:3", "30000:30061:3"])
    assert merged == "27030:27121:3;30000:30061:3"
    frames = parse_frame_ranges(merged)
    assert (frames % 3 == 0).all() and frames[0] == 27030 and len(np.unique(frames)) == len(frames)
    assert ava.clip_frames(10, 25.0, 1.0, 10, 100) == ""  # the keyframe is past the video's end


def test_manifest_rows_are_person_instances(fixture, tmp_path):
    from jmrn.datasets.manifest import build_manifest

    manifest = build_manifest(dataset_config(fixture), tmp_path / "m.csv", out_truth=tmp_path / "gt.csv")
    truth = pd.read_csv(tmp_path / "gt.csv", keep_default_na=False)
    train, test = manifest[manifest["split1"] == "train"], manifest[manifest["split1"] == "test"]
    # training instances are the ground-truth boxes; unlisted action 80 is not a class
    assert len(train) == len(truth[truth["subset"] == "train"])
    assert set(truth["class"]) <= set(range(len(ava_demo.ACTIONS)))
    # test instances are the proposals above 0.8 minus the excluded keyframe
    props = pd.read_csv(fixture["proposals"], header=None)
    excluded = pd.read_csv(fixture["annotation_dir"] / "ava_val_excluded_timestamps_v2.1.csv", header=None)
    kept = props[(props[7] >= 0.8) & ~(props[0].eq(excluded.iloc[0, 0]) & props[1].eq(excluded.iloc[0, 1]))]
    assert len(test) == len(kept)
    assert (manifest["group"] == manifest["source"]).all()  # validation holds out whole videos
    # the spurious proposals match no ground truth: they carry no label
    assert (test["labels"] == "").sum() >= 1 and (test["labels"] != "").sum() >= len(test) // 2
    sources = pose_rows(manifest)
    assert len(sources) == manifest["source"].nunique()
    assert all(";" not in c for c in sources["clip_frames"])  # keyframes 2, 3 s: one span


def test_a_failed_video_fails_its_people_on_record(fixture, tmp_path):
    """A video that cannot be opened, and one that breaks in the pose stage: every person box of
    them is listed in failed.csv with the reason, none is silently missing."""
    import shutil

    from jmrn.aggregate import build_potion_store
    from jmrn.datasets.manifest import build_manifest
    from jmrn.pose.extract import extract_shard

    videos = tmp_path / "videos"
    shutil.copytree(fixture["video_root"], videos)
    names = sorted(videos.iterdir())
    names[0].write_bytes(b"")  # empty file: unusable from the manifest on
    cfg = dataset_config(fixture, video_root=str(videos))
    manifest = build_manifest(cfg, tmp_path / "m.csv")
    names[1].write_bytes(names[1].read_bytes()[:200])  # cut after probing: fails in the pose stage
    pose = {"backend": "markers", "height": 24, "width": 32, "on_bad_video": "skip", "shards": 1,
            "options": {"markers": {"batch_size": 8}}}
    extract_shard(tmp_path / "m.csv", 0, 1, pose, tmp_path / "h.zarr")
    potion = {"channels": 3, "normalisation": "area", "extra_channels": [],
              "person": {"height": 8, "width": 8, "context": False, "context_scale": 2.0}}
    n = build_potion_store(tmp_path / "m.csv", [tmp_path / "h.zarr"], potion, tmp_path / "p.zarr",
                           tmp_path / "failed.csv")
    failed = pd.read_csv(tmp_path / "failed.csv", keep_default_na=False)
    first, second = (manifest[manifest["source"] == p.stem]["video_id"] for p in names[:2])
    assert set(first) <= set(failed.loc[failed["stage"] == "manifest", "video_id"])
    lost = failed[failed["video_id"].isin(second)]
    assert len(lost) == len(second) and lost["reason"].str.contains("failed in the pose stage").all()
    assert n + len(first) + len(second) == len(manifest)


def test_detector_scores_are_matched_to_our_boxes(fixture, tmp_path):
    from jmrn.datasets.manifest import build_manifest

    manifest = build_manifest(dataset_config(fixture), tmp_path / "m.csv")
    test = manifest[manifest["split1"] == "test"].set_index("video_id")
    boxes = test.rename(columns={"source": "video"})[["video", "timestamp", "x1", "y1", "x2", "y2"]]
    action_list = next(fixture["annotation_dir"].glob("*.pbtxt"))
    logits = ava_files.detection_logits(fixture["detections_val"], action_list, boxes)
    assert sorted(logits["video_id"]) == sorted(test.index)  # every kept proposal is scored
    assert list(logits.columns[1:]) == list(ava_demo.ACTIONS.values())
    raw = pd.read_csv(fixture["detections_val"], header=None)
    first = test.iloc[0]
    at = raw[(raw[0] == first["source"]) & (raw[1] == first["timestamp"])
             & np.isclose(raw[2], first["x1"]) & np.isclose(raw[3], first["y1"])]
    p = at.set_index(6)[7]
    row = logits.set_index("video_id").loc[test.index[0]]
    for action_id, name in ava_demo.ACTIONS.items():
        assert row[name] == pytest.approx(np.log(p[action_id] / (1 - p[action_id])), abs=1e-6)
    # boxes that no detection overlaps get no row
    moved = boxes.assign(x1=boxes["x1"] * 0 + 0.9, x2=boxes["x2"] * 0 + 0.99)
    assert ava_files.detection_logits(fixture["detections_val"], action_list, moved).empty


def test_box_sampler_and_letterbox():
    heat = np.zeros((1, 1, 8, 8), np.uint8)
    heat[0, 0, 2:4, 4:6] = 255
    out = BoxSampler.for_box((4, 2, 6, 4), (4, 4), (8, 8))(heat)
    assert out.shape == (1, 1, 4, 4) and np.allclose(out[0, 0, 1:3, 1:3], 1.0)
    # the same as the full sampling matrices over the whole map (the sampler reads a window)
    full = resample_matrix(2, 4, 4, 8) @ (heat[0, 0] / 255.0) @ resample_matrix(4, 6, 4, 8).T
    assert np.allclose(out[0, 0], full, atol=1e-6)
    # a box outside the map samples zeros, no wrap-around; a mask removes what it covers
    assert BoxSampler.for_box((4, -10, 6, -2), (4, 4), (8, 8))(heat).max() == 0
    assert BoxSampler.for_box((4, 2, 6, 4), (4, 4), (8, 8))(heat, np.zeros((8, 8), np.uint8)).max() == 0
    # letterbox: a 320 x 240 frame in a 60 x 80 map fills it; in 60 x 120 it is centred
    assert box_in_heatmap((0, 0, 1, 1), (240, 320), (60, 80)) == (0, 0, 80, 60)
    assert box_in_heatmap((0, 0, 1, 1), (240, 320), (60, 120)) == (20, 0, 100, 60)
    assert box_in_heatmap((0.25, 0.25, 0.75, 0.75), (240, 320), (60, 80), 2.0) == (0, 0, 80, 60)


@pytest.mark.parametrize("normalisation, extra", [("area", []), ("max", ["intensity"])])
def test_keyframe_potion_equals_cropping_every_frame(tmp_path, normalisation, extra):
    """Cropping the keyframe's whole-frame PoTion gives each person's PoTion of cropped frames."""
    from jmrn.person_potion import plan_source, planned_ids, source_maps
    from jmrn.potion import PotionAccumulator
    from jmrn.store import HeatmapShard, write_heatmap_shard

    rng = np.random.default_rng(3)
    shape, fps = (3, 20, 30), 10.0
    rows = []
    for ts in (1, 2, 3):
        for k, (x1, x2) in enumerate(((0.05, 0.4), (0.5, 0.8), (0.3, 0.7))):
            rows.append({"video_id": ava.instance_id("v", ts, k), "source": "v", "timestamp": ts,
                         "x1": x1, "y1": 0.1 * k, "x2": x2, "y2": 0.9, "width": 300, "height": 200,
                         "clip_frames": ava.clip_frames(ts, fps, 1.0, 5, 45)})
    table = pd.DataFrame(rows)
    clips = merge_frame_ranges(table["clip_frames"].tolist())
    numbers = parse_frame_ranges(clips)
    frames = rng.integers(0, 256, (len(numbers), *shape), dtype=np.uint8)
    attrs = {"backend": "t", "height": shape[1], "width": shape[2], "joints": ["a", "b", "c"], "config_hash": "-"}
    with write_heatmap_shard(tmp_path / "s.zarr", attrs, shape) as writer:
        writer.add("v", iter([frames[:7], frames[7:]]), len(frames), shape)
        writer.frame_numbers["v"] = clips
    shard = HeatmapShard(tmp_path / "s.zarr")
    potion = {"channels": 3, "normalisation": normalisation, "extra_channels": extra,
              "person": {"height": 6, "width": 5, "context": True, "context_scale": 1.5}}
    plan = plan_source(shard, "v", table, potion)
    got = dict(zip(planned_ids(plan), source_maps(shard, "v", plan, potion)))
    assert sorted(got) == sorted(table["video_id"])
    for keyframe in plan:
        clip = frames[keyframe.first:keyframe.stop]
        for person in keyframe.people:
            mask = np.zeros(shape[1:], np.uint8)  # uint8 frames stay uint8 (0..255)
            for a, b, c, d in person.others:
                mask[max(0, int(np.floor(b))):int(np.ceil(d)), max(0, int(np.floor(a))):int(np.ceil(c))] = 1
            expected = []
            for box, m in ((person.box, None), (person.context_box, mask)):
                acc = PotionAccumulator(len(clip), 3, (3, 6, 5), normalisation, extra)
                acc.update(BoxSampler.for_box(box, (6, 5), shape[1:])(clip, m))
                expected.append(acc.result())
            assert np.allclose(got[person.video_id], np.concatenate(expected, axis=1), atol=1e-5)


def ava_config(paths) -> dict:
    from test_pipeline import demo_config

    cfg = demo_config()
    cfg["dataset"] = dataset_config(paths)
    cfg["pose"].update(shards=2, height=48, width=64)
    cfg["potion"]["person"] = {"height": 24, "width": 16, "context": True, "context_scale": 4.0}
    cfg["train"].update(epochs=2, batch_size=8)
    cfg["model"]["width"] = 0.125
    cfg["report"] = {"focus_variant": "jmrn", "metric": "frame_mAP"}
    cfg["external_logits"] = {"rgb": {
        "format": "ava_detections", "action_list": str(next(paths["annotation_dir"].glob("*.pbtxt"))),
        "val": str(paths["detections_train"]), "test": str(paths["detections_val"])}}
    cfg["fusion"] = {"potion+jmrn": ["potion", "jmrn"], "jmrn+rgb": ["jmrn", "rgb"]}
    return cfg


@pytest.mark.slow
def test_ava_dag_end_to_end(fixture, tmp_path):
    from test_pipeline import snakemake

    (tmp_path / "config.yaml").write_text(yaml.safe_dump(ava_config(fixture)))
    snakemake(tmp_path, "all")
    res = tmp_path / "results"
    from jmrn.store import PotionStore

    manifest = pd.read_csv(res / "ava" / "manifest.csv", keep_default_na=False)
    store = PotionStore(res / "ava" / "potion.zarr")
    assert store.shape == (18, 6, 24, 16) and len(store) == (manifest["status"] == "ok").sum()
    maps = store.load(store.video_ids)
    assert maps[:, :, :3].sum() > 0 and maps[:, :, 3:].sum() > 0  # person and context channels
    # frame-mAP of the exported test logits, by hand: rank every proposal per class
    logits = pd.read_csv(res / "ava" / "split1" / "jmrn" / "seed0" / "logits.csv", keep_default_na=False)
    test = logits[logits["subset"] == "test"].merge(manifest, on="video_id")
    classes = list(ava_demo.ACTIONS.values())
    det = pd.concat([pd.DataFrame({"video": test["source"], "timestamp": test["timestamp"],
                                   **{c: test[c] for c in ("x1", "y1", "x2", "y2")},
                                   "class": k, "score": test[name]})
                     for k, name in enumerate(classes)])
    truth = pd.read_csv(res / "ava" / "ground_truth.csv", keep_default_na=False)
    expected = frame_map(det, truth[truth["subset"] == "test"], len(classes))
    metrics = json.loads((res / "ava" / "split1" / "jmrn" / "seed0" / "metrics.json").read_text())
    assert metrics["frame_mAP"] == pytest.approx(expected)
    fusion = json.loads((res / "ava" / "split1" / "fusion" / "potion+jmrn" / "seed0" / "metrics.json").read_text())
    assert all("frame_mAP" in row for row in fusion["test"].values())
    # the RGB detector's per-box scores (AVA result layout) fused on held-out (val) boxes
    rgb = json.loads((res / "ava" / "split1" / "fusion" / "jmrn+rgb" / "seed0" / "metrics.json").read_text())
    assert rgb["fit"]["subset"] == "val" and rgb["test"]["rgb"]["frame_mAP"] > 0.3
    summary = (res.parent / "results" / "tables" / "ava_summary.md").read_text()
    assert "frame-mAP@0.5" in summary
    assert "13.1" in (res / "tables" / "ava_ablation.md").read_text()  # beside PoTion
    assert "28.4" in (res / "tables" / "ava_fusion.md").read_text()
