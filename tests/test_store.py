import numpy as np
import pytest

from jmrn.io import atomic_path
from jmrn.store import HeatmapShard, PotionStore, write_heatmap_shard, write_potion_store


def test_atomic_path_leaves_nothing_when_the_block_fails(tmp_path):
    final = tmp_path / "out.zarr"
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.mkdir()
            (tmp / "half-written").write_text("x")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_an_existing_directory(tmp_path):
    final = tmp_path / "a.zarr"
    final.mkdir()
    (final / "old").write_text("old")
    with atomic_path(final) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["new"]


def test_heatmap_shard_roundtrip_with_odd_ids_and_growth(tmp_path):
    rng = np.random.default_rng(0)
    videos = {"Bob's #1 (take 2) & co": rng.integers(0, 255, (45, 18, 4, 5), dtype=np.uint8),
              "Zoë": rng.integers(0, 255, (3, 18, 4, 5), dtype=np.uint8)}
    path = tmp_path / "shard000.zarr"
    with write_heatmap_shard(path, {"backend": "test", "height": 4, "width": 5,
                                    "joints": list("x" * 18), "config_hash": "abc"}, (18, 4, 5)) as w:
        for vid, h in videos.items():
            # under-reported frame count (10): the array must grow to 45
            w.add(vid, (h[i:i + 16] for i in range(0, len(h), 16)), 10, (18, 4, 5))
        w.fail("broken.avi", "VideoError: no decodable frame")
    shard = HeatmapShard(path)
    assert shard.video_ids == list(videos)
    assert shard.failed == [{"video_id": "broken.avi", "reason": "VideoError: no decodable frame"}]
    for vid, h in videos.items():
        assert shard.n_frames(vid) == len(h)
        np.testing.assert_array_equal(shard.read(vid), h)
        np.testing.assert_array_equal(np.concatenate(list(shard.iter_batches(vid, 7))), h)


def test_failed_video_is_not_listed(tmp_path):
    def broken():
        yield np.zeros((2, 18, 4, 5), np.uint8)
        raise OSError("truncated")

    path = tmp_path / "s.zarr"
    with write_heatmap_shard(path, {"backend": "t", "height": 4, "width": 5, "joints": [],
                                    "config_hash": ""}, (18, 4, 5)) as w:
        with pytest.raises(OSError):
            w.add("v", broken(), 4, (18, 4, 5))
        w.fail("v", "truncated")
    shard = HeatmapShard(path)
    assert len(shard) == 0 and shard.attrs["frame_ranges"] == {}  # its frames are referenced by none


def test_potion_store_random_access(tmp_path):
    rng = np.random.default_rng(1)
    ids = ["c", "a", "b b", "ü"]
    maps = [rng.random((18, 3, 4, 5)).astype(np.float32) for _ in ids]
    write_potion_store(tmp_path / "p.zarr", ids, iter(maps), (18, 3, 4, 5), {"channels": 3})
    store = PotionStore(tmp_path / "p.zarr")
    assert store.video_ids == ids and store.shape == (18, 3, 4, 5)
    assert store.attrs["channels"] == 3 and "jmrn_version" in store.attrs
    got = store.load(["ü", "c"])
    np.testing.assert_allclose(got, np.stack([maps[3], maps[0]]), atol=1e-3)  # float16 storage
    with pytest.raises(KeyError, match="not in the PoTion store"):
        store.load(["missing"])


def test_potion_store_count_mismatch_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="expected 2"):
        write_potion_store(tmp_path / "p.zarr", ["a", "b"], iter([np.zeros((1, 3, 2, 2))]),
                           (1, 3, 2, 2), {})
    assert not (tmp_path / "p.zarr").exists()


def test_temporary_output_of_a_killed_job_is_removed_by_the_next_write(tmp_path):
    stale_dir = tmp_path / ".potion.tmp-99999.zarr"
    stale_dir.mkdir()
    (stale_dir / "chunk").write_text("half")
    stale_file = tmp_path / ".model.tmp-4242.pt"
    stale_file.write_text("half")
    other = tmp_path / ".potion2.tmp-1.zarr"  # another output's temp: not ours to remove
    other.mkdir()
    with atomic_path(tmp_path / "potion.zarr") as tmp:
        tmp.mkdir()
    with atomic_path(tmp_path / "model.pt") as tmp:
        tmp.write_text("done")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".potion2.tmp-1.zarr", "model.pt",
                                                          "potion.zarr"]


def test_source_digest_follows_the_dataset_files(tmp_path):
    from jmrn.dag import source_digest

    videos = tmp_path / "videos" / "walk"
    videos.mkdir(parents=True)
    (videos / "a.avi").write_bytes(b"a")
    (tmp_path / "labels.csv").write_text("path,label\n")
    dataset = {"adapter": "folder", "video_root": str(tmp_path / "videos"),
               "annotation": str(tmp_path / "labels.csv"), "splits": [1]}
    first = source_digest(dataset)
    assert source_digest(dataset) == first  # stable
    (videos / "b.avi").write_bytes(b"b")
    second = source_digest(dataset)
    assert second != first  # a new video reruns the manifest
    (tmp_path / "labels.csv").write_text("path,label\nx.avi,walk\n")
    assert source_digest(dataset) != second  # so does an edited annotation file


def test_shard_and_split_tables_ignore_what_their_jobs_do_not_read():
    import pandas as pd

    from jmrn.tables import shard_tables, split_digest, split_table, table_digest

    manifest = pd.DataFrame({"video_id": ["a", "b", "c", "d"], "path": list("abcd"), "label": [0, 1, 0, 1],
                             "label_name": ["x", "y", "x", "y"], "split1": ["train", "train", "test", "test"],
                             "frames": 5, "fps": 25.0, "width": 8, "height": 6, "status": "ok",
                             "group": list("abcd")})
    relabelled = manifest.assign(label=[1, 0, 1, 0], label_name=["y", "x", "y", "x"],
                                 split2=["test", "test", "train", "train"])
    for s, t in shard_tables(manifest, 3).items():  # labels and splits are not pose's business
        assert table_digest(t) == table_digest(shard_tables(relabelled, 3)[s])
    crc = dict(zip("abcd", [1, 2, 3, 4]))
    base = split_digest(split_table(manifest, 1, crc))
    assert split_digest(split_table(relabelled.drop(columns="split2"), 1, crc)) != base  # labels
    assert split_digest(split_table(manifest, 1, {**crc, "c": 9})) != base  # a PoTion map
    assert split_digest(split_table(manifest.assign(split2="train"), 1, crc)) == base  # other split


def test_zarrs_and_zarr_python_pipelines_read_the_same_maps(tmp_path):
    """The Rust codec pipeline is installed and used; stores it writes read back identically
    through zarr's own pipeline (the fallback where zarrs is missing), and the other way round."""
    import zarr

    from jmrn import store as store_module

    assert store_module.ZARRS and zarr.config.get("codec_pipeline.path") == store_module.ZARRS_PIPELINE
    rng = np.random.default_rng(3)
    ids = [f"v{i}" for i in range(7)]
    maps = [rng.random((18, 2, 6, 5)).astype(np.float16) for _ in ids]
    write_potion_store(tmp_path / "rust.zarr", ids, iter(maps), (18, 2, 6, 5), {})
    with zarr.config.set({"codec_pipeline.path": store_module.ZARR_PIPELINE}):
        write_potion_store(tmp_path / "python.zarr", ids, iter(maps), (18, 2, 6, 5), {})
        python_reads = {name: PotionStore(tmp_path / name).load(ids[::-2])
                        for name in ("rust.zarr", "python.zarr")}
    want = np.stack(maps[::-2])
    for name in ("rust.zarr", "python.zarr"):
        assert PotionStore(tmp_path / name).load(ids[::-2]).tobytes() == want.tobytes()
        assert python_reads[name].tobytes() == want.tobytes()


def test_os_errors_gives_rust_storage_errors_their_errno():
    import errno

    from jmrn.store import os_errors

    with pytest.raises(OSError) as info:
        with os_errors("/data/shard.zarr"):
            raise RuntimeError("No space left on device (os error 28)")
    assert info.value.errno == errno.ENOSPC and info.value.filename == "/data/shard.zarr"
    with pytest.raises(RuntimeError, match="not storage"):  # anything else passes unchanged
        with os_errors("x"):
            raise RuntimeError("not storage")


def test_loads_across_many_shard_files_in_any_order(tmp_path, monkeypatch):
    """Reads are cut into slices per run of rows and shard file, and into waves of two shard
    files: any order, repeats and runs that cross shard files come back as asked."""
    from jmrn import store as store_module

    monkeypatch.setattr(store_module, "POTION_SHARD_BYTES", 3 * 18 * 2 * 4 * 5 * 2)  # 3 maps a file
    rng = np.random.default_rng(4)
    ids = [f"v{i}" for i in range(20)]
    maps = rng.random((20, 18, 2, 4, 5)).astype(np.float16)
    write_potion_store(tmp_path / "p.zarr", ids, iter(maps), (18, 2, 4, 5), {})
    store = PotionStore(tmp_path / "p.zarr")
    assert store.potion.shards[0] == 3
    for rows in (rng.permutation(20), np.arange(20), np.array([7, 2, 2, 19, 3, 4, 5, 6, 0])):
        assert store.load([ids[r] for r in rows]).tobytes() == maps[rows].tobytes()


def test_loading_a_split_peaks_near_its_own_size(tmp_path, monkeypatch):
    """Each slice is copied to its place as it arrives: a whole split read into memory grows
    the process by about its size and a wave (≈ 1.5x here; earlier versions held every slice
    and the copy: ≈ 2.5x)."""
    import subprocess
    import sys

    from jmrn import store as store_module

    monkeypatch.setattr(store_module, "POTION_SHARD_BYTES", 8 * 2**20)
    shape = (18, 3, 32, 43)  # 148 KB a map: 800 maps are 113 MiB in 15 shard files of 56
    n = 800
    rng = np.random.default_rng(5)
    write_potion_store(tmp_path / "p.zarr", [f"v{i}" for i in range(n)],
                       (rng.random(shape).astype(np.float16) for _ in range(n)), shape, {})
    code = """
import sys
from jmrn.resources import resident_mib
from jmrn.store import PotionStore
store = PotionStore(sys.argv[1])
store.load(store.video_ids[:1])
before = resident_mib(peak=False)
maps = store.load(store.video_ids)
print(maps.nbytes, int((resident_mib() - before) * 2**20))
"""
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "p.zarr")], check=True,
                         capture_output=True, text=True).stdout.split()
    size, grown = int(out[0]), int(out[1])
    assert size == n * np.prod(shape) * 2
    assert grown < 1.75 * size, f"loading {size / 2**20:.0f} MiB grew the process by {grown / 2**20:.0f} MiB"
