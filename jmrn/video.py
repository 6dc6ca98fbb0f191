"""Video probing and decoding with OpenCV.

Decoding runs in a reader thread that prefetches batches of frames while the consumer (a pose
network or the marker extractor) works on the previous batch.
"""
from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np


class VideoError(RuntimeError):
    """A video that cannot be used: missing, unreadable, empty or truncated."""


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    fps: float
    width: int
    height: int


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame count, fps and size from the container; raises VideoError for unusable files."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoError("missing file")
    if os.path.getsize(path) == 0:
        raise VideoError("empty file (0 bytes)")
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise VideoError("unreadable: OpenCV cannot open it")
        info = VideoInfo(
            frames=int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
            fps=float(cap.get(cv2.CAP_PROP_FPS)),
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
        ok, _ = cap.read()
        if not ok:
            raise VideoError("no decodable frame")
    finally:
        cap.release()
    if info.width <= 0 or info.height <= 0:
        raise VideoError(f"invalid frame size {info.width}x{info.height}")
    return info


def probe_fields(path: str | os.PathLike | None) -> dict:
    """The manifest's probed columns of a video (frames, fps, width, height, status): zeros and
    why it is unusable when it cannot be used."""
    if path is None:
        return {"frames": 0, "fps": 0.0, "width": 0, "height": 0, "status": "missing file"}
    try:
        info = probe(path)
    except VideoError as exc:
        return {"frames": 0, "fps": 0.0, "width": 0, "height": 0, "status": str(exc)}
    return {"frames": info.frames, "fps": info.fps, "width": info.width, "height": info.height,
            "status": "ok"}


def _read_batches(path: str, batch: int, wanted: np.ndarray | None = None) -> Iterator[np.ndarray]:
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise VideoError("unreadable: OpenCV cannot open it")
    try:
        frames: list[np.ndarray] = []
        index, at = -1, 0
        while wanted is None or at < len(wanted):
            index += 1
            if wanted is not None and wanted[at] != index:
                if not cap.grab():  # a skipped frame is not converted to an image
                    break
                continue
            ok, frame = cap.read()
            if not ok:
                break
            at += 1
            frames.append(frame)
            if len(frames) == batch:
                yield np.stack(frames)
                frames = []
        if frames:
            yield np.stack(frames)
    finally:
        cap.release()


def iter_frame_batches(path: str | os.PathLike, batch: int = 16, prefetch: int = 4,
                       frames: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Yield BGR uint8 arrays (B, H, W, 3) in order, decoded ahead by a background thread;
    only the frame numbers in ``frames`` (sorted, unique) when given.

    Raises VideoError if the file yields no frame at all."""
    path = os.fspath(path)
    buffer: queue.Queue = queue.Queue(maxsize=prefetch)
    done = object()
    stop = threading.Event()

    def reader() -> None:
        try:
            for item in _read_batches(path, batch, frames):
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            buffer.put(exc)

    thread = threading.Thread(target=reader, name="video-reader", daemon=True)
    thread.start()
    n = 0
    try:
        while True:
            item = buffer.get()
            if item is done:
                break
            if isinstance(item, BaseException):
                raise item
            n += len(item)
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
    if n == 0:
        raise VideoError("no decodable frame")


def parse_frame_ranges(field: str) -> np.ndarray | None:
    """Frame numbers of a ``clip_frames`` field ("start:stop:step;..."), sorted and unique;
    None for an empty field (every frame)."""
    parts = [p for p in str(field or "").split(";") if p]
    if not parts:
        return None
    ranges = [np.arange(*(int(v) for v in p.split(":"))) for p in parts]
    return np.unique(np.concatenate(ranges))

