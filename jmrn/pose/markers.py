"""``markers`` backend: heatmaps from marker-based captures where each joint has its own colour.

Every pixel whose colour is saturated and bright enough is assigned to the joint with the
nearest marker hue; each joint's pixels are counted per output cell (box resampling, so a
marker's heatmap mass sits where the marker is) and the map is scaled to peak 1. A joint covering fewer than
``min_pixels`` pixels in a frame is treated as missing (a stray compression artefact).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import cv2
import numpy as np

from jmrn.pose.base import PoseBackend, letterbox_geometry, to_uint8, wanted_frames
from jmrn.pose.skeleton import NUM_JOINTS
from jmrn.video import iter_frame_batches

HUE_RANGE = 180  # OpenCV 8-bit hue is 0..179


def hue_lookup(marker_hues: np.ndarray) -> np.ndarray:
    """For each OpenCV hue value, the index of the joint whose marker hue is nearest (circular)."""
    hues = np.arange(HUE_RANGE)[:, None]
    d = np.abs(hues - marker_hues[None, :].astype(int))
    d = np.minimum(d, HUE_RANGE - d)
    return d.argmin(axis=1).astype(np.int16)


class MarkersBackend(PoseBackend):
    name = "markers"

    def __init__(self, height: int, width: int, batch_size: int = 16, min_saturation: int = 100,
                 min_value: int = 80, min_pixels: int = 3,
                 marker_hues: list[int] | None = None) -> None:
        super().__init__(height, width, batch_size)
        if marker_hues is None:
            marker_hues = list(np.arange(NUM_JOINTS) * (HUE_RANGE // NUM_JOINTS))
        if len(marker_hues) != NUM_JOINTS:
            raise ValueError(f"markers backend needs {NUM_JOINTS} marker hues, got {len(marker_hues)}")
        self.marker_hues = [int(h) for h in marker_hues]
        self.lut = hue_lookup(np.asarray(self.marker_hues))
        self.min_saturation, self.min_value, self.min_pixels = min_saturation, min_value, min_pixels

    def attrs(self) -> dict[str, Any]:
        return {**super().attrs(), "marker_hues": self.marker_hues, "min_pixels": self.min_pixels,
                "min_saturation": self.min_saturation, "min_value": self.min_value}

    def heatmaps(self, video: Mapping[str, Any]) -> Iterator[np.ndarray]:
        for frames in iter_frame_batches(video["path"], self.batch_size,
                                         frames=wanted_frames(video)):
            yield to_uint8(self.frames_to_heatmaps(frames))

    def labels(self, frames: np.ndarray) -> np.ndarray:
        """Joint index per pixel (B x h x w, int16), -1 where there is no marker colour."""
        b, h, w, _ = frames.shape
        hsv = cv2.cvtColor(frames.reshape(b * h, w, 3), cv2.COLOR_BGR2HSV).reshape(b, h, w, 3)
        labels = self.lut[hsv[..., 0]]
        labels[(hsv[..., 1] < self.min_saturation) | (hsv[..., 2] < self.min_value)] = -1
        return labels

    def frames_to_heatmaps(self, frames: np.ndarray) -> np.ndarray:
        """BGR frames (B x h x w x 3) to float heatmaps (B x J x H x W) in [0, 1]."""
        b, src_h, src_w, _ = frames.shape
        labels = self.labels(frames)
        h, w, top, left = letterbox_geometry(src_h, src_w, self.height, self.width)
        # Box-resample every labelled pixel into its output cell with one bincount over the
        # whole batch: cost grows with marker pixels, not with B x J x h x w.
        row = top + (np.arange(src_h) * h) // src_h
        col = left + (np.arange(src_w) * w) // src_w
        fb, fy, fx = np.nonzero(labels >= 0)
        cell = (((fb * NUM_JOINTS + labels[fb, fy, fx]) * self.height + row[fy]) * self.width
                + col[fx])
        size = b * NUM_JOINTS * self.height * self.width
        maps = np.bincount(cell, minlength=size).astype(np.float32)
        maps = maps.reshape(b, NUM_JOINTS, self.height, self.width)
        counts = maps.sum(axis=(2, 3))  # marker pixels per frame and joint
        peak = maps.max(axis=(2, 3))
        valid = counts >= max(self.min_pixels, 1)
        scale = np.divide(1.0, peak, out=np.zeros_like(peak), where=valid)
        return maps * scale[:, :, None, None]
