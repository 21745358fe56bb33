"""Measure the weakly supervised path (issue 4): where does pixel quality get lost?

On a synthetic dataset with ground-truth masks, fits the ScoreCAM-U-Net with the given
configuration and the strongly supervised U-Net with the same budget, then reports pooled
pixel IoU / precision / recall on the held-out test split (masks used for measurement only):

  (a) Score-CAM maps (classifier-gated; cut-off chosen on val masks, and the test-oracle cut-off)
  (b) pseudo-masks of the train+val artifact images, for several pseudo-label recipes
      (the configured one is marked *)
  (c) the U-Net trained on the configured pseudo-masks, cut-off chosen on val pixel masks
      (the paper's practice) and on val pseudo-masks (mask-free)
  (d) the strongly supervised U-Net (same config, mode="strong")
  (e) intensity threshold: |image - local background| > cut-off chosen on val masks

Run from the repository root:

    python benchmarks/bench_weak.py --preset seven_cell_lines [--n-images 120] [--seed 0] [--config fast]

Prints a Markdown table for benchmarks/RESULTS.md (``## Weak supervision``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from artseg import io as artseg_io
from artseg.datasets import synthetic_dataset
from artseg.config import load_config
from artseg.metrics import image_scores, pixel_scores
from artseg.pixel_model import PixelSegmenter
from artseg.preprocess import normalize_image, resize_image
from artseg.segmenter import ArtifactSegmenter
from artseg.training_data import load_training_data
from artseg.calibration import calibrate, search_cutoff
from artseg.postprocess import binarize, remove_small
from artseg.weak import classifier_inputs, make_pseudo_masks, score_cam_maps

CUTOFF_GRID = [round(float(c), 3) for c in np.linspace(0.01, 0.99, 50)]
PSEUDO_VARIANTS = {"fixed 0.05 (paper)": {"pseudo_method": "fixed"}, "otsu": {"pseudo_method": "otsu"}}


def stage(message: str, started: float) -> None:
    print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)


def scores(truth, predicted) -> dict:
    result = pixel_scores(np.stack(truth), np.stack(predicted))
    return {key: round(float(result[key]), 3) for key in ("iou", "precision", "recall")}


def local_deviation(image: np.ndarray, background_sigma: float = 16.0) -> np.ndarray:
    """``|image - local background|``, the intensity-threshold artifact baseline (e)."""
    from scipy import ndimage

    image = np.asarray(image, dtype=np.float32)
    return np.abs(image - ndimage.gaussian_filter(image, background_sigma, mode="reflect")).astype(np.float32)


def calibrated(maps_val, truth_val, maps_test, truth_test, cutoffs, sizes) -> dict:
    """Choose cut-off and smallest object on val, report test scores."""
    chosen = calibrate(maps_val, truth_val, cutoffs=cutoffs, min_object_sizes=sizes)
    predicted = [remove_small(binarize(m, chosen.cutoff), chosen.min_object_size) for m in maps_test]
    return {**scores(truth_test, predicted), "cutoff": round(chosen.cutoff, 4), "min_size": chosen.min_object_size}


def calibrated_with_gate(segmenter, images_val, maps_val, truth_val, images_test, maps_test, truth_test,
                         cutoffs, sizes) -> dict:
    """Like `calibrated`, the classifier gate chosen on val too (from ``postprocess.gate_grid``)."""
    p_val = [segmenter.classifier_probability(img) for img in images_val]
    p_test = [segmenter.classifier_probability(img) for img in images_test]
    chosen = calibrate(maps_val, truth_val, cutoffs=cutoffs, min_object_sizes=sizes, image_probabilities=p_val,
                       gates=segmenter.config.postprocess.gate_grid, choose_gate=True)
    gate, cutoff, size = chosen.gate, chosen.cutoff, chosen.min_object_size
    predicted = [remove_small(binarize(m, cutoff), size) if p >= gate else np.zeros(m.shape, bool)
                 for m, p in zip(maps_test, p_test)]
    return {**scores(truth_test, predicted), "gate": gate, "cutoff": round(cutoff, 4), "min_size": size}


def cam_maps(segmenter: ArtifactSegmenter, images) -> list[np.ndarray]:
    """Score-CAM maps of normalised images at their own size."""
    inputs = classifier_inputs(images, segmenter.config.input.classifier_size)
    raw = score_cam_maps(segmenter.classifier, inputs, segmenter.cam_stage, segmenter.config.cam,
                         device=segmenter.device, progress=False)
    return [np.clip(resize_image(m, img.shape), 0, 1) for m, img in zip(raw, images)]


def gated(segmenter: ArtifactSegmenter, images, maps) -> list[np.ndarray]:
    gate = segmenter.gate_threshold
    return [m if segmenter.classifier_probability(img) >= gate else np.zeros_like(m) for img, m in zip(images, maps)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="seven_cell_lines")
    parser.add_argument("--n-images", type=int, default=480,
                        help="fields generated (default 480, the data budget the fast config is tuned for)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--config", default="fast")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--skip-strong", action="store_true")
    parser.add_argument("--skip-weak", action="store_true", help="only (d) and (e): for U-Net budget experiments")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--skip-recipes", action="store_true", help="skip (b), the pseudo-mask recipe table")
    parser.add_argument("--classifier-from", type=Path, default=None,
                        help="reuse the classifier of this saved weak model instead of training one")
    parser.add_argument("--save-model", type=Path, default=None, help="save the weak model here")
    parser.add_argument("--weak-from", type=Path, default=None,
                        help="score this saved weak model (trained on the same preset and seed) instead of fitting one")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.weak_from and args.classifier_from:
        parser.error("--weak-from scores a saved model as it is: it takes no --classifier-from")
    # a saved model is scored with the settings it was trained with, whatever --config says
    saved = ArtifactSegmenter.load(args.weak_from) if args.weak_from else None
    config = saved.config if saved is not None else load_config(args.config)
    config.seed = args.seed
    manifest_path = (synthetic_dataset(args.preset, n_images=args.n_images, seed=args.seed, size=args.size,
                                   progress=False) / "manifest.csv")
    manifest = artseg_io.read_image_manifest(manifest_path, require_label=True)
    data = load_training_data(manifest, config, progress=False)
    test_rows = manifest[manifest["split"] == "test"]
    test_images = [normalize_image(artseg_io.read_image(p), config.input.normalize_low, config.input.normalize_high)
                   for p in test_rows["image"]]
    test_truth = [artseg_io.read_mask(p) if isinstance(p, str) and p else np.zeros(img.shape, bool)
                  for p, img in zip(test_rows["mask"], test_images)]
    val = np.flatnonzero(data.splits == "val")
    val_images = [data.images[i] for i in val]
    val_truth = [data.masks[i] for i in val]
    results: dict = {"preset": args.preset, "n_images": args.n_images, "seed": args.seed, "config": args.config,
                     "n_test": len(test_images), "n_test_artifact": int(test_rows["label"].sum())}

    clock = time.perf_counter()
    grid, sizes = config.postprocess.cutoff_grid, config.postprocess.min_object_size_grid
    if not args.skip_weak:
        stage("fitting the ScoreCAM-U-Net", clock)
        started = time.perf_counter()
        if args.weak_from:
            weak = saved  # its summary is the one saved at fit time
            results["weak_from"] = str(args.weak_from)
        else:
            classifier = ArtifactSegmenter.load(args.classifier_from).classifier if args.classifier_from else None
            weak = ArtifactSegmenter(config).fit_arrays(data.images, data.labels, masks=data.masks,
                                                        splits=data.splits, split_source=data.split_source,
                                                        progress=False, classifier=classifier)
            if args.save_model:
                weak.save(args.save_model)
            results["weak_fit_seconds"] = round(time.perf_counter() - started, 1)
        results["weak_summary_seconds"] = weak.summary.get("seconds")
        results["weak_labels"] = {key: round(float(weak.summary[key]), 4) for key in
                                  ("pseudo_mask_fraction",) if key in weak.summary}

        results["gate"] = weak.gate_threshold
        called = [int(weak.classifier_probability(img) >= weak.image_call_threshold) for img in test_images]
        results["classifier_test"] = {key: round(float(value), 3) for key, value in
                                      image_scores(test_rows["label"].astype(int).to_numpy(), np.array(called)).items()
                                      if np.isscalar(value)}

        stage("scoring (a) Score-CAM", clock)
        # (a) Score-CAM alone, gated by the classifier like the U-Net.
        raw_cam_test = cam_maps(weak, test_images)
        raw_cam_val = cam_maps(weak, val_images)
        cam_test, cam_val = gated(weak, test_images, raw_cam_test), gated(weak, val_images, raw_cam_val)
        results["a_score_cam"] = calibrated(cam_val, val_truth, cam_test, test_truth, CUTOFF_GRID, sizes)
        # the U-Net's gate need not suit the maps (min-max normalised, so a clean field's map
        # also reaches 1): Score-CAM alone with its own gate chosen on val as well
        results["a_score_cam_own_gate"] = calibrated_with_gate(weak, val_images, raw_cam_val, val_truth, test_images,
                                                               raw_cam_test, test_truth, CUTOFF_GRID, sizes)
        oracle_cutoff, oracle_iou = search_cutoff(cam_test, test_truth, cutoffs=CUTOFF_GRID, progress=False)
        results["a_score_cam_test_oracle"] = {"iou": round(oracle_iou, 3), "cutoff": oracle_cutoff}

        stage("scoring (b) pseudo-mask recipes", clock)
        # (b) pseudo-masks of train+val artifact images, per recipe.
        artifact_rows = np.flatnonzero(data.labels == 1)
        art_images = [data.images[i] for i in artifact_rows]
        art_truth = [data.masks[i] for i in artifact_rows]
        ones = np.ones(len(artifact_rows), int)
        pseudo = {}
        if not args.skip_recipes:
            maps = cam_maps(weak, art_images)
            for name, fields in PSEUDO_VARIANTS.items():
                variant = dataclasses.replace(config, cam=dataclasses.replace(config.cam, **fields))
                pseudo[f"{name}; baseline=None"] = scores(art_truth, make_pseudo_masks(maps, ones, variant))
            pseudo["* configured"] = scores(art_truth, make_pseudo_masks(maps, ones, config))
        results["b_pseudo_masks"] = pseudo

        stage("scoring (c) ScoreCAM-U-Net", clock)
        # (c) ScoreCAM-U-Net, calibrated on val pixel masks and on val pseudo-masks.
        unet_test = gated(weak, test_images, [weak.probability_map(img) for img in test_images])
        unet_val = gated(weak, val_images, [weak.probability_map(img) for img in val_images])
        val_pseudo = make_pseudo_masks(cam_maps(weak, val_images), data.labels[val], config)
        results["c_unet_masks_calibration"] = calibrated(unet_val, val_truth, unet_test, test_truth, grid, sizes)
        results["c_unet_pseudo_calibration"] = calibrated(unet_val, val_pseudo, unet_test, test_truth, grid, sizes)
        fixed = [remove_small(binarize(m, 0.5), 0) for m in unet_test]
        results["c_unet_fixed_0.5"] = scores(test_truth, fixed)
        # the U-Net alone, every field segmented (no classifier gate), like the strong U-Net
        ungated_test = [weak.probability_map(img) for img in test_images]
        ungated_val = [weak.probability_map(img) for img in val_images]
        results["c_unet_ungated"] = calibrated(ungated_val, val_truth, ungated_test, test_truth, grid, sizes)

    # (d) strongly supervised U-Net, same configuration and budget.
    if not args.skip_strong:
        stage("fitting (d) the strong U-Net", clock)
        started = time.perf_counter()
        strong = PixelSegmenter(config).fit_arrays(
            data.images, data.labels, masks=data.masks, splits=data.splits, split_source=data.split_source,
            progress=False)
        results["strong_fit_seconds"] = round(time.perf_counter() - started, 1)
        strong_test = [strong.probability_map(img) for img in test_images]
        strong_val = [strong.probability_map(img) for img in val_images]
        results["d_strong_unet"] = calibrated(strong_val, val_truth, strong_test, test_truth, grid, sizes)

    # (e) intensity threshold on |image - local background|, cut-off chosen on val masks.
    deviation_val = [local_deviation(img) for img in val_images]
    deviation_test = [local_deviation(img) for img in test_images]
    high = float(np.percentile(np.concatenate([d.ravel() for d in deviation_val]), 99.9))
    results["e_intensity"] = calibrated(deviation_val, val_truth, deviation_test, test_truth,
                                        list(np.linspace(0.01, 1.0, 40) * high), sizes)

    print(json.dumps(results, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    print_table(results)


def print_table(results: dict) -> None:
    rows = [(name, results[key]) for name, key in (
        ("(a) Score-CAM, val-mask cut-off", "a_score_cam"),
        ("(a) Score-CAM, its own gate and cut-off chosen on val", "a_score_cam_own_gate"),
        ("(c) ScoreCAM-U-Net, val-mask calibration", "c_unet_masks_calibration"),
        ("(c) ScoreCAM-U-Net, pseudo-mask calibration", "c_unet_pseudo_calibration"),
        ("(c) ScoreCAM-U-Net, fixed 0.5", "c_unet_fixed_0.5"),
        ("(c) the weak U-Net without the classifier gate, val-mask calibration", "c_unet_ungated"),
        ("(d) strong U-Net", "d_strong_unet"),
        ("(e) intensity threshold", "e_intensity")) if key in results]
    print(f"\n{results['preset']} n={results['n_images']} seed={results['seed']} config={results['config']} "
          f"(test: {results['n_test']} images, {results['n_test_artifact']} with artifacts)\n")
    if "classifier_test" in results:
        print(f"classifier on the test images: {results['classifier_test']}\n")
    print("| method | IoU | precision | recall |\n|---|---|---|---|")
    for name, row in rows:
        print(f"| {name} | {row['iou']:.3f} | {row['precision']:.3f} | {row['recall']:.3f} |")
    for name, row in results.get("b_pseudo_masks", {}).items():
        print(f"| (b) pseudo-masks {name} (train+val) | {row['iou']:.3f} | {row['precision']:.3f} | "
              f"{row['recall']:.3f} |")
    if "c_unet_masks_calibration" not in results:
        return
    if "d_strong_unet" in results and results["d_strong_unet"]["iou"] < 0.02:
        print("\nstrong U-Net IoU < 0.02: the budget is too small for this data, no ratio reported")
    elif "d_strong_unet" in results:
        ratio = results["c_unet_masks_calibration"]["iou"] / max(results["d_strong_unet"]["iou"], 1e-9)
        ratio_free = results["c_unet_pseudo_calibration"]["iou"] / max(results["d_strong_unet"]["iou"], 1e-9)
        print(f"\nScoreCAM-U-Net / strong U-Net IoU: {ratio:.2f} (val-mask calibration), "
              f"{ratio_free:.2f} (pseudo calibration); paper 0.68 / 0.61 / 0.47")


if __name__ == "__main__":
    main()
