"""Achieved GFLOP/s of ArtSeg's U-Net and ResNet against this machine's measured peak.

Counts the floating-point operations of one step with ``torch.utils.flop_counter.FlopCounterMode``
(matrix multiplies and convolutions, forward and backward; element-wise work, batch norm
and the Adam update are not counted, so a training step's rate is a slight underestimate),
times the step, and sets the rate against microbenchmarks run in the same process, at the
same precision, layout and thread count:

- a large matrix multiply (fp32 sgemm; also bf16 where the CPU has native bf16), the
  machine's practical peak;
- a compute-bound 3x3 convolution (256 -> 256 channels, 56x56, batch 8), the best a
  convolution reaches here;
- a narrow 3x3 convolution (16 -> 16 channels, 128x128, batch 8), the layer the fast U-Net
  is made of, which is limited by memory traffic rather than arithmetic.

Cases (the ``fast`` configuration, ``artseg/configs/fast.json``): U-Net width 16, 4 levels,
batch norm, trained on 128x128 patches in batches of 8 and run on 256x256 tiles in batches
of 4; ResNet18 base width 16 on 256x256 images in batches of 8; ResNet50 base width 64 on
128x128 images in batches of 8. Training = forward + backward + Adam step; inference =
forward under ``torch.inference_mode``.

Usage (from the repository root)::

    python benchmarks/bench_flops.py                              # this CPU's default path
    python benchmarks/bench_flops.py --precision fp32 --layout contiguous --markdown
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/bench_flops.py --precision fp32

The variables of the third line make an AVX-512 CPU take the AVX2 kernels (check with
``ONEDNN_VERBOSE=1``); the sgemm runs in MKL, which ignores them (``MKL_ENABLE_INSTRUCTIONS=AVX2``
caps it). There fp32 training in channels_last crashes inside oneDNN (issue 17), so those
training rows are skipped, not run. Note ``uptime`` before a run: other
processes on the cores lower every rate: every step is timed in interleaved rounds and its
best time reported.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from artseg.hardware import cpu_capability, cpu_has_fast_bf16, cpu_model_name, memory_format_for, resolve_precision
from artseg.nets import ResNet, UNet

LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


@dataclass(frozen=True)
class Case:
    """One network at one input size: ``build()`` makes it, ``(batch, 1, size, size)`` feeds it."""

    label: str
    build: Callable[[], nn.Module]
    batch: int
    size: int
    train: bool


def fast_unet() -> nn.Module:
    return UNet(in_channels=1, out_channels=1, width=16, levels=4, batch_norm=True)


CASES = {
    "unet-train": Case("U-Net fast (w16, 4 levels, BN), train 8x128²", fast_unet, 8, 128, True),
    "unet-infer": Case("U-Net fast (w16, 4 levels, BN), infer 4x256²", fast_unet, 4, 256, False),
    "resnet18-train": Case("ResNet18 base 16, train 8x256²", lambda: ResNet(18, base_width=16), 8, 256, True),
    "resnet18-infer": Case("ResNet18 base 16, infer 8x256²", lambda: ResNet(18, base_width=16), 8, 256, False),
    "resnet50-train": Case("ResNet50 base 64, train 8x128²", lambda: ResNet(50, base_width=64), 8, 128, True),
    "resnet50-infer": Case("ResNet50 base 64, infer 8x128²", lambda: ResNet(50, base_width=64), 8, 128, False),
}


# --------------------------------------------------------------------------- steps
def precision_context(precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def network_step(case: Case, precision: str, layout: torch.memory_format) -> Callable[[], None]:
    """One training step (forward, BCE loss, backward, Adam) or one inference pass of `case`."""
    torch.manual_seed(0)
    model = case.build().to(memory_format=layout).train(case.train)
    images = torch.rand(case.batch, 1, case.size, case.size).contiguous(memory_format=layout)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def train_step() -> None:
        with precision_context(precision):
            logits = model(images).float()
        loss = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def inference_step() -> None:
        with torch.inference_mode(), precision_context(precision):
            model(images)

    return train_step if case.train else inference_step


def matmul_step(n: int, dtype: torch.dtype) -> tuple[Callable[[], None], int]:
    """An ``n x n`` by ``n x n`` matrix multiply in `dtype` and its FLOPs (2 n^3)."""
    a, b = torch.rand(n, n).to(dtype), torch.rand(n, n).to(dtype)
    out = torch.empty(n, n, dtype=dtype)
    return (lambda: torch.mm(a, b, out=out)), 2 * n ** 3


def conv_step(channels: int, size: int, batch: int, precision: str,
              layout: torch.memory_format) -> tuple[Callable[[], None], int]:
    """A 3x3 same-padding convolution forward and its FLOPs (2 Cin Cout 9 H W per image)."""
    conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(memory_format=layout)
    x = torch.rand(batch, channels, size, size).contiguous(memory_format=layout)

    def step() -> None:
        with torch.inference_mode(), precision_context(precision):
            conv(x)

    return step, 2 * channels * channels * 9 * size * size * batch


# --------------------------------------------------------------------------- measuring
def counted_flops(step: Callable[[], None]) -> int:
    """FLOPs of one call of `step` as ``FlopCounterMode`` counts them (matmul and conv)."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def step_seconds(step: Callable[[], None], min_seconds: float, min_repeats: int = 3,
                 warmup: int = 2) -> list[float]:
    """Wall-clock seconds of repeated calls, after `warmup` calls (oneDNN primitive creation)."""
    for _ in range(warmup):
        step()
    seconds: list[float] = []
    while len(seconds) < min_repeats or sum(seconds) < min_seconds:
        started = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - started)
    return seconds


def crashes_here(precision: str, layout: torch.memory_format, train: bool) -> bool:
    """fp32 channels_last training off the AVX-512 path: oneDNN heap corruption (issue 17)."""
    return train and precision == "fp32" and layout == torch.channels_last and cpu_capability() != "AVX512"


def peak_steps(precision: str, layout: torch.memory_format) -> dict[str, tuple[Callable[[], None], int]]:
    """The microbenchmarks: sgemm, bf16 gemm (native bf16 only), a wide and a narrow conv."""
    steps = {"sgemm 2048³ fp32": matmul_step(2048, torch.float32)}
    if cpu_has_fast_bf16():
        steps["gemm 2048³ bf16"] = matmul_step(2048, torch.bfloat16)
    steps["conv3x3 256→256 8x56²"] = conv_step(256, 56, 8, precision, layout)
    steps["conv3x3 16→16 8x128²"] = conv_step(16, 128, 8, precision, layout)
    return steps


def case_step(case: Case, precision: str, layout: torch.memory_format) -> tuple[Callable[[], None], int] | str:
    """One case's step and its counted FLOPs, or why it is skipped."""
    if crashes_here(precision, layout, case.train):
        return "fp32 channels_last training crashes in oneDNN on this path"
    step = network_step(case, precision, layout)
    return step, counted_flops(step)


def timed_rounds(steps: dict[str, tuple[Callable[[], None], int]], rounds: int,
                 min_seconds: float) -> dict[str, list[float]]:
    """Seconds of every timed call of every step, the steps interleaved in `rounds` rounds.

    Interleaving spreads each step over the whole run, so load from other processes (or a
    slow start of the process) weighs on all steps alike; the best time is reported.
    """
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    for round_index in range(rounds):
        for name, (step, _) in steps.items():
            seconds[name] += step_seconds(step, min_seconds, warmup=2 if round_index == 0 else 0)
        sgemm_flops, sgemm_best = steps["sgemm 2048³ fp32"][1], min(seconds["sgemm 2048³ fp32"])
        print(f"  round {round_index + 1}/{rounds}: best sgemm so far {sgemm_flops / sgemm_best / 1e9:.1f} GFLOP/s; "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
    return seconds


# --------------------------------------------------------------------------- reporting
def machine_line(precision: str, layout_name: str) -> str:
    capped = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
    caps = " ".join(f"{k}={os.environ[k]}" for k in capped if k in os.environ)
    return (f"CPU: {cpu_model_name()}; ATen capability {cpu_capability()}; native bf16 {cpu_has_fast_bf16()}; "
            f"torch {torch.__version__}; {torch.get_num_threads()} threads; precision {precision}; "
            f"layout {layout_name}" + (f"; env {caps}" if caps else "") +
            f"; load average {os.getloadavg()[0]:.2f}")


def matmul_peak(peaks: dict[str, float], precision: str) -> float:
    """The matrix-multiply peak at `precision` (bf16 gemm where measured, else sgemm)."""
    sgemm = peaks["sgemm 2048³ fp32"]
    return peaks.get("gemm 2048³ bf16", sgemm) if precision == "bf16" else sgemm


def table(rows: list[dict], peaks: dict[str, float], header: str, precision: str) -> str:
    """Markdown: the peaks, then one row per case with its share of the matmul and wide-conv peaks."""
    matmul = matmul_peak(peaks, precision)
    wide_conv = peaks["conv3x3 256→256 8x56²"]
    lines = [header, "", "| microbenchmark | GFLOP/s |", "|---|---|"]
    lines += [f"| {name} | {rate:.1f} |" for name, rate in peaks.items()]
    lines += ["", "| case | GFLOP/step | best s/step | median s/step | repeats | GFLOP/s | "
              f"% of {precision} matmul | % of wide conv |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if "skipped" in row:
            lines.append(f"| {row['label']} | skipped: {row['skipped']} | | | | | | |")
            continue
        lines.append(f"| {row['label']} | {row['gflop']:.2f} | {row['best_s']:.4f} | {row['median_s']:.4f} | "
                     f"{row['repeats']} | {row['gflops']:.1f} | {100 * row['gflops'] / matmul:.0f}% | "
                     f"{100 * row['gflops'] / wide_conv:.0f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                        help="default: what ArtSeg picks on this CPU (artseg.train.resolve_precision)")
    parser.add_argument("--layout", choices=tuple(LAYOUTS), default=None,
                        help="default: what ArtSeg picks for the precision (artseg.train.memory_format_for)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--cases", nargs="+", choices=tuple(CASES), default=list(CASES))
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over all steps")
    parser.add_argument("--min-seconds", type=float, default=0.5, help="timed seconds per step and round")
    parser.add_argument("--markdown", action="store_true", help="print one table for benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    precision = args.precision or resolve_precision("auto")
    layout = LAYOUTS[args.layout] if args.layout else memory_format_for(precision)
    layout_name = next(name for name, value in LAYOUTS.items() if value == layout)

    header = machine_line(precision, layout_name)
    print(header, flush=True)
    started = time.perf_counter()
    peaks_at = peak_steps(precision, layout)
    cases = {key: case_step(CASES[key], precision, layout) for key in args.cases}
    runnable = {key: value for key, value in cases.items() if not isinstance(value, str)}
    seconds = timed_rounds({**peaks_at, **runnable}, args.rounds, args.min_seconds)
    peaks = {name: flops / min(seconds[name]) / 1e9 for name, (_, flops) in peaks_at.items()}
    for name, rate in peaks.items():
        print(f"  {name:24s} {rate:8.1f} GFLOP/s", flush=True)
    rows = []
    for key, value in cases.items():
        label = CASES[key].label
        if isinstance(value, str):
            rows.append(dict(label=label, skipped=value))
            print(f"  {label:48s} skipped: {value}", flush=True)
            continue
        times = sorted(seconds[key])
        row = dict(label=label, gflop=value[1] / 1e9, best_s=times[0], median_s=times[len(times) // 2],
                   repeats=len(times), gflops=value[1] / times[0] / 1e9)
        rows.append(row)
        share = 100 * row["gflops"] / matmul_peak(peaks, precision)
        print(f"  {label:48s} {row['gflop']:7.2f} GFLOP/step, best {row['best_s']:.4f} s, "
              f"{row['gflops']:7.1f} GFLOP/s ({share:.0f}% of matmul)", flush=True)
    print(f"  {time.perf_counter() - started:.0f} s in all; load average {os.getloadavg()[0]:.2f}", flush=True)
    if args.markdown:
        print()
        print(table(rows, peaks, header, precision))
    return 0


if __name__ == "__main__":
    sys.exit(main())
