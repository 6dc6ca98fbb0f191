"""PoTion stage: stream every stored heatmap video into the dataset's PoTion store."""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pandas as pd
from tqdm import tqdm

from jmrn.config import fingerprint
from jmrn.tables import read_manifest, write_csv
from jmrn.io import LogWriter
from jmrn.person_potion import person_map_channels, plan_source, planned_ids, source_maps
from jmrn.potion import PotionAccumulator, map_channels
from jmrn.store import HeatmapShard, write_potion_store

log = logging.getLogger(__name__)


def build_potion_store(manifest_csv: str | os.PathLike, shard_paths: Sequence[str | os.PathLike],
                       potion: dict[str, Any], out_zarr: str | os.PathLike,
                       failed_csv: str | os.PathLike) -> int:
    """Aggregate all shards into ``potion.zarr``; list every unusable video (``used`` False) and
    every suspect one that was kept (short, no joint found; ``used`` True) in ``failed.csv``."""
    manifest = read_manifest(manifest_csv)
    shards = [HeatmapShard(p) for p in shard_paths]
    failed = [{"video_id": r["video_id"], "stage": "manifest", "reason": r["status"], "used": False}
              for r in manifest[manifest["status"] != "ok"].to_dict("records")]
    failed += [{"video_id": f["video_id"], "stage": "pose", "reason": f["reason"], "used": False}
               for s in shards for f in s.failed]
    failed += [{"video_id": w["video_id"], "stage": "pose", "reason": w["reason"], "used": True}
               for s in shards for w in s.warnings]
    owner = {v: s for s in shards for v in s.video_ids}
    if not shards:
        raise ValueError("no heatmap shards given")
    first = shards[0].attrs
    joints, height, width = len(first["joints"]), first["height"], first["width"]
    channels, norm = int(potion["channels"]), potion.get("normalisation", "area")
    extra = tuple(potion.get("extra_channels", ()))
    attrs = {"channels": channels, "map_channels": map_channels(channels, extra),
             "normalisation": norm, "extra_channels": list(extra), "joints": first["joints"],
             "height": height, "width": width, "pose_backend": first["backend"],
             "pose_config_hash": first["config_hash"], "config_hash": fingerprint(potion)}
    if "source" in manifest:  # person boxes at keyframes (AVA)
        video_ids, maps, failed_instances = _person_maps(manifest, owner, potion)
        failed += failed_instances
        shape = (joints, person_map_channels(potion), potion["person"]["height"],
                 potion["person"]["width"])
        attrs.update(map_channels=shape[1], height=shape[2], width=shape[3],
                     person=dict(potion["person"]))
    else:
        video_ids = sorted(owner)
        shape = (joints, map_channels(channels, extra), height, width)

        def maps() -> Iterator:
            for vid in tqdm(video_ids, desc="potion", file=LogWriter(log), mininterval=5.0):
                shard = owner[vid]
                acc = PotionAccumulator(shard.n_frames(vid), channels, (joints, height, width), norm, extra)
                for batch in shard.iter_batches(vid):
                    acc.update(batch)
                yield acc.result()

    n = write_potion_store(out_zarr, video_ids, maps(), shape, attrs)
    write_csv(pd.DataFrame(failed, columns=["video_id", "stage", "reason", "used"]), failed_csv)
    n_used = sum(f["used"] for f in failed)
    log.info("PoTion store: %d videos; %d unusable and %d suspect but used videos listed in %s",
             n, len(failed) - n_used, n_used, failed_csv)
    return n


def _person_maps(manifest: pd.DataFrame, owner: dict[str, HeatmapShard], potion: dict[str, Any]
                 ) -> tuple[list[str], Callable[[], Iterator], list[dict]]:
    """Instance ids, a generator of their maps (each source video read once) and the usable
    instances that get no map (their video failed in the pose stage, or no frame of their clip
    was decoded)."""
    usable = manifest[manifest["status"] == "ok"]
    plans, failed = {}, []
    for source, rows in usable.groupby("source", sort=True):
        if source not in owner:
            failed += [{"video_id": v, "stage": "pose", "reason": f"video {source} failed in the "
                        "pose stage", "used": False} for v in rows["video_id"]]
            continue
        plans[source] = plan_source(owner[source], source, rows, potion)
        planned = set(planned_ids(plans[source]))
        failed += [{"video_id": v, "stage": "potion", "reason": "no frame of its clip was decoded",
                    "used": False} for v in rows["video_id"] if v not in planned]
    ids = [v for plan in plans.values() for v in planned_ids(plan)]

    def maps() -> Iterator:
        with tqdm(total=len(ids), desc="person potion", file=LogWriter(log), mininterval=5.0) as bar:
            for source, plan in plans.items():
                for m in source_maps(owner[source], source, plan, potion):
                    bar.update()
                    yield m

    return ids, maps, failed
