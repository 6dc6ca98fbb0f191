"""The pose-backend interface: a backend turns one video into a stream of joint heatmaps.

A backend yields uint8 batches (B x 18 x H x W, joints in ``skeleton.JOINTS`` order, 255 = full
confidence) for one manifest row. To add an extractor (AlphaPose, OpenPose, HRNet, ...), write
a module with a ``PoseBackend`` subclass and register it in ``BACKENDS`` below.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

# name -> "module:Class", imported lazily so heavy extractors load only when used.
BACKENDS: dict[str, str] = {
    "markers": "jmrn.pose.markers:MarkersBackend",
    "keypoints": "jmrn.pose.keypoints:KeypointsBackend",
    "openpifpaf": "jmrn.pose.openpifpaf_backend:OpenPifPafBackend",
    "openpose": "jmrn.pose.pose_files:OpenPoseBackend",
    "openpose_heatmaps": "jmrn.pose.pose_files:OpenPoseHeatmapsBackend",
    "alphapose": "jmrn.pose.pose_files:AlphaPoseBackend",
    "mediapipe": "jmrn.pose.mediapipe_backend:MediaPipeBackend",
}


class PoseBackend(ABC):
    """Produces joint heatmaps at a fixed output size (height x width)."""

    name: str = ""
    # How a video with fewer frames than the manifest announced (its container's count) is
    # described ("short: ..."), or None when the source carries its own length (keypoints) or
    # takes the manifest's (AlphaPose).
    short_reason: str | None = "decoded {decoded} of {announced} frames"
    # Remarks on the last video's content (dropped joints, capped people): kept, recorded with
    # the video as a warning.
    notes: list[str] | tuple[str, ...] = ()
    # Whether poses come from the video's pixels (False: from files other tools wrote for it,
    # so the backend cannot see a new video).
    reads_pixels: bool = True

    def __init__(self, height: int, width: int, batch_size: int = 16) -> None:
        if height < 1 or width < 1:
            raise ValueError(f"heatmap size must be positive, got {height}x{width}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError("pose.options.<backend>.batch_size must be a positive integer, "
                             f"got {batch_size!r}")
        self.height, self.width, self.batch_size = height, width, batch_size

    @abstractmethod
    def heatmaps(self, video: Mapping[str, Any]) -> Iterator[np.ndarray]:
        """Yield uint8 batches (B x J x H x W) for one manifest row (keys: video_id, path, ...)."""

    def attrs(self) -> dict[str, Any]:
        """Settings recorded in the shard's attributes (for reproducibility)."""
        return {"backend": self.name, "height": self.height, "width": self.width}


def backend_class(name: str) -> type[PoseBackend]:
    """The registered backend class of ``name`` (its module imported now)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown pose backend {name!r}; available: {', '.join(sorted(BACKENDS))}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_backend(name: str, height: int, width: int, options: Mapping[str, Any] | None = None) -> PoseBackend:
    """Instantiate a registered backend by name."""
    return backend_class(name)(height=height, width=width, **dict(options or {}))


def wanted_frames(video: Mapping[str, Any]) -> np.ndarray | None:
    """The frame numbers a row asks for (``clip_frames``, e.g. AVA's keyframe clips); None
    means every frame."""
    from jmrn.video import parse_frame_ranges

    return parse_frame_ranges(video.get("clip_frames", ""))


def to_uint8(maps: np.ndarray, block: int = 1 << 16) -> np.ndarray:
    """Float heatmaps in [0, 1] to the stored uint8 scale (rounded half to even, clipped).

    Converted ``block`` values at a time through one buffer that stays in cache: the same
    numbers as ``np.clip(np.rint(maps * 255.0), 0, 255).astype(np.uint8)`` without its three
    whole-size temporaries."""
    flat = np.ascontiguousarray(maps).reshape(-1)
    out = np.empty(flat.shape, np.uint8)
    buf = np.empty(min(block, flat.size), (flat[:0] * 255.0).dtype)
    for start in range(0, flat.size, block):
        part = flat[start:start + block]
        tmp = np.multiply(part, 255.0, out=buf[:len(part)])
        np.rint(tmp, out=tmp)
        np.clip(tmp, 0, 255, out=tmp)
        out[start:start + block] = tmp  # in 0..255: exact
    return out.reshape(maps.shape)


def letterbox_geometry(src_h: int, src_w: int, out_h: int, out_w: int) -> tuple[int, int, int, int]:
    """Size (h, w) of the aspect-preserving resize and its (top, left) offset in the output."""
    scale = min(out_h / src_h, out_w / src_w)
    h, w = min(out_h, max(1, round(src_h * scale))), min(out_w, max(1, round(src_w * scale)))
    return h, w, (out_h - h) // 2, (out_w - w) // 2
