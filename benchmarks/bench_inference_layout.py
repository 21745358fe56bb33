"""Forward-pass speed of the `fast` networks per activation/weight layout (issue 17: inference layout).

oneDNN runs its channels_last kernels only when the weights share the activations' layout;
``artseg.hardware.inference_layout`` moves them for the length of a prediction or a Score-CAM
call. This times, for the `fast` ResNet18 (Score-CAM's masked passes) and the `fast` U-Net
(tiled prediction): contiguous, channels_last inputs with contiguous weights (what ArtSeg did
before), and channels_last inputs and weights. Run it once per path:

    python benchmarks/bench_inference_layout.py
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/bench_inference_layout.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from artseg.config import load_config  # noqa: E402
from artseg.hardware import cpu_capability, cpu_model_name, inference_layout  # noqa: E402
from artseg.nets import build_network  # noqa: E402


def seconds_per_pass(network: torch.nn.Module, images: torch.Tensor, repeats: int) -> float:
    """Best of ``repeats`` timed forward passes, after one warm-up."""
    best = float("inf")
    with torch.inference_mode():
        network(images)
        for _ in range(repeats):
            started = time.perf_counter()
            network(images)
            best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    fast = load_config("fast")
    cases = {
        "ResNet18 fast, 32 x 192² (Score-CAM batch)": (fast.classifier, (32, 1, 192, 192)),
        "U-Net fast, 4 x 256² tiles": (dict(fast.unet), (4, 1, 256, 256)),
        "U-Net of the cell and nuclei models (no BatchNorm), 4 x 256² tiles":
            (dict(fast.unet, batch_norm=False), (4, 1, 256, 256)),
    }
    print(f"{cpu_model_name()}, capability {cpu_capability()}, {torch.get_num_threads()} threads, fp32, "
          f"best of {args.repeats}\n")
    print("| network | contiguous ms/image | CL inputs only | CL inputs + weights | gain |")
    print("|---|---|---|---|---|")
    channels_last = torch.channels_last
    for name, (spec, shape) in cases.items():
        network = build_network(spec, seed=0).eval()
        images = torch.rand(shape)
        plain = seconds_per_pass(network, images, args.repeats)
        inputs_only = seconds_per_pass(network, images.contiguous(memory_format=channels_last), args.repeats)
        with inference_layout(network, channels_last):
            both = seconds_per_pass(network, images.contiguous(memory_format=channels_last), args.repeats)
        per_image = 1000 / shape[0]
        print(f"| {name} | {plain * per_image:.2f} | {inputs_only * per_image:.2f} | {both * per_image:.2f} | "
              f"{plain / both:.2f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
