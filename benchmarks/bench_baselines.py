"""Fit time, prediction time and a quality check of the anomaly-detection baselines.

Synthesizes clean fields (training) and artifact fields (evaluation) with
:func:`artseg.synth.synthesize_field`, normalises them with
:func:`artseg.preprocess.normalize_percentile`, fits each baseline on the clean ones
(:meth:`artseg.comparison.baselines.AnomalyBaseline.fit_clean`; PaDiM with its random ResNet-18
backbone, not the comparison's shared classifier) and reports the
fit time, the prediction time per field, and on the artifact fields the pixel AUROC and the
best pooled IoU over a cutoff grid of the normalised maps (the paper's cutoff is selected the
same way, on validation data). Run from the repository root:

    python benchmarks/bench_baselines.py [--preset fast] [--n-clean 100] [--n-artifact 20]
        [--size 256] [--detectors padim,patchsvdd,ssim_ae] [--threads N]

``--detectors`` takes the baselines' folder names (``padim``, ``patchsvdd``; ``ssim_ae`` or
``ae`` for the SSIM autoencoder) or their model names (``PaDiM``, ``PatchSVDD``, ``AE``).

Prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from artseg.comparison import BASELINE_NAMES, detector_class, detector_slug
from artseg.preprocess import normalize_percentile
from artseg.synth import synthesize_field

# The names this script's --detectors took before the baselines joined artseg.comparison.
_NAMES = {**{name: name for name in BASELINE_NAMES}, **{detector_slug(name): name for name in BASELINE_NAMES},
          "ssim_ae": "AE"}


def synthetic_fields(preset: str, count: int, size: int, with_artifacts: bool, seed: int):
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for _ in range(count):
        field = synthesize_field(rng, preset, (size, size), with_artifacts)
        images.append(normalize_percentile(field.brightfield))
        masks.append(field.artifact_mask)
    return np.stack(images), np.stack(masks)


def pixel_auroc(scores: np.ndarray, truth: np.ndarray) -> float:
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(order.size)
    ranks[order] = np.arange(1, order.size + 1)
    positives = truth.sum()
    negatives = truth.size - positives
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def best_iou(scores: np.ndarray, truth: np.ndarray, cutoffs: np.ndarray) -> tuple[float, float]:
    best = (0.0, float(cutoffs[0]))
    for cutoff in cutoffs:
        predicted = scores > cutoff
        union = np.logical_or(predicted, truth).sum()
        iou = np.logical_and(predicted, truth).sum() / union if union else 1.0
        best = max(best, (float(iou), float(cutoff)))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fast", help="baseline settings preset (fast or paper)")
    parser.add_argument("--synth", default="seven_cell_lines", help="synthetic data preset")
    parser.add_argument("--n-clean", type=int, default=100)
    parser.add_argument("--n-artifact", type=int, default=20)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--detectors", default="padim,patchsvdd,ssim_ae")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    started = time.perf_counter()
    clean, _ = synthetic_fields(args.synth, args.n_clean, args.size, False, args.seed)
    test, truth = synthetic_fields(args.synth, args.n_artifact, args.size, True, args.seed + 1)
    synth_seconds = time.perf_counter() - started

    print(f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f} at start; synthesis {synth_seconds:.0f} s")
    print(f"{args.n_clean} clean + {args.n_artifact} artifact {args.size}x{args.size} '{args.synth}' fields, "
          f"preset '{args.preset}', artifact pixels {truth.mean():.1%}\n")
    print("| detector | fit (s) | predict (ms / field) | pixel AUROC | best IoU (cutoff) |")
    print("|---|---|---|---|---|")
    cutoffs = np.linspace(0.0, 0.99, 100)
    for name in args.detectors.split(","):
        if name not in _NAMES:
            parser.error(f"unknown baseline {name!r} (known: {', '.join(_NAMES)})")
        detector = detector_class(_NAMES[name])(args.preset)
        started = time.perf_counter()
        detector.fit_clean(clean, seed=args.seed, progress=False)
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        maps = np.stack([detector.predict_map(image) for image in test])
        predict_ms = 1000 * (time.perf_counter() - started) / len(test)
        auroc = pixel_auroc(maps.ravel(), truth.ravel())
        iou, cutoff = best_iou(maps, truth, cutoffs)
        print(f"| {name} | {fit_seconds:.0f} | {predict_ms:.0f} | {auroc:.3f} | {iou:.3f} ({cutoff:.2f}) |", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
