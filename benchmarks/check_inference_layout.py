"""Heap-checked forward passes in channels_last against contiguous, for the inference layout on the AVX2 path.

U-Nets (widths 4-16, 2-4 levels, with and without BatchNorm) and ResNet18/50 (widths 4-16) at
random batch sizes and shapes; prints the worst relative difference. Run it as::

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MALLOC_CHECK_=3 MALLOC_PERTURB_=165 python benchmarks/check_inference_layout.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itertools  # noqa: E402
import random  # noqa: E402

import torch  # noqa: E402

from artseg.nets import build_network  # noqa: E402

random.seed(0)
torch.manual_seed(0)
worst, n = 0.0, 0
specs = []
for w, lv, bn in itertools.product((4, 8, 16), (2, 3, 4), (False, True)):
    specs.append(({"name": "unet", "in_channels": 1, "out_channels": 1, "width": w, "levels": lv, "convs_per_block": 2, "batch_norm": bn}, 2 ** lv))
for d, w in itertools.product((18, 50), (4, 8, 16)):
    specs.append(({"name": "resnet", "depth": d, "in_channels": 1, "num_logits": 1, "base_width": w, "dilate_last": False, "pool": "avg"}, 32))
for spec, mult in specs:
    net = build_network(spec, seed=0).eval()
    for _ in range(6):
        b = random.choice((1, 2, 3, 4, 8, 32)); s = mult * random.randint(2, 12)
        x = torch.randn(b, 1, s, s)
        with torch.inference_mode():
            net.to(memory_format=torch.contiguous_format); ref = net(x)
            net.to(memory_format=torch.channels_last); out = net(x.contiguous(memory_format=torch.channels_last))
        worst = max(worst, float((out - ref).abs().max() / (ref.abs().max() + 1e-12)))
        n += 1
print("passes", n, "worst relative diff", worst, torch.backends.cpu.get_cpu_capability())
