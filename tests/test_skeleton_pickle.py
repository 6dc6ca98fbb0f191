import os
import pickle

import numpy as np
import pytest

from jmrn.aggregate import build_potion_store
from jmrn.datasets.manifest import build_manifest
from jmrn.pose.extract import extract_shard
from jmrn.safe_pickle import safe_load, safe_loads
from jmrn.store import PotionStore


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_malicious_pickle_is_refused():
    with pytest.raises(pickle.UnpicklingError, match="refusing to load posix.system"):
        safe_loads(pickle.dumps({"annotations": [Evil()]}))


def test_numpy_arrays_and_containers_load():
    obj = {"a": [np.arange(5, dtype=np.float32), (1, "x")], "s": np.float32(2.5)}
    for protocol in (2, 4, 5):
        back = safe_loads(pickle.dumps(obj, protocol=protocol))
        np.testing.assert_array_equal(back["a"][0], obj["a"][0])
        assert back["a"][1] == (1, "x") and back["s"] == 2.5


def write_skeleton_file(path, n=12, classes=3):
    rng = np.random.default_rng(0)
    anns = []
    for i in range(n):
        t = 10 + i
        anns.append({"frame_dir": f"clip {i} (#{i})", "label": i % classes, "img_shape": (120, 160),
                     "original_shape": (120, 160), "total_frames": t,
                     "keypoint": rng.uniform(10, 110, (2, t, 17, 2)).astype(np.float32),
                     "keypoint_score": rng.random((2, t, 17)).astype(np.float32)})
    anns.append({"frame_dir": "empty", "label": 0, "img_shape": (120, 160), "total_frames": 0,
                 "keypoint": np.zeros((1, 0, 17, 2), np.float32),
                 "keypoint_score": np.zeros((1, 0, 17), np.float32)})
    split = {"train": [a["frame_dir"] for a in anns[:8]], "val": [a["frame_dir"] for a in anns[8:]]
             + ["ghost"]}
    with open(path, "wb") as fh:
        pickle.dump({"split": split, "annotations": anns}, fh)


def test_skeleton_file_to_potion(tmp_path):
    pkl = tmp_path / "skel.pkl"
    write_skeleton_file(pkl)
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    dataset = {"adapter": "skeleton", "annotation": str(pkl), "label_names": str(tmp_path / "labels.txt"),
               "split_map": {"1": {"train": "train", "test": "val"}}, "splits": [1]}
    m = build_manifest(dataset, tmp_path / "manifest.csv")
    assert len(m) == 13 and set(m["label_name"]) == {"a", "b", "c"}
    assert m.set_index("video_id").loc["empty", "status"] == "no keypoints"
    assert (m["split1"] == "train").sum() == 8 and (m["split1"] == "test").sum() == 5
    pose = {"backend": "keypoints", "height": 12, "width": 16, "on_bad_video": "skip",
            "options": {"keypoints": {"layout": "coco17"}}}
    shards = []
    for s in range(2):
        shards.append(tmp_path / f"shard{s:03d}.zarr")
        extract_shard(tmp_path / "manifest.csv", s, 2, pose, shards[-1])
    build_potion_store(tmp_path / "manifest.csv", shards, {"channels": 3}, tmp_path / "p.zarr",
                       tmp_path / "failed.csv")
    store = PotionStore(tmp_path / "p.zarr")
    assert len(store) == 12 and store.shape == (18, 3, 12, 16)
    assert "empty" in (tmp_path / "failed.csv").read_text()


def test_unknown_split_name_is_a_clear_error(tmp_path):
    pkl = tmp_path / "skel.pkl"
    write_skeleton_file(pkl)
    dataset = {"adapter": "skeleton", "annotation": str(pkl), "splits": [1],
               "split_map": {"1": {"train": "xsub_train", "test": "val"}}}
    with pytest.raises(ValueError, match=r"'xsub_train' \(config dataset.split_map\) is not in"):
        build_manifest(dataset, tmp_path / "m.csv")


SHARED = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data" / "utd_mhad_2d.pkl"


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data/utd_mhad_2d.pkl not present")
def test_real_utd_mhad_file_loads_safely():
    data = safe_load(SHARED)
    assert {k: len(v) for k, v in data["split"].items()} == {"xsub_train": 431, "xsub_val": 430}
    first = data["annotations"][0]
    assert first["keypoint"].shape[-2:] == (17, 2) and first["keypoint"].dtype == np.float32
