import logging
import shutil

import pandas as pd
import pytest

from jmrn.datasets.manifest import build_manifest, read_manifest, shard_of, split_subset
from jmrn.datasets.report import DatasetError

SPLITS = [1, 2, 3]


def dataset_cfg(root):
    return {"name": "t", "adapter": "hmdb51", "video_root": str(root / "videos"),
            "split_dir": str(root / "splits"), "splits": SPLITS}


def copy_demo(tiny_demo, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(tiny_demo, root)
    return root


def test_manifest_of_the_demo(tiny_demo, tmp_path):
    m = build_manifest(dataset_cfg(tiny_demo), tmp_path / "manifest.csv")
    assert list(m.columns) == ["video_id", "path", "label", "label_name", "split1", "split2",
                               "split3", "frames", "fps", "width", "height", "status", "group"]
    assert len(m) == 24 and (m["status"] == "ok").all()
    assert m["label"].nunique() == 4 and (m["width"] == 320).all() and (m["fps"] == 25).all()
    back = read_manifest(tmp_path / "manifest.csv")
    pd.testing.assert_frame_equal(back, m, check_dtype=False)
    assert "Bob's home video_walk_00" in set(back["video_id"])  # odd names survive the CSV
    for k in SPLITS:
        train, test = split_subset(back, k, "train"), split_subset(back, k, "test")
        assert len(train) and len(test) and not set(train["video_id"]) & set(test["video_id"])


def test_problems_are_recorded_not_fatal(tiny_demo, tmp_path, caplog):
    root = copy_demo(tiny_demo, tmp_path)
    victim = sorted((root / "videos" / "walk").iterdir())[0]
    victim.unlink()  # listed in split files but missing
    (root / "videos" / "walk" / "corrupt.avi").write_bytes(b"\x00garbage" * 10)
    with open(root / "splits" / "walk_test_split1.txt", "a", encoding="utf-8") as fh:
        fh.write("corrupt.avi 1\nthis line is bad\n")
    (root / "splits" / "fly_test_split1.txt").write_text("x.avi 1\n")
    with caplog.at_level(logging.WARNING):
        m = build_manifest(dataset_cfg(root), tmp_path / "m.csv")
    text = caplog.text
    assert "listed video missing (kept as 'missing file'): 1" in text  # once, not per split file
    assert "bad split line (skipped): 1" in text and "this line is bad" in text
    assert "split file of an unknown class (skipped): 1" in text and "fly_test_split1.txt" in text
    corrupt = m[m["video_id"] == "corrupt"].iloc[0]
    assert corrupt["status"] != "ok" and corrupt["split1"] == "train"
    missing = m[m["video_id"] == victim.stem].iloc[0]  # recorded, not dropped
    assert missing["status"] == "missing file" and missing["label_name"] == "walk"
    assert "video in no split" not in text
    with pytest.raises(DatasetError, match=r"^dataset problems .*unknown class.*bad split line.*listed video missing"):
        build_manifest({**dataset_cfg(root), "on_problem": "fail"}, tmp_path / "n.csv")
    assert not (tmp_path / "n.csv").exists()


def test_missing_folders_give_one_line_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"folder .*videos does not exist \(config dataset.video_root\)"):
        build_manifest(dataset_cfg(tmp_path), tmp_path / "m.csv")


def test_unknown_adapter():
    with pytest.raises(ValueError, match="unknown dataset adapter"):
        build_manifest({"adapter": "nope", "splits": [1]}, "x.csv")


def test_shards_are_stable_and_spread():
    ids = [f"video {i}" for i in range(400)]
    shards = [shard_of(v, 8) for v in ids]
    assert shards == [shard_of(v, 8) for v in ids]
    assert min(pd.Series(shards).value_counts()) > 25


def test_pose_stage_records_a_video_that_breaks_after_the_manifest(tiny_demo, tmp_path):
    from jmrn.pose.extract import extract_shard
    from jmrn.store import HeatmapShard

    root = copy_demo(tiny_demo, tmp_path)
    build_manifest(dataset_cfg(root), tmp_path / "m.csv")
    victim = sorted((root / "videos" / "jump").iterdir())[0]
    victim.write_bytes(b"\x00" * 100)  # probed fine, unreadable when the pose job runs
    pose = {"backend": "markers", "height": 8, "width": 11, "on_bad_video": "skip"}
    stats = extract_shard(tmp_path / "m.csv", 0, 1, pose, tmp_path / "s.zarr")
    shard = HeatmapShard(tmp_path / "s.zarr")
    assert stats == {"videos": 23, "frames": stats["frames"], "failed": 1, "warnings": 0}
    assert shard.failed[0]["video_id"] == victim.stem and "VideoError" in shard.failed[0]["reason"]
    with pytest.raises(DatasetError, match="pose extraction failed for .*jump"):
        extract_shard(tmp_path / "m.csv", 0, 1, {**pose, "on_bad_video": "fail"}, tmp_path / "t.zarr")
    assert not (tmp_path / "t.zarr").exists()  # nothing half-written left behind
