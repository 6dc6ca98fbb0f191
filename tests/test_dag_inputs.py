"""Files the pipeline reads from outside the DAG are followed: rewriting pose files reruns the pose
jobs, and a dataset folder the DAG cannot stat cleanly is a recorded video, not a traceback."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from test_pipeline import snakemake, tiny_config
from test_pose_files import write_openpose

from jmrn.dag import source_digest
from jmrn.datasets.manifest import build_manifest, read_manifest
from jmrn.pose.pose_files import BODY25


def planned(work: Path, *targets: str) -> str:
    proc = snakemake(work, "-n", *targets)
    return proc.stdout + proc.stderr


def openpose_run(tiny_demo: Path, work: Path) -> Path:
    """A copy of the tiny demo's videos with OpenPose files for each, configured as a dataset."""
    videos = work / "videos"
    shutil.copytree(tiny_demo / "videos", videos)
    build_manifest({"name": "d", "adapter": "folder", "video_root": str(videos), "splits": [1]},
                   work / "m.csv")
    root = work / "openpose"
    for row in read_manifest(work / "m.csv").to_dict("records"):
        write_openpose(root / row["video_id"], "frame", BODY25, int(row["frames"]))
    cfg = tiny_config(work)
    cfg["dataset"] = {"name": "d", "adapter": "folder", "video_root": str(videos), "splits": [1]}
    cfg["pose"].update(backend="openpose", shards=1, options={"openpose": {"root": str(root)}})
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    return root


@pytest.mark.slow
def test_rewritten_openpose_files_rerun_the_pose_job(tiny_demo, tmp_path):
    root = openpose_run(tiny_demo, tmp_path)
    shard = "results/d/heatmaps/shard000.zarr"
    snakemake(tmp_path, shard)
    assert "Nothing to be done" in planned(tmp_path, shard)
    for file in sorted(root.rglob("*.json"))[:3]:  # same names, new content
        file.write_text(file.read_text().replace("10.0", "12.0"))
    assert "rule pose:" in planned(tmp_path, shard)


def test_pose_files_digest_follows_the_backends_root_and_checkpoint(tmp_path):
    from jmrn.dag import pose_files_digest

    (tmp_path / "op" / "v").mkdir(parents=True)
    (tmp_path / "op" / "v" / "a_000000000000_keypoints.json").write_text("{}")
    pose = {"backend": "openpose", "options": {"openpose": {"root": str(tmp_path / "op")},
                                                "openpifpaf": {"checkpoint": str(tmp_path / "x.pt")}}}
    first = pose_files_digest(pose)
    (tmp_path / "x.pt").write_bytes(b"other backend's file")  # not this backend's: no change
    assert pose_files_digest(pose) == first
    (tmp_path / "op" / "v" / "a_000000000000_keypoints.json").write_text('{"people": []}')
    assert pose_files_digest(pose) != first
    pifpaf = {"backend": "openpifpaf", "options": {"openpifpaf": {"checkpoint": str(tmp_path / "x.pt")}}}
    before = pose_files_digest(pifpaf)
    (tmp_path / "x.pt").write_bytes(b"a replaced checkpoint")
    assert pose_files_digest(pifpaf) != before


def test_dangling_symlink_under_the_videos_is_recorded_not_a_dag_error(tiny_demo, tmp_path):
    videos = tmp_path / "videos"
    shutil.copytree(tiny_demo / "videos", videos)
    target = next(videos.rglob("*.avi"))
    os.symlink(tmp_path / "gone.avi", target.parent / "link to nothing.avi")
    source_digest({"video_root": str(videos)})  # no FileNotFoundError while the DAG is built
    build_manifest({"name": "d", "adapter": "folder", "video_root": str(videos), "splits": [1]},
                   tmp_path / "m.csv")
    manifest = read_manifest(tmp_path / "m.csv")
    row = manifest[manifest["path"].str.endswith("link to nothing.avi")]
    assert len(row) == 1 and row["status"].iloc[0] != "ok"


def test_missing_or_unlistable_dataset_folders(tmp_path, monkeypatch):
    """A folder that does not exist (yet) is absent from the digest, so a dry run can plan; one
    that exists but cannot be listed is an error naming it, never an empty folder."""
    assert source_digest({"video_root": str(tmp_path / "nothing")}) == \
        source_digest({"video_root": str(tmp_path / "nothing")})
    (tmp_path / "videos" / "a").mkdir(parents=True)

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "scandir", refuse)
    with pytest.raises(OSError, match="cannot list .*videos"):
        source_digest({"video_root": str(tmp_path / "videos")})
