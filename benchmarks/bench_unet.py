"""Throughput of the U-Net and ResNet in fp32 vs bf16 autocast, with and without channels_last.

Measures megapixels per second for inference (forward, no gradients) and for a training step
(forward + backward + Adam step). The four precision/layout variants of one case are timed
in interleaved rounds, so load from other processes affects them alike, and the best round
is reported (contention only ever adds time). Run from the
repository root:

    python benchmarks/bench_unet.py [--rounds 5] [--threads N] [--cases unet_fast,resnet18_fast]

Prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time

import torch
import torch.nn.functional as F

from artseg.nets import build_network
from artseg.hardware import cpu_has_fast_bf16

CASES = {
    # name: (label, spec, batch, size)
    "unet_fast": ("U-Net fast (w16, 4 levels)", {"name": "unet", "width": 16, "levels": 4}, 4, 256),
    "unet_paper": ("U-Net paper (w64, 5 levels)", {"name": "unet", "width": 64, "levels": 5}, 2, 256),
    "resnet18_fast": ("ResNet18 fast (base 16)", {"name": "resnet", "depth": 18, "base_width": 16}, 8, 256),
    "resnet50_paper": ("ResNet50 paper (base 64)", {"name": "resnet", "depth": 50, "base_width": 64}, 4, 224),
}
VARIANTS = [("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)]


def _context(precision: str):
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_step(spec: dict, batch: int, size: int, precision: str, channels_last: bool, train: bool):
    """Return a function running one inference or training step of a fresh network."""
    torch.manual_seed(0)
    model = build_network(spec)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    images = torch.rand(batch, 1, size, size).contiguous(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train(train)

    def step() -> None:
        if train:
            with _context(precision):
                logits = model(images).float()
            loss = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        else:
            with torch.no_grad(), _context(precision):
                model(images)

    return step


def measure_case(spec: dict, batch: int, size: int, train: bool, rounds: int) -> list[float]:
    """Megapixels per second of each variant (best of interleaved rounds)."""
    steps = [make_step(spec, batch, size, p, cl, train) for p, cl in VARIANTS]
    for step in steps:  # warm-up: oneDNN primitive creation
        step()
        step()
    times: list[list[float]] = [[] for _ in steps]
    for _ in range(rounds):
        for index, step in enumerate(steps):
            started = time.perf_counter()
            step()
            times[index].append(time.perf_counter() - started)
    megapixels = batch * size * size / 1e6
    return [megapixels / min(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {', '.join(CASES)}")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads, "
          f"native bf16: {cpu_has_fast_bf16()}, capability {torch.backends.cpu.get_cpu_capability()}")
    print("| network | batch × size | pass | " + " | ".join(f"{p}{' + CL' if cl else ''}" for p, cl in VARIANTS)
          + " | best / fp32 |")
    print("|" + "---|" * (4 + len(VARIANTS)))
    for name in args.cases.split(","):
        label, spec, batch, size = CASES[name]
        for train in (False, True):
            rates = measure_case(spec, batch, size, train, args.rounds)
            cells = " | ".join(f"{rate:.3f}" for rate in rates)
            print(f"| {label} | {batch} × {size}² | {'train step' if train else 'inference'} | {cells} | "
                  f"{max(rates) / rates[0]:.1f}× |", flush=True)
    print("Megapixels per second, best of interleaved rounds; CL = channels_last.")


if __name__ == "__main__":
    main()
