"""PoTion maps as training and export read them: one float32 tensor in memory, or streamed.

A split whose maps fit ``train.max_memory_gb`` is read once into a tensor. A larger one stays
in the Zarr store (``StoreMaps``) and each batch is read when it is needed, by DataLoader
workers ahead of the model. Both give the same float32 values (float16 in the store), so a
seed gives the same model either way; only memory and speed differ.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from jmrn.store import PotionStore


class StoreMaps:
    """N x J x C x H x W float32 maps of the given videos, read from the store on indexing."""

    def __init__(self, store: PotionStore, ids: Sequence[str]) -> None:
        store.require(ids)
        self.path = store.path
        self.ids = list(ids)
        self.shape = (len(self.ids), *store.shape)
        self._store: PotionStore | None = store
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.ids)

    def __getstate__(self) -> dict:  # DataLoader workers open the store themselves
        return {**self.__dict__, "_store": None}

    def store(self) -> PotionStore:
        """The open store; a forked worker opens its own (Zarr's I/O thread is not forked)."""
        if self._store is None or self._pid != os.getpid():
            self._store, self._pid = PotionStore(self.path), os.getpid()
        return self._store

    def __getitem__(self, index: slice | torch.Tensor | Sequence[int]) -> torch.Tensor:
        positions = range(len(self.ids))[index] if isinstance(index, slice) else \
            torch.as_tensor(index).tolist()
        return torch.from_numpy(self.store().load([self.ids[i] for i in positions]))


Maps = torch.Tensor | StoreMaps


def open_maps(store: PotionStore, ids: Sequence[str], stream: bool) -> Maps:
    """The maps of ``ids``: streamed from the store, or read into one tensor."""
    return StoreMaps(store, ids) if stream else torch.from_numpy(store.load(list(ids)))


class _Batches(Dataset):
    """Item i = the maps of batch i (a list of positions): one chunk-aligned read per batch."""

    def __init__(self, maps: StoreMaps, batches: Sequence[torch.Tensor]) -> None:
        self.maps, self.batches = maps, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.maps[self.batches[i]]


def iterate_batches(maps: Maps, batches: Sequence[torch.Tensor], workers: int = 0,
                    pin_memory: bool = False) -> Iterator[torch.Tensor]:
    """The maps of each batch, in order. Streamed maps are read by ``workers`` processes (0:
    in this one), each keeping two batches ready."""
    if isinstance(maps, torch.Tensor):
        for idx in batches:
            yield maps[idx]
        return
    workers = max(0, min(workers, len(batches), os.cpu_count() or 1))
    loader = DataLoader(_Batches(maps, batches), batch_size=None, shuffle=False,
                        num_workers=workers, prefetch_factor=2 if workers else None,
                        pin_memory=pin_memory)
    yield from loader


def sequential_batches(n: int, batch_size: int) -> list[torch.Tensor]:
    """Positions 0..n-1 in batches of ``batch_size`` (the last may be shorter)."""
    return [torch.arange(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
