"""Training of one variant on one split and seed: deterministic, resumable, logged.

Each split's training set gives up a validation subset (``train.val_fraction``, stratified and
grouped: ``jmrn.tables.validation_ids``). As in the public code, the model is validated every
``train.eval_every`` epochs (and after the last); each validation's classification loss steps
ReduceLROnPlateau, whose patience therefore counts validations, and with ``train.select:
best_val`` picks the saved epoch among the validated ones. The test set is never read here. The
joint-contrastive term ramps in linearly and is never seen by the scheduler.

A checkpoint is written atomically after every epoch; a restarted job continues from it and
ends with exactly the weights an uninterrupted run would have produced, because every random
draw of an epoch (shuffle, augmentation, dropout) is seeded from (seed, epoch).
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from jmrn.augment import AugmentConfig, augment, center_crop, check_crop, random_crop
from jmrn.config import fingerprint
from jmrn.device import resolve_device
from jmrn.io import LogWriter, atomic_path, save_torch
from jmrn.losses import classification_loss, joint_contrastive_loss
from jmrn.maps import Maps, iterate_batches, open_maps, sequential_batches, to_device
from jmrn.metrics import top1_hits
from jmrn.models import build_model, count_parameters, match_parameters
from jmrn.resources import maps_bytes
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
    patience: int = 5  # in validations: ReduceLROnPlateau steps once per validation
    eval_every: int = 5  # epochs between validations (public scripts: --save_every 5)
    seed: int = 0
    device: str = "auto"
    threads: int = 1
    select: str = "last"  # last | best_val (lowest validation classification loss)
    augment: AugmentConfig | None = None
    crop: tuple[int, int] | None = None  # random window in training, centred one when evaluating
    classify_both_views: bool = True  # classify both augmented views in every epoch (public code)
    contrastive: bool = False
    contrastive_weight: float = 0.05
    temperature: float = 0.3
    ramp_start: int = 0
    ramp_length: int = 0
    multilabel: bool = False
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; fp16 with a gradient scaler)
    channels_last: bool = False
    compile: bool = False
    # How batches are read changes nothing in the result: not part of the run's fingerprint.
    loader_workers: int = field(default=0, repr=False, compare=False)


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass (``fp32``: none)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])


def make_train_config(train: dict[str, Any], variant: dict[str, Any], seed: int) -> TrainConfig:
    """Merge the training settings with one resolved variant (``jmrn.config.resolve_variant``)."""
    given = {f.name for f in fields(TrainConfig)} & set(train)
    ramp = train.get("contrastive_ramp") or {}
    aug, crop = variant.get("augment"), variant.get("crop")
    return TrainConfig(
        **{k: train[k] for k in given}, seed=seed,
        augment=AugmentConfig(**aug) if aug else None, crop=tuple(crop) if crop else None,
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
    """One subset of a split: video ids, PoTion maps N x J x C x H x W (a tensor, or streamed
    from the store), targets (N class indices, or N x K multi-hot), the dataset's class names
    and the stored maps' crc32 (what identifies the data)."""
    ids: list[str]
    x: Maps
    y: torch.Tensor
    classes: list[str]
    crc32: np.ndarray


def load_split(potion_path: str | os.PathLike, videos: str | os.PathLike | dict, split: int,
               subsets: tuple[str, ...], val_fraction: float,
               max_memory_gb: float | None = None) -> dict[str, Subset]:
    """The requested subsets (train, val, test) of one split from the PoTion store: in memory,
    or streamed when their maps together (float16, as held) exceed ``max_memory_gb``.

    ``videos`` is the split's table (``split<k>/videos.<digest>.json``, what the pipeline
    passes, or that table as read), or a whole manifest CSV."""
    manifest, classes = read_split_source(videos)
    store = PotionStore(potion_path)
    chosen = {}
    for subset in subsets:
        rows = split_subset(manifest, split, subset, val_fraction)
        chosen[subset] = rows[rows["video_id"].isin(store.index)]
    total = maps_bytes(sum(len(r) for r in chosen.values()), store.shape)
    stream = max_memory_gb is not None and total > max_memory_gb * 1e9
    if stream:
        log.info("streaming the maps from the store: %.2f GB of float16 maps exceed "
                 "train.max_memory_gb = %g", total / 1e9, max_memory_gb)
    result = {}
    for subset, rows in chosen.items():
        ids = rows["video_id"].tolist()
        crc = np.array([store.crc32[store.index[v]] if store.crc32 is not None else 0 for v in ids],
                       dtype=np.int64)
        y = torch.tensor(label_targets(rows, len(classes)))  # a copy: pandas arrays are read-only
        result[subset] = Subset(ids, open_maps(store, ids, stream), y, classes, crc)
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


def train_epoch(model: nn.Module, x: Maps, y: torch.Tensor, cfg: TrainConfig,
                epoch: int, optimizer: torch.optim.Optimizer, device: torch.device,
                scaler: torch.amp.GradScaler | None = None) -> dict[str, float]:
    """One pass over the training set. Each batch is cropped, then augmented twice (two views,
    both classified, as the public code does; with ``classify_both_views: false`` one view
    until the contrastive term, which needs two, starts). Batches are read ahead (streamed
    maps) and augmented on the training device; ``scaler`` scales fp16 gradients."""
    model.train()
    gen = _epoch_generator(cfg.seed, epoch)
    torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout and any other global draw
    order = torch.randperm(len(x), generator=gen)
    batches = [idx for idx in torch.split(order, cfg.batch_size) if len(idx) >= 2]  # BatchNorm: 2+
    lam = contrastive_weight_at(cfg, epoch)
    n_views = 2 if cfg.classify_both_views or lam > 0 else 1
    totals = {"loss": 0.0, "cls_loss": 0.0, "contrastive_loss": 0.0, "correct": 0.0, "n": 0}
    reads = iterate_batches(x, batches, cfg.loader_workers, pin_memory=device.type == "cuda")
    for idx, xb in zip(batches, reads):
        xb, yb = to_device(xb, device), y[idx].to(device)
        if cfg.crop is not None:
            xb = random_crop(xb, cfg.crop, gen)  # B x J x C x H' x W', shared by both views
        if cfg.augment is not None:
            views = [augment(xb, cfg.augment, gen) for _ in range(n_views)]
            xb = torch.cat(views)
            yb = torch.cat([yb] * len(views))
        with autocast(device, cfg.precision):
            out = model(xb)
        logits = out["logits"].float()
        cls = classification_loss(logits, yb, cfg.multilabel)
        loss = cls
        if lam > 0 and "embeddings" in out:
            cont = joint_contrastive_loss(out["embeddings"].float(), yb, cfg.temperature)
            loss = cls + lam * cont
            totals["contrastive_loss"] += cont.item() * len(yb)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        totals["loss"] += loss.item() * len(yb)
        totals["cls_loss"] += cls.item() * len(yb)
        totals["correct"] += _hits(logits, yb)
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
def validate(model: nn.Module, x_train: Maps, val: tuple[Maps, torch.Tensor],
             cfg: TrainConfig, device: torch.device) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Validation loss and top-1 accuracy of the model as it would be saved now (exact BatchNorm
    statistics over the training set); returns them with that model's state. The training
    run's own BatchNorm statistics are restored afterwards, so validating changes nothing."""
    saved = _batchnorm_buffers(model)
    recompute_batchnorm_stats(model, x_train, cfg.batch_size, device, cfg)
    xv, yv = val
    logits = torch.from_numpy(predict(model, xv, 0, device=device, precision=cfg.precision,
                                      workers=cfg.loader_workers, crop=cfg.crop)["logits"])
    stats = {"val_loss": float(classification_loss(logits, yv, cfg.multilabel)),
             "val_acc": _hits(logits, yv) / max(len(yv), 1)}
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(saved, strict=False)
    return stats, state


def prepare_model(model: nn.Module, cfg: TrainConfig, device: torch.device
                  ) -> tuple[nn.Module, torch.amp.GradScaler | None]:
    """Move the model to the device (channels-last weights if asked) and return what a training
    step calls (compiled if asked; it shares the model's parameters) and the fp16 scaler."""
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if cfg.compile else model
    scaler = torch.amp.GradScaler(device.type) if cfg.precision == "fp16" else None
    return step_model, scaler


def fit(model: nn.Module, x: Maps, y: torch.Tensor, cfg: TrainConfig,
        checkpoint: str | os.PathLike, val: tuple[Maps, torch.Tensor] | None = None,
        stop_after: int | None = None, identity: Any = None) -> list[dict[str, float]]:
    """Train (resuming from ``checkpoint`` if it belongs to this run); returns the history.

    Every ``eval_every`` epochs (and after the last) ``val`` (maps, targets) is evaluated; its
    classification loss steps the LR schedule (not after the last epoch, as in the public loop)
    and feeds ``select: best_val``. Without ``val`` the training classification loss of those
    epochs steps the schedule and the last epoch is kept. The contrastive term never reaches
    the scheduler. ``identity`` (model settings, data hash) joins
    the fingerprint of the run; ``stop_after`` ends this call after that many epochs (tests)."""
    device = resolve_device(cfg.device)
    step_model, scaler = prepare_model(model, cfg, device)
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
        stats = train_epoch(step_model, x, y, cfg, epoch, optimizer, device, scaler)
        number = epoch + 1
        evaluate = number % cfg.eval_every == 0 or number == cfg.epochs
        stats.update(epoch=number, lr=optimizer.param_groups[0]["lr"],
                     validated=int(evaluate and has_val))
        if evaluate and has_val:
            val_stats, state = validate(model, x, val, cfg, device)
            stats.update(val_stats)
            if val_stats["val_loss"] < best["loss"]:
                best = {"loss": val_stats["val_loss"], "epoch": number, "state": state}
        if number % cfg.eval_every == 0 and number < cfg.epochs:
            scheduler.step(stats["val_loss"] if has_val else stats["cls_loss"])  # never the contrastive term
        history.append(stats)
        log.info("epoch %d: loss %.4f (cls %.4f, lambda %.4g) acc %.3f%s lr %.2e, %.1f s",
                 number, stats["loss"], stats["cls_loss"], stats["contrastive_weight"],
                 stats["train_acc"],
                 f" val loss {stats['val_loss']:.4f} acc {stats['val_acc']:.3f}"
                 if stats["validated"] else "", stats["lr"], time.perf_counter() - t0)
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
            recompute_batchnorm_stats(model, x, cfg.batch_size, device, cfg)
        for row in history:
            row["selected"] = int(row["epoch"] == selected)
        log.info("kept epoch %d of %d (train.select: %s)", selected, cfg.epochs, cfg.select)
    return history


@torch.no_grad()
def recompute_batchnorm_stats(model: nn.Module, x: Maps, batch_size: int,
                              device: torch.device, cfg: TrainConfig | None = None) -> None:
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
    batches = [b for b in sequential_batches(len(x), batch_size) if len(b) >= 2]
    precision, workers, crop = (cfg.precision, cfg.loader_workers, cfg.crop) if cfg else ("fp32", 0, None)
    for xb in iterate_batches(x, batches, workers):
        with autocast(device, precision):
            model(center_crop(to_device(xb, device), crop))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()


def data_fingerprint(*subsets: Subset) -> str:
    """Hash of the training data (ids, stored maps' crc32, targets): a checkpoint of other data
    never resumes."""
    digest = hashlib.sha256()
    for part in subsets:
        digest.update("\n".join(part.ids).encode("utf-8"))
        digest.update(part.crc32.tobytes())
        digest.update(part.y.numpy().tobytes())
    return digest.hexdigest()[:16]


def train_variant(potion_path: str, videos: str, split: int, variant: dict[str, Any],
                  train: dict[str, Any], seed: int, out_model: str, out_history: str,
                  threads: int = 1, max_memory_gb: float | None = None,
                  loader_workers: int = 0) -> None:
    """Snakemake entry: train one resolved variant on one split with one seed; write model.pt
    (state_dict) and history.csv (per epoch: losses, lambda, accuracies, lr, kept epoch)."""
    torch.set_num_threads(max(1, threads))
    torch.use_deterministic_algorithms(True, warn_only=True)
    data = load_split(potion_path, videos, split, ("train", "val"), float(train["val_fraction"]),
                      max_memory_gb)
    tr, va = data["train"], data["val"]
    if len(tr.x) < 2:
        raise ValueError(f"split {split} has {len(tr.x)} usable training videos; need at least 2")
    cfg = replace(make_train_config(train, variant, seed), multilabel=tr.y.dim() == 2,
                  threads=max(1, threads), loader_workers=loader_workers)
    check_crop(cfg.crop, tr.x.shape)
    if cfg.contrastive and cfg.ramp_start + max(cfg.ramp_length, 1) > cfg.epochs:
        log.warning("train.contrastive_ramp ends after the last epoch: lambda reaches only "
                    "%.4g of train.contrastive_weight %g", contrastive_weight_at(cfg, cfg.epochs - 1),
                    cfg.contrastive_weight)
    seed_everything(seed)
    model = build_variant_model(variant, tuple(tr.x.shape[1:]), len(tr.classes))
    log.info("variant %s: %s with %d parameters; %d training and %d validation videos of shape "
             "%s; seed %d, %d threads", variant.get("name", "?"), variant["arch"],
             count_parameters(model), len(tr.x), len(va.x), tuple(tr.x.shape[1:]), seed, cfg.threads)
    checkpoint = Path(out_model).with_name("checkpoint.pt")
    identity = (variant, data_fingerprint(tr, va))
    history = fit(model, tr.x, tr.y, cfg, checkpoint, val=(va.x, va.y), identity=identity)
    with atomic_path(out_history) as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)
    save_torch({k: v.cpu() for k, v in model.state_dict().items()}, out_model)
    checkpoint.unlink(missing_ok=True)


@torch.no_grad()
def predict(model: nn.Module, x: Maps, num_classes: int, batch_size: int = 64,
            device: torch.device | None = None, precision: str = "fp32",
            workers: int = 0, crop: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """Logits (N x K) and, for JMRN, selector joint weights (N x J), in eval mode, of the
    maps' centred ``crop`` window (the whole maps without one)."""
    device = device or torch.device("cpu")
    model.to(device).eval()
    logits, weights = [], []
    for xb in iterate_batches(x, sequential_batches(len(x), batch_size), workers):
        with autocast(device, precision):
            out = model(center_crop(to_device(xb, device), crop))
        logits.append(out["logits"].float().cpu())
        if "joint_weights" in out:
            weights.append(out["joint_weights"].float().cpu())
    result = {"logits": torch.cat(logits).numpy() if logits else np.zeros((0, num_classes))}
    if weights:
        result["joint_weights"] = torch.cat(weights).numpy()
    return result
