"""Training of one variant on one split and seed: deterministic, resumable, logged.

Each split's training set gives up a validation subset (``train.val_fraction``, stratified and
grouped: ``jmrn.tables.validation_ids``); its classification loss drives ReduceLROnPlateau and,
with ``train.select: best_val``, picks the saved epoch. The test set is never read here. The
joint-contrastive term ramps in linearly and is never seen by the scheduler.

A checkpoint is written atomically after every epoch; a restarted job continues from it and
ends with exactly the weights an uninterrupted run would have produced, because every random
draw of an epoch (shuffle, augmentation, dropout) is seeded from (seed, epoch).
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from jmrn.augment import AugmentConfig, augment
from jmrn.config import fingerprint
from jmrn.device import resolve_device  # noqa: F401  (export and tests use it from here)
from jmrn.io import LogWriter, atomic_path, save_torch
from jmrn.losses import classification_loss, joint_contrastive_loss
from jmrn.metrics import top1_hits
from jmrn.models import build_model, count_parameters, match_parameters
from jmrn.store import PotionStore
from jmrn.tables import label_targets, read_split_source, split_subset

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything that shapes one training run (its fingerprint decides whether to resume)."""
    epochs: int = 100
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.0
    patience: int = 5
    seed: int = 0
    device: str = "auto"
    threads: int = 1
    select: str = "last"  # last | best_val (lowest validation classification loss)
    augment: AugmentConfig | None = None
    contrastive: bool = False
    contrastive_weight: float = 0.05
    temperature: float = 0.3
    ramp_start: int = 0
    ramp_length: int = 0
    multilabel: bool = False


def make_train_config(train: dict[str, Any], variant: dict[str, Any], seed: int) -> TrainConfig:
    """Merge the training settings with one resolved variant (``jmrn.config.resolve_variant``)."""
    given = {f.name for f in fields(TrainConfig)} & set(train)
    ramp = train.get("contrastive_ramp") or {}
    aug = variant.get("augment")
    return TrainConfig(
        **{k: train[k] for k in given}, seed=seed,
        augment=AugmentConfig(**aug) if aug else None,
        contrastive=bool(variant.get("contrastive", False)),
        ramp_start=int(ramp.get("start", 0)), ramp_length=int(ramp.get("length", 0)),
    )


def contrastive_weight_at(cfg: TrainConfig, epoch: int) -> float:
    """lambda of epoch ``epoch`` (0-based): 0 before ``ramp_start``, then rising linearly to the
    full weight over ``ramp_length`` epochs: lambda * min(1, (epoch - start + 1) / length)."""
    if not cfg.contrastive or epoch < cfg.ramp_start:
        return 0.0
    if cfg.ramp_length <= 0:
        return cfg.contrastive_weight
    return cfg.contrastive_weight * min(1.0, (epoch - cfg.ramp_start + 1) / cfg.ramp_length)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


@dataclass
class Subset:
    """One subset of a split: video ids, PoTion maps N x J x C x H x W, targets (N class
    indices, or N x K multi-hot) and the dataset's class names."""
    ids: list[str]
    x: torch.Tensor
    y: torch.Tensor
    classes: list[str]


def load_split(potion_path: str | os.PathLike, videos: str | os.PathLike, split: int,
               subsets: tuple[str, ...], val_fraction: float) -> dict[str, Subset]:
    """The requested subsets (train, val, test) of one split, read from the PoTion store.

    ``videos`` is the split's table (``split<k>/videos.<digest>.json``, what the pipeline
    passes) or a whole manifest CSV."""
    manifest, classes = read_split_source(videos)
    store = PotionStore(potion_path)
    result = {}
    for subset in subsets:
        rows = split_subset(manifest, split, subset, val_fraction)
        rows = rows[rows["video_id"].isin(store.index)]
        ids = rows["video_id"].tolist()
        x = torch.from_numpy(store.load(ids))
        y = torch.tensor(label_targets(rows, len(classes)))  # a copy: pandas arrays are read-only
        result[subset] = Subset(ids, x, y, classes)
    return result


def build_variant_model(variant: dict[str, Any], shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The variant's network for maps of ``shape`` (J x C x H x W); a variant with ``match``
    gets its size knob set so that its parameter count matches the named variant's."""
    joints, channels = shape[0], shape[1]
    options = dict(variant.get("model", {}))
    ref = variant.get("match")
    if ref:
        target = count_parameters(build_model(ref["arch"], joints, channels, num_classes,
                                              **ref.get("model", {})))
        options = match_parameters(variant["arch"], options, target, joints, channels, num_classes)
    return build_model(variant["arch"], joints, channels, num_classes, **options)


def train_epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
                epoch: int, optimizer: torch.optim.Optimizer, device: torch.device) -> dict[str, float]:
    """One pass over the training set; the contrastive term (weight lambda_epoch) needs two
    augmented views of every sample."""
    model.train()
    gen = _epoch_generator(cfg.seed, epoch)
    torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout and any other global draw
    order = torch.randperm(len(x), generator=gen)
    lam = contrastive_weight_at(cfg, epoch)
    totals = {"loss": 0.0, "cls_loss": 0.0, "contrastive_loss": 0.0, "correct": 0.0, "n": 0}
    for start in range(0, len(x), cfg.batch_size):
        idx = order[start:start + cfg.batch_size]
        if len(idx) < 2:  # BatchNorm needs two samples
            continue
        xb, yb = x[idx], y[idx]
        if cfg.augment is not None:
            views = [augment(xb, cfg.augment, gen) for _ in range(2 if lam > 0 else 1)]
            xb = torch.cat(views)
            yb = torch.cat([yb] * len(views))
        xb, yb = xb.to(device), yb.to(device)
        out = model(xb)
        cls = classification_loss(out["logits"], yb, cfg.multilabel)
        loss = cls
        if lam > 0 and "embeddings" in out:
            cont = joint_contrastive_loss(out["embeddings"], yb, cfg.temperature)
            loss = cls + lam * cont
            totals["contrastive_loss"] += cont.item() * len(yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        totals["loss"] += loss.item() * len(yb)
        totals["cls_loss"] += cls.item() * len(yb)
        totals["correct"] += _hits(out["logits"], yb)
        totals["n"] += len(yb)
    n = max(totals.pop("n"), 1)
    return {"loss": totals["loss"] / n, "cls_loss": totals["cls_loss"] / n,
            "contrastive_loss": totals["contrastive_loss"] / n, "contrastive_weight": lam,
            "train_acc": totals["correct"] / n}


def _hits(logits: torch.Tensor, targets: torch.Tensor) -> int:
    """How many samples' top-scored class is (one of) their label(s)."""
    k = logits.shape[1]
    hot = targets if targets.dim() == 2 else torch.nn.functional.one_hot(targets, k)
    return int(top1_hits(hot.detach().cpu().numpy(), logits.detach().cpu().numpy()).sum())


def _batchnorm_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()
            if k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


@torch.no_grad()
def validate(model: nn.Module, x_train: torch.Tensor, val: tuple[torch.Tensor, torch.Tensor],
             cfg: TrainConfig, device: torch.device) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Validation loss and top-1 accuracy of the model as it would be saved now (exact BatchNorm
    statistics over the training set); returns them with that model's state. The training
    run's own BatchNorm statistics are restored afterwards, so validating changes nothing."""
    saved = _batchnorm_buffers(model)
    recompute_batchnorm_stats(model, x_train, cfg.batch_size, device)
    xv, yv = val
    logits = torch.from_numpy(predict(model, xv, 0, device=device)["logits"])
    stats = {"val_loss": float(classification_loss(logits, yv, cfg.multilabel)),
             "val_acc": _hits(logits, yv) / max(len(yv), 1)}
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(saved, strict=False)
    return stats, state


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
        checkpoint: str | os.PathLike, val: tuple[torch.Tensor, torch.Tensor] | None = None,
        stop_after: int | None = None, identity: Any = None) -> list[dict[str, float]]:
    """Train (resuming from ``checkpoint`` if it belongs to this run); returns the history.

    ``val`` (maps, targets) drives the LR schedule and ``select: best_val``; without it the
    training classification loss drives the schedule and the last epoch is kept. The
    contrastive term never reaches the scheduler. ``identity`` (model settings, data hash) joins
    the fingerprint of the run; ``stop_after`` ends this call after that many epochs (tests)."""
    device = resolve_device(cfg.device)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=cfg.patience)
    has_val = val is not None and len(val[0]) > 0
    run_id = fingerprint(repr(cfg), tuple(x.shape), int(y.sum()), identity, has_val and len(val[0]))
    history: list[dict[str, float]] = []
    best: dict[str, Any] = {"loss": float("inf"), "epoch": 0, "state": None}
    checkpoint = Path(checkpoint)
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        if state.get("run_id") == run_id:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            history, best = state["history"], state["best"]
            log.info("resuming from %s after epoch %d", checkpoint, len(history))
        else:
            log.info("ignoring %s: it belongs to other settings", checkpoint)
    if cfg.select == "best_val" and not has_val:
        log.warning("train.select is best_val but this split has no validation videos: "
                    "keeping the last epoch")
    done_here = 0
    bar = tqdm(range(len(history), cfg.epochs), desc="epochs", file=LogWriter(log), mininterval=10.0)
    for epoch in bar:
        t0 = time.perf_counter()
        stats = train_epoch(model, x, y, cfg, epoch, optimizer, device)
        if has_val:
            val_stats, state = validate(model, x, val, cfg, device)
            stats.update(val_stats)
            if val_stats["val_loss"] < best["loss"]:
                best = {"loss": val_stats["val_loss"], "epoch": epoch + 1, "state": state}
        watched = stats["val_loss"] if has_val else stats["cls_loss"]  # never the contrastive term
        stats.update(epoch=epoch + 1, lr=optimizer.param_groups[0]["lr"])
        scheduler.step(watched)
        history.append(stats)
        log.info("epoch %d: loss %.4f (cls %.4f, lambda %.4g) acc %.3f%s lr %.2e, %.1f s",
                 epoch + 1, stats["loss"], stats["cls_loss"], stats["contrastive_weight"],
                 stats["train_acc"],
                 f" val loss {stats['val_loss']:.4f} acc {stats['val_acc']:.3f}" if has_val else "",
                 stats["lr"], time.perf_counter() - t0)
        save_torch({"run_id": run_id, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "history": history, "best": best}, checkpoint)
        done_here += 1
        if stop_after is not None and done_here >= stop_after:
            break
    if len(history) == cfg.epochs:
        selected = cfg.epochs
        if cfg.select == "best_val" and has_val and best["state"] is not None:
            model.load_state_dict(best["state"])
            selected = best["epoch"]
        else:
            recompute_batchnorm_stats(model, x, cfg.batch_size, device)
        for row in history:
            row["selected"] = int(row["epoch"] == selected)
        log.info("kept epoch %d of %d (train.select: %s)", selected, cfg.epochs, cfg.select)
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


def data_fingerprint(ids: list[str], x: torch.Tensor, y: torch.Tensor) -> str:
    """Hash of the training data (ids, maps, targets): a checkpoint of other data never resumes."""
    digest = hashlib.sha256()
    digest.update("\n".join(ids).encode("utf-8"))
    digest.update(x.numpy().tobytes())
    digest.update(y.numpy().tobytes())
    return digest.hexdigest()[:16]


def train_variant(potion_path: str, videos: str, split: int, variant: dict[str, Any],
                  train: dict[str, Any], seed: int, out_model: str, out_history: str,
                  threads: int = 1) -> None:
    """Snakemake entry: train one resolved variant on one split with one seed; write model.pt
    (state_dict) and history.csv (per epoch: losses, lambda, accuracies, lr, kept epoch)."""
    torch.set_num_threads(max(1, threads))
    torch.use_deterministic_algorithms(True, warn_only=True)
    data = load_split(potion_path, videos, split, ("train", "val"), float(train["val_fraction"]))
    tr, va = data["train"], data["val"]
    if len(tr.x) < 2:
        raise ValueError(f"split {split} has {len(tr.x)} usable training videos; need at least 2")
    cfg = replace(make_train_config(train, variant, seed), multilabel=tr.y.dim() == 2,
                  threads=max(1, threads))
    seed_everything(seed)
    model = build_variant_model(variant, tuple(tr.x.shape[1:]), len(tr.classes))
    log.info("variant %s: %s with %d parameters; %d training and %d validation videos of shape "
             "%s; seed %d, %d threads", variant.get("name", "?"), variant["arch"],
             count_parameters(model), len(tr.x), len(va.x), tuple(tr.x.shape[1:]), seed, cfg.threads)
    checkpoint = Path(out_model).with_name("checkpoint.pt")
    identity = (variant, data_fingerprint(tr.ids + va.ids, torch.cat([tr.x, va.x]),
                                          torch.cat([tr.y, va.y])))
    history = fit(model, tr.x, tr.y, cfg, checkpoint, val=(va.x, va.y), identity=identity)
    with atomic_path(out_history) as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)
    save_torch({k: v.cpu() for k, v in model.state_dict().items()}, out_model)
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
