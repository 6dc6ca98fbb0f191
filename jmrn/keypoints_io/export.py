"""A finished pose stage's heatmaps back to keypoints: the skeleton pickle for pyskl / mmaction2.

Each joint of each stored frame becomes the heatmap's peak: its argmax, optionally refined to
sub-pixel by a parabola through the logarithms of the peak and its two neighbours along x and
along y (exact for the Gaussians that keypoints are rendered as; offsets kept within half a
pixel), and its score is the fitted maximum / 255 (the peak pixel / 255 without refinement: a
Gaussian centred between pixels is higher than any of them), at most 1. A joint whose map is
all zero is "not found": (0, 0), score 0. Peaks are mapped from the heatmap back to the video's
pixels (the manifest's width and height) through the same geometry that put them there: the
aspect-keeping fit of ``jmrn.pose.keypoints.fit_transform`` for backends that render keypoints
(keypoints, mediapipe, openpose, alphapose), the letterbox of ``jmrn.pose.base.letterbox_geometry`` for those that
resample maps (openpifpaf, openpose_heatmaps, markers). The stored maps hold the maximum over
the persons of a frame, so the export has one person per frame (M = 1): in a frame with several
people each joint comes from whichever is most confident there. Positions are accurate to
well within one heatmap pixel, i.e. (source size / heatmap size) video pixels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from jmrn.errors import UserError
from jmrn.keypoints_io.pickle_io import Conversion, annotation
from jmrn.pose.base import letterbox_geometry
from jmrn.pose.keypoints import fit_transform, reorder
from jmrn.pose.skeleton import JOINTS
from jmrn.store import HeatmapShard, StoreError
from jmrn.tables import class_names, is_multilabel, read_manifest

RENDERED = frozenset({"keypoints", "mediapipe", "openpose", "alphapose"})  # Gaussians of keypoints


def subpixel(flat: np.ndarray, idx: np.ndarray, at: np.ndarray, size: int,
             stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-parabola fit through peaks ``idx`` of ``flat`` (... x H*W) and their two neighbours
    along one axis (``at`` the peak's position on it, ``size`` its length, ``stride`` its step
    in ``flat``): (offset in [-0.5, 0.5], log of the fitted maximum over the peak value); both 0
    where a neighbour is missing or zero."""
    def value(shift: int) -> np.ndarray:
        where = np.clip(idx + shift, 0, flat.shape[-1] - 1)[..., None]
        return np.take_along_axis(flat, where, -1)[..., 0].astype(np.float64)

    raw = value(-stride), value(0), value(stride)
    before, centre, after = (np.log(np.maximum(v, 1)) for v in raw)
    slope, curvature = (after - before) / 2, before - 2 * centre + after
    ok = (at > 0) & (at < size - 1) & (curvature < 0) & (raw[0] > 0) & (raw[2] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(ok, np.clip(-slope / curvature, -0.5, 0.5), 0.0)
    return offset, np.where(ok, offset * slope + offset**2 * curvature / 2, 0.0)


def peaks(maps: np.ndarray, refine: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(T x J x 2 peak positions in heatmap pixels, T x J scores in [0, 1]) of uint8 heatmaps
    T x J x H x W: one argmax over each flattened map, no loop over frames or joints. Refined,
    the score is the fitted maximum (a Gaussian's peak between pixels is higher than its
    pixels), at most 1; else the peak pixel / 255."""
    t, j, h, w = maps.shape
    flat = maps.reshape(t, j, h * w)
    idx = flat.argmax(axis=-1)
    peak = np.take_along_axis(flat, idx[..., None], -1)[..., 0].astype(np.float64)
    y, x = np.divmod(idx, w)
    xy = np.stack([x, y], axis=-1).astype(np.float64)
    score = peak / 255.0
    if refine:
        (dx, gx), (dy, gy) = subpixel(flat, idx, x, w, 1), subpixel(flat, idx, y, h, w)
        xy += np.stack([dx, dy], axis=-1)
        score = np.minimum(score * np.exp(gx + gy), 1.0)
    found = peak > 0
    return np.where(found[..., None], xy, 0).astype(np.float32), score.astype(np.float32)


def to_source(xy: np.ndarray, found: np.ndarray, backend: str, src_hw: tuple[int, int],
              map_hw: tuple[int, int]) -> np.ndarray:
    """Heatmap pixel positions (..., 2) back to the source frame's pixels (not found: (0, 0))."""
    if backend in RENDERED:
        scale, dx, dy = fit_transform(src_hw, map_hw)
        shift = -0.5 * (1 - scale)
        x = (xy[..., 0] - dx - shift) / scale
        y = (xy[..., 1] - dy - shift) / scale
    else:
        h, w, top, left = letterbox_geometry(*src_hw, *map_hw)
        x = (xy[..., 0] - left + 0.5) * src_hw[1] / w - 0.5
        y = (xy[..., 1] - top + 0.5) * src_hw[0] / h - 0.5
    return np.where(found[..., None], np.stack([x, y], axis=-1), 0).astype(np.float32)


def locate(sources: list[str], manifest: str | None) -> tuple[list[Path], Path]:
    """Heatmap shards and the manifest: a results folder (``results/<dataset>``, holding
    ``manifest.csv`` and ``heatmaps/*.zarr``) or shard folders (their manifest two levels up
    unless ``manifest`` is given)."""
    shards: list[Path] = []
    found_manifest = None
    for source in map(Path, sources):
        if (source / "heatmaps").is_dir():
            shards += sorted(p for p in (source / "heatmaps").glob("*.zarr")
                             if p.is_dir() and not p.name.startswith("."))  # not a killed job's
            found_manifest = found_manifest or source / "manifest.csv"
        elif source.suffix == ".zarr" and (source / "zarr.json").is_file():
            shards.append(source)
            found_manifest = found_manifest or source.parent.parent / "manifest.csv"
        else:
            raise UserError(f"{source} is neither a results folder (with heatmaps/) nor a heatmap "
                            "shard (<shard>.zarr)")
    if not shards:
        raise UserError(f"no heatmap shards in {', '.join(sources)}: run the pose stage first")
    path = Path(manifest) if manifest else found_manifest
    if path is None or not path.is_file():
        raise UserError(f"manifest {path} does not exist; name it with --manifest")
    return shards, path


def export(sources: list[str], out_names: tuple[str, ...], manifest: str | None = None,
           refine: bool = True) -> Conversion:
    """Every video stored in the shards as one annotation, labelled and split as the manifest
    says (published splits ``split<k>_train`` / ``split<k>_test``)."""
    shards, manifest_path = locate(sources, manifest)
    try:
        table = read_manifest(manifest_path)
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' parser errors are ValueErrors
        raise UserError(f"{manifest_path}: not a manifest CSV ({exc})") from exc
    if is_multilabel(table) or "source" in table:
        raise UserError(f"{manifest_path}: export writes one label per video; this dataset is "
                        "multi-label or of person boxes (AVA), which the 2D pickle cannot hold")
    missing = sorted({"video_id", "label", "label_name", "width", "height"} - set(table.columns))
    if missing:
        raise UserError(f"{manifest_path}: not a pipeline manifest (no column {', '.join(missing)})")
    rows = table.set_index("video_id")
    split_columns = sorted((c for c in table if c.startswith("split") and c[5:].isdigit()),
                           key=lambda c: int(c[5:]))
    result = Conversion(classes=class_names(table))
    for path in shards:
        try:
            shard = HeatmapShard(path)
        except (KeyError, ValueError, TypeError) as exc:
            raise UserError(f"{path}: not a finished heatmap shard ({type(exc).__name__}: {exc})") from exc
        if list(shard.attrs.get("joints", JOINTS)) != list(JOINTS):
            raise UserError(f"{path}: its joints are not the pipeline's 18 ({', '.join(JOINTS)})")
        map_hw, backend = (int(shard.attrs["height"]), int(shard.attrs["width"])), str(shard.attrs["backend"])
        for failed in shard.failed:
            result.notes.append((str(path), f"video {failed['video_id']!r} has no heatmaps "
                                            f"({failed['reason']}); left out"))
        for vid in shard.video_ids:
            if vid not in rows.index:
                result.skip(str(path), f"video {vid!r} is not in {manifest_path}")
                continue
            row = rows.loc[vid]
            src_hw = (int(row["height"]), int(row["width"]))
            if min(src_hw) < 1:
                result.skip(str(path), f"video {vid!r} has no frame size in {manifest_path}")
                continue
            try:
                maps = shard.read(vid)
            except StoreError as exc:
                raise UserError(str(exc)) from exc
            xy, score = peaks(maps, refine)
            kp = to_source(xy, score > 0, backend, src_hw, map_hw)
            kp, score = reorder(kp[None], score[None], JOINTS, out_names)
            subsets = {c: f"{c}_{row[c]}" for c in split_columns if row[c] in ("train", "test")}
            result.add(str(path), annotation(vid, int(row["label"]), kp, score, src_hw), subsets)
    return result

