"""Training throughput of the PoTion baseline and JMRN at the paper's input size (18x3x64x86),
through the training loop itself (jmrn.train.train_epoch: pose-aware augmentation, two views and
the joint-contrastive term for JMRN) with each of train.precision / channels_last / compile.

Each configuration runs in a fresh subprocess so its peak memory is its own (RSS on CPU, torch's
max allocated on a GPU); speed-ups are against fp32 measured in the same run.

    .venv/bin/python tests/benchmarks/bench_train.py [--device cpu|cuda] [--steps 6] [--batch 16]

``--arrangements``: instead, JMRN's training step (forward, cross-entropy, backward, Adam) with
the Siamese extractor's batch folded (N*J samples at once), in chunks of joints (what the model
picks on this device) and joint by joint, in fp32 and bf16, at 32 x 43 and 64 x 86, one
thread; interleaved rounds, medians, ratios against folded fp32. It runs twice, each in its own
process: with glibc's malloc as it comes, and keeping freed memory for reuse as training
processes do (jmrn.device.keep_freed_memory); then it prints the step as training jobs run it
(chunked, memory kept) against the plain arrangement (folded, default malloc). With memory kept
it also prints the ceiling on any fp32 arrangement: the step's arithmetic (torch's FLOP
counter: convolutions and matrix products) at the fastest rate this core ran any of the
extractor's convolutions alone, forward and backward; the time of elementwise work and Adam
is left out, so the ceiling is optimistic. CPU only (``--device`` is not used here):

    .venv/bin/python tests/benchmarks/bench_train.py --arrangements [--rounds 3] [--batch 16]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

OPTIONS = ("fp32", "channels_last", "bf16", "fp16", "compile")


def measure(arch: str, option: str, device: str, steps: int, batch: int, width: float) -> dict:
    import time

    import torch

    from jmrn.augment import AugmentConfig
    from jmrn.device import keep_freed_memory
    from jmrn.models import build_model
    from jmrn.resources import resident_mib
    from jmrn.train import TrainConfig, prepare_model, train_epoch

    keep_freed_memory()  # as a training process does
    torch.manual_seed(0)
    dev = torch.device(device)
    cfg = TrainConfig(batch_size=batch, seed=0, augment=AugmentConfig(), contrastive=arch == "jmrn",
                      precision=option if option in ("bf16", "fp16") else "fp32",
                      channels_last=option == "channels_last", compile=option == "compile")
    model = build_model(arch, 18, 3, 51, width=width)
    step_model, scaler = prepare_model(model, cfg, dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(steps * batch, 18, 3, 64, 86)
    y = torch.randint(0, 51, (steps * batch,))
    t0 = time.perf_counter()
    train_epoch(step_model, x[:2 * batch], y[:2 * batch], cfg, 0, opt, dev, scaler)  # warm-up
    warmup = time.perf_counter() - t0
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    train_epoch(step_model, x, y, cfg, 1, opt, dev, scaler)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda"
            else resident_mib())
    return {"samples_per_s": steps * batch / elapsed, "peak_mib": peak, "warmup_s": warmup}


def conv_peak_gflops(model, x, rounds: int) -> float:
    """The fastest fp32 rate (GFLOP/s) of any of the Siamese extractor's convolutions run alone,
    forward and backward, on a chunk of the model's own size in channels-last: what the whole
    step could reach if every operation ran like its best convolution."""
    import statistics
    import time

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    n, j, c, h, w = x.shape
    k = model.extractor.chunk_joints(x)
    a = torch.rand(n * k, c, h, w).contiguous(memory_format=torch.channels_last)
    best = 0.0
    for block in model.extractor.net:
        conv = block[0]
        inp = a.detach().requires_grad_(True)
        counter = FlopCounterMode(display=False)
        with counter:
            conv(inp).sum().backward()
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            conv(inp).sum().backward()
            times.append(time.perf_counter() - t0)
        best = max(best, counter.get_total_flops() / statistics.median(times) / 1e9)
        a = torch.relu(conv(a)).detach()
    return best


def step_gflop(model, x, y) -> float:
    """Arithmetic of one fp32 training step (convolutions and matrix products), GFLOP."""
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(model(x)["logits"], y).backward()
    model.zero_grad()
    return counter.get_total_flops() / 1e9


def arrangements(batch: int, rounds: int, width: float, sizes: list[tuple[int, int]],
                 allocator: str) -> dict[str, float]:
    """Print samples/s of one JMRN training step per extractor arrangement and precision, with
    glibc's malloc as it comes (``default``) or keeping freed memory as training does (``kept``);
    return the samples/s by row."""
    import statistics
    import time

    import torch
    import torch.nn.functional as F

    from jmrn.device import keep_freed_memory
    from jmrn.models import build_model

    torch.set_num_threads(1)
    if allocator == "kept" and not keep_freed_memory():
        raise SystemExit("this C library has no glibc mallopt")
    print(f"\nmalloc: {allocator}" + (" (freed memory kept for reuse, as training runs)"
                                      if allocator == "kept" else " (glibc as it comes)"))
    print(f"{'input':<8}{'extractor batch':<26}{'precision':<11}{'samples/s':>10}{'vs folded fp32':>16}")
    rows = {}
    for h, w in sizes:
        torch.manual_seed(0)
        model = build_model("jmrn", 18, 3, 51, width=width).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        x, y = torch.rand(batch, 18, 3, h, w), torch.randint(0, 51, (batch,))
        chunk = model.extractor.chunk_joints(x)
        chunked = f"chunked ({chunk} joint{'s' * (chunk > 1)}/chunk)"
        setups = {f"folded ({batch}x18)": 18, chunked: chunk, "joint by joint (1)": 1}

        def step(joints: int, bf16: bool) -> float:
            model.extractor.joints_per_chunk = joints
            t0 = time.perf_counter()
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(x)["logits"].float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return time.perf_counter() - t0

        runs = [(name, joints, bf16) for bf16 in (False, True) for name, joints in setups.items()]
        for _, joints, bf16 in runs:  # warm-up
            step(joints, bf16)
        times: dict[tuple[str, bool], list[float]] = {(n, b): [] for n, _, b in runs}
        for _ in range(rounds):
            for name, joints, bf16 in runs:
                times[name, bf16].append(step(joints, bf16))
        speed = {key: batch / statistics.median(t) for key, t in times.items()}
        base = speed[next(iter(setups)), False]
        for (name, bf16), v in speed.items():
            precision = "bf16" if bf16 else "fp32"
            rows[f"{h}x{w}|{name.split(' (')[0]}|{precision}"] = v
            print(f"{h}x{w:<5}{name:<26}{precision:<11}{v:>10.2f}{v / base:>15.2f}x", flush=True)
        if allocator == "kept":
            model.extractor.joints_per_chunk = None
            gflop, peak = step_gflop(model, x, y), conv_peak_gflops(model, x, rounds)
            floor = gflop / peak
            print(f"{h}x{w:<5}ceiling for fp32: {gflop:.0f} GFLOP per step at {peak:.0f} GFLOP/s (the "
                  f"fastest of its convolutions alone) = {floor:.2f} s, {batch / floor:.2f} samples/s, "
                  f"{batch / floor / base:.2f}x folded fp32; chunked fp32 runs at "
                  f"{speed[chunked, False] * floor / batch:.0%} of it", flush=True)
    return rows


def compare_allocators(args: argparse.Namespace) -> None:
    """The arrangements under glibc's default malloc and with freed memory kept, each in its own
    process (malloc's settings are per process), then the training step as jobs run it (chunked,
    memory kept) against the plain arrangement (folded, default malloc)."""
    print(f"JMRN training step (forward, cross-entropy, backward, Adam), batch {args.batch}, width "
          f"{args.width}, 18 joints x 3 channels, 1 thread, CPU; median of {args.rounds} interleaved "
          f"round{'s' * (args.rounds > 1)}")
    rows = {}
    for allocator in ("default", "kept"):
        cmd = [sys.executable, __file__, "--arrangements", "--allocator", allocator, "--rounds",
               str(args.rounds), "--batch", str(args.batch), "--width", str(args.width),
               "--sizes", args.sizes]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
        *table, last = proc.stdout.rstrip().splitlines()
        print("\n".join(table), flush=True)
        rows[allocator] = json.loads(last)
    print("\nas jobs run it (chunked, memory kept, in fp32 and in bf16) against the plain "
          "arrangement (folded, default malloc, fp32), across the two processes above:")
    for size in args.sizes.split(","):
        plain = rows["default"][f"{size}|folded|fp32"]
        for p in ("fp32", "bf16"):
            as_run = rows["kept"][f"{size}|chunked|{p}"]
            print(f"{size:<8}{p} as run vs plain fp32{as_run / plain:>8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--archs", default="potion,jmrn")
    parser.add_argument("--options", default=",".join(OPTIONS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--arrangements", action="store_true",
                        help="compare the Siamese extractor's batch arrangements instead")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="32x43,64x86")
    parser.add_argument("--allocator", choices=("default", "kept"),
                        help="--arrangements in this process with this malloc setting only")
    args = parser.parse_args()
    if args.arrangements and args.allocator:
        sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
        print(json.dumps(arrangements(args.batch, args.rounds, args.width, sizes, args.allocator)))
        return
    if args.arrangements:
        compare_allocators(args)
        return
    if args.child:
        arch, option = args.child.split(":")
        print(json.dumps(measure(arch, option, args.device, args.steps, args.batch, args.width)))
        return
    print(f"device={args.device} batch={args.batch} steps={args.steps} width={args.width} "
          "input=18x3x64x86, jmrn.train.train_epoch (augmentation; JMRN: two views + contrastive)")
    print(f"{'model':<8}{'option':<15}{'samples/s':>11}{'vs fp32':>9}{'peak MiB':>10}{'warm-up s':>11}")
    for arch in args.archs.split(","):
        base = None
        for option in args.options.split(","):
            cmd = [sys.executable, __file__, "--child", f"{arch}:{option}", "--device", args.device,
                   "--steps", str(args.steps), "--batch", str(args.batch), "--width", str(args.width)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                why = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
                print(f"{arch:<8}{option:<15}failed: {why[:60]}", flush=True)
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            base = base or r["samples_per_s"]
            print(f"{arch:<8}{option:<15}{r['samples_per_s']:>11.1f}{r['samples_per_s'] / base:>8.2f}x"
                  f"{r['peak_mib']:>10.0f}{r['warmup_s']:>11.1f}", flush=True)


if __name__ == "__main__":
    main()
