"""Pose stage: run a backend over the videos of one shard and store their heatmaps."""
from __future__ import annotations

import logging
import os
from typing import Any

from tqdm import tqdm

from jmrn.config import fingerprint
from jmrn.datasets.report import DatasetError
from jmrn.io import LogWriter
from jmrn.pose.base import make_backend, wanted_frames
from jmrn.pose.skeleton import JOINTS
from jmrn.store import write_heatmap_shard
from jmrn.tables import pose_rows, read_manifest, shard_of
from jmrn.video import VideoError

log = logging.getLogger(__name__)

# A video is "short" when fewer frames decode than its container announced, beyond this slack
# (containers round their frame counts; a cut file loses many).
SHORT_FRACTION = 0.9

# Problems of a video's content. Anything else, OSError included (a full disk, a permission or
# network-filesystem error), is a fault of the run: the job fails and commits no shard.
CONTENT_ERRORS = (VideoError, ValueError)


def content_warning(decoded: int, announced: int, peak: int,
                    short: str = "decoded {decoded} of {announced} frames") -> str | None:
    """Why a stored video is suspect, or None: it is short (``short`` says how), or no joint
    appears at all."""
    if announced > 0 and decoded < SHORT_FRACTION * announced and announced - decoded >= 2:
        return "short: " + short.format(decoded=decoded, announced=announced)
    if peak == 0:
        return "no joint found in any frame (all heatmaps are zero)"
    return None


def extract_shard(manifest_csv: str | os.PathLike, shard: int, n_shards: int,
                  pose: dict[str, Any], out_zarr: str | os.PathLike) -> dict[str, int]:
    """Write heatmaps of every usable video whose id hashes to ``shard``; ``manifest_csv`` is the
    shard's own video table (``shards/shardNNN.<digest>.csv``, what the pipeline passes) or the
    whole manifest.

    A video that fails to decode (or whose pose files are unusable) is recorded in the shard's
    ``failed`` list and skipped; one that decodes short, whose heatmaps are all zero or whose
    backend noted dropped content is stored and recorded in ``warnings`` (``on_bad_video:
    skip``). With ``fail`` either stops the job on one line. Storage errors
    are never taken for bad videos: they propagate and no shard is committed."""
    manifest = pose_rows(read_manifest(manifest_csv))
    usable = manifest[manifest["status"] == "ok"]
    rows = usable[usable["video_id"].map(lambda v: shard_of(v, n_shards)) == shard]
    backend = make_backend(pose["backend"], pose["height"], pose["width"],
                           (pose.get("options") or {}).get(pose["backend"]))
    shape = (len(JOINTS), pose["height"], pose["width"])
    attrs = {**backend.attrs(), "joints": list(JOINTS), "shard": shard, "n_shards": n_shards,
             "config_hash": fingerprint(pose)}
    log.info("shard %d/%d: %d videos with backend %s", shard, n_shards, len(rows), backend.name)
    fail_fast = pose["on_bad_video"] == "fail"
    frames = 0
    with write_heatmap_shard(out_zarr, attrs, shape) as shard_writer:
        for row in tqdm(rows.to_dict("records"), desc=f"pose shard {shard}", file=LogWriter(log),
                        mininterval=5.0):
            try:
                decoded = shard_writer.add(row["video_id"], backend.heatmaps(row),
                                           int(row["frames"]), shape)
            except CONTENT_ERRORS as exc:
                if fail_fast:
                    raise DatasetError(f"pose extraction failed for {row['path']}: {exc} "
                                       "(pose.on_bad_video: fail)") from exc
                log.warning("skipping %s: %s", row["path"], exc)
                shard_writer.fail(row["video_id"], f"{type(exc).__name__}: {exc}")
                continue
            frames += decoded
            wanted = wanted_frames(row)
            announced = (int(row["frames"]) if wanted is None else len(wanted)) \
                if backend.short_reason else 0
            if wanted is not None:  # which frames the stored ones are (AVA's keyframe clips)
                shard_writer.frame_numbers[row["video_id"]] = row["clip_frames"]
            warning = "; ".join(w for w in (content_warning(decoded, announced, shard_writer.peak,
                                                            backend.short_reason or ""),
                                            *backend.notes) if w)
            if warning:
                if fail_fast:
                    raise DatasetError(f"pose extraction of {row['path']}: {warning} "
                                       "(pose.on_bad_video: fail)")
                log.warning("%s: %s (kept, listed in failed.csv)", row["path"], warning)
                shard_writer.warn(row["video_id"], warning)
        n_ok, n_failed = len(shard_writer.video_ids), len(shard_writer.failed)
        n_warned = len(shard_writer.warnings)
    log.info("shard %d: %d videos, %d frames, %d failed, %d suspect (short or no joint found)",
             shard, n_ok, frames, n_failed, n_warned)
    return {"videos": n_ok, "frames": frames, "failed": n_failed, "warnings": n_warned}
