"""Pose stage: run a backend over the videos of one shard and store their heatmaps."""
from __future__ import annotations

import logging
import os
from typing import Any

from tqdm import tqdm

from jmrn.config import fingerprint
from jmrn.tables import read_manifest, shard_of
from jmrn.io import LogWriter
from jmrn.pose.base import make_backend
from jmrn.pose.skeleton import JOINTS
from jmrn.store import write_heatmap_shard
from jmrn.video import VideoError

log = logging.getLogger(__name__)


def extract_shard(manifest_csv: str | os.PathLike, shard: int, n_shards: int,
                  pose: dict[str, Any], out_zarr: str | os.PathLike) -> dict[str, int]:
    """Write heatmaps of every usable video whose id hashes to ``shard``.

    A video that fails to decode is recorded in the shard's ``failed`` list and skipped
    (``on_bad_video: skip``) or stops the job (``fail``)."""
    manifest = read_manifest(manifest_csv)
    usable = manifest[manifest["status"] == "ok"]
    rows = usable[usable["video_id"].map(lambda v: shard_of(v, n_shards)) == shard]
    backend = make_backend(pose["backend"], pose["height"], pose["width"], pose.get("options"))
    shape = (len(JOINTS), pose["height"], pose["width"])
    attrs = {**backend.attrs(), "joints": list(JOINTS), "shard": shard, "n_shards": n_shards,
             "config_hash": fingerprint(pose)}
    log.info("shard %d/%d: %d videos with backend %s", shard, n_shards, len(rows), backend.name)
    frames = 0
    with write_heatmap_shard(out_zarr, attrs) as shard_writer:
        for row in tqdm(rows.to_dict("records"), desc=f"pose shard {shard}", file=LogWriter(log),
                        mininterval=5.0):
            try:
                frames += shard_writer.add(row["video_id"], backend.heatmaps(row), int(row["frames"]),
                                           shape)
            except (VideoError, OSError, ValueError) as exc:
                if pose.get("on_bad_video", "skip") == "fail":
                    raise RuntimeError(f"pose extraction failed for {row['path']}: {exc}") from exc
                log.warning("skipping %s: %s", row["path"], exc)
                shard_writer.fail(row["video_id"], f"{type(exc).__name__}: {exc}")
        n_ok, n_failed = len(shard_writer.video_ids), len(shard_writer.failed)
    log.info("shard %d: %d videos, %d frames, %d failed", shard, n_ok, frames, n_failed)
    return {"videos": n_ok, "frames": frames, "failed": n_failed}
