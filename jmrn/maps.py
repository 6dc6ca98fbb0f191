"""PoTion maps as training and export read them: one float16 tensor in memory, or streamed.

A split whose maps fit ``train.max_memory_gb`` is read once into a tensor. A larger one stays
in the Zarr store (``StoreMaps``) and each batch is read when it is needed, by reader threads
ahead of the model. Either way a batch is float16 (as stored) until ``to_device`` converts it
on the device that trains, so a seed gives the same model either way; only memory and speed
differ.
"""
from __future__ import annotations

import contextlib
import itertools
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from jmrn.store import PotionStore

READER_SWITCH_INTERVAL_S = 1e-4  # while reader threads run (gil_switch_interval)


class StoreMaps:
    """N x J x C x H x W float16 maps of the given videos, read from the store on indexing."""

    def __init__(self, store: PotionStore, ids: Sequence[str]) -> None:
        store.require(ids)
        self.ids = list(ids)
        self.shape = (len(self.ids), *store.shape)
        self.store = store  # read from several threads at once (Zarr's reads are thread-safe)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: slice | torch.Tensor | Sequence[int]) -> torch.Tensor:
        positions = range(len(self.ids))[index] if isinstance(index, slice) else \
            torch.as_tensor(index).tolist()
        return torch.from_numpy(self.store.load([self.ids[i] for i in positions]))


Maps = torch.Tensor | StoreMaps


def open_maps(store: PotionStore, ids: Sequence[str], stream: bool) -> Maps:
    """The maps of ``ids``: streamed from the store, or read into one tensor."""
    return StoreMaps(store, ids) if stream else torch.from_numpy(store.load(list(ids)))


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A float16 batch as float32 on ``device``: half the bytes cross to a GPU, and the
    conversion runs in the training threads instead of competing with them."""
    return batch.to(device, non_blocking=True).float()


def iterate_batches(maps: Maps, batches: Sequence[torch.Tensor], workers: int = 0,
                    pin_memory: bool = False) -> Iterator[torch.Tensor]:
    """The maps of each batch, in order. Streamed maps are read ahead by ``workers`` threads
    (0: read when needed, in this thread), two batches each.

    Threads rather than DataLoader processes: decoding (zarrs) and the crc32 run without the
    GIL, nothing is copied between processes, and forking a process whose Rust codec thread
    pool has started would deadlock the child."""
    if isinstance(maps, torch.Tensor):
        for idx in batches:
            yield maps[idx]
        return

    def read(idx: torch.Tensor) -> torch.Tensor:
        xb = maps[idx]
        return xb.pin_memory() if pin_memory else xb

    workers = max(0, min(workers, len(batches)))
    if not workers:
        yield from map(read, batches)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="jmrn-read") as pool, \
            gil_switch_interval(READER_SWITCH_INTERVAL_S):
        ahead: deque[Future[torch.Tensor]] = deque()
        todo = iter(batches)
        for idx in itertools.islice(todo, 2 * workers):
            ahead.append(pool.submit(read, idx))
        while ahead:
            xb = ahead.popleft().result()
            for idx in itertools.islice(todo, 1):
                ahead.append(pool.submit(read, idx))
            yield xb


@contextlib.contextmanager
def gil_switch_interval(seconds: float) -> Iterator[None]:
    """Python's GIL switch interval set to ``seconds`` for the block. Training takes the GIL back
    after every torch op; a reader thread running Zarr's Python code keeps it up to the
    interval (default 5 ms), so a short one lets training in promptly (bench_scale.py: ≈ 7 %
    more samples/s when streaming on 2 cores)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def sequential_batches(n: int, batch_size: int) -> list[torch.Tensor]:
    """Positions 0..n-1 in batches of ``batch_size`` (the last may be shorter)."""
    return [torch.arange(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
