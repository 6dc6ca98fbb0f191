"""Streaming maps from the PoTion store gives the same models as holding them in memory; mixed
precision trains; job memory follows what a job holds."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from jmrn import resources
from jmrn.export import export_variant
from jmrn.maps import StoreMaps, iterate_batches, sequential_batches
from jmrn.store import PotionStore
from jmrn.train import load_split, train_variant

from conftest import labelled_potion_store

TRAIN = {"epochs": 3, "batch_size": 8, "lr": 1e-3, "patience": 1, "device": "cpu",
         "val_fraction": 0.2, "select": "last", "contrastive_weight": 0.05, "temperature": 0.3,
         "contrastive_ramp": {"start": 1, "length": 1}}
JMRN = {"name": "jmrn", "arch": "jmrn", "model": {"width": 0.125}, "contrastive": True,
        "augment": {"global_jitter": 1.0, "group_jitter": 1.0, "flip": True, "rotation": 0.0}}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """48 videos of 3 classes (a bright block on a class-specific joint) and their manifest."""
    root = tmp_path_factory.mktemp("stream")
    labelled_potion_store(root / "potion.zarr", seed=1).to_csv(root / "manifest.csv", index=False)
    return root


def test_store_maps_read_what_load_reads(dataset):
    store = PotionStore(dataset / "potion.zarr")
    ids = store.video_ids[::-3]
    maps = StoreMaps(store, ids)
    want = torch.from_numpy(store.load(ids))
    assert maps.shape == tuple(want.shape) and len(maps) == len(ids)
    assert torch.equal(maps[2:9], want[2:9])
    idx = torch.tensor([5, 0, 3])
    assert torch.equal(maps[idx], want[idx])
    batches = sequential_batches(len(ids), 4)
    for workers in (0, 2):  # worker processes open the store themselves, order is kept
        got = torch.cat(list(iterate_batches(maps, batches, workers)))
        assert torch.equal(got, want)


def test_load_split_streams_above_the_memory_budget(dataset):
    args = (dataset / "potion.zarr", dataset / "manifest.csv", 1, ("train", "val"), 0.2)
    held = load_split(*args, max_memory_gb=1.0)
    streamed = load_split(*args, max_memory_gb=1e-6)
    assert isinstance(held["train"].x, torch.Tensor) and isinstance(streamed["train"].x, StoreMaps)
    assert torch.equal(streamed["train"].x[:], held["train"].x)
    assert (streamed["val"].crc32 == held["val"].crc32).all() and held["val"].crc32.any()


def train_and_export(dataset, out, **kwargs):
    out.mkdir()
    precision = kwargs.pop("precision", "fp32")
    train_variant(str(dataset / "potion.zarr"), str(dataset / "manifest.csv"), 1, JMRN,
                  {**TRAIN, "precision": precision}, 0, str(out / "model.pt"),
                  str(out / "history.csv"), **kwargs)
    export_variant(str(dataset / "potion.zarr"), str(dataset / "manifest.csv"), 1, JMRN,
                   str(out / "model.pt"), "cpu", str(out / "logits.csv"), str(out / "metrics.json"),
                   str(out / "joint_weights.csv"), seed=0, val_fraction=0.2, precision=precision,
                   **kwargs)
    return out


@pytest.fixture(scope="module")
def fp32_run(dataset, tmp_path_factory):
    """The reference: fp32, maps held in memory."""
    return train_and_export(dataset, tmp_path_factory.mktemp("fp32") / "held")


def test_streamed_and_in_memory_give_byte_identical_models(dataset, fp32_run, tmp_path):
    held = fp32_run
    streamed = train_and_export(dataset, tmp_path / "streamed", max_memory_gb=1e-6,
                                loader_workers=2)
    for name in ("model.pt", "history.csv", "logits.csv"):
        assert (held / name).read_bytes() == (streamed / name).read_bytes(), name


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains(dataset, fp32_run, tmp_path, precision):
    fp32 = fp32_run
    mixed = train_and_export(dataset, tmp_path / precision, precision=precision)
    history = pd.read_csv(mixed / "history.csv")
    assert np.isfinite(history["loss"]).all()
    assert (fp32 / "model.pt").read_bytes() != (mixed / "model.pt").read_bytes()  # autocast ran
    losses = history["cls_loss"].to_numpy()
    assert (np.diff(losses) < 0).all()  # it learns
    if precision == "bf16":  # same steps as fp32, rounded; fp16's scaler skips its first steps
        assert np.allclose(losses, pd.read_csv(fp32 / "history.csv")["cls_loss"], rtol=0.1)


def test_memory_counts_held_maps_only():
    cfg = {"resources": {"train": {"mem_mb": 2000}}, "train": {"max_memory_gb": 16}}
    assert resources.memory_mb(cfg, "train", data_mb=6064) == 2000 + 9096
    assert resources.memory_mb(cfg, "train", data_mb=18_000) == 2000  # streamed
