"""Faults in other tools' pose files (issue #29): each bad file becomes a recorded problem of its
video (failed and skipped, or kept with a warning), never a crashed shard, a poisoned frame or
a path outside ``root``; storage errors stay errors that name the file; memory stays bounded
however many people a frame holds."""
from __future__ import annotations

import errno
import json
import pathlib
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from jmrn.pose.base import make_backend, to_uint8
from jmrn.pose.extract import extract_shard
from jmrn.pose.keypoints import convert_layout, render_heatmaps
from jmrn.pose.pose_files import BODY25, HALPE26
from jmrn.store import HeatmapShard

H, W = 24, 32  # output heatmaps
SRC = (240, 320)  # source frame (h, w)


def person(k: int = 0, conf: float = 0.8) -> list[float]:
    """BODY_25 keypoints of one person: joints spread over the frame, shifted by ``k``."""
    return [v for i in range(25) for v in (20.0 + 11 * i + 3 * k, 30.0 + 7 * i + k, conf)]


def openpose_video(folder: Path, frames: list, name: str = "v") -> None:
    """One file per frame; a frame is a list of people (keypoint lists) or raw file text."""
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        text = frame if isinstance(frame, str) else json.dumps(
            {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": p} for p in frame]})
        (folder / f"{name}_{t:012d}_keypoints.json").write_text(text)


def heatmap_video(folder: Path, frames: int, fmt: str = "float", channels: int = 26) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(frames):
        maps = np.zeros((channels, 46, 61), np.float32)
        maps[:, 5 + t, 7] = 1.0
        path = folder / f"v_{t:012d}_pose_heatmaps.{fmt}"
        if fmt == "png":
            cv2.imwrite(str(path), np.round(maps.transpose(1, 0, 2).reshape(46, -1) * 255).astype(np.uint8))
        else:
            np.concatenate([[3, *maps.shape], maps.ravel()]).astype(np.float32).tofile(path)


def run(tmp_path: Path, backend: str, videos: dict[str, int], **options) -> HeatmapShard:
    """extract_shard over a manifest of ``videos`` (id -> frame count) with the backend's files
    under tmp_path/root."""
    rows = [{"video_id": v, "path": f"videos/{v}.mp4", "frames": n, "fps": 25.0, "width": SRC[1],
             "height": SRC[0], "status": "ok"} for v, n in videos.items()]
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    pose = {"backend": backend, "height": H, "width": W, "on_bad_video": "skip",
            "options": {backend: {"root": str(tmp_path / "root"), **options}}}
    extract_shard(tmp_path / "manifest.csv", 0, 1, pose, tmp_path / "h.zarr")
    return HeatmapShard(tmp_path / "h.zarr")


def reasons(entries: list[dict[str, str]]) -> dict[str, str]:
    return {e["video_id"]: e["reason"] for e in entries}


# --- fault 6: non-finite keypoints, folders with fewer frames than the video ---------------------

def test_nan_joints_of_one_person_leave_the_others_intact(tmp_path):
    bad, clean = person(0), person(0)
    for j in range(5):  # x of joints 0..4 NaN, joint 5's confidence infinite
        bad[3 * j] = float("nan")
        clean[3 * j:3 * j + 3] = [0.0, 0.0, 0.0]
    bad[3 * 5 + 2] = float("inf")
    clean[15:18] = [0.0, 0.0, 0.0]
    other = person(1, 0.6)  # a second person next to the first: its joints must survive
    openpose_video(tmp_path / "root" / "nan", [[bad, other], [other]])
    openpose_video(tmp_path / "root" / "clean", [[clean, other], [other]])
    shard = run(tmp_path, "openpose", {"nan": 2, "clean": 2})
    maps = shard.read("nan")
    assert maps.max() > 0 and np.array_equal(maps, shard.read("clean"))
    assert "6 joints with non-finite values dropped" in reasons(shard.warnings)["nan"]


def test_openpose_folder_with_fewer_files_than_frames_is_recorded_short(tmp_path):
    openpose_video(tmp_path / "root" / "few", [[person()]] * 3)
    openpose_video(tmp_path / "root" / "all", [[person()]] * 40)
    heatmap_video(tmp_path / "hm" / "few", 3)
    shard = run(tmp_path, "openpose", {"few": 40, "all": 40})
    assert len(shard.read("few")) == 3 and len(shard.read("all")) == 40
    assert reasons(shard.warnings) == {"few": "short: 3 of 40 frames have OpenPose files"}
    (tmp_path / "root").rename(tmp_path / "op")
    (tmp_path / "hm").rename(tmp_path / "root")
    shard = run(tmp_path, "openpose_heatmaps", {"few": 40})
    assert reasons(shard.warnings) == {"few": "short: 3 of 40 frames have OpenPose heatmap files"}


# --- fault 12: malformed files and escaping ids fail their video, not the shard ------------------

OPENPOSE_BAD = {
    "list": ("[]", "not an OpenPose keypoints file"),
    "person_is_1": ('{"people": [1]}', "person 0 is not an object"),
    "people_null": ('{"people": null}', "not an OpenPose keypoints file"),
    "string_value": ('{"people": [{"pose_keypoints_2d": ["1", 2, 3]}]}', "not a list of numbers"),
    "bool_value": ('{"people": [{"pose_keypoints_2d": [true, 2, 3]}]}', "not a list of numbers"),
    "huge_int": ('{"people": [{"pose_keypoints_2d": [1' + "0" * 400 + ', 2, 3]}]}', "not a list of numbers"),
    "not_utf8": (b'{"people": [\xff]}'.decode("latin-1"), "not JSON"),
}


@pytest.mark.parametrize("case", OPENPOSE_BAD, ids=list(OPENPOSE_BAD))
def test_bad_openpose_file_fails_its_video(tmp_path, case):
    text, reason = OPENPOSE_BAD[case]
    openpose_video(tmp_path / "root" / "bad", [[person()]])
    (tmp_path / "root" / "bad" / "v_000000000001_keypoints.json").write_bytes(text.encode("latin-1"))
    openpose_video(tmp_path / "root" / "good", [[person()]] * 2)
    shard = run(tmp_path, "openpose", {"bad": 2, "good": 2})
    assert shard.video_ids == ["good"]
    assert reason in reasons(shard.failed)["bad"] and "v_000000000001_keypoints.json" in reasons(shard.failed)["bad"]


ALPHAPOSE_BAD = {
    "no_image_id": ([{"keypoints": [1.0, 2.0, 0.5] * 17}], "detection 0 has no image_id"),
    "not_an_object": ([{"image_id": "0.jpg", "keypoints": [1.0, 2.0, 0.5] * 17}, 5], "detection 1 is not an object"),
    "no_keypoints": ([{"image_id": "0.jpg"}], "detection 0 has no keypoints"),
    "keypoints_null": ([{"image_id": "0.jpg", "keypoints": None}], "not a list of numbers"),
    "image_id_list": ([{"image_id": [0], "keypoints": [1.0, 2.0, 0.5] * 17}], "image_id"),
    "dict": ({"0.jpg": []}, "expected a list of detections"),
}


@pytest.mark.parametrize("case", ALPHAPOSE_BAD, ids=list(ALPHAPOSE_BAD))
def test_bad_alphapose_file_fails_its_video(tmp_path, case):
    content, reason = ALPHAPOSE_BAD[case]
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "bad.json").write_text(json.dumps(content))
    (tmp_path / "root" / "good.json").write_text(json.dumps(
        [{"image_id": "1.jpg", "keypoints": [10.0, 20.0, 0.9] * 26}]))
    shard = run(tmp_path, "alphapose", {"bad": 2, "good": 2})
    assert shard.video_ids == ["good"] and reason in reasons(shard.failed)["bad"]


def float_file(path: Path, header: list[float], values: np.ndarray) -> None:
    np.concatenate([header, values.ravel()]).astype(np.float32).tofile(path)


FLOAT_BAD = {
    "inf_ndim": (lambda: ([np.inf, 26, 46, 61], np.zeros(26 * 46 * 61)), "not an OpenPose float heatmap file"),
    "inf_dim": (lambda: ([3, 26, np.inf, 61], np.zeros(26 * 46 * 61)), "not an OpenPose float heatmap file"),
    "nan_dim": (lambda: ([3, 26, np.nan, 61], np.zeros(26 * 46 * 61)), "not an OpenPose float heatmap file"),
    "fractional_dim": (lambda: ([3, 26.000002, 46, 61], np.zeros(26 * 46 * 61)), "not an OpenPose float heatmap file"),
    "few_channels": (lambda: ([3, 4, 46, 61], np.zeros(4 * 46 * 61)), "4 channels"),
    "nan_value": (lambda: ([3, 26, 46, 61], np.full(26 * 46 * 61, np.nan)), "non-finite"),
    "empty": (lambda: ([], np.zeros(0)), "not an OpenPose float heatmap file"),
}


@pytest.mark.parametrize("case", FLOAT_BAD, ids=list(FLOAT_BAD))
def test_bad_float_heatmap_fails_its_video(tmp_path, case):
    make, reason = FLOAT_BAD[case]
    heatmap_video(tmp_path / "root" / "bad", 2)
    float_file(tmp_path / "root" / "bad" / "v_000000000001_pose_heatmaps.float", *make())
    heatmap_video(tmp_path / "root" / "good", 2)
    shard = run(tmp_path, "openpose_heatmaps", {"bad": 2, "good": 2})
    assert shard.video_ids == ["good"] and reason in reasons(shard.failed)["bad"]


def test_png_heatmap_with_too_few_channels_fails_its_video(tmp_path):
    heatmap_video(tmp_path / "root" / "bad", 2, "png", channels=7)
    shard = run(tmp_path, "openpose_heatmaps", {"bad": 2}, channels=7)
    assert "7 channels" in reasons(shard.failed)["bad"]


@pytest.mark.parametrize("backend", ["openpose", "alphapose", "openpose_heatmaps"])
@pytest.mark.parametrize("vid", ["../outside", "sub/../../outside", "/abs/outside", ".", ""])
def test_video_ids_that_leave_root_are_refused(tmp_path, backend, vid):
    outside = tmp_path / "outside" if not vid.startswith("/") else Path(vid)
    if not vid.startswith("/"):  # real files where the id points, so that reading them would work
        if backend == "openpose":
            openpose_video(outside, [[person()]] * 2)
        elif backend == "alphapose":
            outside.mkdir()
            (outside / "alphapose-results.json").write_text(json.dumps(
                [{"image_id": "0.jpg", "keypoints": [1.0, 2.0, 0.5] * 17}]))
        else:
            heatmap_video(outside, 2)
    (tmp_path / "root").mkdir()
    shard = run(tmp_path, backend, {vid: 2})
    assert shard.video_ids == [] and "does not stay inside" in reasons(shard.failed)[vid]


@pytest.mark.parametrize("fmt", ["json", "png", "float"])
def test_storage_errors_name_the_file_and_fail_the_job(tmp_path, monkeypatch, fmt):
    if fmt == "json":
        backend = "openpose"
        openpose_video(tmp_path / "root" / "v", [[person()]] * 2)
        victim = "v_000000000001_keypoints.json"
    else:
        backend = "openpose_heatmaps"
        heatmap_video(tmp_path / "root" / "v", 2, fmt, channels=26)
        victim = f"v_000000000001_pose_heatmaps.{fmt}"
    real = pathlib.Path.read_bytes

    def read_bytes(self):
        if self.name == victim:
            raise OSError(errno.EIO, "Input/output error", str(self))
        return real(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    options = {"channels": 26} if fmt == "png" else {}
    with pytest.raises(OSError, match=victim):
        run(tmp_path, backend, {"v": 2}, **options)
    assert not (tmp_path / "h.zarr").exists()  # no shard committed


# --- fault 16: memory per record is bounded however many people a frame holds ---------------------

def test_many_people_render_in_bounded_memory_as_the_max_over_persons():
    rng = np.random.default_rng(0)
    m = 2000
    kp = rng.uniform(0, 320, (m, 1, 18, 2)).astype(np.float32)
    score = rng.uniform(0, 1, (m, 1, 18)).astype(np.float32)
    tracemalloc.start()
    maps = render_heatmaps(kp, score, SRC, (32, 43), 0.8)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20e6, f"{peak / 1e6:.0f} MB for one frame of {m} people"
    expected = np.max([render_heatmaps(kp[i:i + 1], score[i:i + 1], SRC, (32, 43), 0.8) for i in range(0, m, 97)], axis=0)
    sub = render_heatmaps(kp[::97], score[::97], SRC, (32, 43), 0.8)
    np.testing.assert_array_equal(sub, expected)
    assert maps.shape == (1, 18, 32, 43) and (maps >= sub).all()


def test_a_frame_of_2000_people_keeps_the_most_confident_and_records_the_cap(tmp_path):
    m = 2000
    crowd = [person(k % 50, 0.1 + 0.8 * k / m) for k in range(m)]
    openpose_video(tmp_path / "root" / "crowd", [crowd, [person()]])
    backend = make_backend("openpose", H, W, {"root": str(tmp_path / "root"), "max_people": 16})
    row = {"video_id": "crowd", "frames": 2, "height": SRC[0], "width": SRC[1]}
    tracemalloc.start()
    maps = np.concatenate(list(backend.heatmaps(row)))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 30e6, f"{peak / 1e6:.0f} MB"
    shard = run(tmp_path, "openpose", {"crowd": 2}, max_people=16)
    np.testing.assert_array_equal(shard.read("crowd"), maps)
    assert "more than 16 people in 1 frame" in reasons(shard.warnings)["crowd"]
    top = np.asarray(crowd[-16:], np.float32).reshape(16, 1, 25, 3)
    kp, score = convert_layout(top[..., :2], top[..., 2], BODY25)
    expected = to_uint8(render_heatmaps(kp, score, SRC, (H, W), 0.6))
    np.testing.assert_array_equal(shard.read("crowd")[:1], expected)


def test_alphapose_crowd_is_capped_too(tmp_path):
    (tmp_path / "root").mkdir()
    dets = [{"image_id": "0.jpg", "keypoints": [float(k), 5.0, 0.5 + k / 1000] * 26} for k in range(300)]
    (tmp_path / "root" / "c.json").write_text(json.dumps(dets))
    shard = run(tmp_path, "alphapose", {"c": 1})
    assert "more than 64 people in 1 frame" in reasons(shard.warnings)["c"]
    assert len(HALPE26) == 26
