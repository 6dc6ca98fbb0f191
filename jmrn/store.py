"""Zarr (v3) stores for heatmap shards and the PoTion dataset; every write is atomic and every
read is verified.

Heatmap shard: one uint8 array ``v00000``... per video (T x J x H x W, Blosc/zstd) with the
crc32 of its bytes in the array's attributes; the video ids, per-video failures and warnings
in the group attributes. PoTion store: ``potion`` (N x J x C x H x W float16, one chunk per
video), ``video_id`` (N strings) and ``crc32`` (N, of each video's float16 bytes). A missing
chunk (which Zarr reads as zeros) or a damaged one fails with the video's id (``StoreError``).
"""
from __future__ import annotations

import contextlib
import os
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from jmrn import __version__
from jmrn.io import atomic_path

HEATMAP_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle="noshuffle")
POTION_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")
FRAMES_PER_CHUNK = 32


class StoreError(RuntimeError):
    """Stored data does not read back as written (a missing or damaged chunk)."""


class HeatmapShardWriter:
    """Adds one video's heatmaps at a time into a shard group that is still at a temp path."""

    def __init__(self, group: zarr.Group) -> None:
        self.group = group
        self.video_ids: list[str] = []
        self.failed: list[dict[str, str]] = []
        self.warnings: list[dict[str, str]] = []
        self.peak = 0  # the largest heatmap value of the last video added

    def add(self, video_id: str, batches: Iterator[np.ndarray], n_frames_hint: int,
            shape: Sequence[int]) -> int:
        """Stream uint8 batches (B x J x H x W) of one video into a new array; returns T.

        The array grows if the container under-reported the frame count. A failure (of the
        video or of the storage) removes the array before the error goes on."""
        name = f"v{len(self.video_ids) + len(self.failed):05d}"
        arr = self.group.create_array(
            name, shape=(max(n_frames_hint, 1), *shape), dtype="uint8",
            chunks=(FRAMES_PER_CHUNK, *shape), compressors=HEATMAP_CODEC, fill_value=0)
        t, crc, peak = 0, 0, 0
        try:
            for batch in batches:
                if t + len(batch) > arr.shape[0]:
                    arr.resize((max(t + len(batch), 2 * arr.shape[0]), *shape))
                arr[t:t + len(batch)] = batch
                crc = zlib.crc32(np.ascontiguousarray(batch, np.uint8).tobytes(), crc)
                peak = max(peak, int(batch.max(initial=0)))
                t += len(batch)
            if t != arr.shape[0]:
                arr.resize((t, *shape))
            arr.attrs.update({"video_id": video_id, "crc32": crc})
        except BaseException:
            with contextlib.suppress(Exception):
                del self.group[name]
            raise
        self.video_ids.append(video_id)
        self.peak = peak
        return t

    def fail(self, video_id: str, reason: str) -> None:
        """Record a video that could not be used (it has no array)."""
        self.failed.append({"video_id": video_id, "reason": reason})

    def warn(self, video_id: str, reason: str) -> None:
        """Record a stored video whose heatmaps are suspect (short, or all zero)."""
        self.warnings.append({"video_id": video_id, "reason": reason})


@contextlib.contextmanager
def write_heatmap_shard(path: str | os.PathLike, attrs: dict[str, Any]) -> Iterator[HeatmapShardWriter]:
    """Create a heatmap shard atomically: it appears at ``path`` only once it is complete."""
    with atomic_path(path) as tmp:
        group = zarr.open_group(tmp, mode="w")
        writer = HeatmapShardWriter(group)
        yield writer
        group.attrs.update({**attrs, "video_ids": writer.video_ids, "failed": writer.failed,
                            "warnings": writer.warnings,
                            "arrays": [k for k in sorted(group.array_keys())],
                            "jmrn_version": __version__})


class HeatmapShard:
    """Read access to a finished heatmap shard."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.group = zarr.open_group(self.path, mode="r")
        self.attrs = dict(self.group.attrs)
        self.video_ids: list[str] = list(self.attrs["video_ids"])
        self.failed: list[dict[str, str]] = list(self.attrs["failed"])
        self.warnings: list[dict[str, str]] = list(self.attrs.get("warnings", []))
        self._arrays = {self.group[k].attrs["video_id"]: k for k in self.attrs["arrays"]}

    def __len__(self) -> int:
        return len(self.video_ids)

    def n_frames(self, video_id: str) -> int:
        return self.group[self._arrays[video_id]].shape[0]

    def iter_batches(self, video_id: str, batch: int = FRAMES_PER_CHUNK) -> Iterator[np.ndarray]:
        """Yield uint8 frame batches (B x J x H x W), one Zarr chunk at a time; the bytes are
        checked against the crc32 written with them once the last batch is read."""
        arr = self.group[self._arrays[video_id]]
        crc = 0
        for start in range(0, arr.shape[0], batch):
            try:
                block = arr[start:start + batch]
            except Exception as exc:
                raise StoreError(f"{self.path}: heatmaps of video {video_id!r} cannot be read "
                                 f"({type(exc).__name__}: {exc}); rerun its pose shard") from exc
            crc = zlib.crc32(np.ascontiguousarray(block).tobytes(), crc)
            yield block
        expected = arr.attrs.get("crc32")
        if expected is not None and crc != expected:
            raise StoreError(f"{self.path}: heatmaps of video {video_id!r} are damaged (checksum "
                             "mismatch: a chunk is missing or altered); rerun its pose shard")

    def read(self, video_id: str) -> np.ndarray:
        return np.concatenate(list(self.iter_batches(video_id)))


def write_potion_store(path: str | os.PathLike, video_ids: Sequence[str],
                       maps: Iterator[np.ndarray], shape: Sequence[int], attrs: dict[str, Any]) -> int:
    """Write N PoTion maps (each J x C x H x W) streamed from ``maps``, atomically; returns N."""
    n = len(video_ids)
    with atomic_path(path) as tmp:
        group = zarr.open_group(tmp, mode="w")
        potion = group.create_array("potion", shape=(n, *shape), dtype="float16",
                                    chunks=(1, *shape), compressors=POTION_CODEC, fill_value=0)
        ids = group.create_array("video_id", shape=(n,), dtype=str)
        crcs = np.zeros(n, np.uint32)
        if n:
            ids[:] = np.asarray(list(video_ids), dtype=str)
        count = 0
        for i, m in enumerate(maps):
            m16 = np.ascontiguousarray(m, np.float16)
            potion[i] = m16
            crcs[i] = zlib.crc32(m16.tobytes())
            count += 1
        if count != n:
            raise ValueError(f"expected {n} PoTion maps, got {count}")
        group.create_array("crc32", shape=(n,), dtype="uint32")[...] = crcs
        group.attrs.update({**attrs, "jmrn_version": __version__})
    return n


class PotionStore:
    """Random access to PoTion maps by video id (what the training loader uses)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.group = zarr.open_group(Path(path), mode="r")
        self.attrs = dict(self.group.attrs)
        self.potion = self.group["potion"]
        n = self.potion.shape[0]
        self.path = Path(path)
        self.video_ids: list[str] = [str(v) for v in self.group["video_id"][:]] if n else []
        self.index = {v: i for i, v in enumerate(self.video_ids)}
        self.crc32 = self.group["crc32"][:] if "crc32" in self.group and n else None

    def __len__(self) -> int:
        return len(self.video_ids)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.potion.shape[1:])

    def get(self, video_id: str) -> np.ndarray:
        return self.load([video_id])[0].astype(np.float16)

    def _damaged(self, video_id: str, why: str) -> StoreError:
        return StoreError(f"{self.path}: the PoTion map of video {video_id!r} {why}; rerun the "
                          "potion rule (delete the store)")

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        """float16 maps of sorted store rows; a chunk that cannot be decoded names its video."""
        try:
            return self.potion.get_orthogonal_selection((rows,))
        except Exception as exc:
            for r in rows:  # find the damaged one
                try:
                    self.potion[int(r)]
                except Exception:
                    raise self._damaged(self.video_ids[r], f"cannot be read ({type(exc).__name__}: "
                                        f"{exc})") from exc
            raise

    def load(self, video_ids: Sequence[str]) -> np.ndarray:
        """Maps of the given videos, in order, as one float32 array (N x J x C x H x W)."""
        missing = [v for v in video_ids if v not in self.index]
        if missing:
            raise KeyError(f"{len(missing)} videos not in the PoTion store, e.g. {missing[:3]}")
        if not video_ids:
            return np.zeros((0, *self.shape), np.float32)
        rows = np.array([self.index[v] for v in video_ids])
        order = np.argsort(rows)
        maps = self._read_rows(rows[order])  # float16, in store order
        if self.crc32 is not None:
            for i, r in enumerate(rows[order]):
                if zlib.crc32(np.ascontiguousarray(maps[i]).tobytes()) != self.crc32[r]:
                    raise self._damaged(self.video_ids[r], "does not match its checksum (a chunk is "
                                        "missing or altered)")
        out = np.empty((len(rows), *self.shape), np.float32)
        out[order] = maps
        return out
