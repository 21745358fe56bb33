"""Measure the image-level classifier alone (issue 4): held-out AUC and confidence per artifact kind.

Trains the configured classifier (the pipeline's own training loop) on the train split of a
synthetic benchmark dataset, checkpointed on its val split, then reports the ROC AUC on an
independent held-out dataset and the mean artifact probability on fields holding each kind.
A Score-CAM map can only be as good as the classifier's grip on an artifact, so this is the
first number to look at when the pseudo-masks miss a kind.

Run from the repository root, e.g.:

    python benchmarks/bench_classifier.py --preset cho_m4r --config fast --set classifier_train.epochs=60

Prints one JSON line per run (for benchmarks/RESULTS.md, ``## Weak supervision``).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from scipy.stats import rankdata

from artseg import io as artseg_io
from artseg.datasets import synthetic_dataset
from artseg.config import config_from_dict, config_to_dict, load_config, merge_overrides
from artseg.training_data import load_training_data
from artseg.weak import classifier_inputs, train_classifier
from artseg.synth.presets import ARTIFACT_TYPES


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks for ties)."""
    labels = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def parse_setting(text: str) -> dict:
    """``a.b=value`` -> ``{"a": {"b": value}}`` (value parsed as JSON when it can be)."""
    key, _, raw = text.partition("=")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cho_m4r")
    parser.add_argument("--config", default="fast")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. classifier_train.epochs=60 (repeatable)")
    parser.add_argument("--n-images", type=int, default=480)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--heldout-images", type=int, default=300)
    parser.add_argument("--heldout-seed", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    settings = config_to_dict(load_config(args.config))
    for text in args.set:
        settings = merge_overrides(settings, parse_setting(text), source="--set")
    config = config_from_dict({**settings, "seed": args.seed}, source="bench_classifier")

    def dataset(n_images: int, seed: int, *, every_row: bool = False):
        manifest = artseg_io.read_image_manifest(
            (synthetic_dataset(args.preset, n_images=n_images, seed=seed, size=256, progress=False) / "manifest.csv"), require_label=True)
        if every_row:  # the held-out set is scored whole, its own test split included
            manifest = manifest.assign(split="train")
        return manifest, load_training_data(manifest, config, progress=False)

    _, data = dataset(args.n_images, args.seed)
    inputs = classifier_inputs(data.images, config.input.classifier_size)
    train, val = np.flatnonzero(data.splits == "train"), np.flatnonzero(data.splits == "val")
    started = time.perf_counter()
    classifier, result = train_classifier(inputs, data.labels, train, val, config, device=torch.device("cpu"),
                                          progress=False)
    fit_seconds = time.perf_counter() - started
    classifier.eval()

    heldout_manifest, heldout = dataset(args.heldout_images, args.heldout_seed, every_row=True)
    heldout_inputs = classifier_inputs(heldout.images, config.input.classifier_size)
    with torch.no_grad():
        probability = np.concatenate([torch.sigmoid(classifier(heldout_inputs[i:i + 32].float())).numpy().ravel()
                                      for i in range(0, len(heldout_inputs), 32)])
    kinds = heldout_manifest["artifact_types"].fillna("").astype(str).str.split(";").to_numpy()
    report = {
        "preset": args.preset, "config": args.config, "set": args.set, "seed": args.seed,
        "fit_seconds": round(fit_seconds, 1), "best_epoch": result.best_epoch,
        "final_train_loss": round(result.history[-1]["train_loss"], 3),
        "heldout_auc": round(roc_auc(heldout.labels, probability), 3),
        "mean_p_clean": round(float(probability[heldout.labels == 0].mean()), 2),
    }
    for kind in ARTIFACT_TYPES:
        holds = np.array([kind in names for names in kinds]) & (heldout.labels == 1)
        if holds.any():
            report[f"mean_p_{kind}"] = round(float(probability[holds].mean()), 2)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
