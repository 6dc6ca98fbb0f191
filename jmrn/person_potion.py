"""Per-person PoTion maps for datasets of person boxes at keyframes (AVA).

Heatmaps are computed once per frame of a source video (the whole frame, letterboxed into the
pose stage's H x W). Each person instance takes the frames of its keyframe's clip, crops them
by its keyframe box (applied across the clip, as the paper does), resamples the crop to
``potion.person`` height x width and aggregates PoTion; with ``context`` the heatmaps inside the
other people's boxes of the same keyframe, cropped by the person's box enlarged by
``context_scale``, give C more channels (the paper's "pose encoding of other people").
A source is read once, in order; only the instances whose clip is open hold an accumulator.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from jmrn.pose.base import letterbox_geometry
from jmrn.potion import PotionAccumulator
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


def crop_resample(frames: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """B x J x h x w heatmaps (uint8) -> B x J x H x W floats in 0..1 through the row (H x h)
    and column (W x w) sampling matrices."""
    x = frames.astype(np.float32) * np.float32(1 / 255)
    return np.matmul(np.matmul(rows, x), cols.T)


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
class Instance:
    """One person box of a keyframe: where its clip lies among the stored frames, its box and
    the other people's boxes in heatmap pixels; accumulators exist only while the clip is open."""
    video_id: str
    first: int  # stored-frame positions [first, stop) of the clip
    stop: int
    box: tuple[float, float, float, float]
    context_box: tuple[float, float, float, float] | None
    others: list[tuple[float, float, float, float]]
    accumulators: list[tuple[np.ndarray | None, np.ndarray, np.ndarray, PotionAccumulator]] | None = None

    def start(self, map_hw: tuple[int, int], shape: tuple[int, int, int], potion: dict[str, Any]) -> None:
        """Sampling matrices (and the others' mask) and empty PoTion accumulators."""
        h, w = map_hw
        args = (self.stop - self.first, int(potion["channels"]), shape, potion["normalisation"],
                tuple(potion["extra_channels"]))
        x1, y1, x2, y2 = self.box
        self.accumulators = [(None, resample_matrix(y1, y2, shape[1], h),
                              resample_matrix(x1, x2, shape[2], w), PotionAccumulator(*args))]
        if self.context_box is not None:
            mask = np.zeros((h, w), np.uint8)
            for a, b, c, d in self.others:
                mask[max(0, int(np.floor(b))):max(0, int(np.ceil(d))),
                     max(0, int(np.floor(a))):max(0, int(np.ceil(c)))] = 1
            x1, y1, x2, y2 = self.context_box
            self.accumulators.append((mask, resample_matrix(y1, y2, shape[1], h),
                                      resample_matrix(x1, x2, shape[2], w), PotionAccumulator(*args)))

    def update(self, frames: np.ndarray) -> None:
        for mask, rows, cols, acc in self.accumulators:
            acc.update(crop_resample(frames if mask is None else frames * mask, rows, cols))

    def result(self) -> np.ndarray:
        """J x C' x H x W: the person's PoTion, then the context's."""
        return np.concatenate([acc.result() for *_, acc in self.accumulators], axis=1)


def _instances(rows: pd.DataFrame, numbers: np.ndarray, map_hw: tuple[int, int],
               potion: dict[str, Any]) -> list[Instance]:
    """The instances of one source (``rows``: its manifest rows) whose clip has stored frames."""
    person = potion["person"]
    result = []
    for _, group in rows.groupby("timestamp", sort=True):
        records = group.to_dict("records")
        frame_hw = (int(records[0]["height"]), int(records[0]["width"]))
        boxes = [box_in_heatmap([r[c] for c in BOX], frame_hw, map_hw) for r in records]
        for i, row in enumerate(records):
            clip = parse_frame_ranges(row["clip_frames"])
            first, stop = np.searchsorted(numbers, [clip[0], clip[-1] + 1])
            if stop <= first:
                continue
            context = box_in_heatmap([row[c] for c in BOX], frame_hw, map_hw,
                                     float(person["context_scale"])) if person["context"] else None
            result.append(Instance(row["video_id"], int(first), int(stop), boxes[i], context,
                                   boxes[:i] + boxes[i + 1:]))
    return result


def plan_source(shard: HeatmapShard, source: str, rows: pd.DataFrame,
                potion: dict[str, Any]) -> list[Instance]:
    """The instances of one source video (``rows``: its usable manifest rows) whose clip has
    stored frames, in the order ``source_maps`` yields them (clip end, then id)."""
    map_hw = (int(shard.attrs["height"]), int(shard.attrs["width"]))
    found = _instances(rows, shard.frame_numbers(source), map_hw, potion)
    return sorted(found, key=lambda i: (i.stop, i.video_id))


def source_maps(shard: HeatmapShard, source: str, instances: list[Instance],
                potion: dict[str, Any]) -> Iterator[np.ndarray]:
    """The J x C' x H x W map of each of ``instances`` (``plan_source``), in that order, as
    their clips close; the source's heatmaps are read once (crc-checked)."""
    attrs = shard.attrs
    map_hw = (int(attrs["height"]), int(attrs["width"]))
    shape = (len(attrs["joints"]), int(potion["person"]["height"]), int(potion["person"]["width"]))
    pending = deque(sorted(instances, key=lambda i: i.first))
    open_: list[Instance] = []
    closing = deque(instances)
    at = 0
    for batch in shard.iter_batches(source):
        end = at + len(batch)
        while pending and pending[0].first < end:
            inst = pending.popleft()
            inst.start(map_hw, shape, potion)
            open_.append(inst)
        for inst in open_:
            a, b = max(inst.first, at), min(inst.stop, end)
            if b > a:
                inst.update(batch[a - at:b - at])
        open_ = [i for i in open_ if i.stop > end]
        while closing and closing[0].stop <= end:
            inst = closing.popleft()
            yield inst.result()
            inst.accumulators = None
        at = end


def person_map_channels(potion: dict[str, Any]) -> int:
    """Channels per joint of a person map: C (+ extra), twice with context."""
    per = int(potion["channels"]) + len(potion["extra_channels"])
    return per * (2 if potion["person"]["context"] else 1)
