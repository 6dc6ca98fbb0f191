"""Content digests that let Snakemake rerun only what a change touches (see README, *Caching*).

A pose shard depends on its videos' manifest rows (``tables.shard_tables``), a training on its
split's table (``tables.split_table``: membership, labels, groups, classes and the crc32 of each
PoTion map). The rules name these inputs by their digest (``shards/shard007.<digest>.csv``,
``split1/videos.<digest>.json``) and read the manifest and PoTion store as ``ancient``: a
rewritten manifest or store whose relevant content did not change leaves every file name, and so
every downstream job, as it was. The digests are computed while Snakemake builds the DAG, once
per manifest / store version (cached on path, size and modification time).
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Any

from jmrn.io import write_json
from jmrn.tables import (ground_truth_path, read_manifest, shard_tables, split_digest, split_table,
                         table_digest, write_csv)


def _stamp(path: str | os.PathLike) -> tuple[str, int, int]:
    st = os.stat(path)
    return str(path), st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=4)
def _shard_digests(stamp: tuple[str, int, int], n_shards: int) -> dict[int, str]:
    tables = shard_tables(read_manifest(stamp[0]), n_shards)
    return {s: table_digest(t) for s, t in tables.items()}


def shard_digests(manifest_csv: str | os.PathLike, n_shards: int) -> dict[int, str]:
    """Digest of each shard's video rows."""
    return _shard_digests(_stamp(manifest_csv), n_shards)


@functools.lru_cache(maxsize=4)
def _split_tables(manifest_stamp: tuple[str, int, int], potion_stamp: tuple[str, int, int]
                  ) -> dict[int, dict]:
    from jmrn.store import PotionStore

    manifest = read_manifest(manifest_stamp[0])
    truth_csv = ground_truth_path(manifest_stamp[0])
    truth = read_manifest(truth_csv) if "source" in manifest and os.path.isfile(truth_csv) else None
    store = PotionStore(potion_stamp[0])
    crc = dict(zip(store.video_ids, store.crc32.tolist())) if store.crc32 is not None else \
        dict.fromkeys(store.video_ids, 0)
    splits = [int(c[len("split"):]) for c in manifest.columns
              if c.startswith("split") and c[len("split"):].isdigit()]
    return {k: split_table(manifest, k, crc, truth) for k in splits}


def split_tables(manifest_csv: str | os.PathLike, potion_zarr: str | os.PathLike) -> dict[int, dict]:
    """Each split's table (see ``tables.split_table``) by split number."""
    meta = _stamp(Path(potion_zarr) / "zarr.json")  # rewritten with every new store
    return _split_tables(_stamp(manifest_csv), (str(potion_zarr), *meta[1:]))


def split_digests(manifest_csv: str | os.PathLike, potion_zarr: str | os.PathLike) -> dict[int, str]:
    return {k: split_digest(t) for k, t in split_tables(manifest_csv, potion_zarr).items()}


def split_maps_mb(manifest_csv: str | os.PathLike, potion_zarr: str | os.PathLike,
                  split: int, with_test: bool) -> int:
    """Megabytes of one split's PoTion maps as float32: its training set (what training
    reads, validation included) or, ``with_test``, all of it (what export reads)."""
    from jmrn.resources import maps_mb

    subsets = split_tables(manifest_csv, potion_zarr)[split]["videos"][f"split{split}"]
    n_videos = sum(1 for s in subsets if with_test or s == "train")
    return maps_mb(n_videos, _map_shape(_stamp(Path(potion_zarr) / "potion" / "zarr.json")))


@functools.lru_cache(maxsize=4)
def _map_shape(potion_meta: tuple[str, int, int]) -> tuple[int, ...]:
    """J x C x H x W of a PoTion store, from its array metadata only (every train and export
    job asks for it while the DAG is built; opening the store would read every video id)."""
    import json

    with open(potion_meta[0], encoding="utf-8") as fh:
        return tuple(json.load(fh)["shape"][1:])


DATASET_SOURCES = ("video_root", "split_dir", "joint_root", "annotation_dir", "annotation",
                   "label_names", "proposals")


def _file_stamp(path: str) -> str:
    """Size and modification time; a dangling symbolic link is stamped by its target (the manifest
    records such a video as unreadable instead of the DAG failing to build)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if not os.path.islink(path):
            raise
        return f"link->{os.readlink(path)}"
    return f"{st.st_size}:{st.st_mtime_ns}"


def _walk_error(error: OSError) -> None:
    raise OSError(error.errno, f"cannot list {error.filename}: {error.strerror}", error.filename)


def files_digest(paths: tuple[str, ...]) -> str:
    """Digest of files and folder trees as listed on disk (relative name, size, modification
    time): adding, removing or replacing any file under them changes it. Missing paths count as
    absent; a folder that cannot be listed is an error, never an empty folder."""
    digest = hashlib.sha256()
    for root in sorted(paths):
        digest.update(f"\0{root}\0".encode("utf-8", "surrogateescape"))
        if os.path.isfile(root):
            digest.update(_file_stamp(root).encode())
            continue
        if not os.path.exists(root):  # the preflight check names it; a dry run goes on
            digest.update(b"missing")
            continue
        for folder, dirs, names in os.walk(root, onerror=_walk_error):
            dirs.sort()
            for name in sorted(names):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, root)
                digest.update(f"{rel}\0{_file_stamp(path)}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16]


def source_digest(dataset: dict[str, Any]) -> str:
    """Digest of the dataset's files: a new, removed or replaced video or annotation file
    reruns the manifest."""
    paths = [dataset[k] for k in DATASET_SOURCES if dataset.get(k)]
    for source in ("train_source", "test_source"):
        paths += [v for v in (dataset.get(source) or {}).values() if v]
    return files_digest(tuple(map(str, paths)))


POSE_FILE_OPTIONS = ("root", "checkpoint")


def pose_files_digest(pose: dict[str, Any]) -> str:
    """Digest of the files the chosen pose backend reads besides the videos (OpenPose or
    AlphaPose outputs under its ``root``, a checkpoint file): rewriting them reruns the pose jobs."""
    options = (pose.get("options") or {}).get(pose["backend"]) or {}
    paths = [str(options[k]) for k in POSE_FILE_OPTIONS
             if isinstance(options.get(k), str) and os.path.exists(options[k])]
    return files_digest(tuple(paths))


def write_shard_videos(manifest_csv: str, shard: int, n_shards: int, digest: str, out: str) -> None:
    """The video rows of one pose shard, checked against the digest the DAG planned with."""
    table = shard_tables(read_manifest(manifest_csv), n_shards)[shard]
    if table_digest(table) != digest:
        raise RuntimeError(f"shard {shard}: the manifest changed after the DAG was built; rerun")
    write_csv(table, out)


def write_missing_shard_videos(manifest_csv: str, n_shards: int, pattern: str) -> None:
    """Every shard's table that is not on disk yet, at ``pattern.format(shard=, digest=)``.

    The manifest job writes them so that all pose jobs are ready at the same moment (on SLURM,
    one job array); tables already there keep their time stamps, so their shards do not rerun."""
    tables = shard_tables(read_manifest(manifest_csv), n_shards)
    for shard, table in tables.items():
        out = Path(pattern.format(shard=f"shard{shard:03d}", digest=table_digest(table)))
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            write_csv(table, str(out))


def write_split_table(manifest_csv: str, potion_zarr: str, split: int, digest: str, out: str) -> None:
    """One split's table (JSON), checked against the digest the DAG planned with."""
    table = split_tables(manifest_csv, potion_zarr)[split]
    if split_digest(table) != digest:
        raise RuntimeError(f"split {split}: the manifest or PoTion store changed after the DAG "
                           "was built; rerun")
    write_json(out, table)
