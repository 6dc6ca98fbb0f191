"""Training from a PoTion store larger than memory: one epoch streamed vs held in memory.

Generates a store of ``--videos`` sparse PoTion maps at the paper's 18 x 3 x 64 x 86 (float16,
sharded as the pipeline writes it), then, each in a fresh process so that peak memory is its
own: one training epoch (jmrn.train.train_epoch, augmentation included) on a subset held in
memory, and one epoch over the whole store streamed by reader threads; prints samples/s, their
ratio and peak RSS. Also compares reads (random batches; a whole split) from the sharded store,
decoded by zarrs or by zarr's own codec pipeline, with the one-file-per-video layout and the
orthogonal-selection reader of earlier versions (``--reads-only``: only that).

    .venv/bin/python tests/benchmarks/bench_scale.py [--videos 20000] [--subset 2000]
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPE = (18, 3, 64, 86)


def sparse_maps(n: int, seed: int):
    """PoTion-like maps: each joint's trajectory is a few bright pixels in a mostly empty map."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        m = np.zeros(SHAPE, np.float16)
        ys = rng.integers(0, SHAPE[2] - 8, SHAPE[0])
        xs = rng.integers(0, SHAPE[3] - 8, SHAPE[0])
        for j in range(SHAPE[0]):
            m[j, :, ys[j]:ys[j] + 8, xs[j]:xs[j] + 8] = rng.random((SHAPE[1], 8, 8))
        yield m


def generate(root: Path, n: int) -> float:
    from jmrn.store import write_potion_store

    t0 = time.perf_counter()
    write_potion_store(root / "potion.zarr", [f"v{i:06d}" for i in range(n)], sparse_maps(n, 0),
                       SHAPE, {"channels": 3})
    return time.perf_counter() - t0


def train_one_epoch(store_path: str, n: int, stream: bool, workers: int, threads: int,
                    arch: str, width: float, batch: int) -> dict:
    import torch

    from jmrn.augment import AugmentConfig
    from jmrn.maps import open_maps
    from jmrn.models import build_model
    from jmrn.resources import resident_mib
    from jmrn.store import PotionStore
    from jmrn.train import TrainConfig, train_epoch

    torch.set_num_threads(threads)
    store = PotionStore(store_path)
    ids = store.video_ids[:n]
    t0 = time.perf_counter()
    x = open_maps(store, ids, stream)
    load_s = time.perf_counter() - t0
    y = torch.arange(n) % 51
    model = build_model(arch, SHAPE[0], SHAPE[1], 51, width=width)
    cfg = TrainConfig(batch_size=batch, seed=0, augment=AugmentConfig(), loader_workers=workers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    t0 = time.perf_counter()
    train_epoch(model, x, y, cfg, 0, opt, torch.device("cpu"))
    epoch_s = time.perf_counter() - t0
    return {"samples_per_s": n / epoch_s, "epoch_s": epoch_s, "load_s": load_s,
            "peak_mib": resident_mib()}


class OrthogonalReadStore:
    """The reader before sharding: one orthogonal selection of the batch's rows (on the sharded
    layout it decodes whole shard files, so it is only measured on one file per video)."""

    def __new__(cls, path: str):
        from jmrn.store import PotionStore

        class Store(PotionStore):
            def _read_rows(self, rows: np.ndarray, out: np.ndarray, at: np.ndarray) -> None:
                out[at] = self.potion.get_orthogonal_selection((rows,))

        return Store(path)


def read_rate(store_path: str, n: int, batches: int, batch: int, reader: str, codecs: str) -> dict:
    """Maps per second (crc32-checked float16, as training gets them) for random batches of the
    first ``n`` videos, and for all of them in store order (an in-memory split's load), decoded
    by ``codecs``: zarrs (what jmrn uses when installed) or zarr's own Python pipeline."""
    import torch
    import zarr

    from jmrn.maps import StoreMaps
    from jmrn.store import ZARR_PIPELINE, ZARRS, PotionStore

    if codecs == "zarr":
        zarr.config.set({"codec_pipeline.path": ZARR_PIPELINE})
    elif not ZARRS:
        raise RuntimeError("zarrs is not installed")

    store = OrthogonalReadStore(store_path) if reader == "orthogonal" else PotionStore(store_path)
    maps = StoreMaps(store, store.video_ids[:n])
    gen = torch.Generator().manual_seed(0)
    idx = [torch.randperm(n, generator=gen)[:batch] for _ in range(batches)]
    t0 = time.perf_counter()
    for i in idx:
        maps[i]
    random_rate = batches * batch / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    maps[:]
    return {"random": random_rate, "split": n / (time.perf_counter() - t0)}


def write_per_video_layout(src: Path, dst: Path, n: int) -> None:
    """The layout before sharding: one chunk file per video."""
    import zarr

    from jmrn.store import POTION_CODEC, PotionStore

    store = PotionStore(src)
    group = zarr.open_group(dst, mode="w")
    arr = group.create_array("potion", shape=(n, *SHAPE), dtype="float16", chunks=(1, *SHAPE),
                             compressors=POTION_CODEC, fill_value=0)
    for start in range(0, n, 500):
        arr[start:start + 500] = store.potion[start:min(start + 500, n)]
    group.create_array("video_id", shape=(n,), dtype=str)[:] = np.asarray(store.video_ids[:n], dtype=str)
    group.create_array("crc32", shape=(n,), dtype="uint32")[...] = store.crc32[:n]


def train_pairs(store: str, args: argparse.Namespace) -> None:
    """Streamed epochs over the whole store, each bracketed by in-memory epochs on the subset
    (the machine's speed drifts over minutes): each ratio is streamed / mean(held before, after)."""
    common = [args.workers, args.threads, args.arch, args.width, args.batch]
    held = [child(["train", store, args.subset, False, *common])]
    streamed = []
    for _ in range(args.train_repeats):
        streamed.append(child(["train", store, args.videos, True, *common]))
        held.append(child(["train", store, args.subset, False, *common]))
    print(f"model {args.arch} width {args.width}, batch {args.batch}, {args.threads} threads, "
          f"{args.workers} reader threads; one epoch each")
    print(f"{'run':<6}{'in memory (subset), samples/s':>32}{'streamed, samples/s':>22}{'ratio':>8}"
          f"{'peak RSS MiB: in memory':>26}{'streamed':>10}")
    ratios = []
    for i, st in enumerate(streamed):
        before, after = held[i], held[i + 1]
        ref = (before["samples_per_s"] + after["samples_per_s"]) / 2
        ratios.append(st["samples_per_s"] / ref)
        print(f"{i + 1:<6}{before['samples_per_s']:>15.1f} / {after['samples_per_s']:<14.1f}"
              f"{st['samples_per_s']:>22.1f}{ratios[-1]:>8.2f}"
              f"{max(before['peak_mib'], after['peak_mib']):>26.0f}{st['peak_mib']:>10.0f}")
    print(f"streamed / in memory: median {np.median(ratios):.2f} over {len(ratios)} runs "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f}); {args.subset} videos held, "
          f"{args.videos} streamed; in-memory load of the subset "
          f"{np.median([h['load_s'] for h in held]):.1f} s, not in its samples/s")


def child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=20000)
    parser.add_argument("--subset", type=int, default=2000, help="videos of the in-memory run")
    parser.add_argument("--workers", type=int, default=2, help="reader threads")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arch", default="jmrn")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--reads-only", action="store_true", help="skip the training epochs")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved read measurements")
    parser.add_argument("--train-repeats", type=int, default=1,
                        help="streamed epochs, each between two in-memory epochs")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = json.loads(args.child)
        fn = {"train": train_one_epoch, "read": read_rate}[kind]
        print(json.dumps(fn(*rest)))
        return
    with tempfile.TemporaryDirectory(prefix="jmrn-scale-") as tmp:
        root = Path(tmp)
        gen_s = generate(root, args.videos)
        store = str(root / "potion.zarr")
        files = sum(1 for p in Path(store).rglob("*") if p.is_file())
        disk = sum(p.stat().st_size for p in Path(store).rglob("*") if p.is_file())
        raw = args.videos * math.prod(SHAPE) * 2
        print(f"store: {args.videos} videos of {'x'.join(map(str, SHAPE))} float16, "
              f"{raw / 1e9:.1f} GB of maps, {disk / 1e6:.0f} MB on disk in {files} files, "
              f"written in {gen_s:.0f} s")
        if not args.reads_only:
            train_pairs(store, args)
        n = min(args.subset, args.videos)
        write_per_video_layout(Path(store), root / "per_video.zarr", n)
        old_files = sum(1 for p in (root / "per_video.zarr").rglob("*") if p.is_file())
        # interleaved repeats (medians): the readers share the machine's page cache and noise
        per_video = str(root / "per_video.zarr")
        cases = {"sharded, concurrent slices, zarrs (now)": (store, "store", "zarrs"),
                 "sharded, concurrent slices, zarr's codecs": (store, "store", "zarr"),
                 f"one file per video ({old_files} files), orthogonal, zarr's codecs (before)":
                     (per_video, "orthogonal", "zarr"),
                 "one file per video, concurrent slices, zarrs": (per_video, "store", "zarrs")}
        runs: dict[str, list[dict]] = {name: [] for name in cases}
        for _ in range(args.repeats):
            for name, (path, reader, codecs) in cases.items():
                runs[name].append(child(["read", path, n, 100, args.batch, reader, codecs]))
        before = next(name for name in cases if name.endswith("(before)"))
        ref = {k: float(np.median([r[k] for r in runs[before]])) for k in ("random", "split")}
        print(f"reading {n} videos, medians of {args.repeats} interleaved runs (maps/s, ratio to "
              "before):")
        print(f"{'layout, reader and codecs':<70}{'random batches':>16}{'whole split':>22}")
        for name, rs in runs.items():
            med = {k: float(np.median([r[k] for r in rs])) for k in ("random", "split")}
            print(f"{name:<70}{med['random']:>9.0f} {med['random'] / ref['random']:>5.2f}x"
                  f"{med['split']:>15.0f} {med['split'] / ref['split']:>5.2f}x")

if __name__ == "__main__":
    main()
