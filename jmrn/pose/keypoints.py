"""Keypoints -> heatmaps: Gaussian rendering and joint-layout conversion.

Keypoints come as M x T x V x 2 pixel coordinates with M x T x V scores (mmaction2 / pyskl
skeleton format). They are converted to the 18-joint layout, scaled into the H x W output
(keeping the aspect ratio, centred) and rendered as Gaussians of peak = score, each only inside
its window of +-``truncate`` sigma (default 3); several persons combine by a running maximum.
Rendering is separable and vectorised over frames and joints.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from jmrn.pose.base import PoseBackend, to_uint8
from jmrn.pose.skeleton import COCO17, JOINTS

# OpenPose (COCO-18) order: nose, neck, r_sho, r_elb, r_wri, l_sho, l_elb, l_wri, r_hip, r_knee,
# r_ank, l_hip, l_knee, l_ank, r_eye, l_eye, r_ear, l_ear.
OPENPOSE18: tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
    "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
    "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
)
# JHMDB's 15-joint puppet (joint_positions.mat): its "face" is our nose; the belly has no match.
JHMDB15: tuple[str, ...] = (
    "neck", "belly", "nose", "right_shoulder", "left_shoulder", "right_hip", "left_hip",
    "right_elbow", "left_elbow", "right_knee", "left_knee", "right_wrist", "left_wrist",
    "right_ankle", "left_ankle",
)
LAYOUTS: dict[str, tuple[str, ...]] = {"coco17": COCO17, "openpose18": OPENPOSE18, "jmrn18": JOINTS,
                                       "jhmdb15": JHMDB15}


def reorder(kp: np.ndarray, score: np.ndarray, src: tuple[str, ...],
            dst: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(..., V, 2) keypoints and (..., V) scores from joint names ``src`` to ``dst`` (matched by name).

    A joint ``src`` lacks gets (0, 0) and score 0 (pyskl's "not found"), except a neck, which is
    the shoulders' mid-point with the smaller shoulder score (as the ``keypoints`` backend)."""
    index = {n: i for i, n in enumerate(src)}
    out_kp = np.zeros((*kp.shape[:-2], len(dst), 2), np.float32)
    out_score = np.zeros((*score.shape[:-1], len(dst)), np.float32)
    for j, name in enumerate(dst):
        if name in index:
            out_kp[..., j, :] = kp[..., index[name], :]
            out_score[..., j] = score[..., index[name]]
    if "neck" in dst and "neck" not in index and {"left_shoulder", "right_shoulder"} <= index.keys():
        ls, rs, neck = index["left_shoulder"], index["right_shoulder"], dst.index("neck")
        out_kp[..., neck, :] = (kp[..., ls, :] + kp[..., rs, :]) / 2
        out_score[..., neck] = np.minimum(score[..., ls], score[..., rs])
    return out_kp, out_score


def convert_layout(kp: np.ndarray, score: np.ndarray, layout: str | tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Reorder (..., V, 2) keypoints and (..., V) scores into the 18-joint layout.

    Joints the source lacks get score 0, except the neck, which is the mid-point of the
    shoulders (score = the smaller shoulder score) when the source has no neck."""
    names = LAYOUTS[layout] if isinstance(layout, str) else tuple(layout)
    if kp.shape[-2] != len(names) or score.shape[-1] != len(names):
        raise ValueError(f"layout has {len(names)} joints but keypoints have {kp.shape[-2]}")
    return reorder(kp, score, names, JOINTS)


def fit_transform(src_hw: tuple[int, int], out_hw: tuple[int, int]) -> tuple[float, float, float]:
    """Scale and (x, y) offset mapping source pixels into the output, aspect kept, centred."""
    (sh, sw), (oh, ow) = src_hw, out_hw
    scale = min(oh / sh, ow / sw)
    return scale, (ow - sw * scale) / 2, (oh - sh * scale) / 2


# Gaussians are cut at TRUNCATE sigmas: a pixel outside a keypoint's window differs from the
# whole-grid Gaussian by at most score * exp(-TRUNCATE**2 / 2) (0.011 at 3: at most 3 uint8 levels).
TRUNCATE = 3.0
_TINY = np.finfo(np.float32).tiny  # smallest normal float32: smaller products are flushed to 0


def render_heatmaps(kp: np.ndarray, score: np.ndarray, src_hw: tuple[int, int],
                    out_hw: tuple[int, int], sigma: float = 0.6,
                    truncate: float | None = TRUNCATE) -> np.ndarray:
    """Gaussian heatmaps (T x V x H x W, float32) from M x T x V x 2 keypoints and scores.

    Pixel centres are at integer output coordinates, so a keypoint at source pixel (x, y)
    peaks at output (x * s + dx, y * s + dy) with sub-pixel accuracy. A joint with a
    non-finite coordinate or score, or a score <= 0, is missing. Persons are rendered one at
    a time into a running maximum, so memory does not grow with their number.

    ``truncate``: each Gaussian is rendered only in its window of +-``truncate`` sigma (a square
    of pixels whose distance along x and along y is at most that); inside it the values are
    exactly the whole-grid rendering's, outside it they are 0 instead of at most
    score * exp(-truncate**2 / 2). The cost then depends on the window, not on H x W. ``None``
    renders every Gaussian over the whole grid (the reference)."""
    scale, dx, dy = fit_transform(src_hw, out_hw)
    h, w = out_hw
    with np.errstate(invalid="ignore", over="ignore"):
        x = kp[..., 0] * scale + dx - 0.5 * (1 - scale)  # source pixel centres -> output centres
        y = kp[..., 1] * scale + dy - 0.5 * (1 - scale)
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(score) & (score > 0)
    s = np.where(ok, score, 0).astype(np.float32)
    # Beyond 40 sigma of the frame a Gaussian underflows to 0: clipping there changes nothing.
    pad = 40 * sigma + 1
    x = np.clip(np.where(ok, x, 0), -pad, w - 1 + pad)
    y = np.clip(np.where(ok, y, 0), -pad, h - 1 + pad)
    maps = np.zeros((*score.shape[1:], h, w), np.float32)
    present = s.any(axis=2)  # M x T: person m has a joint in frame t
    for m in np.flatnonzero(present.any(axis=1)):
        t = np.flatnonzero(present[m])
        if truncate is not None:
            _render_windows(maps, x[m, t], y[m, t], s[m, t], t, sigma, truncate)
            continue
        t = slice(None) if len(t) == present.shape[1] else t  # all frames: a view, no copies
        gx = np.exp(-((np.arange(w) - x[m, t, :, None]) ** 2) / (2 * sigma**2))
        gy = np.exp(-((np.arange(h) - y[m, t, :, None]) ** 2) / (2 * sigma**2))
        person = np.einsum("tvh,tvw->tvhw", (gy * s[m, t, :, None]).astype(np.float32),
                           gx.astype(np.float32))
        if isinstance(t, slice):
            np.maximum(maps, person, out=maps)
        else:
            maps[t] = np.maximum(maps[t], person)
    return maps


def _window(centre: np.ndarray, size: int, half: float,
            sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions (... x K) covering each centre's +-half window inside [0, size) and the 1-D
    Gaussian there (float64, 0 outside the window), computed as the whole-grid rendering does."""
    k = min(size, int(2 * half) + 1)  # at most this many pixel centres lie within +-half
    first = np.clip(np.ceil(centre - half), 0, size - k).astype(np.int64)  # ... (shifted inside)
    pos = first[..., None] + np.arange(k)  # ... x K
    d = pos - centre[..., None]
    g = np.exp(-(d**2) / (2 * sigma**2))
    return pos, np.where(np.abs(d) <= half, g, 0.0)


def _render_windows(maps: np.ndarray, x: np.ndarray, y: np.ndarray, s: np.ndarray,
                    frames: np.ndarray, sigma: float, truncate: float) -> None:
    """Max one person's windowed Gaussians (x, y, s: T' x V, in ``frames``) into T x V x H x W maps."""
    _, v, h, w = maps.shape
    half = truncate * sigma
    cols, gx = _window(x, w, half, sigma)  # T' x V x Kw
    rows, gy = _window(y, h, half, sigma)  # T' x V x Kh
    patch = ((gy * s[..., None]).astype(np.float32)[..., :, None]
             * gx.astype(np.float32)[..., None, :])  # T' x V x Kh x Kw
    patch[patch < _TINY] = 0  # no subnormals
    base = (frames[:, None] * v + np.arange(v)) * (h * w)  # T' x V: offset of each map
    idx = base[..., None, None] + rows[..., :, None] * w + cols[..., None, :]  # T' x V x Kh x Kw
    flat = maps.reshape(-1)  # a view: windows of one person never overlap, so no index repeats
    flat[idx] = np.maximum(flat[idx], patch)


def render_batches(kp: np.ndarray, score: np.ndarray, src_hw: tuple[int, int],
                   out_hw: tuple[int, int], sigma: float, batch_size: int,
                   truncate: float | None = TRUNCATE) -> Iterator[np.ndarray]:
    """uint8 heatmap batches (B x V x H x W) of M x T x V keypoints in our layout."""
    for start in range(0, kp.shape[1], batch_size):
        sl = slice(start, start + batch_size)
        yield to_uint8(render_heatmaps(kp[:, sl], score[:, sl], src_hw, out_hw, sigma, truncate))


class KeypointsBackend(PoseBackend):
    """Renders heatmaps from keypoints instead of video frames.

    A manifest row either carries the arrays itself (``keypoint`` M x T x V x 2,
    ``keypoint_score`` M x T x V, ``img_shape`` (h, w)); or names a per-video joint file in its
    ``keypoints`` column (JHMDB ``joint_positions.mat``; the frame size is the row's); or its
    ``path`` is an mmaction2 skeleton pickle holding an annotation whose ``frame_dir`` is the
    row's ``video_id``."""

    name = "keypoints"

    def __init__(self, height: int, width: int, batch_size: int = 32, sigma: float = 0.6,
                 layout: str = "coco17", truncate: float = TRUNCATE) -> None:
        super().__init__(height, width, batch_size)
        if layout not in LAYOUTS:
            raise ValueError(f"unknown keypoint layout {layout!r}; known: {', '.join(LAYOUTS)}")
        self.sigma, self.layout, self.truncate = sigma, layout, truncate

    short_reason = None
    reads_pixels = False

    def attrs(self) -> dict[str, Any]:
        return {**super().attrs(), "sigma": self.sigma, "truncate": self.truncate, "layout": self.layout}

    @staticmethod
    def source(video: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """(keypoints M x T x V x 2, scores M x T x V, source (h, w)) of one manifest row."""
        if video.get("keypoints"):
            from jmrn.datasets.jhmdb import read_joint_positions

            kp, score = read_joint_positions(video["keypoints"])
            return kp, score, (int(video["height"]), int(video["width"]))
        if "keypoint" not in video:
            from jmrn.datasets.skeleton import load_annotations

            video = load_annotations(str(video["path"]))[str(video["video_id"])]
        return (np.asarray(video["keypoint"], np.float32), np.asarray(video["keypoint_score"], np.float32),
                tuple(int(v) for v in video["img_shape"]))

    def heatmaps(self, video: Mapping[str, Any]) -> Iterator[np.ndarray]:
        kp, score, src_hw = self.source(video)
        kp, score = convert_layout(kp, score, self.layout)
        yield from render_batches(kp, score, src_hw, (self.height, self.width), self.sigma,
                                  self.batch_size, self.truncate)
