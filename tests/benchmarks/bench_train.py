"""Training throughput of the PoTion baseline and JMRN at the paper's input size (18x3x64x86).

Each configuration runs in a fresh subprocess so its peak memory (ru_maxrss) is its own.
Options compared against plain fp32 in the same run: channels_last, bf16 autocast and
torch.compile. On a GPU (``--device cuda``) peak memory is torch's max allocated.

    .venv/bin/python tests/benchmarks/bench_train.py [--device cpu] [--steps 6] [--batch 16]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

OPTIONS = ("fp32", "channels_last", "bf16", "compile")


def measure(arch: str, option: str, device: str, steps: int, batch: int, width: float) -> dict:
    import resource
    import time

    import torch

    from jmrn.losses import joint_contrastive_loss
    from jmrn.models import build_model

    torch.manual_seed(0)
    dev = torch.device(device)
    model = build_model(arch, 18, 3, 51, width=width).to(dev)
    x = torch.rand(batch, 18, 3, 64, 86, device=dev)
    y = torch.randint(0, 51, (batch,), device=dev)
    if option == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if option == "compile" else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=option == "bf16"):
            out = step_model(x)
            loss = torch.nn.functional.cross_entropy(out["logits"].float(), y)
            if "embeddings" in out:
                loss = loss + 0.05 * joint_contrastive_loss(out["embeddings"].float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    step()  # warm-up (and compilation)
    warmup = time.perf_counter() - t0
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"samples_per_s": steps * batch / elapsed, "peak_mib": peak, "warmup_s": warmup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--options", default=",".join(OPTIONS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        arch, option = args.child.split(":")
        print(json.dumps(measure(arch, option, args.device, args.steps, args.batch, args.width)))
        return
    print(f"device={args.device} batch={args.batch} steps={args.steps} width={args.width} "
          "input=18x3x64x86, loss = CE (+ joint-contrastive for JMRN)")
    print(f"{'model':<8}{'option':<15}{'samples/s':>11}{'speed-up':>10}{'peak MiB':>10}{'warm-up s':>11}")
    for arch in ("potion", "jmrn"):
        base = None
        for option in args.options.split(","):
            cmd = [sys.executable, __file__, "--child", f"{arch}:{option}", "--device", args.device,
                   "--steps", str(args.steps), "--batch", str(args.batch), "--width", str(args.width)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{arch:<8}{option:<15}failed: {proc.stderr.strip().splitlines()[-1][:60]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            base = base or r["samples_per_s"]
            print(f"{arch:<8}{option:<15}{r['samples_per_s']:>11.1f}{r['samples_per_s'] / base:>9.2f}x"
                  f"{r['peak_mib']:>10.0f}{r['warmup_s']:>11.1f}")


if __name__ == "__main__":
    main()
