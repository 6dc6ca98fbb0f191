"""A run's model card: what it takes to rebuild a trained model and read its output elsewhere.

Export writes ``model_card.json`` beside ``model.pt``; the two files are the model's bundle.
The card names the variant (architecture and options), the classes in logit order, the joints
and map shape the network reads, the pose and PoTion settings that made its maps (a new
video must be turned into maps the same way), the training recipe, seed, split and data digest,
the test metrics, the torch version and the SHA-256 of the weights (a card never describes
other weights than its own).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from jmrn import __version__
from jmrn.errors import UserError
from jmrn.io import sha256_file, write_json

CARD_FORMAT = "jmrn-model-card/1"
CARD_NAME = "model_card.json"
WEIGHTS_NAME = "model.pt"
POTION_KEYS = ("channels", "normalisation", "extra_channels", "map_channels", "person")
HEADLINE_METRICS = ("mean_class_accuracy", "top1", "top5", "mAP", "frame_mAP", "n_test")


def build_card(*, variant: dict[str, Any], n_parameters: int, classes: list[str], multilabel: bool,
               joints: list[str], absent_joints: list[str], map_shape: tuple[int, ...],
               potion_attrs: dict[str, Any], provenance: dict[str, Any], split: int, seed: int,
               metrics: dict[str, Any], weights: str | os.PathLike, torch_version: str) -> dict[str, Any]:
    """The card of one trained model (see the module docstring); ``provenance`` holds the
    dataset, pose and training settings the run was configured with."""
    return {
        "format": CARD_FORMAT,
        "variant": variant.get("name", ""),
        "architecture": variant["arch"],
        "variant_settings": variant,
        "n_parameters": int(n_parameters),
        "classes": list(classes),
        "multilabel": bool(multilabel),
        "joints": list(joints),
        "absent_joints": list(absent_joints),
        "map_shape": [int(v) for v in map_shape],
        "crop": variant.get("crop"),
        "potion": {k: potion_attrs[k] for k in POTION_KEYS if k in potion_attrs},
        "pose": provenance.get("pose", {"backend": potion_attrs.get("pose_backend")}),
        "dataset": provenance.get("dataset", {}),
        "train": provenance.get("train", {}),
        "data_digest": provenance.get("data_digest", ""),
        "split": int(split),
        "seed": int(seed),
        "metrics": {k: metrics[k] for k in HEADLINE_METRICS if metrics.get(k) is not None},
        "weights": WEIGHTS_NAME,
        "weights_sha256": sha256_file(weights),
        "torch": torch_version,
        "jmrn": __version__,
    }


def write_card(path: str | os.PathLike, card: dict[str, Any]) -> None:
    write_json(path, card)


def card_paths(bundle: str | os.PathLike) -> tuple[Path, Path]:
    """(card, weights) of a bundle given as its run folder or its card file."""
    bundle = Path(bundle)
    card = bundle if bundle.suffix == ".json" else bundle / CARD_NAME
    return card, card.parent / WEIGHTS_NAME


def read_card(bundle: str | os.PathLike, check_weights: bool = True) -> dict[str, Any]:
    """A bundle's card, checked: its format, and (``check_weights``) that ``model.pt`` beside it
    is the file it describes. Every problem is one line naming the file."""
    card_path, weights = card_paths(bundle)
    if not card_path.is_file():
        hint = (" (a run exported before model cards: rerun its export, e.g. delete its "
                "metrics.json and run `all`)" if (card_path.parent / WEIGHTS_NAME).is_file() else "")
        raise UserError(f"{card_path}: no model card{hint}")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{card_path}: not a model card ({exc})") from exc
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise UserError(f"{card_path}: not a model card of this version ({CARD_FORMAT})")
    if check_weights:
        if not weights.is_file():
            raise UserError(f"{weights}: missing; a bundle is {CARD_NAME} with its {WEIGHTS_NAME}")
        if sha256_file(weights) != card["weights_sha256"]:
            raise UserError(f"{weights}: not the weights its card describes (SHA-256 differs); "
                            "retrained after the card was written? rerun the export")
    return card


def describe(card: dict[str, Any]) -> str:
    """The card as a few readable lines (``python -m jmrn model-card``)."""
    metrics = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in card["metrics"].items())
    pose = card["pose"]
    potion = card["potion"]
    options = (pose.get("options") or {}).get(pose.get("backend"), {})
    lines = [
        f"variant        {card['variant']} ({card['architecture']}, {card['n_parameters']:,} parameters)",
        f"trained on     {card['dataset'].get('name', '?')} ({card['dataset'].get('adapter', '?')}), "
        f"split {card['split']}, seed {card['seed']}, data {card['data_digest'] or '?'}",
        f"classes        {len(card['classes'])}: {', '.join(card['classes'][:8])}"
        + (", ..." if len(card["classes"]) > 8 else "") + (" (multi-label)" if card["multilabel"] else ""),
        f"maps           {' x '.join(map(str, card['map_shape']))} (joints x channels x H x W)"
        + (f", centre crop {card['crop']['height']} x {card['crop']['width']}" if card.get("crop") else ""),
        f"poses          {pose.get('backend')} at {pose.get('height')} x {pose.get('width')}"
        + (f", options {json.dumps(options, sort_keys=True)}" if options else "")
        + (f"; absent in training: {', '.join(card['absent_joints'])}" if card["absent_joints"] else ""),
        f"PoTion         {potion.get('channels')} channels, {potion.get('normalisation')} normalisation"
        + (f", extra {potion['extra_channels']}" if potion.get("extra_channels") else ""),
        f"recipe         " + ", ".join(f"{k} {card['train'][k]}" for k in
                                       ("epochs", "batch_size", "lr", "eval_every", "patience",
                                        "contrastive_weight", "precision") if k in card["train"]),
        f"test metrics   {metrics}",
        f"software       torch {card['torch']}, jmrn {card['jmrn']}; weights {card['weights']} "
        f"sha256 {card['weights_sha256'][:16]}...",
    ]
    return "\n".join(lines)
