"""Per-person PoTion maps for datasets of person boxes at keyframes (AVA).

Heatmaps are computed once per frame of a source video (the whole frame, letterboxed into the
pose stage's H x W). Each person instance is the frames of its keyframe's clip cropped by its
keyframe box (applied across the clip, as the paper does), resampled to ``potion.person``
height x width and aggregated into PoTion; with ``context`` the heatmaps inside the other
people's boxes of the same keyframe, cropped by the person's box enlarged by ``context_scale``,
give C more channels (the paper's "pose encoding of other people").

Cropping and resampling are linear and the same for every frame of a clip, and so is PoTion's
weighted mean over time: cropping the keyframe's whole-frame PoTion (before ``max``
normalisation and extra channels) gives the same maps as aggregating cropped frames, for the
cost of one whole-frame PoTion per keyframe shared by all its people (tested against the
per-frame computation). A source is read once, in order; only open keyframes hold an accumulator.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from jmrn.pose.base import letterbox_geometry
from jmrn.potion import PotionAccumulator, finalize_person, map_channels
from jmrn.store import HeatmapShard
from jmrn.video import parse_frame_ranges

BOX = ("x1", "y1", "x2", "y2")


def resample_matrix(lo: float, hi: float, out: int, size: int) -> np.ndarray:
    """out x size bilinear weights that sample [lo, hi) (pixel edges) at ``out`` cell centres;
    samples outside 0..size-1 contribute nothing (zero padding)."""
    centres = lo + (np.arange(out) + 0.5) * (hi - lo) / out - 0.5
    base = np.floor(centres).astype(int)
    frac = (centres - base).astype(np.float32)
    m = np.zeros((out, size), np.float32)
    for offset, weight in ((0, 1 - frac), (1, frac)):
        idx = base + offset
        ok = (idx >= 0) & (idx < size)
        m[np.flatnonzero(ok), idx[ok]] += weight[ok]
    return m


def _support(m: np.ndarray) -> tuple[int, int]:
    """The range of input pixels a sampling matrix reads (empty when it reads none)."""
    used = np.flatnonzero(m.any(axis=0))
    return (int(used[0]), int(used[-1]) + 1) if len(used) else (0, 0)


@dataclass(frozen=True)
class BoxSampler:
    """Bilinear resampling of one box of h x w heatmaps to out_h x out_w that reads only the
    rows and columns the box touches (two small matrix products per frame and joint)."""
    rows: np.ndarray  # out_h x (r1 - r0)
    cols: np.ndarray  # out_w x (c1 - c0)
    r0: int
    c0: int

    @classmethod
    def for_box(cls, box: tuple[float, float, float, float], out_hw: tuple[int, int],
                map_hw: tuple[int, int]) -> "BoxSampler":
        """``box``: x1, y1, x2, y2 in heatmap pixels (edges)."""
        x1, y1, x2, y2 = box
        rows = resample_matrix(y1, y2, out_hw[0], map_hw[0])
        cols = resample_matrix(x1, x2, out_hw[1], map_hw[1])
        (r0, r1), (c0, c1) = _support(rows), _support(cols)
        return cls(np.ascontiguousarray(rows[:, r0:r1]), np.ascontiguousarray(cols[:, c0:c1]), r0, c0)

    def __call__(self, frames: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """... x h x w uint8 heatmaps (times ``mask``, h x w, where given) -> ... x H x W floats
        in 0..1; float input is taken as already in 0..1."""
        r1, c1 = self.r0 + self.rows.shape[1], self.c0 + self.cols.shape[1]
        window = frames[..., self.r0:r1, self.c0:c1]
        if mask is not None:
            window = window * mask[self.r0:r1, self.c0:c1]
        rows = self.rows * np.float32(1 / 255) if window.dtype == np.uint8 else self.rows
        return np.matmul(np.matmul(rows, window.astype(np.float32)), self.cols.T)


def box_in_heatmap(box: Sequence[float], frame_hw: tuple[int, int], map_hw: tuple[int, int],
                   scale: float = 1.0) -> tuple[float, float, float, float]:
    """A normalised box (x1, y1, x2, y2) of a video frame in heatmap pixels (the pose stage
    letterboxes the frame), enlarged about its centre by ``scale``."""
    h, w, top, left = letterbox_geometry(frame_hw[0], frame_hw[1], *map_hw)
    x1, y1, x2, y2 = box
    cx, cy, half_w, half_h = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * scale / 2, (y2 - y1) * scale / 2
    return (left + (cx - half_w) * w, top + (cy - half_h) * h,
            left + (cx + half_w) * w, top + (cy + half_h) * h)


@dataclass
class Person:
    """One person box of a keyframe, and the other people's boxes, in heatmap pixels."""
    video_id: str
    box: tuple[float, float, float, float]
    context_box: tuple[float, float, float, float] | None
    others: list[tuple[float, float, float, float]]

    def maps(self, mean: np.ndarray, map_hw: tuple[int, int], out_hw: tuple[int, int],
             potion: dict[str, Any]) -> np.ndarray:
        """J x C' x H x W from the keyframe's whole-frame weighted mean (J x C x h x w): the
        person's crop, then the context's (the others' boxes masked, the enlarged crop)."""
        parts = [BoxSampler.for_box(self.box, out_hw, map_hw)(mean)]
        if self.context_box is not None:
            mask = np.zeros(map_hw, np.float32)
            for a, b, c, d in self.others:
                mask[max(0, int(np.floor(b))):max(0, int(np.ceil(d))),
                     max(0, int(np.floor(a))):max(0, int(np.ceil(c)))] = 1
            parts.append(BoxSampler.for_box(self.context_box, out_hw, map_hw)(mean, mask))
        return np.concatenate([finalize_person(p, potion["normalisation"], potion["extra_channels"])
                               for p in parts], axis=1)


@dataclass
class Keyframe:
    """A keyframe's clip (stored-frame positions [first, stop)) and its people."""
    first: int
    stop: int
    people: list[Person]
    accumulator: PotionAccumulator | None = None
    mean: np.ndarray | None = None


def plan_source(shard: HeatmapShard, source: str, rows: pd.DataFrame,
                potion: dict[str, Any]) -> list[Keyframe]:
    """The keyframes of one source video (``rows``: its usable manifest rows) whose clip has
    stored frames, in the order ``source_maps`` yields their people (clip end; id within)."""
    map_hw = (int(shard.attrs["height"]), int(shard.attrs["width"]))
    numbers = shard.frame_numbers(source)
    person = potion["person"]
    keyframes = []
    for _, group in rows.groupby("timestamp", sort=True):
        records = sorted(group.to_dict("records"), key=lambda r: r["video_id"])
        clip = parse_frame_ranges(records[0]["clip_frames"])
        first, stop = np.searchsorted(numbers, [clip[0], clip[-1] + 1])
        if stop <= first:
            continue
        frame_hw = (int(records[0]["height"]), int(records[0]["width"]))
        boxes = [box_in_heatmap([r[c] for c in BOX], frame_hw, map_hw) for r in records]
        people = [Person(r["video_id"], boxes[i],
                         box_in_heatmap([r[c] for c in BOX], frame_hw, map_hw, float(person["context_scale"]))
                         if person["context"] else None, boxes[:i] + boxes[i + 1:])
                  for i, r in enumerate(records)]
        keyframes.append(Keyframe(int(first), int(stop), people))
    return sorted(keyframes, key=lambda k: (k.stop, k.first))


def planned_ids(keyframes: list[Keyframe]) -> list[str]:
    """Instance ids in the order ``source_maps`` yields their maps."""
    return [p.video_id for k in keyframes for p in k.people]


def source_maps(shard: HeatmapShard, source: str, keyframes: list[Keyframe],
                potion: dict[str, Any]) -> Iterator[np.ndarray]:
    """The J x C' x H x W map of each person of ``keyframes`` (``plan_source``), in
    ``planned_ids`` order, as clips close; the source's heatmaps are read once (crc-checked)."""
    attrs = shard.attrs
    map_hw = (int(attrs["height"]), int(attrs["width"]))
    shape = (len(attrs["joints"]), *map_hw)
    out_hw = (int(potion["person"]["height"]), int(potion["person"]["width"]))
    pending = deque(sorted(keyframes, key=lambda k: k.first))
    open_: list[Keyframe] = []
    closing = deque(keyframes)
    at = 0
    for batch in shard.iter_batches(source):
        end = at + len(batch)
        while pending and pending[0].first < end:
            keyframe = pending.popleft()  # weighted mean over time: "area" whatever the setting
            keyframe.accumulator = PotionAccumulator(keyframe.stop - keyframe.first,
                                                     int(potion["channels"]), shape, "area")
            open_.append(keyframe)
        for keyframe in open_:
            a, b = max(keyframe.first, at), min(keyframe.stop, end)
            if b > a:
                keyframe.accumulator.update(batch[a - at:b - at])
        open_ = [k for k in open_ if k.stop > end]
        while closing and closing[0].stop <= end:
            keyframe = closing.popleft()
            mean = keyframe.accumulator.result()
            keyframe.accumulator = None
            for person in keyframe.people:
                yield person.maps(mean, map_hw, out_hw, potion)
        at = end


def person_map_channels(potion: dict[str, Any]) -> int:
    """Channels per joint of a person map: C (+ extra), twice with context."""
    per = map_channels(int(potion["channels"]), potion["extra_channels"])
    return per * (2 if potion["person"]["context"] else 1)
