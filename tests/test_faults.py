"""Injected faults: a full disk, damaged stores, short and empty videos. Each must fail loudly
or be recorded; none may be committed as a finished, trustworthy output."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from jmrn.aggregate import build_potion_store
from jmrn.datasets.manifest import build_manifest
from jmrn.datasets.report import DatasetError
from jmrn.pose.extract import extract_shard
from jmrn.store import HeatmapShard, PotionStore, StoreError

POSE = {"backend": "markers", "height": 8, "width": 11, "on_bad_video": "skip"}


def demo_copy(tiny_demo: Path, tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "ds"
    shutil.copytree(tiny_demo, root)
    manifest = tmp_path / "manifest.csv"
    build_manifest({"name": "t", "adapter": "hmdb51", "video_root": str(root / "videos"),
                    "split_dir": str(root / "splits"), "splits": [1]}, manifest)
    return root, manifest


@pytest.fixture
def small_disk(tmp_path):
    """A 200 KiB tmpfs (root only); skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_fails_the_pose_job_and_commits_nothing(tiny_demo, tmp_path, small_disk):
    _, manifest = demo_copy(tiny_demo, tmp_path)
    (small_disk / "filler").write_bytes(b"\0" * 150 * 1024)  # leave ~50 KiB
    out = small_disk / "shard000.zarr"
    with pytest.raises(OSError) as info:
        extract_shard(manifest, 0, 1, POSE, out)
    assert info.value.errno == errno.ENOSPC
    assert not out.exists() and not list(small_disk.glob(".shard000*"))  # no shard, no temp
    (small_disk / "filler").unlink()  # space freed: the rerun stores every video
    extract_shard(manifest, 0, 1, POSE, out)
    shard = HeatmapShard(out)
    assert len(shard) == 24 and shard.failed == []


def test_injected_storage_error_is_not_taken_for_a_bad_video(tiny_demo, tmp_path, monkeypatch):
    """Without root: the same fault, injected into the shard writer after three videos."""
    from jmrn.store import HeatmapShardWriter

    _, manifest = demo_copy(tiny_demo, tmp_path)
    real_add = HeatmapShardWriter.add

    def add(self, *args, **kwargs):
        if len(self.video_ids) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_add(self, *args, **kwargs)

    monkeypatch.setattr(HeatmapShardWriter, "add", add)
    with pytest.raises(OSError, match="No space left"):
        extract_shard(manifest, 0, 1, POSE, tmp_path / "shard.zarr")
    assert not (tmp_path / "shard.zarr").exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".shard")] == []


def test_short_video_is_recorded_and_fails_with_fail(tiny_demo, tmp_path):
    root, manifest = demo_copy(tiny_demo, tmp_path)
    victim = sorted((root / "videos" / "walk").iterdir())[0]
    cap = cv2.VideoCapture(str(victim))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    # Rewrite the file with its first frames only; the manifest still announces all of them.
    writer = cv2.VideoWriter(str(victim), cv2.VideoWriter_fourcc(*"MJPG"), 25,
                             (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames[: len(frames) // 2]:
        writer.write(frame)
    writer.release()
    stats = extract_shard(manifest, 0, 1, POSE, tmp_path / "s.zarr")
    shard = HeatmapShard(tmp_path / "s.zarr")
    assert stats["warnings"] == 1 and stats["videos"] == 24
    assert shard.warnings == [{"video_id": victim.stem,
                               "reason": f"short: decoded {len(frames) // 2} of {len(frames)} frames"}]
    build_potion_store(manifest, [tmp_path / "s.zarr"], {"channels": 3}, tmp_path / "p.zarr",
                       tmp_path / "failed.csv")
    failed = pd.read_csv(tmp_path / "failed.csv", keep_default_na=False)
    assert failed.to_dict("records") == [{"video_id": victim.stem, "stage": "pose",
                                          "reason": shard.warnings[0]["reason"], "used": True}]
    with pytest.raises(DatasetError, match=r"short: decoded .*pose.on_bad_video: fail"):
        extract_shard(manifest, 0, 1, {**POSE, "on_bad_video": "fail"}, tmp_path / "t.zarr")
    assert not (tmp_path / "t.zarr").exists()


def test_video_without_any_joint_is_recorded(tiny_demo, tmp_path):
    root, manifest = demo_copy(tiny_demo, tmp_path)
    victim = sorted((root / "videos" / "jump").iterdir())[0]
    cap = cv2.VideoCapture(str(victim))
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    writer = cv2.VideoWriter(str(victim), cv2.VideoWriter_fourcc(*"MJPG"), 25, size)
    for _ in range(n):  # a grayscale video: no marker colour at all
        writer.write(np.full((size[1], size[0], 3), 128, np.uint8))
    writer.release()
    extract_shard(manifest, 0, 1, POSE, tmp_path / "s.zarr")
    assert HeatmapShard(tmp_path / "s.zarr").warnings == [
        {"video_id": victim.stem, "reason": "no joint found in any frame (all heatmaps are zero)"}]


@pytest.fixture
def stores(tiny_demo, tmp_path):
    _, manifest = demo_copy(tiny_demo, tmp_path)
    extract_shard(manifest, 0, 1, POSE, tmp_path / "s.zarr")
    build_potion_store(manifest, [tmp_path / "s.zarr"], {"channels": 3}, tmp_path / "p.zarr",
                       tmp_path / "failed.csv")
    return tmp_path / "s.zarr", tmp_path / "p.zarr"


def chunk_files(array_dir: Path) -> list[Path]:
    return sorted(p for p in (array_dir / "c").rglob("*") if p.is_file())


@pytest.mark.parametrize("damage", ["delete", "overwrite"])
def test_damaged_potion_chunk_fails_with_the_video_id(stores, damage):
    """A deleted shard file reads as zeros (the checksum names its first video); one video's
    bytes overwritten inside a shard fail that video only."""
    _, potion = stores
    store = PotionStore(potion)
    shard = potion / "potion" / "c" / "0" / "0" / "0" / "0" / "0"
    assert chunk_files(potion / "potion") == [shard]  # every map of the tiny demo in one file
    if damage == "delete":
        shard.unlink()  # Zarr would read the fill value: zeros
        victim_row = 0
    else:
        per_shard = store.potion.shards[0]
        data = bytearray(shard.read_bytes())
        index = np.frombuffer(bytes(data[-(16 * per_shard + 4):-4]), "<u8").reshape(per_shard, 2)
        victim_row = 5
        offset, nbytes = (int(v) for v in index[victim_row])
        data[offset:offset + nbytes] = bytes(nbytes)
        shard.write_bytes(bytes(data))
    vid = store.video_ids[victim_row]
    with pytest.raises(StoreError, match=f"video {vid!r}"):
        PotionStore(potion).load(store.video_ids)
    if damage == "overwrite":
        PotionStore(potion).load([v for v in store.video_ids if v != vid])  # the others still read


@pytest.mark.parametrize("damage", ["delete", "overwrite"])
def test_damaged_heatmap_chunk_fails_with_the_video_id(stores, damage):
    """A deleted shard file reads as zeros, overwritten bytes do not decode: either way the
    video read says which video it is."""
    shard_path, _ = stores
    shard = HeatmapShard(shard_path)
    vid = shard.video_ids[2]
    files = chunk_files(shard_path / "frames")
    start = shard.attrs["frame_ranges"][vid][0]
    file = files[start // shard.group["frames"].shards[0]]
    if damage == "delete":
        file.unlink()
    else:
        per_file = shard.group["frames"].shards[0] // shard.group["frames"].chunks[0]
        data = bytearray(file.read_bytes())
        index = np.frombuffer(bytes(data[-(16 * per_file + 4):-4]), "<u8").reshape(per_file, 2)
        offset, nbytes = (int(v) for v in index[start % shard.group["frames"].shards[0]
                                                // shard.group["frames"].chunks[0]])
        data[offset:offset + nbytes] = bytes(nbytes)
        file.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=f"video {vid!r}"):
        HeatmapShard(shard_path).read(vid)


def numbered_folders(tiny_demo: Path, root: Path) -> None:
    """Class folders whose videos are numbered per class: 000.avi, 001.avi, ... in each."""
    for d in sorted((tiny_demo / "videos").iterdir()):
        (root / d.name).mkdir(parents=True)
        for i, f in enumerate(sorted(d.iterdir())):
            shutil.copy(f, root / d.name / f"{i:03d}.avi")


def test_videos_numbered_per_class_keep_every_class(tiny_demo, tmp_path):
    numbered_folders(tiny_demo, tmp_path / "videos")
    manifest = build_manifest({"adapter": "folder", "video_root": str(tmp_path / "videos"),
                               "splits": [1], "test_fraction": 0.3}, tmp_path / "m.csv")
    assert len(manifest) == 24 and manifest["video_id"].is_unique
    assert manifest["label_name"].nunique() == 4 and "walk/000.avi" in set(manifest["video_id"])


def test_one_class_or_untrainable_test_class_is_one_line(tiny_demo, tmp_path):
    numbered_folders(tiny_demo, tmp_path / "videos")
    for d in ("jump", "run", "walk"):
        shutil.rmtree(tmp_path / "videos" / d)
    with pytest.raises(DatasetError, match=r"^only 1 class has usable videos \(\['wave'\]\); a classifier"):
        build_manifest({"adapter": "folder", "video_root": str(tmp_path / "videos"), "splits": [1]},
                       tmp_path / "m.csv")
    rows = ["path,label,split", "a.avi,walk,train", "b.avi,walk,test", "c.avi,run,test"]
    for name in "abc":
        shutil.copy(next((tiny_demo / "videos" / "walk").iterdir()), tmp_path / f"{name}.avi")
    (tmp_path / "l.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DatasetError, match=r"split 1: test videos of 1 classes without any usable "
                                           r"training video, e\.g\. \['run'\]"):
        build_manifest({"adapter": "csv", "annotation": str(tmp_path / "l.csv"), "splits": [1]},
                       tmp_path / "m2.csv")


def test_non_utf8_file_names_are_recorded_not_fatal(tiny_demo, tmp_path, caplog):
    root, _ = demo_copy(tiny_demo, tmp_path)
    walk = root / "videos" / "walk"
    src = sorted(walk.iterdir())[0]
    bad = os.path.join(os.fsencode(walk), b"caf\xe9 latin-1.avi")
    shutil.copy(src, bad)
    # hmdb51: the file is on disk, and a split file names it in the same bytes
    with open(root / "splits" / "walk_test_split1.txt", "ab") as fh:
        fh.write(b"caf\xe9 latin-1.avi 1\n")
    with caplog.at_level("WARNING"):
        m = build_manifest({"adapter": "hmdb51", "video_root": str(root / "videos"),
                            "split_dir": str(root / "splits"), "splits": [1]}, tmp_path / "h.csv")
    assert "file name is not valid UTF-8 (skipped; rename it): 1" in caplog.text
    assert "split file is not UTF-8 text (skipped)" in caplog.text
    assert len(m) == 24
    caplog.clear()
    with caplog.at_level("WARNING"):
        m = build_manifest({"adapter": "folder", "video_root": str(root / "videos"), "splits": [1]},
                           tmp_path / "f.csv")
    assert "caf\\xe9 latin-1.avi" in caplog.text and len(m) == 24
    with pytest.raises(DatasetError, match="not valid UTF-8"):
        build_manifest({"adapter": "folder", "video_root": str(root / "videos"), "splits": [1],
                        "on_problem": "fail"}, tmp_path / "g.csv")


@pytest.mark.parametrize("name", ["=cmd()", "+1", "-x", "@SUM(A1)"])
def test_class_names_that_spreadsheets_run_are_refused(tiny_demo, tmp_path, name):
    numbered_folders(tiny_demo, tmp_path / "videos")
    (tmp_path / "videos" / "run").rename(tmp_path / "videos" / name)
    with pytest.raises(DatasetError, match=r"class names may not start with = \+ - @"):
        build_manifest({"adapter": "folder", "video_root": str(tmp_path / "videos"), "splits": [1]},
                       tmp_path / "m.csv")


def potion_split(tmp_path: Path, scale: float = 1.0) -> tuple[str, str]:
    """A tiny PoTion store and manifest (3 classes, split 1) written the way the stages do."""
    from jmrn.store import write_potion_store

    rng = np.random.default_rng(0)
    n = 30
    labels = np.arange(n) % 3
    maps = (rng.random((n, 18, 3, 12, 16)) * 0.1 * scale).astype(np.float16)
    maps[np.arange(n), labels * 5, :, 4:8, 4:8] += 1
    ids = [f"v{i:02d}" for i in range(n)]
    store = tmp_path / f"potion{scale}.zarr"
    write_potion_store(store, ids, iter(maps), maps.shape[1:], {"channels": 3})
    pd.DataFrame({"video_id": ids, "path": ids, "label": labels, "label_name": [f"c{c}" for c in labels],
                  "split1": np.where(np.arange(n) < 24, "train", "test"), "frames": 9, "fps": 25.0,
                  "width": 16, "height": 12, "status": "ok", "group": ids}).to_csv(
        tmp_path / "manifest.csv", index=False)
    return str(store), str(tmp_path / "manifest.csv")


TRAIN = {"epochs": 3, "batch_size": 8, "lr": 1e-3, "patience": 2, "device": "cpu", "val_fraction": 0.2}


def killed_after_one_epoch(monkeypatch, potion, manifest, variant, out):
    import jmrn.train as train

    real = train.train_epoch

    def dies_at_epoch_1(model, x, y, cfg, epoch, *args):
        if epoch == 1:
            raise KeyboardInterrupt("killed")
        return real(model, x, y, cfg, epoch, *args)

    monkeypatch.setattr(train, "train_epoch", dies_at_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        train.train_variant(potion, manifest, 1, variant, TRAIN, 0, str(out / "model.pt"),
                            str(out / "history.csv"))
    monkeypatch.setattr(train, "train_epoch", real)
    assert (out / "checkpoint.pt").exists() and not (out / "model.pt").exists()


@pytest.mark.parametrize("change", ["width", "data"])
def test_checkpoint_of_other_model_or_data_is_ignored_not_loaded(tmp_path, monkeypatch, caplog, change):
    from jmrn.train import train_variant

    potion, manifest = potion_split(tmp_path)
    variant = {"arch": "jmrn", "model": {"width": 0.125}, "augment": None}
    out = tmp_path / "run"
    killed_after_one_epoch(monkeypatch, potion, manifest, variant, out)
    if change == "width":
        variant = {**variant, "model": {"width": 0.25}}
    else:  # e.g. potion.normalisation changed: same ids, other maps
        potion, manifest = potion_split(tmp_path, scale=2.0)
    with caplog.at_level("INFO"):
        train_variant(potion, manifest, 1, variant, TRAIN, 0, str(out / "model.pt"),
                      str(out / "history.csv"))
    assert "belongs to other settings" in caplog.text and "resuming" not in caplog.text
    assert len(pd.read_csv(out / "history.csv")) == 3


def test_same_run_resumes_to_byte_identical_files(tmp_path, monkeypatch, caplog):
    from jmrn.train import train_variant

    potion, manifest = potion_split(tmp_path)
    variant = {"arch": "potion", "model": {"width": 0.125},
               "augment": {"global_jitter": 1.0, "group_jitter": 1.0, "flip": True, "rotation": 0.0}}
    train_variant(potion, manifest, 1, variant, TRAIN, 0, str(tmp_path / "a" / "model.pt"),
                  str(tmp_path / "a" / "history.csv"))
    killed_after_one_epoch(monkeypatch, potion, manifest, variant, tmp_path / "b")
    with caplog.at_level("INFO"):
        train_variant(potion, manifest, 1, variant, TRAIN, 0, str(tmp_path / "b" / "model.pt"),
                      str(tmp_path / "b" / "history.csv"))
    assert "resuming from" in caplog.text
    for name in ("model.pt", "history.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def run_until_then_kill(code: str, ready, timeout: float = 120.0) -> None:
    """Run ``code`` in a fresh Python, SIGKILL it as soon as ``ready()`` holds."""
    import signal
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1])
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, "the stage finished before it could be killed"
            assert time.monotonic() < deadline, "the stage never reached the kill point"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("stage", ["pose", "potion", "train"])
def test_sigkill_during_a_stage_then_rerun_equals_an_uninterrupted_run(tiny_demo, tmp_path, stage):
    """kill -9 in the middle of each stage leaves nothing a rerun trusts; the rerun (the same
    call) gives what an uninterrupted run gives."""
    _, manifest = demo_copy(tiny_demo, tmp_path)
    calls = {
        "pose": f"from jmrn.pose.extract import extract_shard; extract_shard({str(manifest)!r}, 0, 1, "
                f"{POSE!r}, OUT)",
        "potion": f"from jmrn.aggregate import build_potion_store; build_potion_store({str(manifest)!r}, "
                  f"[{str(tmp_path / 'shard.zarr')!r}], {{'channels': 3}}, OUT, OUT + '.failed.csv')",
        "train": f"from jmrn.train import train_variant; train_variant({str(tmp_path / 'ref' / 'potion.zarr')!r}, "
                 f"{str(manifest)!r}, 1, {{'arch': 'jmrn', 'model': {{'width': 0.125}}, 'augment': None}}, "
                 "{'epochs': 6, 'batch_size': 4, 'lr': 1e-3, 'patience': 2, 'device': 'cpu', "
                 "'val_fraction': 0.2}, 0, OUT, OUT + '.history.csv')",
    }
    extract_shard(manifest, 0, 1, POSE, tmp_path / "shard.zarr")
    (tmp_path / "ref").mkdir()
    build_potion_store(manifest, [tmp_path / "shard.zarr"], {"channels": 3},
                       tmp_path / "ref" / "potion.zarr", tmp_path / "ref" / "failed.csv")
    name = {"pose": "s.zarr", "potion": "potion.zarr", "train": "model.pt"}[stage]
    ref, out = tmp_path / "ref" / name, tmp_path / "run" / name
    out.parent.mkdir()
    code = f"OUT = {str(ref)!r}; " + calls[stage]
    if stage != "potion":
        subprocess.run([__import__("sys").executable, "-c", code], check=True,
                       cwd=Path(__file__).resolve().parents[1])
    temps = lambda: [p for p in out.parent.iterdir() if ".tmp-" in p.name]  # noqa: E731
    ready = {"pose": lambda: any((p / "frames" / "zarr.json").exists() for p in temps()),
             "potion": lambda: bool(temps()),
             "train": lambda: (out.parent / "checkpoint.pt").exists()}[stage]
    code = f"OUT = {str(out)!r}; " + calls[stage]
    run_until_then_kill(code, ready)
    assert not out.exists()
    subprocess.run([__import__("sys").executable, "-c", code], check=True,
                   cwd=Path(__file__).resolve().parents[1])
    assert temps() == []
    if stage == "pose":
        a, b = HeatmapShard(ref), HeatmapShard(out)
        assert a.video_ids == b.video_ids
        for vid in a.video_ids:
            np.testing.assert_array_equal(a.read(vid), b.read(vid))
    elif stage == "potion":
        a, b = PotionStore(ref), PotionStore(out)
        assert a.video_ids == b.video_ids
        np.testing.assert_array_equal(a.load(a.video_ids), b.load(b.video_ids))
    else:
        assert ref.read_bytes() == out.read_bytes()


@pytest.mark.parametrize("extra, per_joint", [((), 3), (("intensity",), 4), (("normalized",), 6),
                                              (("intensity", "normalized"), 7)])
def test_potion_store_is_sized_for_its_extra_channels(tiny_demo, tmp_path, extra, per_joint):
    """`normalized` adds C channels and `intensity` one: the store holds what the accumulator gives."""
    _, manifest = demo_copy(tiny_demo, tmp_path)
    extract_shard(manifest, 0, 1, POSE, tmp_path / "s.zarr")
    build_potion_store(manifest, [tmp_path / "s.zarr"], {"channels": 3, "extra_channels": list(extra)},
                       tmp_path / "p.zarr", tmp_path / "failed.csv")
    store = PotionStore(tmp_path / "p.zarr")
    assert store.shape[1] == per_joint == store.attrs["map_channels"]
    assert np.isfinite(store.get(store.video_ids[0])).all()


@pytest.mark.parametrize("damage", ["metadata", "array"])
def test_potion_store_without_its_checksums_is_refused_not_read_as_zeros(stores, damage):
    """Deleting the crc32 array's metadata (or all of it) and a chunk must not read as zeros."""
    _, potion = stores
    if damage == "metadata":
        (potion / "crc32" / "zarr.json").unlink()
    else:
        shutil.rmtree(potion / "crc32")
    chunk_files(potion / "potion")[0].unlink()
    with pytest.raises(StoreError, match="checksums .* missing or damaged"):
        PotionStore(potion)


def test_heatmap_shard_without_a_videos_checksum_is_refused(stores):
    import json

    shard_path, _ = stores
    meta = json.loads((shard_path / "zarr.json").read_text())
    vid = next(iter(meta["attributes"]["frame_ranges"]))
    meta["attributes"]["frame_ranges"][vid][2] = None
    (shard_path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match=f"video {vid!r} has no checksum"):
        HeatmapShard(shard_path).read(vid)


@pytest.fixture
def refuse_reads(monkeypatch):
    """Calling it makes every later Zarr chunk read fail as zarrs reports a refused read."""
    import zarr.core.array

    async def refuse(*args, **kwargs):
        raise RuntimeError("failed to read chunk: Permission denied (os error 13)")

    return lambda: monkeypatch.setattr(zarr.core.array, "_get_selection", refuse)


def test_unreadable_potion_file_is_an_os_error_naming_it(stores, refuse_reads):
    _, potion = stores
    store = PotionStore(potion)
    refuse_reads()
    with pytest.raises(OSError) as caught:
        store.load(store.video_ids[:2])
    assert caught.value.errno == errno.EACCES and not isinstance(caught.value, StoreError)
    assert str(potion / "potion" / "c") in caught.value.filename and "rerun" not in str(caught.value)


def test_unreadable_heatmap_shard_during_potion_names_the_shard(stores, refuse_reads, tmp_path):
    shard_path, _ = stores
    refuse_reads()
    with pytest.raises(OSError) as caught:
        build_potion_store(tmp_path / "manifest.csv", [shard_path], {"channels": 3},
                           tmp_path / "p2.zarr", tmp_path / "failed2.csv")
    assert caught.value.errno == errno.EACCES and str(shard_path) in caught.value.filename


def test_full_disk_while_saving_a_checkpoint_is_the_os_error(small_disk):
    """torch reports the failed write as `RuntimeError: [enforce fail at inline_container.cc]`;
    the job must fail with ENOSPC naming the file, and leave nothing behind."""
    import torch

    from jmrn.io import save_torch

    out = small_disk / "checkpoint.pt"
    with pytest.raises(OSError) as caught:
        save_torch({"weights": torch.zeros(100_000)}, out)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(out)
    assert not list(small_disk.iterdir())
