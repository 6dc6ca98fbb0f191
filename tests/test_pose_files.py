"""OpenPose and AlphaPose outputs in their published formats: layouts joint by joint, gaps and
several people, and manifest -> pose -> PoTion on the tiny demo's videos."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jmrn.aggregate import build_potion_store
from jmrn.datasets.manifest import build_manifest, read_manifest
from jmrn.pose.base import make_backend
from jmrn.pose.keypoints import OPENPOSE18, convert_layout
from jmrn.pose.pose_files import BODY25, HALPE26, read_alphapose, read_openpose
from jmrn.pose.skeleton import COCO17, JOINTS
from jmrn.pose.extract import extract_shard
from jmrn.store import HeatmapShard, PotionStore


def joint_positions(names, t=0, person=0):
    """A distinct (x, y, confidence) per joint name, frame and person: a joint is found by value."""
    return [(10.0 + 7 * i + t + 100 * person, 20.0 + 3 * i + person, 0.5 + i / 100) for i, _ in enumerate(names)]


def write_openpose(folder: Path, video: str, names, frames: int, people=lambda t: 1):
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(frames):
        persons = [{"person_id": [-1], "pose_keypoints_2d": [v for p in joint_positions(names, t, k) for v in p],
                    "face_keypoints_2d": [], "hand_left_keypoints_2d": []} for k in range(people(t))]
        (folder / f"{video}_{t:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": persons}))


def write_alphapose(path: Path, names, frames_with_people: dict[int, int]):
    path.parent.mkdir(parents=True, exist_ok=True)
    dets = [{"image_id": f"{t}.jpg", "category_id": 1, "score": 2.5, "idx": [k],
             "keypoints": [v for p in joint_positions(names, t, k) for v in p]}
            for t, n in frames_with_people.items() for k in range(n)]
    path.write_text(json.dumps(dets))


@pytest.mark.parametrize("names", [BODY25, OPENPOSE18], ids=["body25", "coco18"])
def test_openpose_layouts_joint_by_joint(tmp_path, names):
    write_openpose(tmp_path / "clip", "clip", names, 3, people=lambda t: [1, 0, 2][t])
    kp, score, layout = read_openpose(tmp_path / "clip")
    assert layout == names and kp.shape == (2, 3, len(names), 2)
    ours, conf = convert_layout(kp, score, layout)
    for j, name in enumerate(JOINTS):
        x, y, c = joint_positions(names, 2, 1)[names.index(name)]  # frame 2, second person
        assert tuple(ours[1, 2, j]) == (x, y) and conf[1, 2, j] == pytest.approx(c), name
    assert (conf[:, 1] == 0).all()  # frame 1 has nobody: a frame all the same
    assert (conf[1, 0] == 0).all()  # one person in frame 0


@pytest.mark.parametrize("names", [COCO17, HALPE26], ids=["coco17", "halpe26"])
def test_alphapose_layouts_joint_by_joint(tmp_path, names):
    write_alphapose(tmp_path / "a.json", names, {0: 2, 3: 1})
    kp, score, layout = read_alphapose(tmp_path / "a.json", 5)
    assert layout == names and kp.shape == (2, 5, len(names), 2)
    ours, conf = convert_layout(kp, score, layout)
    for j, name in enumerate(JOINTS):
        if name == "neck" and names == COCO17:  # no neck in COCO-17: the shoulders' mid-point
            ls, rs = (joint_positions(names, 3)[names.index(s)] for s in ("left_shoulder", "right_shoulder"))
            assert tuple(ours[0, 3, j]) == ((ls[0] + rs[0]) / 2, (ls[1] + rs[1]) / 2)
            continue
        x, y, c = joint_positions(names, 3)[names.index(name)]
        assert tuple(ours[0, 3, j]) == (x, y) and conf[0, 3, j] == pytest.approx(c), name
    assert (conf[:, [1, 2, 4]] == 0).all()  # frames without a detection are frames without people
    with pytest.raises(ValueError, match="frame 3 of a 3-frame video"):
        read_alphapose(tmp_path / "a.json", 3)


def test_bad_files_are_content_errors(tmp_path):
    write_openpose(tmp_path / "v", "v", BODY25, 3)
    (tmp_path / "v" / "v_000000000001_keypoints.json").unlink()
    with pytest.raises(ValueError, match="not consecutive"):
        read_openpose(tmp_path / "v")
    (tmp_path / "w.json").write_text(json.dumps([{"image_id": "0.jpg", "keypoints": [1, 2, 3] * 20}]))
    with pytest.raises(ValueError, match="20 joints"):
        read_alphapose(tmp_path / "w.json", 2)
    backend = make_backend("openpose", 8, 8, {"root": str(tmp_path)})
    with pytest.raises(ValueError, match="no OpenPose folder"):
        next(backend.heatmaps({"video_id": "absent", "width": 8, "height": 8}))


@pytest.mark.parametrize("tool", ["openpose", "alphapose"])
def test_pose_files_run_manifest_to_potion(tiny_demo: Path, tmp_path, tool):
    dataset = {"name": "d", "adapter": "folder", "video_root": str(tiny_demo / "videos"), "splits": [1]}
    build_manifest(dataset, tmp_path / "manifest.csv")
    manifest = read_manifest(tmp_path / "manifest.csv")
    root = tmp_path / tool
    for row in manifest.to_dict("records"):
        if tool == "openpose":
            write_openpose(root / row["video_id"], "frame", BODY25, int(row["frames"]))
        else:
            write_alphapose(root / f"{row['video_id']}.json", HALPE26, {t: 1 for t in range(0, int(row["frames"]), 2)})
    missing = manifest["video_id"].iloc[0]  # one video without pose files: recorded, skipped
    if tool == "openpose":
        for p in (root / missing).iterdir():
            p.unlink()
    else:
        (root / f"{missing}.json").unlink()
    pose = {"backend": tool, "height": 24, "width": 32, "on_bad_video": "skip",
            "options": {tool: {"root": str(root), "sigma": 0.8}}}
    extract_shard(tmp_path / "manifest.csv", 0, 1, pose, tmp_path / "h.zarr")
    shard = HeatmapShard(tmp_path / "h.zarr")
    assert [f["video_id"] for f in shard.failed] == [missing] and len(shard) == len(manifest) - 1
    row = manifest.iloc[1]
    maps = shard.read(row["video_id"])
    assert len(maps) == int(row["frames"])
    # the left wrist's heatmap peaks where its keypoint lands in the letterboxed output
    names = BODY25 if tool == "openpose" else HALPE26
    x, y, _ = joint_positions(names, 0)[names.index("left_wrist")]
    scale = min(24 / int(row["height"]), 32 / int(row["width"]))
    dx, dy = (32 - int(row["width"]) * scale) / 2, (24 - int(row["height"]) * scale) / 2
    peak = np.unravel_index(maps[0, JOINTS.index("left_wrist")].argmax(), (24, 32))
    assert abs(peak[0] - (y * scale + dy)) <= 1 and abs(peak[1] - (x * scale + dx)) <= 1
    build_potion_store(tmp_path / "manifest.csv", [tmp_path / "h.zarr"], {"channels": 3},
                       tmp_path / "p.zarr", tmp_path / "failed.csv")
    store = PotionStore(tmp_path / "p.zarr")
    assert len(store) == len(manifest) - 1 and store.shape == (18, 3, 24, 32)
    assert missing in (tmp_path / "failed.csv").read_text()


def openpose_heatmap_frame(parts, channels: int, h: int = 46, w: int = 82) -> np.ndarray:
    """C x h x w maps of a 320 x 240 frame at network size h x w (content 46 x 61, padded at
    the right with junk that must not leak): a blob for each part at a position of its own."""
    maps = np.zeros((channels, h, w), np.float32)
    maps[:, :, 61:] = 0.9  # OpenPose's padding
    for i in range(len(parts)):
        maps[i, 5 + i, 3 + 2 * i] = 1.0
    maps[len(parts):, 10:20, 10:20] = 0.7  # background and PAF channels
    return maps


@pytest.mark.parametrize("fmt", ["png", "float"])
def test_openpose_heatmaps_are_resampled_into_our_frame(tmp_path, fmt):
    import cv2

    channels = len(BODY25) + 1 + 52 if fmt == "png" else len(BODY25) + 1
    folder = tmp_path / "v"
    folder.mkdir()
    for t in range(3):
        maps = openpose_heatmap_frame(BODY25, channels)
        name = folder / f"v_{t:012d}_pose_heatmaps.{fmt}"
        if fmt == "png":
            cv2.imwrite(str(name), np.round(maps.transpose(1, 0, 2).reshape(46, -1) * 255).astype(np.uint8))
        else:
            np.concatenate([[3, *maps.shape], maps.ravel()]).astype(np.float32).tofile(name)
    options = {"root": str(tmp_path), "layout": "body25", **({"channels": channels} if fmt == "png" else {})}
    backend = make_backend("openpose_heatmaps", 24, 32, options)
    maps = np.concatenate(list(backend.heatmaps({"video_id": "v", "width": 320, "height": 240})))
    assert maps.shape == (3, 18, 24, 32)
    scale = 46 / 240  # OpenPose's resize; ours is 0.1 (no letterbox offset at 4:3)
    for j, name in enumerate(JOINTS):
        if name not in BODY25:  # only the neck would be missing; BODY_25 has all 18
            continue
        i = BODY25.index(name)
        y, x = (5 + i + 0.5) / scale * 0.1, (3 + 2 * i + 0.5) / scale * 0.1
        peak = np.unravel_index(maps[0, j].argmax(), (24, 32))
        assert maps[0, j].max() > 0 and abs(peak[0] + 0.5 - y) <= 1 and abs(peak[1] + 0.5 - x) <= 1, name
    assert maps[:, :, :, 31].max() < 200  # the right padding did not leak into the last column
    video = {"video_id": "v", "width": 320, "height": 240}
    if fmt == "png":  # a wrong channel count is refused, not misread
        with pytest.raises(ValueError, match="not 7 heatmaps side by side"):
            next(make_backend("openpose_heatmaps", 24, 32, {**options, "channels": 7}).heatmaps(video))
    else:  # a missing frame file is refused, not skipped
        (folder / "v_000000000001_pose_heatmaps.float").unlink()
        with pytest.raises(ValueError, match="not consecutive"):
            next(backend.heatmaps(video))
