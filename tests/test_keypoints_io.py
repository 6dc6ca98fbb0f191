"""Keypoints in and out: the converters to the 2D skeleton pickle (per-video files, UTD-MHAD's
.mat files, NTU RGB+D's .skeleton files), the export from heatmap shards, and the round trip
pickle -> keypoints backend -> heatmaps -> export -> pickle."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from jmrn.cli import main
from jmrn.datasets.manifest import build_manifest
from jmrn.datasets.skeleton import read_skeleton_file
from jmrn.keypoints_io import ntu, utd_mhad
from jmrn.keypoints_io.export import peaks, to_source
from jmrn.pose.base import letterbox_geometry
from jmrn.pose.extract import extract_shard
from jmrn.pose.keypoints import render_heatmaps
from jmrn.pose.skeleton import COCO17
from jmrn.safe_pickle import safe_load
from jmrn.store import HeatmapShard

LABELS = Path(__file__).resolve().parents[2] / "shared" / "data" / "utd_mhad_2d.labels.txt"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    read_skeleton_file.cache_clear()
    rc = main(["keypoints", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def pose_stage(tmp_path: Path, pkl: Path, labels: Path, split_map: dict, hw=(24, 32),
               layout: str = "coco17") -> Path:
    """results/<dataset>/ with manifest.csv and heatmaps/ from a pickle, as the DAG makes them."""
    read_skeleton_file.cache_clear()
    results = tmp_path / "results" / "set"
    dataset = {"adapter": "skeleton", "annotation": str(pkl), "label_names": str(labels),
               "split_map": split_map, "splits": [int(k) for k in split_map]}
    build_manifest(dataset, results / "manifest.csv")
    pose = {"backend": "keypoints", "height": hw[0], "width": hw[1], "on_bad_video": "skip",
            "options": {"keypoints": {"layout": layout}}}
    for s in range(2):
        extract_shard(results / "manifest.csv", s, 2, pose, results / "heatmaps" / f"shard{s:03d}.zarr")
    return results


# --- UTD-MHAD ---------------------------------------------------------------------------------

def utd_skeleton(t: int, seed: int) -> np.ndarray:
    """d_skel as the published files hold it: 20 x 3 x T, metres, a person about 2.5 m away."""
    rng = np.random.default_rng(seed)
    xyz = np.zeros((20, 3, t))
    xyz[:, 0] = rng.uniform(-0.4, 0.4, (20, 1)) + rng.normal(0, 0.02, (20, t))
    xyz[:, 1] = rng.uniform(-0.9, 0.6, (20, 1)) + rng.normal(0, 0.02, (20, t))
    xyz[:, 2] = rng.uniform(2.3, 2.7, (20, 1))
    return xyz


def write_utd(root: Path) -> dict[str, np.ndarray]:
    root.mkdir(parents=True)
    written = {}
    for a, s, t in [(1, 1, 1), (1, 2, 1), (2, 3, 2), (2, 4, 1), (27, 5, 4), (27, 8, 3)]:
        skel = utd_skeleton(8 + a % 5, seed=a * 10 + s)
        savemat(root / f"a{a}_s{s}_t{t}_skeleton.mat", {"d_skel": skel})
        written[f"a{a}_s{s}_t{t}"] = skel
    bad = utd_skeleton(5, 0)
    bad[3, 2, 2] = 0.0  # depth 0: cannot be projected
    savemat(root / "a3_s1_t1_skeleton.mat", {"d_skel": bad})
    nan = utd_skeleton(5, 1)
    nan[7, 0, 4] = np.nan
    savemat(root / "a3_s1_t2_skeleton.mat", {"d_skel": nan})
    savemat(root / "a4_s1_t1_skeleton.mat", {"skeleton": utd_skeleton(5, 2)})
    savemat(root / "a5_s1_t1_skeleton.mat", {"d_skel": np.zeros((25, 3, 4))})
    savemat(root / "a28_s1_t1_skeleton.mat", {"d_skel": utd_skeleton(5, 3)})
    (root / "a6_s1_t1_skeleton.mat").write_bytes(b"not a mat file")
    savemat(root / "notes.mat", {"x": 1})
    return written


def test_utd_mhad_projection_split_and_skips(tmp_path, capsys):
    written = write_utd(tmp_path / "Skeleton")
    out = tmp_path / "data" / "utd_mhad_2d.pkl"
    rc, printed, err = run_cli(capsys, "to-pickle", "utd-mhad", str(tmp_path / "Skeleton"), "--out", str(out))
    assert rc == 0, err
    assert "wrote" in printed and "6 videos" in printed and "27 classes" in printed
    skipped = {Path(line.split(": ")[1]).name: line for line in printed.splitlines()
               if line.startswith("skipped:")}
    assert set(skipped) == {"a3_s1_t1_skeleton.mat", "a3_s1_t2_skeleton.mat", "a4_s1_t1_skeleton.mat",
                            "a5_s1_t1_skeleton.mat", "a28_s1_t1_skeleton.mat", "a6_s1_t1_skeleton.mat",
                            "notes.mat"}
    assert "joint 4 of frame 3 cannot be projected" in skipped["a3_s1_t1_skeleton.mat"]
    assert "nan" in skipped["a3_s1_t2_skeleton.mat"] and "no variable d_skel" in skipped["a4_s1_t1_skeleton.mat"]
    data = safe_load(out)
    assert data["split"] == {"xsub_train": ["a1_s1_t1", "a27_s5_t4", "a2_s3_t2"],
                             "xsub_val": ["a1_s2_t1", "a27_s8_t3", "a2_s4_t1"]}
    ann = {a["frame_dir"]: a for a in data["annotations"]}
    a = ann["a2_s3_t2"]
    assert a["label"] == 1 and a["img_shape"] == (480, 640) and a["keypoint"].shape == (1, 10, 17, 2)
    skel = written["a2_s3_t2"]
    # Kinect's right wrist (joint 11) is COCO's right wrist: u = 320 + 571.26 X/Z, v = 240 - 571.26 Y/Z.
    x, y, z = skel[10, :, 4]
    np.testing.assert_allclose(a["keypoint"][0, 4, COCO17.index("right_wrist")],
                               [320 + 571.26 * x / z, 240 - 571.26 * y / z], rtol=1e-5)
    np.testing.assert_allclose(a["keypoint"][0, :, COCO17.index("nose")],
                               utd_mhad.project(skel[0].T), rtol=1e-5)  # the head
    assert (a["keypoint_score"][0, :, [1, 2, 3, 4]] == 0).all() and (a["keypoint_score"][0, :, 5:] == 1).all()
    names = (out.parent / "utd_mhad_2d.labels.txt").read_text().split()
    assert names == list(utd_mhad.ACTIONS)
    if LABELS.exists():
        assert names == LABELS.read_text().split()
    # The project reads it, the keypoints backend renders it.
    results = pose_stage(tmp_path, out, out.parent / "utd_mhad_2d.labels.txt",
                         {"1": {"train": "xsub_train", "test": "xsub_val"}})
    maps = HeatmapShard(results / "heatmaps" / "shard000.zarr")
    maps = maps or HeatmapShard(results / "heatmaps" / "shard001.zarr")
    assert maps.read(maps.video_ids[0]).max() > 200


# --- NTU RGB+D --------------------------------------------------------------------------------

def ntu_text(frames: list[list[tuple[str, np.ndarray, np.ndarray]]]) -> str:
    """A .skeleton file: per frame a list of (bodyID, 25 x 2 colour xy, 25 tracking states)."""
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body_id, xy, state in bodies:
            lines.append(f"{body_id} 0 1 2 1 2 0 0.01 -0.2 2")
            lines.append("25")
            for j in range(25):
                lines.append(f"0.1 0.2 3.1 250.5 200.25 {xy[j, 0]:.4f} {xy[j, 1]:.4f} "
                             f"0.9 0.1 0.2 0.3 {state[j]}")
    return "\n".join(lines) + "\n"


def test_ntu_skeleton_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    root = tmp_path / "nturgb+d_skeletons"
    root.mkdir()
    a = rng.uniform(100, 1800, (4, 25, 2))
    b = rng.uniform(100, 1000, (4, 25, 2))
    states = np.full(25, 2)
    states[3], states[7] = 1, 0
    body = "72057594037931101"
    frames = [[(body, a[0], states)], [], [(body, a[2], states), ("72057594037931102", b[2], states)],
              [(body, a[3], states), ("72057594037931103", b[3], states)]]
    (root / "S002C002P003R001A010.skeleton").write_text(ntu_text(frames))
    (root / "S001C001P001R002A001.skeleton").write_text(ntu_text([[(body, a[0], states)]] * 3))
    (root / "S001C003P002R001A060.skeleton").write_text(ntu_text([[(body, b[1], states)]] * 2))
    (root / "S001C001P001R001A002.skeleton").write_text(
        "\n".join(ntu_text(frames).splitlines()[:-3]))  # truncated
    (root / "S001C001P001R001A003.skeleton").write_text(ntu_text(frames).replace("0.9 ", "x ", 1))
    (root / "S001C001P001R001A004.skeleton").write_text("2\n0\n0\n")  # NTU's empty recordings
    (root / "readme.skeleton").write_text("1\n0\n")
    out = tmp_path / "ntu.pkl"
    rc, printed, err = run_cli(capsys, "to-pickle", "ntu", str(root), "--out", str(out))
    assert rc == 0, err
    assert "3 videos" in printed and "60 classes" in printed
    assert "skipped" in printed and "ends early" in printed and "'x', not a number" in printed
    assert "no body in any frame" in printed and "readme.skeleton: name is not" in printed
    assert "kept 2 of 3 bodies" in printed
    data = safe_load(out)
    assert data["split"]["xsub_train"] == ["S001C001P001R002A001", "S001C003P002R001A060"]
    assert data["split"]["xsub_val"] == ["S002C002P003R001A010"]
    assert data["split"]["xview_val"] == ["S001C001P001R002A001"]
    assert data["split"]["xset_train"] == ["S002C002P003R001A010"]
    ann = {x["frame_dir"]: x for x in data["annotations"]}["S002C002P003R001A010"]
    assert ann["label"] == 9 and ann["img_shape"] == (1080, 1920) and ann["keypoint"].shape == (2, 4, 17, 2)
    # colorX, colorY of Kinect's left elbow (joint 6) -> COCO's left elbow; frame 2 has nobody.
    np.testing.assert_allclose(ann["keypoint"][0, 2, COCO17.index("left_elbow")], a[2, 5], atol=1e-3)
    assert (ann["keypoint_score"][:, 1] == 0).all()
    assert ann["keypoint_score"][0, 0, COCO17.index("nose")] == 0.5  # head inferred
    assert ann["keypoint_score"][0, 0, COCO17.index("left_wrist")] == 1.0
    assert (ann["keypoint_score"][1, :2] == 0).all() and ann["keypoint_score"][1, 2, 5] == 1.0
    assert (out.with_name("ntu.labels.txt").read_text().split() ==
            [f"A{i:03d}" for i in range(1, 61)])
    assert ntu.splits(2, 1, 45) == {"xsub": "xsub_train", "xview": "xview_val", "xset": "xset_train"}


# --- per-video files --------------------------------------------------------------------------

def test_plain_files_npy_json_csv(tmp_path, capsys):
    rng = np.random.default_rng(1)
    root = tmp_path / "kp"
    for c in ("jump", "wave"):
        (root / c).mkdir(parents=True)
    v1 = rng.uniform(5, 150, (6, 17, 3)).astype(np.float32)
    np.save(root / "jump" / "v1.npy", v1)
    v2 = rng.uniform(5, 150, (2, 4, 17, 2))
    np.save(root / "jump" / "v2.npy", v2)
    v3 = rng.uniform(5, 150, (3, 17, 3)).round(2)
    (root / "wave" / "v3.json").write_text(json.dumps({"keypoints": v3.tolist(), "img_shape": [200, 300]}))
    (root / "wave" / "v4.json").write_text(json.dumps(v3[:, :, :2].tolist()))
    (root / "wave" / "v5.csv").write_text("frame,joint,x,y,score\n0,nose,10,20,0.5\n2,16,30.5,40,1\n")
    bad = v1.copy()
    bad[2, 3, 1] = np.inf
    np.save(root / "jump" / "inf.npy", bad)
    (root / "wave" / "ragged.json").write_text(json.dumps([[[1, 2]] * 17, [[1, 2]] * 16]))
    (root / "wave" / "nulls.json").write_text(json.dumps([[[1, None]] * 17]))
    (root / "wave" / "joints.npy").write_bytes(b"")
    np.save(root / "wave" / "wrong.npy", np.zeros((4, 18, 2)))
    (root / "wave" / "dup.csv").write_text("frame,joint,x,y\n0,1,1,1\n0,left_eye,2,2\n")
    (root / "wave" / "text.csv").write_text("frame,joint,x,y\n0,1,a,1\n")
    (root / "loose.npy").write_bytes(b"")
    out = tmp_path / "files.pkl"
    rc, printed, err = run_cli(capsys, "to-pickle", "files", str(root), "--out", str(out))
    assert rc == 0, err
    assert "5 videos" in printed and "2 classes" in printed
    for name, why in [("inf.npy", "non-finite coordinate inf at person 0, frame 2, joint 3"),
                      ("ragged.json", "not a regular array"), ("nulls.json", "must be numbers"),
                      ("wrong.npy", "18 joints, but the layout has 17"),
                      ("dup.csv", "more than one row"), ("text.csv", "column 'x' must hold finite numbers"),
                      ("loose.npy", "not in a class folder"), ("joints.npy", "")]:
        assert any(name in line and why in line for line in printed.splitlines() if
                   line.startswith("skipped:")), (name, printed)
    data = safe_load(out)
    ann = {a["frame_dir"]: a for a in data["annotations"]}
    np.testing.assert_array_equal(ann["v1"]["keypoint"][0], v1[..., :2])
    np.testing.assert_array_equal(ann["v1"]["keypoint_score"][0], v1[..., 2])
    assert ann["v2"]["keypoint"].shape == (2, 4, 17, 2) and (ann["v2"]["keypoint_score"] == 1).all()
    assert ann["v3"]["img_shape"] == (200, 300) and ann["v4"]["img_shape"] == ann["v1"]["img_shape"]
    inferred = ann["v1"]["img_shape"]
    assert inferred[0] > 140 and inferred[1] > 140
    v5 = ann["v5"]
    assert v5["keypoint"].shape == (1, 3, 17, 2) and v5["keypoint_score"][0, 0, 0] == 0.5
    assert v5["keypoint"][0, 2, 16].tolist() == [30.5, 40] and v5["keypoint_score"][0, 1].sum() == 0
    assert [a["label"] for a in data["annotations"]] == [0, 0, 1, 1, 1]
    assert sorted(data["split"]) == ["test", "train"]
    assert sorted(data["split"]["test"] + data["split"]["train"]) == ["v1", "v2", "v3", "v4", "v5"]


def test_plain_files_labels_csv_layout_and_normalised(tmp_path, capsys):
    root = tmp_path / "flat"
    root.mkdir()
    xy = np.random.default_rng(2).uniform(0.1, 0.9, (5, 18, 2))
    for i in range(4):
        np.save(root / f"clip{i}.npy", xy)
    np.save(root / "extra.npy", xy)
    (tmp_path / "labels.csv").write_text("video,label,split\nclip0,a,train\nclip1,a,test\n"
                                         "clip2,b,train\nclip3,b,test\nmissing,b,test\n")
    out = tmp_path / "o.pkl"
    argv = ["to-pickle", "files", str(root), "--out", str(out), "--labels", str(tmp_path / "labels.csv"),
            "--layout", "openpose18"]
    rc, _, err = run_cli(capsys, *argv)
    assert rc == 1 and "look normalised" in err and len(err.strip().splitlines()) == 1
    rc, printed, err = run_cli(capsys, *argv, "--img-shape", "100", "200", "--normalized")
    assert rc == 0, err
    assert "extra.npy: video 'extra' is not in" in printed and "'missing' has no keypoint file" in printed
    data = safe_load(out)
    assert data["split"] == {"test": ["clip1", "clip3"], "train": ["clip0", "clip2"]}
    a = data["annotations"][0]
    assert a["img_shape"] == (100, 200)
    # OpenPose-18's right wrist (index 4) lands on COCO's right wrist, scaled to pixels.
    np.testing.assert_allclose(a["keypoint"][0, :, COCO17.index("right_wrist")], xy[:, 4] * [200, 100],
                               rtol=1e-6)


def test_one_line_errors(tmp_path, capsys):
    rc, _, err = run_cli(capsys, "to-pickle", "ntu", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.pkl"))
    assert rc == 1 and err.startswith("error: folder") and len(err.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    rc, _, err = run_cli(capsys, "to-pickle", "utd-mhad", str(tmp_path / "empty"), "--out", str(tmp_path / "x.pkl"))
    assert rc == 1 and "no video could be converted (no input files found)" in err
    rc, _, err = run_cli(capsys, "export", str(tmp_path / "empty"), "--out", str(tmp_path / "x.pkl"))
    assert rc == 1 and "neither a results folder" in err
    assert not (tmp_path / "x.pkl").exists()


# --- export and the round trip ----------------------------------------------------------------

def test_peaks_subpixel_recovers_gaussian_centre():
    rng = np.random.default_rng(3)
    kp = (rng.uniform(2, 22, (1, 40, 17, 2)) * [1.3, 1]).astype(np.float32)  # inside 24 x 32
    maps = render_heatmaps(kp, np.ones((1, 40, 17), np.float32), (24, 32), (24, 32), sigma=0.6)
    maps8 = np.clip(np.rint(maps * 255), 0, 255).astype(np.uint8)
    xy, score = peaks(maps8, refine=True)
    coarse, _ = peaks(maps8, refine=False)
    assert np.abs(xy - kp[0]).max() < 0.05 < np.abs(coarse - kp[0]).max() < 0.55  # ties of uint8 values
    assert score.min() > 0.5
    empty, none = peaks(np.zeros((2, 18, 4, 5), np.uint8))
    assert (empty == 0).all() and (none == 0).all()


def test_letterbox_inverse_maps_back_to_source_pixels():
    src, out = (480, 640), (32, 43)
    h, w, top, left = letterbox_geometry(*src, *out)
    xy = np.array([[left - 0.5 + w / 2, top - 0.5 + h / 2], [left - 0.5, top - 0.5]], np.float32)
    back = to_source(xy, np.ones(2, bool), "openpifpaf", src, out)
    np.testing.assert_allclose(back, [[319.5, 239.5], [-0.5, -0.5]], atol=1e-4)


@pytest.mark.parametrize("layout", ["coco17", "openpose18"])
def test_round_trip_pickle_heatmaps_export(tmp_path, capsys, layout):
    """pickle -> keypoints backend -> heatmaps -> export -> pickle: every joint within one
    heatmap pixel of where it was (in the source's pixels), scores kept to 1/255."""
    rng = np.random.default_rng(4)
    src, hw = (120, 160), (24, 32)
    n_joints = 17 if layout == "coco17" else 18
    anns = []
    for i in range(6):
        t = 5 + i
        kp = rng.uniform(8, 112, (1, t, n_joints, 2)).astype(np.float32)
        kp[..., 0] += 20
        score = rng.uniform(0.3, 1.0, (1, t, n_joints)).astype(np.float32)
        score[0, 1, 3] = 0  # a joint not found stays not found
        anns.append({"frame_dir": f"v{i}", "label": i % 2, "img_shape": src, "original_shape": src,
                     "total_frames": t, "keypoint": kp, "keypoint_score": score})
    pkl = tmp_path / "in.pkl"
    pkl.write_bytes(pickle.dumps({"split": {"tr": ["v0", "v1", "v2", "v3"], "te": ["v4", "v5"]},
                                  "annotations": anns}))
    (tmp_path / "labels.txt").write_text("left\nright\n")
    results = pose_stage(tmp_path, pkl, tmp_path / "labels.txt", {"1": {"train": "tr", "test": "te"}},
                         hw, layout)
    out = tmp_path / "back.pkl"
    rc, printed, err = run_cli(capsys, "export", str(results), "--out", str(out), "--out-layout", layout)
    assert rc == 0, err
    assert "6 videos" in printed and "split1_test 2, split1_train 4" in printed
    data = safe_load(out)
    assert data["split"] == {"split1_test": ["v4", "v5"], "split1_train": ["v0", "v1", "v2", "v3"]}
    assert out.with_name("back.labels.txt").read_text() == "left\nright\n"
    pixel = max(src[0] / hw[0], src[1] / hw[1])  # one heatmap pixel in source pixels
    back = {a["frame_dir"]: a for a in data["annotations"]}
    for a in anns:
        b = back[a["frame_dir"]]
        assert b["label"] == a["label"] and b["img_shape"] == src and b["keypoint"].shape == a["keypoint"].shape
        found = a["keypoint_score"] > 0
        err_px = np.linalg.norm(b["keypoint"] - a["keypoint"], axis=-1)[found]
        assert err_px.max() < 0.25 * pixel and err_px.mean() < 0.05 * pixel, err_px.max()
        np.testing.assert_allclose(b["keypoint_score"][found], a["keypoint_score"][found], atol=0.02)
        assert (b["keypoint_score"][~found] == 0).all()
    # Shards named one by one, whole heatmap pixels: still within one pixel.
    rc, _, err = run_cli(capsys, "export", str(results / "heatmaps" / "shard000.zarr"),
                         str(results / "heatmaps" / "shard001.zarr"), "--out", str(tmp_path / "s.pkl"),
                         "--out-layout", layout, "--no-refine")
    assert rc == 0, err
    for b in safe_load(tmp_path / "s.pkl")["annotations"]:
        a = anns[int(b["frame_dir"][1:])]
        found = a["keypoint_score"] > 0
        assert np.abs(b["keypoint"] - a["keypoint"])[found].max() < pixel
    # One label per video: a multi-label manifest is refused on one line.
    table = (results / "manifest.csv").read_text().replace("label_name", "label_names", 1)
    (tmp_path / "multi.csv").write_text(table.replace("label,", "labels,", 1))
    rc, _, err = run_cli(capsys, "export", str(results), "--out", str(tmp_path / "m.pkl"),
                         "--manifest", str(tmp_path / "multi.csv"))
    assert rc == 1 and "multi-label" in err and len(err.strip().splitlines()) == 1
    # The exported pickle renders again.
    again = pose_stage(tmp_path / "again", out, out.with_name("back.labels.txt"),
                       {"1": {"train": "split1_train", "test": "split1_test"}}, hw, layout)
    assert sum(len(HeatmapShard(p)) for p in (again / "heatmaps").glob("*.zarr")) == 6
