"""PoTion temporal aggregation (Choutas et al., CVPR 2018), streaming over frames.

Each frame's joint heatmaps are added into C channels with hat-shaped weights over relative
time, so a video of any length becomes one J x C x H x W map. Frames arrive in batches; only
the J x C x H x W accumulator is kept, never the whole T x J x H x W video.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numba import njit

NORMALISATIONS = ("area", "max")
EXTRA_CHANNELS = ("intensity", "normalized")
_EPS = 1e-6
# Pixels of a joint's map processed per pass of the kernel: the accumulator tiles of a group of
# frames stay in cache while the frames stream through (a joint of 64 x 86 is one tile).
_TILE = 32768


@njit(fastmath=True, nogil=True, cache=True)
def _accumulate(frames, segment, w_lo, w_hi, acc, tile):  # pragma: no cover - compiled
    """acc[:, segment[t]] += w_lo[t] * frames[t]; acc[:, segment[t] + 1] += w_hi[t] * frames[t].

    frames: B x J x P (uint8 or float), acc: J x C x P float32 (the output's layout, so it is
    written once). One fused pass per tile of a joint's pixels: each pixel of a group of 8
    frames of the same segment is read once, converted to float in registers and added into
    both channels with one accumulator read/write each; frames left over go one at a time.
    """
    n_frames, n_joints, n_pix = frames.shape
    for j in range(n_joints):
        for start in range(0, n_pix, tile):
            stop = min(start + tile, n_pix)
            width = stop - start
            t = 0
            while t < n_frames:
                k = segment[t]
                lo = acc[j, k, start:stop]
                hi = acc[j, k + 1, start:stop]
                if t + 8 <= n_frames and segment[t + 7] == k:
                    r0, r1 = frames[t, j, start:stop], frames[t + 1, j, start:stop]
                    r2, r3 = frames[t + 2, j, start:stop], frames[t + 3, j, start:stop]
                    r4, r5 = frames[t + 4, j, start:stop], frames[t + 5, j, start:stop]
                    r6, r7 = frames[t + 6, j, start:stop], frames[t + 7, j, start:stop]
                    a0, a1, a2, a3 = w_lo[t], w_lo[t + 1], w_lo[t + 2], w_lo[t + 3]
                    a4, a5, a6, a7 = w_lo[t + 4], w_lo[t + 5], w_lo[t + 6], w_lo[t + 7]
                    b0, b1, b2, b3 = w_hi[t], w_hi[t + 1], w_hi[t + 2], w_hi[t + 3]
                    b4, b5, b6, b7 = w_hi[t + 4], w_hi[t + 5], w_hi[t + 6], w_hi[t + 7]
                    for n in range(width):
                        f0, f1 = np.float32(r0[n]), np.float32(r1[n])
                        f2, f3 = np.float32(r2[n]), np.float32(r3[n])
                        f4, f5 = np.float32(r4[n]), np.float32(r5[n])
                        f6, f7 = np.float32(r6[n]), np.float32(r7[n])
                        lo[n] += (((a0 * f0 + a1 * f1) + (a2 * f2 + a3 * f3))
                                  + ((a4 * f4 + a5 * f5) + (a6 * f6 + a7 * f7)))
                        hi[n] += (((b0 * f0 + b1 * f1) + (b2 * f2 + b3 * f3))
                                  + ((b4 * f4 + b5 * f5) + (b6 * f6 + b7 * f7)))
                    t += 8
                else:
                    r0, a0, b0 = frames[t, j, start:stop], w_lo[t], w_hi[t]
                    for n in range(width):
                        f0 = np.float32(r0[n])
                        lo[n] += a0 * f0
                        hi[n] += b0 * f0
                    t += 1


def relative_time(n_frames: int) -> np.ndarray:
    """t in [0, 1] for each frame; a single frame sits at t = 0.5 (no direction of time)."""
    if n_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {n_frames}")
    if n_frames == 1:
        return np.array([0.5])
    return np.arange(n_frames) / (n_frames - 1)


def hat_weights(t: np.ndarray, channels: int) -> np.ndarray:
    """Piece-wise linear colourisation weights o_c(t) (len(t) x C), partition of unity."""
    if channels < 2:
        raise ValueError(f"PoTion needs at least 2 channels, got {channels}")
    centres = np.arange(channels) / (channels - 1)
    return np.maximum(0.0, 1.0 - np.abs(t[:, None] - centres[None, :]) * (channels - 1))


class PotionAccumulator:
    """Streams heatmap batches (B x J x H x W, uint8 in 0..255 or float in 0..1) into U.

    ``n_frames`` must be known up front because the weights depend on relative time.
    """

    def __init__(self, n_frames: int, channels: int, shape: Sequence[int],
                 normalisation: str = "area", extra: Sequence[str] = ()) -> None:
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
        unknown = set(extra) - set(EXTRA_CHANNELS)
        if unknown:
            raise ValueError(f"unknown extra PoTion channels {sorted(unknown)}; known: {EXTRA_CHANNELS}")
        self.n_frames = n_frames
        self.channels = channels
        self.shape = tuple(shape)  # (J, H, W)
        self.normalisation = normalisation
        self.extra = tuple(extra)
        t = relative_time(n_frames)
        self.weights = hat_weights(t, channels).astype(np.float32)  # T x C
        # Each frame lies in one segment between two channel centres and touches only those
        # two channels: adding into the 2 non-zero channels saves a third of the work at C = 3.
        self.segment = np.minimum((t * (channels - 1)).astype(np.int64), channels - 2)
        rows = np.arange(n_frames)
        w_lo, w_hi = self.weights[rows, self.segment], self.weights[rows, self.segment + 1]
        if normalisation == "area":  # fold the division by each channel's weight sum in here
            sums = _area_divisor(self.weights.sum(axis=0))
            w_lo, w_hi = w_lo / sums[self.segment], w_hi / sums[self.segment + 1]
        self.w_lo = w_lo.astype(np.float32)
        self.w_hi = w_hi.astype(np.float32)
        # J x C x (H*W): U in the output's layout, already divided by the channel weight sums
        # for `area`
        j, h, w = self.shape
        self.sum = np.zeros((j, channels, h * w), np.float32)
        self.seen = 0

    def update(self, frames: np.ndarray) -> None:
        """Add a batch of consecutive frames (B x J x H x W)."""
        b = len(frames)
        if self.seen + b > self.n_frames:
            raise ValueError(f"got more than the declared {self.n_frames} frames")
        flat = np.ascontiguousarray(frames).reshape(b, self.shape[0], -1)  # B x J x (H*W)
        if flat.dtype != np.uint8:
            flat = flat.astype(np.float32, copy=False)
        scale = np.float32(1 / 255 if flat.dtype == np.uint8 else 1.0)
        ids = slice(self.seen, self.seen + b)
        _accumulate(flat, self.segment[ids], self.w_lo[ids] * scale, self.w_hi[ids] * scale,
                    self.sum, _TILE)
        self.seen += b

    def result(self) -> np.ndarray:
        """The PoTion map: J x C' x H x W float32, C' = C + len(extra)."""
        if self.seen != self.n_frames:
            raise ValueError(f"declared {self.n_frames} frames but received {self.seen}")
        J, H, W = self.shape
        u = self.sum.reshape(J, self.channels, H, W)  # a view: no copy
        if self.normalisation == "max":
            u = _max_normalise(u)
        return _with_extra(u, self.extra)


def _area_divisor(weight_sums: np.ndarray) -> np.ndarray:
    """Per-channel divisor of ``area`` normalisation (a channel no frame touches stays 0)."""
    return np.maximum(weight_sums, _EPS)


def _max_normalise(u: np.ndarray) -> np.ndarray:
    """Scale each joint's channel to peak 1; an all-zero map (nobody detected) stays 0."""
    peak = u.max(axis=(2, 3), keepdims=True)
    return np.divide(u, peak, out=np.zeros(u.shape, np.float32), where=peak > _EPS)


def map_channels(channels: int, extra: Sequence[str]) -> int:
    """Channels per joint of a stored map: C, plus 1 for ``intensity``, plus C for ``normalized``."""
    return channels + ("intensity" in extra) + channels * ("normalized" in extra)


def _with_extra(u: np.ndarray, extra: Sequence[str]) -> np.ndarray:
    """Append the optional intensity / normalised channels (PoTion paper) to J x C x H x W."""
    if not extra:
        return u.astype(np.float32, copy=False)
    parts = [u]
    if extra:
        intensity = u.sum(axis=1, keepdims=True)  # J x 1 x H x W
        if "intensity" in extra:
            parts.append(intensity)
        if "normalized" in extra:
            parts.append(u / (_EPS + intensity))
    return np.concatenate(parts, axis=1, dtype=np.float32)


def finalize(u: np.ndarray, weight_sums: np.ndarray, normalisation: str,
             extra: Sequence[str] = ()) -> np.ndarray:
    """Normalise raw sums U (J x C x H x W) and append the optional extra channels."""
    if normalisation == "area":
        # Weighted mean of the heatmaps per channel (the public code's normalisation).
        u = u / _area_divisor(weight_sums)[None, :, None, None]
    else:
        u = _max_normalise(u)
    return _with_extra(u, extra)


def finalize_person(mean: np.ndarray, normalisation: str, extra: Sequence[str] = ()) -> np.ndarray:
    """A weighted-mean PoTion map (J x C x H x W, ``area``; e.g. a cropped one) with the
    configured normalisation and extra channels, as ``PotionAccumulator.result`` gives them."""
    u = _max_normalise(mean) if normalisation == "max" else mean
    return _with_extra(u.astype(np.float32, copy=False), extra)


def potion(frames: Iterable[np.ndarray], n_frames: int, channels: int = 3,
           normalisation: str = "area", extra: Sequence[str] = ()) -> np.ndarray:
    """Aggregate an iterable of heatmap batches (each B x J x H x W) into one PoTion map."""
    acc: PotionAccumulator | None = None
    for batch in frames:
        if acc is None:
            acc = PotionAccumulator(n_frames, channels, batch.shape[1:], normalisation, extra)
        acc.update(batch)
    if acc is None:
        raise ValueError("no frames to aggregate")
    return acc.result()


def potion_reference(heatmaps: np.ndarray, channels: int = 3, normalisation: str = "area",
                     extra: Sequence[str] = ()) -> np.ndarray:
    """All-in-memory einsum version (T x J x H x W float in 0..1), for tests and benchmarks."""
    w = hat_weights(relative_time(len(heatmaps)), channels)
    u = np.einsum("tc,tjhw->jchw", w, heatmaps.astype(np.float64))
    return finalize(u, w.sum(axis=0), normalisation, extra)
