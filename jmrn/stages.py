"""Entry points for the Snakemake rules: each maps a rule's files and params onto one function.

Rules run ``workflow/scripts/run_stage.py``, which calls ``run(snakemake)``; the stage name is
the rule's ``params.stage``. Logging goes to the rule's log file.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jmrn.errors import UserError
from jmrn.io import setup_logging

log = logging.getLogger("jmrn.stages")


def demo_dataset(smk: Any) -> None:
    from jmrn.datasets import demo

    demo.generate(smk.params.root, splits=len(smk.params.splits), **smk.params.demo)


def manifest(smk: Any) -> None:
    from jmrn.datasets.manifest import build_manifest

    from jmrn.dag import write_missing_shard_videos

    build_manifest(dict(smk.params.dataset), smk.output.manifest, threads=smk.threads,
                   out_truth=getattr(smk.output, "truth", None))
    write_missing_shard_videos(smk.output.manifest, smk.params.n_shards, smk.params.shard_table)


def shard_videos(smk: Any) -> None:
    from jmrn.dag import write_shard_videos

    write_shard_videos(smk.input.manifest, int(smk.wildcards.shard[len("shard"):]),
                       smk.params.n_shards, smk.wildcards.digest, smk.output.videos)


def split_videos(smk: Any) -> None:
    from jmrn.dag import write_split_table

    write_split_table(smk.input.manifest, smk.input.potion, int(smk.wildcards.split),
                      smk.wildcards.digest, smk.output.videos)


def pose(smk: Any) -> None:
    from jmrn.pose.extract import extract_shard

    extract_shard(smk.input.videos, int(smk.wildcards.shard[len("shard"):]), smk.params.n_shards,
                  dict(smk.params.pose), smk.output.heatmaps)


def potion(smk: Any) -> None:
    from jmrn.aggregate import build_potion_store

    build_potion_store(smk.input.manifest, list(smk.input.shards), dict(smk.params.potion),
                       smk.output.potion, smk.output.failed)


def table_digest_of(videos: str) -> str:
    """The content digest a split table's file is named by (``split1/videos.<digest>.json``)."""
    from pathlib import Path

    return Path(videos).name.split(".")[1]


def reading(smk: Any) -> dict[str, Any]:
    """How training and export read their maps (``jmrn.config.READING_KEYS``), from the config."""
    from jmrn.config import READING_KEYS

    return {k: smk.config["train"][k] for k in READING_KEYS}


def train(smk: Any) -> None:
    from jmrn.device import keep_freed_memory
    from jmrn.io import run_folder_lock
    from jmrn.train import train_variant

    keep_freed_memory()  # this job's process reuses its freed activations (jmrn.device)
    with run_folder_lock(Path(smk.output.model).parent, "train"):  # one writer of the checkpoint
        train_variant(smk.input.potion, smk.input.videos, int(smk.wildcards.split),
                      dict(smk.params.variant), dict(smk.params.train), int(smk.wildcards.seed),
                      smk.output.model, smk.output.history, threads=smk.threads,
                      **reading(smk))


def export(smk: Any) -> None:
    from jmrn.device import keep_freed_memory
    from jmrn.export import export_variant
    from jmrn.io import run_folder_lock

    keep_freed_memory()
    with run_folder_lock(Path(smk.output.metrics).parent, "export"):
        _export(smk, export_variant)


def _export(smk: Any, export_variant: Callable[..., None]) -> None:
    export_variant(smk.input.potion, smk.input.videos, int(smk.wildcards.split),
                   dict(smk.params.variant), smk.input.model, smk.params.device,
                   smk.output.logits, smk.output.metrics, smk.output.joint_weights,
                   seed=int(smk.wildcards.seed), val_fraction=float(smk.params.val_fraction),
                   out_confusion=smk.output.confusion,
                   precision=smk.params.precision, threads=smk.threads,
                   max_per_keyframe=smk.params.ava_max_detections, out_card=smk.output.card,
                   provenance={**smk.params.provenance, "data_digest": table_digest_of(smk.input.videos)},
                   **reading(smk))


def fusion(smk: Any) -> None:
    from jmrn.fusion import fuse

    internal = dict(zip(smk.params.variants, smk.input.variant_logits))
    fuse(smk.params.modalities, internal, dict(smk.params.external), int(smk.wildcards.split),
         smk.output.weights, smk.output.logits, smk.output.metrics,
         identity={"fusion": smk.wildcards.fusion, "split": int(smk.wildcards.split),
                   "seed": int(smk.wildcards.seed)},
         split_table=getattr(smk.input, "videos", None),
         max_per_keyframe=smk.params.ava_max_detections)


def report(smk: Any) -> None:
    from jmrn.report import build_report

    build_report(smk.params.dataset, smk.input.manifest, smk.input.potion, list(smk.input.metrics),
                 list(smk.input.histories), smk.params.history_labels, smk.params.history_splits,
                 list(smk.input.confusions), list(smk.input.fusion), smk.input.joint_weights,
                 dict(smk.output.items()), variants=dict(smk.params.variants),
                 metric=smk.params.metric, adapter=smk.params.adapter, poses=smk.params.poses,
                 focus=smk.params.focus)


STAGES: dict[str, Callable[[Any], None]] = {
    f.__name__: f for f in (demo_dataset, manifest, shard_videos, pose, potion, split_videos, train,
                            export, fusion, report)
}


def run(smk: Any) -> None:
    """Run the stage named by the rule's ``params.stage`` with logging to the rule's log."""
    setup_logging(smk.log[0] if len(smk.log) else None)
    stage = smk.params.stage
    log.info("stage %s (rule %s, wildcards %s)", stage, smk.rule, dict(smk.wildcards.items()))
    try:
        STAGES[stage](smk)
    except UserError as exc:  # bad data, paths or settings: one actionable line, no traceback
        log.error("stage %s failed: %s", stage, exc)
        sys.exit(f"error: {exc}")
    except Exception:
        log.exception("stage %s failed", stage)
        raise
