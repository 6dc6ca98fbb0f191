"""Training of one variant on one split: deterministic, resumable, logged.

A checkpoint is written atomically after every epoch; a restarted job continues from it and
ends with exactly the weights an uninterrupted run would have produced, because every random
draw of an epoch (shuffle, augmentation, dropout) is seeded from (seed, epoch).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from jmrn.augment import AugmentConfig, augment
from jmrn.config import fingerprint
from jmrn.datasets.manifest import class_names, label_targets, read_manifest, split_subset
from jmrn.io import LogWriter, atomic_path
from jmrn.losses import classification_loss, joint_contrastive_loss
from jmrn.models import build_model, count_parameters
from jmrn.store import PotionStore

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.0
    patience: int = 5
    seed: int = 0
    device: str = "auto"
    augment: AugmentConfig | None = None
    contrastive: bool = False
    contrastive_weight: float = 0.05
    temperature: float = 0.3
    warmup_epochs: int = 50
    multilabel: bool = False


def make_train_config(train: dict[str, Any], variant: dict[str, Any], seed: int) -> TrainConfig:
    """Merge the global training settings with one variant's switches."""
    aug = variant.get("augment")
    return TrainConfig(
        epochs=int(train["epochs"]), batch_size=int(train["batch_size"]), lr=float(train["lr"]),
        weight_decay=float(train.get("weight_decay", 0.0)), patience=int(train["patience"]),
        seed=seed, device=train.get("device", "auto"),
        augment=AugmentConfig(**aug) if aug else None,
        contrastive=bool(variant.get("contrastive", False)),
        contrastive_weight=float(train.get("contrastive_weight", 0.05)),
        temperature=float(train.get("temperature", 0.3)),
        warmup_epochs=int(train.get("warmup_epochs", 50)),
    )


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def load_split(potion_path: str | os.PathLike, manifest_csv: str | os.PathLike, split: int,
               subset: str) -> tuple[list[str], torch.Tensor, torch.Tensor, list[str]]:
    """Video ids, PoTion maps (N x J x C x H x W), targets (N class indices, or N x K multi-hot
    for multi-label datasets) and class names of one subset."""
    manifest = read_manifest(manifest_csv)
    store = PotionStore(potion_path)
    rows = split_subset(manifest, split, subset)
    rows = rows[rows["video_id"].isin(store.index)]
    ids = rows["video_id"].tolist()
    x = torch.from_numpy(store.load(ids))
    classes = class_names(manifest)
    y = torch.tensor(label_targets(rows, len(classes)))  # a copy: pandas arrays are read-only
    return ids, x, y, classes


def build_variant_model(variant: dict[str, Any], shape: tuple[int, ...], num_classes: int) -> nn.Module:
    joints, channels = shape[0], shape[1]
    return build_model(variant["arch"], joints, channels, num_classes, **variant.get("model", {}))


def top1_hits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per sample: is the top-scored class the label (or, multi-label, one of the labels)?"""
    top = logits.argmax(1)
    if targets.dim() == 2:
        return targets.gather(1, top[:, None])[:, 0] > 0
    return top == targets


def train_epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
                epoch: int, optimizer: torch.optim.Optimizer, device: torch.device) -> dict[str, float]:
    model.train()
    gen = _epoch_generator(cfg.seed, epoch)
    torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout and any other global draw
    order = torch.randperm(len(x), generator=gen)
    use_cl = cfg.contrastive and epoch >= cfg.warmup_epochs
    totals = {"loss": 0.0, "cls_loss": 0.0, "contrastive_loss": 0.0, "correct": 0.0, "n": 0}
    for start in range(0, len(x), cfg.batch_size):
        idx = order[start:start + cfg.batch_size]
        if len(idx) < 2:  # BatchNorm needs two samples
            continue
        xb, yb = x[idx], y[idx]
        if cfg.augment is not None:
            views = [augment(xb, cfg.augment, gen) for _ in range(2 if use_cl else 1)]
            xb = torch.cat(views)
            yb = torch.cat([yb] * len(views))
        xb, yb = xb.to(device), yb.to(device)
        out = model(xb)
        cls = classification_loss(out["logits"], yb, cfg.multilabel)
        loss = cls
        if use_cl and "embeddings" in out:
            cont = joint_contrastive_loss(out["embeddings"], yb, cfg.temperature)
            loss = cls + cfg.contrastive_weight * cont
            totals["contrastive_loss"] += cont.item() * len(yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        totals["loss"] += loss.item() * len(yb)
        totals["cls_loss"] += cls.item() * len(yb)
        totals["correct"] += top1_hits(out["logits"], yb).sum().item()
        totals["n"] += len(yb)
    n = max(totals.pop("n"), 1)
    return {"loss": totals["loss"] / n, "cls_loss": totals["cls_loss"] / n,
            "contrastive_loss": totals["contrastive_loss"] / n, "train_acc": totals["correct"] / n}


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
        checkpoint: str | os.PathLike, stop_after: int | None = None) -> list[dict[str, float]]:
    """Train (resuming from ``checkpoint`` if it matches this run); returns the history.

    ``stop_after`` ends the run after that many epochs of this call (used to test resuming)."""
    device = resolve_device(cfg.device)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=cfg.patience)
    run_id = fingerprint(repr(cfg), tuple(x.shape), int(y.sum()))
    history: list[dict[str, float]] = []
    checkpoint = Path(checkpoint)
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        if state.get("run_id") == run_id:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            history = state["history"]
            log.info("resuming from %s after epoch %d", checkpoint, len(history))
        else:
            log.info("ignoring %s: it belongs to other settings", checkpoint)
    done_here = 0
    bar = tqdm(range(len(history), cfg.epochs), desc="epochs", file=LogWriter(log), mininterval=10.0)
    for epoch in bar:
        t0 = time.perf_counter()
        stats = train_epoch(model, x, y, cfg, epoch, optimizer, device)
        scheduler.step(stats["loss"])
        stats.update(epoch=epoch + 1, lr=optimizer.param_groups[0]["lr"],
                     seconds=time.perf_counter() - t0)
        history.append(stats)
        log.info("epoch %d: loss %.4f acc %.3f lr %.2e", epoch + 1, stats["loss"],
                 stats["train_acc"], stats["lr"])
        with atomic_path(checkpoint) as tmp:
            torch.save({"run_id": run_id, "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "history": history}, tmp)
        done_here += 1
        if stop_after is not None and done_here >= stop_after:
            break
    if len(history) == cfg.epochs:
        recompute_batchnorm_stats(model, x, cfg.batch_size, device)
    return history


@torch.no_grad()
def recompute_batchnorm_stats(model: nn.Module, x: torch.Tensor, batch_size: int,
                              device: torch.device) -> None:
    """Set BatchNorm running statistics to the exact average over the (unaugmented) training
    set ("precise BN"). The exponential moving average lags behind fast-moving weights and
    can make eval-mode predictions collapse although training-mode accuracy is high."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        if len(xb) >= 2:
            model(xb.to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()


def train_variant(potion_path: str, manifest_csv: str, split: int, variant: dict[str, Any],
                  train: dict[str, Any], seed: int, out_model: str, out_history: str,
                  threads: int = 1) -> None:
    """Snakemake entry: train one variant on one split; write model.pt and history.csv."""
    torch.set_num_threads(max(1, threads))
    torch.use_deterministic_algorithms(True, warn_only=True)
    _, x, y, classes = load_split(potion_path, manifest_csv, split, "train")
    if len(x) < 2:
        raise ValueError(f"split {split} has {len(x)} usable training videos; need at least 2")
    cfg = replace(make_train_config(train, variant, seed), multilabel=y.dim() == 2)
    seed_everything(seed)
    model = build_variant_model(variant, tuple(x.shape[1:]), len(classes))
    log.info("variant %s: %s with %d parameters; %d training videos of shape %s",
             variant.get("name", "?"), variant["arch"], count_parameters(model), len(x),
             tuple(x.shape[1:]))
    checkpoint = Path(out_model).with_name("checkpoint.pt")
    history = fit(model, x, y, cfg, checkpoint)
    with atomic_path(out_history) as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)
    with atomic_path(out_model) as tmp:
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, tmp)
    checkpoint.unlink(missing_ok=True)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, num_classes: int, batch_size: int = 64,
            device: torch.device | None = None) -> dict[str, np.ndarray]:
    """Logits (N x K) and, for JMRN, selector joint weights (N x J), in eval mode."""
    device = device or torch.device("cpu")
    model.to(device).eval()
    logits, weights = [], []
    for start in range(0, len(x), batch_size):
        out = model(x[start:start + batch_size].to(device))
        logits.append(out["logits"].float().cpu())
        if "joint_weights" in out:
            weights.append(out["joint_weights"].float().cpu())
    result = {"logits": torch.cat(logits).numpy() if logits else np.zeros((0, num_classes))}
    if weights:
        result["joint_weights"] = torch.cat(weights).numpy()
    return result
