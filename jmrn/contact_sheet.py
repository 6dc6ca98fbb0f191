"""Contact sheets of a predicted video: a few frames with the skeleton the pose stage saw and
the predicted classes, for a person to check a prediction at a glance (``python -m jmrn predict``)."""
from __future__ import annotations

import os

import cv2
import numpy as np

from jmrn.io import atomic_path
from jmrn.pose.base import letterbox_geometry
from jmrn.pose.skeleton import BONES, JOINT_INDEX
from jmrn.video import iter_frame_batches

TILE_WIDTH = 320
PEAK_MIN = 64  # a joint is drawn where its heatmap peaks at least this high (of 255)
GREEN, WHITE, BLACK = (60, 200, 60), (255, 255, 255), (0, 0, 0)


def heatmap_peaks(heatmaps: np.ndarray, src_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Each joint's peak (T x J x 2, x and y in the video's pixels) and its height (T x J, 0..255)
    from letterboxed uint8 heatmaps T x J x H x W."""
    t, j, h, w = heatmaps.shape
    flat = heatmaps.reshape(t, j, h * w)
    at = flat.argmax(axis=2)
    value = np.take_along_axis(flat, at[..., None], axis=2)[..., 0]
    rows, cols = np.divmod(at, w)
    box_h, box_w, top, left = letterbox_geometry(src_hw[0], src_hw[1], h, w)
    x = (cols - left + 0.5) * src_hw[1] / box_w - 0.5
    y = (rows - top + 0.5) * src_hw[0] / box_h - 0.5
    return np.stack([x, y], axis=-1), value


def draw_skeleton(frame: np.ndarray, points: np.ndarray, heights: np.ndarray) -> None:
    """Bones and joints of one frame (J x 2 points), drawn in place where the joint was found."""
    scale = max(1, round(frame.shape[1] / TILE_WIDTH))
    seen = heights >= PEAK_MIN
    for a, b in BONES:
        i, k = JOINT_INDEX[a], JOINT_INDEX[b]
        if seen[i] and seen[k]:
            cv2.line(frame, tuple(map(int, points[i])), tuple(map(int, points[k])), GREEN, 2 * scale)
    for i in np.flatnonzero(seen):
        cv2.circle(frame, tuple(map(int, points[i])), 3 * scale, WHITE, -1)


def write_contact_sheet(video: str | os.PathLike, heatmaps: np.ndarray, title: str,
                        out_png: str | os.PathLike, tiles: int = 6, columns: int = 3) -> None:
    """``tiles`` evenly spaced frames of ``video`` with their skeletons, under a title bar."""
    n = len(heatmaps)
    wanted = np.unique(np.linspace(0, n - 1, min(tiles, n)).round().astype(int))
    frames = np.concatenate(list(iter_frame_batches(video, frames=wanted)))[:len(wanted)]
    points, heights = heatmap_peaks(heatmaps[wanted[:len(frames)]], frames.shape[1:3])
    tile_h = round(frames.shape[1] * TILE_WIDTH / frames.shape[2])
    cells = []
    for frame, p, v, number in zip(frames, points, heights, wanted):
        frame = frame.copy()
        draw_skeleton(frame, p, v)
        cell = cv2.resize(frame, (TILE_WIDTH, tile_h), interpolation=cv2.INTER_AREA)
        cv2.putText(cell, f"frame {number}", (6, tile_h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, WHITE, 1)
        cells.append(cell)
    cells += [np.zeros_like(cells[0])] * (-len(cells) % columns)
    grid = np.vstack([np.hstack(cells[r:r + columns]) for r in range(0, len(cells), columns)])
    bar = np.full((34, grid.shape[1], 3), BLACK, np.uint8)
    cv2.putText(bar, title, (8, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.6, WHITE, 1, cv2.LINE_AA)
    with atomic_path(out_png) as tmp:
        if not cv2.imwrite(str(tmp), np.vstack([bar, grid])):
            raise OSError(f"cannot write {out_png}")
