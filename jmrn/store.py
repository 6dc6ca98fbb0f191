"""Zarr (v3) stores for heatmap shards and the PoTion dataset; every write is atomic and every
read is verified.

Heatmap shard (one pose job's videos): one uint8 array ``frames`` (F x J x H x W, Blosc/zstd,
≈ 64 MB of frames per shard file) holding every video's frames one after the other; each
video's frame range and the crc32 of its bytes, the video ids, per-video failures and
warnings in the group attributes, and which source frames were computed for videos of which
only some are (AVA's keyframe clips: ``frame_numbers``). PoTion store: ``potion``
(N x J x C x H x W float16, one chunk per video, ≈ 128 MB of maps per shard file),
``video_id`` (N strings) and ``crc32`` (N, of each video's float16 bytes). A missing chunk
(which Zarr reads as zeros) or a damaged one fails with the video's id (``StoreError``).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import re
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec
from zarr.core.sync import sync as zarr_sync

from jmrn import __version__
from jmrn.io import atomic_path

HEATMAP_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle="noshuffle")
POTION_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")
FRAMES_PER_CHUNK = 32
HEATMAP_SHARD_BYTES = 64 * 2**20  # uint8 frames per heatmap shard file (before compression)
POTION_SHARD_BYTES = 128 * 2**20  # float16 maps per PoTion shard file (before compression)
ZARRS_PIPELINE = "zarrs.ZarrsCodecPipeline"
ZARR_PIPELINE = "zarr.core.codec_pipeline.BatchedCodecPipeline"  # zarr's own, in Python


def use_zarrs_codecs() -> bool:
    """Encode and decode chunks with zarrs' Rust codec pipeline when it is installed: the same
    stored bytes, random map reads ≈ 2× faster than zarr's Python pipeline (bench_scale.py).
    Arrays it does not support (the string ids) fall back to zarr's own pipeline."""
    try:
        import zarrs  # noqa: F401  (registers the pipeline with zarr)
    except ImportError:
        return False
    zarr.config.set({"codec_pipeline.path": ZARRS_PIPELINE})
    return True


ZARRS = use_zarrs_codecs()
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


@contextlib.contextmanager
def os_errors(path: str | os.PathLike) -> Iterator[None]:
    """Storage errors as ``OSError`` with their errno: zarrs reports a full disk or a refused
    write as ``RuntimeError("... (os error 28)")``, which no fault handler would recognise."""
    try:
        yield
    except RuntimeError as exc:
        found = _RUST_OS_ERROR.search(str(exc))
        if not found:
            raise
        code = int(found.group(1))
        raise OSError(code, os.strerror(code), str(path)) from exc


def storage_fault(exc: BaseException, path: str | os.PathLike) -> OSError | None:
    """A read failure that is the machine's (permission, I/O, network file system) as an
    ``OSError`` naming the file; None when it is the data's (a chunk that does not decode)."""
    if isinstance(exc, OSError):
        return OSError(exc.errno, exc.strerror or str(exc), str(exc.filename or path))
    found = _RUST_OS_ERROR.search(str(exc)) if isinstance(exc, RuntimeError) else None
    if found:
        code = int(found.group(1))
        return OSError(code, os.strerror(code), str(path))
    return None


class StoreError(RuntimeError):
    """Stored data does not read back as written (a missing or damaged chunk)."""


class HeatmapShardWriter:
    """Appends one video's heatmaps at a time to a shard group that is still at a temp path.

    All videos share one array ``frames`` (F x J x H x W uint8, chunks of ``FRAMES_PER_CHUNK``
    frames) grouped into shard files of about ``HEATMAP_SHARD_BYTES``; each video is a frame
    range (start, length, crc32) in the group attributes. Frames are buffered one shard file at
    a time, so each file is written once: a pose shard is a handful of files."""

    def __init__(self, group: zarr.Group, shape: Sequence[int]) -> None:
        self.group = group
        self.shape = tuple(shape)
        frame_bytes = int(np.prod(self.shape))
        self.per_shard = max(1, HEATMAP_SHARD_BYTES // (frame_bytes * FRAMES_PER_CHUNK)) * FRAMES_PER_CHUNK
        self.frames = group.create_array(
            "frames", shape=(0, *self.shape), dtype="uint8", chunks=(FRAMES_PER_CHUNK, *self.shape),
            shards=(self.per_shard, *self.shape), compressors=HEATMAP_CODEC, fill_value=0)
        self.buffer = np.zeros((self.per_shard, *self.shape), np.uint8)
        self.flushed = 0  # frames [0, flushed) are in shard files; the rest in the buffer
        self.end = 0  # frames written so far
        self.video_ids: list[str] = []
        self.ranges: dict[str, list[int]] = {}  # video id -> [start, length, crc32]
        # video id -> "start:stop:step;..." of the source frames stored (only when not all are)
        self.frame_numbers: dict[str, str] = {}
        self.failed: list[dict[str, str]] = []
        self.warnings: list[dict[str, str]] = []
        self.peak = 0  # the largest heatmap value of the last video added

    def _append(self, batch: np.ndarray) -> None:
        done = 0
        while done < len(batch):
            at = self.end - self.flushed
            take = min(len(batch) - done, self.per_shard - at)
            self.buffer[at:at + take] = batch[done:done + take]
            self.end += take
            done += take
            if self.end - self.flushed == self.per_shard:
                self.flush()

    def flush(self) -> None:
        """Write the buffered frames as the next shard file (a full one, or the last)."""
        if self.end == self.flushed:
            return
        self.frames.resize((self.end, *self.shape))
        with os_errors(self.group.store_path):
            self.frames[self.flushed:self.end] = self.buffer[:self.end - self.flushed]
        self.flushed = self.end

    def add(self, video_id: str, batches: Iterator[np.ndarray], n_frames_hint: int,
            shape: Sequence[int]) -> int:
        """Stream uint8 batches (B x J x H x W) of one video into the shard; returns T.

        A video that fails while being read is not listed (its frames already buffered or
        written stay unreferenced); a storage error goes on and fails the whole shard."""
        if tuple(shape) != self.shape:
            raise ValueError(f"heatmaps of shape {tuple(shape)} in a shard of {self.shape}")
        start, crc, peak = self.end, 0, 0
        for batch in batches:
            self._append(batch)
            crc = zlib.crc32(np.ascontiguousarray(batch, np.uint8).tobytes(), crc)
            peak = max(peak, int(batch.max(initial=0)))
        self.video_ids.append(video_id)
        self.ranges[video_id] = [start, self.end - start, crc]
        self.peak = peak
        return self.end - start

    def fail(self, video_id: str, reason: str) -> None:
        """Record a video that could not be used (it has no frames)."""
        self.failed.append({"video_id": video_id, "reason": reason})

    def warn(self, video_id: str, reason: str) -> None:
        """Record a stored video whose heatmaps are suspect (short, or all zero)."""
        self.warnings.append({"video_id": video_id, "reason": reason})


@contextlib.contextmanager
def write_heatmap_shard(path: str | os.PathLike, attrs: dict[str, Any],
                        shape: Sequence[int]) -> Iterator[HeatmapShardWriter]:
    """Create a heatmap shard of frames of ``shape`` (J x H x W) atomically: it appears at
    ``path`` only once it is complete."""
    with atomic_path(path) as tmp:
        group = zarr.open_group(tmp, mode="w")
        writer = HeatmapShardWriter(group, shape)
        yield writer
        writer.flush()
        group.attrs.update({**attrs, "video_ids": writer.video_ids, "failed": writer.failed,
                            "warnings": writer.warnings, "frame_ranges": writer.ranges,
                            "frame_numbers": writer.frame_numbers,
                            "jmrn_version": __version__})


class HeatmapShard:
    """Read access to a finished heatmap shard (and to the one-array-per-video layout that
    earlier versions wrote, so their pose results stay usable)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.group = zarr.open_group(self.path, mode="r")
        self.attrs = dict(self.group.attrs)
        self.video_ids: list[str] = list(self.attrs["video_ids"])
        self.failed: list[dict[str, str]] = list(self.attrs["failed"])
        self.warnings: list[dict[str, str]] = list(self.attrs.get("warnings", []))
        if "frame_ranges" in self.attrs:
            frames = self.group["frames"]
            self._ranges = {v: (frames, int(a), int(n), r) for v, (a, n, r) in self.attrs["frame_ranges"].items()}
        else:  # one array per video, its crc32 in its attributes
            self._ranges = {}
            for key in self.attrs["arrays"]:
                arr = self.group[key]
                self._ranges[arr.attrs["video_id"]] = (arr, 0, arr.shape[0], arr.attrs.get("crc32"))

    def __len__(self) -> int:
        return len(self.video_ids)

    def n_frames(self, video_id: str) -> int:
        return self._ranges[video_id][2]

    def frame_numbers(self, video_id: str) -> np.ndarray:
        """The source frame number of each stored frame of a video (all frames: 0..T-1)."""
        from jmrn.video import parse_frame_ranges

        numbers = parse_frame_ranges(self.attrs.get("frame_numbers", {}).get(video_id, ""))
        n = self.n_frames(video_id)
        return np.arange(n) if numbers is None else numbers[:n]

    def iter_batches(self, video_id: str, batch: int = FRAMES_PER_CHUNK) -> Iterator[np.ndarray]:
        """Yield uint8 frame batches (B x J x H x W); the bytes are checked against the crc32
        stored for the video once it has been read entirely."""
        arr, start, length, expected = self._ranges[video_id]
        if expected is None and "frame_ranges" in self.attrs:
            raise StoreError(f"{self.path}: video {video_id!r} has no checksum (the shard's "
                             "attributes are damaged); rerun its pose shard")
        crc = 0
        for at in range(start, start + length, batch):
            try:
                block = arr[at:min(at + batch, start + length)]
            except Exception as exc:
                fault = storage_fault(exc, self.path / arr.path / arr.metadata.encode_chunk_key(
                    (at // (arr.shards or arr.chunks)[0],) + (0,) * (arr.ndim - 1)))
                if fault is not None:
                    raise fault from exc
                raise StoreError(f"{self.path}: heatmaps of video {video_id!r} cannot be read "
                                 f"({type(exc).__name__}: {exc}); rerun its pose shard") from exc
            crc = zlib.crc32(np.ascontiguousarray(block).tobytes(), crc)
            yield block
        if expected is not None and crc != expected:
            raise StoreError(f"{self.path}: heatmaps of video {video_id!r} are damaged (checksum "
                             "mismatch: a chunk is missing or altered); rerun its pose shard")

    def read(self, video_id: str) -> np.ndarray:
        return np.concatenate(list(self.iter_batches(video_id)))


def videos_per_shard(shape: Sequence[int]) -> int:
    """PoTion maps per shard file: about ``POTION_SHARD_BYTES`` of float16 maps."""
    return max(1, POTION_SHARD_BYTES // (int(np.prod(shape)) * 2))


def write_potion_store(path: str | os.PathLike, video_ids: Sequence[str],
                       maps: Iterator[np.ndarray], shape: Sequence[int], attrs: dict[str, Any]) -> int:
    """Write N PoTion maps (each J x C x H x W) streamed from ``maps``, atomically; returns N.

    One chunk per video (random access), grouped into shard files of ``videos_per_shard`` maps
    (Zarr v3 sharding): a store is a handful of files, not one per video. Maps are buffered one
    shard at a time, so each shard file is written once."""
    n = len(video_ids)
    per_shard = min(videos_per_shard(shape), max(n, 1))
    with atomic_path(path) as tmp, os_errors(tmp):
        group = zarr.open_group(tmp, mode="w")
        potion = group.create_array("potion", shape=(n, *shape), dtype="float16",
                                    chunks=(1, *shape), shards=(per_shard, *shape),
                                    compressors=POTION_CODEC, fill_value=0)
        ids = group.create_array("video_id", shape=(n,), dtype=str)
        crcs = np.zeros(n, np.uint32)
        if n:
            ids[:] = np.asarray(list(video_ids), dtype=str)
        buffer = np.zeros((per_shard, *shape), np.float16)
        count = 0
        for m in maps:
            if count >= n:
                raise ValueError(f"expected {n} PoTion maps, got more")
            buffer[count % per_shard] = m
            crcs[count] = zlib.crc32(np.ascontiguousarray(buffer[count % per_shard]).tobytes())
            count += 1
            if count % per_shard == 0 or count == n:
                start = (count - 1) // per_shard * per_shard
                potion[start:count] = buffer[:count - start]
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
        if n and (self.crc32 is None or self.crc32.shape != (n,)):
            raise StoreError(f"{self.path}: the store's checksums (crc32) are missing or damaged, so "
                             "its maps cannot be verified; rerun the potion rule (delete the store)")
        self.rows_per_file = (self.potion.shards or self.potion.chunks)[0]  # maps per shard file

    def __len__(self) -> int:
        return len(self.video_ids)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.potion.shape[1:])

    def get(self, video_id: str) -> np.ndarray:
        return self.load([video_id])[0]

    def _damaged(self, video_id: str, why: str) -> StoreError:
        return StoreError(f"{self.path}: the PoTion map of video {video_id!r} {why}; rerun the "
                          "potion rule (delete the store)")

    def _row_slices(self, rows: np.ndarray) -> list[slice]:
        """Sorted store rows as slices: one per run of consecutive rows, cut at shard-file
        boundaries so that each slice reads one shard file (a whole one in a single read)."""
        if not len(rows):
            return []
        per_file = self.rows_per_file
        cuts = np.flatnonzero((np.diff(rows) != 1) | (rows[1:] // per_file != rows[:-1] // per_file))
        return [slice(int(run[0]), int(run[-1]) + 1) for run in np.split(rows, cuts + 1)]

    def _read_rows(self, rows: np.ndarray, out: np.ndarray, at: np.ndarray) -> None:
        """Sorted store rows' float16 maps into ``out[at]``. Each wave of slices (at most two
        shard files' rows) is read concurrently through Zarr's asynchronous API (file reads and
        decompression overlap; Zarr's orthogonal selection would decode whole shards) and each
        slice is copied to its place as it arrives, so a whole split peaks at its own size plus
        a wave, not twice its size. A chunk that cannot be decoded names its video."""
        reader = self.potion.async_array
        wave_rows = 2 * self.rows_per_file

        async def read_into(s: slice, first: int) -> None:
            out[at[first:first + s.stop - s.start]] = await reader.getitem(s)

        async def read_wave(wave: list[tuple[slice, int]]) -> None:
            await asyncio.gather(*(read_into(s, first) for s, first in wave))

        try:
            for wave in self._waves(self._row_slices(rows), wave_rows):
                zarr_sync(read_wave(wave))
        except Exception as exc:
            for r in rows:  # find the damaged one
                try:
                    self.potion[int(r)]
                except Exception as row_exc:
                    fault = storage_fault(row_exc, self.path / "potion" / self.potion.metadata.
                                          encode_chunk_key((int(r) // self.rows_per_file, 0, 0, 0, 0)))
                    if fault is not None:
                        raise fault from exc
                    raise self._damaged(self.video_ids[r], f"cannot be read ({type(exc).__name__}: "
                                        f"{exc})") from exc
            fault = storage_fault(exc, self.path)
            if fault is not None:
                raise fault from exc
            raise

    @staticmethod
    def _waves(slices: list[slice], max_rows: int) -> Iterator[list[tuple[slice, int]]]:
        """Consecutive slices with their first position in the output, grouped into waves of at
        most ``max_rows`` rows (a longer slice is a wave of its own)."""
        wave: list[tuple[slice, int]] = []
        first = size = 0
        for s in slices:
            if wave and size + s.stop - s.start > max_rows:
                yield wave
                wave, size = [], 0
            wave.append((s, first))
            first += s.stop - s.start
            size += s.stop - s.start
        if wave:
            yield wave

    def require(self, video_ids: Sequence[str]) -> None:
        """KeyError naming the first few of ``video_ids`` that the store does not hold."""
        missing = [v for v in video_ids if v not in self.index]
        if missing:
            raise KeyError(f"{len(missing)} videos not in the PoTion store, e.g. {missing[:3]}")

    def load(self, video_ids: Sequence[str]) -> np.ndarray:
        """Maps of the given videos, in order, as stored: one float16 array (N x J x C x H x W),
        each map checked against its crc32."""
        self.require(video_ids)
        if not video_ids:
            return np.zeros((0, *self.shape), np.float16)
        rows = np.array([self.index[v] for v in video_ids])
        order = np.argsort(rows, kind="stable")  # read in store order, placed where asked
        out = np.empty((len(rows), *self.shape), np.float16)
        self._read_rows(rows[order], out, order)  # each map copied once, to its place
        if self.crc32 is not None:
            for i, r in enumerate(rows):
                if zlib.crc32(out[i]) != self.crc32[r]:
                    raise self._damaged(self.video_ids[r], "does not match its checksum (a chunk is "
                                        "missing or altered)")
        return out
