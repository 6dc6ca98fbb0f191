"""Score a trained model's bundle on a configured dataset's split without training
(``python -m jmrn evaluate``): the same export code as a pipeline run, on that dataset's PoTion
store, so a bundle scored on its own run's split reproduces that run's metrics.json."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from jmrn.dag import split_tables
from jmrn.errors import UserError
from jmrn.export import export_variant
from jmrn.io import write_json
from jmrn.model_card import card_paths, read_card
from jmrn.report import per_class_table, write_table
from jmrn.store import PotionStore

log = logging.getLogger(__name__)

# Settings of the PoTion store that the model's maps were made with: a store made otherwise
# gives maps the model has never seen.
MAP_SETTINGS = ("channels", "normalisation", "extra_channels")


def map_mismatches(card: dict[str, Any], store: PotionStore) -> list[str]:
    """How the store's maps differ from those the model was trained on (empty: they match)."""
    found = []
    if list(store.shape) != list(card["map_shape"]):
        found.append(f"map shape {' x '.join(map(str, store.shape))} (model: "
                     f"{' x '.join(map(str, card['map_shape']))})")
    for key in MAP_SETTINGS:
        if key in card["potion"] and store.attrs.get(key) != card["potion"][key]:
            found.append(f"potion.{key} {store.attrs.get(key)!r} (model: {card['potion'][key]!r})")
    trained = card["pose"].get("backend")
    if store.attrs.get("pose_backend") != trained:
        found.append(f"pose backend {store.attrs.get('pose_backend')!r} (model: {trained!r})")
    return found


def trained_on_test_videos(card: dict[str, Any], dataset: str, tables: dict[int, dict], split: int) -> int:
    """How many of ``split``'s test videos the model trained on (its own split's training
    videos, validation included), when it is scored on another split of its own dataset."""
    own = card["split"]
    if dataset != card["dataset"].get("name") or split == own or own not in tables:
        return 0

    def subset(k: int, wanted: str) -> set[str]:
        videos = tables[k]["videos"]
        return {v for v, s in zip(videos["video_id"], videos[f"split{k}"]) if s == wanted}

    return len(subset(split, "test") & subset(own, "train"))


# What evaluate_bundle writes into its output folder, by what each file holds.
EVALUATION_FILES = {"videos": "videos.json", "logits": "logits.csv", "metrics": "metrics.json",
                    "joint_weights": "joint_weights.csv", "confusion": "confusion.csv",
                    "per_class_csv": "per_class.csv", "per_class_md": "per_class.md"}


def evaluate_bundle(bundle: str | os.PathLike, config: dict[str, Any], out_dir: str | os.PathLike,
                    split: int | None = None, results: str | os.PathLike = "results",
                    allow_other_poses: bool = False) -> dict[str, Any]:
    """Score ``bundle`` on the test split of ``config``'s dataset (its manifest and PoTion store
    under ``results``); write ``EVALUATION_FILES`` into ``out_dir`` (the test videos, logits,
    metrics, joint weights, confusion counts and per-class table); return the metrics."""
    card = read_card(bundle)
    _, weights = card_paths(bundle)
    name = config["dataset"]["name"]
    manifest, potion = Path(results) / name / "manifest.csv", Path(results) / name / "potion.zarr"
    if not manifest.is_file() or not potion.is_dir():
        raise UserError(f"no PoTion store of dataset {name!r} under {results}/: make it first with "
                        f"`snakemake --cores all {potion} --configfile ...` (pose and PoTion only, "
                        "no training)")
    store = PotionStore(potion)
    mismatches = map_mismatches(card, store)
    if mismatches and not (allow_other_poses and all(m.startswith("pose backend") for m in mismatches)):
        raise UserError(f"{potion}: its maps are not made as the model's were: {'; '.join(mismatches)}")
    split = int(split if split is not None else card["split"])
    tables = split_tables(manifest, potion)
    if split not in tables:
        raise UserError(f"dataset {name!r} has no split {split} (it has {sorted(tables)})")
    seen = trained_on_test_videos(card, name, tables, split)
    if seen:
        log.warning("split %d's test set holds %d videos that this model (split %d) trained on: "
                    "the figures are not a held-out score", split, seen, card["split"])
    path = {kind: str(Path(out_dir) / name) for kind, name in EVALUATION_FILES.items()}
    write_json(path["videos"], tables[split])
    train = card["train"]
    metrics = export_variant(
        str(potion), path["videos"], split, card["variant_settings"], str(weights),
        device=train.get("device", "auto"), out_logits=path["logits"], out_metrics=path["metrics"],
        out_joint_weights=path["joint_weights"], out_confusion=path["confusion"], seed=int(card["seed"]),
        val_fraction=float(train.get("val_fraction", 0.1)), precision=train.get("precision", "fp32"),
        threads=int(train.get("threads", 1)), model_classes=list(card["classes"]),
        max_per_keyframe=int(config.get("evaluation", {}).get("ava_max_detections_per_keyframe", 50)))
    numeric, shown = per_class_table(pd.DataFrame([{**metrics, "variant": card["variant"]}]))
    write_table(numeric, path["per_class_csv"], path["per_class_md"],
                f"Per-class test {metrics['per_class_metric']} of {card['variant']} on {name} "
                f"split {split}", markdown=shown,
                note="\nCells: this model's test score (%) per class, with the number of runs (one) "
                     "in parentheses.\n")
    return metrics
