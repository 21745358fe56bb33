"""``artseg evaluate``: score predicted artifact masks against a manifest's ground truth.

Reads the manifest's ``mask`` (and ``label``) columns and the predicted masks
``<pred>/<image folder relative to the manifest>/<image stem>.png`` (or
``<pred>/<image stem>.png``), plus ``<pred>/predictions.csv`` (``image, p_artifact``)
when present; writes ``metrics.csv``, ``metrics.json`` and ``per_image.csv``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path, PurePath

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from artseg.errors import ArtsegInputError
from artseg.evaluation import evaluate_masks, format_report
from artseg.io import (
    atomic_write_csv,
    atomic_write_text,
    check_output_folder,
    check_same_shape,
    image_shape,
    read_image_manifest,
    read_mask,
)

PREDICTIONS_CSV = "predictions.csv"
# A classifier probability at or above this calls the image artifact-containing.
P_ARTIFACT_CUTOFF = 0.5


def register(subparsers) -> None:
    """Add the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score predicted artifact masks against ground-truth masks",
        description=(
            "Pixel-wise (pooled and mean per image), object-wise (IoU > 0.5 and mean F1 over "
            "IoU 0.50-0.90) and image-level scores of predicted artifact masks."
        ),
    )
    parser.add_argument("--manifest", required=True, type=Path, help="image manifest CSV with a mask column (and label)")
    parser.add_argument(
        "--pred",
        required=True,
        type=Path,
        help="folder of predicted masks <image stem>.png, nested like the images; optional predictions.csv",
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the --pred folder)")
    parser.add_argument("--split", choices=("train", "val", "test"), default=None, help="evaluate only this split")
    parser.set_defaults(func=run)


def _relative_name(image_path: str, manifest_dir: Path) -> PurePath:
    """The image path relative to the manifest's folder, or its file name when outside it."""
    path = Path(image_path)
    try:
        return path.relative_to(manifest_dir)
    except ValueError:
        return PurePath(path.name)


def _predicted_mask_path(pred_dir: Path, relative: PurePath) -> Path:
    nested = pred_dir / relative.parent / f"{relative.stem}.png"
    flat = pred_dir / f"{relative.stem}.png"
    if nested.is_file():
        return nested
    if flat.is_file():
        return flat
    raise ArtsegInputError(f"no predicted mask for image {relative.as_posix()}: expected {nested}")


def _predicted_labels(csv_path: Path, images: list[str], names: list[PurePath], manifest_dir: Path) -> list[int]:
    """Image-level predictions from ``predictions.csv``, matched by path (or unique file stem)."""
    try:
        table = pd.read_csv(csv_path, dtype={"image": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ArtsegInputError(f"{csv_path}: cannot parse: {str(err).strip().splitlines()[0]}") from err
    missing = [c for c in ("image", "p_artifact") if c not in table.columns]
    if missing:
        raise ArtsegInputError(f"{csv_path}: missing column(s) {', '.join(missing)}")
    p_artifact = pd.to_numeric(table["p_artifact"], errors="coerce")
    by_key: dict[str, float] = {}
    stem_count: dict[str, int] = {}
    for row, (value, probability) in enumerate(zip(table["image"].fillna(""), p_artifact)):
        if value == "":
            raise ArtsegInputError(f"{csv_path}: row {row + 2}: empty image")
        if not np.isfinite(probability):
            raise ArtsegInputError(f"{csv_path}: row {row + 2}: p_artifact {table['p_artifact'].iloc[row]!r} is not a number")
        path = PurePath(value)
        absolute = Path(value) if Path(value).is_absolute() else manifest_dir / value
        for key in {os.path.normpath(absolute.with_suffix("")), path.with_suffix("").as_posix()}:
            by_key[key] = float(probability)
        stem_count[path.stem] = stem_count.get(path.stem, 0) + 1
        by_key.setdefault(f"stem:{path.stem}", float(probability))
    labels = []
    for image, name in zip(images, names):
        keys = [os.path.normpath(Path(image).with_suffix("")), name.with_suffix("").as_posix()]
        if stem_count.get(name.stem) == 1:
            keys.append(f"stem:{name.stem}")
        found = next((by_key[key] for key in keys if key in by_key), None)
        if found is None:
            raise ArtsegInputError(f"{csv_path}: no prediction for image {name.as_posix()}")
        labels.append(int(found >= P_ARTIFACT_CUTOFF))
    return labels


def run(args: argparse.Namespace) -> int:
    """Evaluate the predictions in ``args.pred`` against ``args.manifest``; write the tables."""
    manifest_path = Path(args.manifest)
    if args.out is not None:
        check_output_folder(args.out)
    manifest = read_image_manifest(manifest_path)
    if "mask" not in manifest.columns:
        raise ArtsegInputError(f"{manifest_path}: no mask column; evaluation needs ground-truth masks")
    if args.split is not None:
        if "split" not in manifest.columns:
            raise ArtsegInputError(f"{manifest_path}: --split {args.split} given but the manifest has no split column")
        manifest = manifest[manifest["split"] == args.split]
        if manifest.empty:
            raise ArtsegInputError(f"{manifest_path}: no rows with split {args.split}")
    pred_dir = Path(args.pred)
    if not pred_dir.is_dir():
        raise ArtsegInputError(f"prediction folder not found: {pred_dir}")
    manifest_dir = manifest_path.parent.resolve()
    has_labels = "label" in manifest.columns

    images = list(manifest["image"])
    names = [_relative_name(image, manifest_dir) for image in images]
    pred_paths = [_predicted_mask_path(pred_dir, name) for name in names]
    true_labels = list(manifest["label"]) if has_labels else [None] * len(images)
    for row, (name, mask_path, label) in enumerate(zip(names, manifest["mask"], true_labels)):
        if mask_path is None and not (pd.notna(label) and int(label) == 0):
            raise ArtsegInputError(
                f"{manifest_path}: row {manifest.index[row] + 2}: image {name.as_posix()} has no mask "
                "(only images labelled clean may leave it empty)"
            )
    for image, mask_path, pred_path in zip(images, manifest["mask"], pred_paths):
        # headers only, so a wrong-shaped prediction is reported before any mask is scored
        reference, what = (image, "image") if mask_path is None else (mask_path, "mask")
        check_same_shape(image_shape(reference), image_shape(pred_path), "predicted mask", pred_path,
                         reference=reference, reference_what=what)
    csv_path = pred_dir / PREDICTIONS_CSV
    pred_labels = _predicted_labels(csv_path, images, names, manifest_dir) if csv_path.is_file() else None

    def mask_pairs():
        for mask_path, pred_path in zip(manifest["mask"], pred_paths):
            prediction = read_mask(pred_path)
            if mask_path is None:
                yield np.zeros(prediction.shape, dtype=bool), prediction
                continue
            truth = read_mask(mask_path)
            check_same_shape(truth, prediction, "predicted mask", pred_path, reference=mask_path,
                             reference_what="mask")
            yield truth, prediction

    evaluation = evaluate_masks(
        tqdm(mask_pairs(), total=len(pred_paths), desc="evaluate", unit="image"),
        [name.as_posix() for name in names],
        true_image_labels=true_labels if has_labels else None,
        pred_image_labels=pred_labels,
        true_labels_source="manifest label",
        pred_labels_source=f"{PREDICTIONS_CSV} p_artifact >= {P_ARTIFACT_CUTOFF:g}",
    )

    out_dir = pred_dir if args.out is None else Path(args.out)
    atomic_write_csv(evaluation.summary_table(), out_dir / "metrics.csv")
    atomic_write_text(out_dir / "metrics.json", json.dumps(evaluation.metrics, indent=2) + "\n")
    atomic_write_csv(evaluation.per_image, out_dir / "per_image.csv")
    print(format_report(evaluation))
    print(f"wrote {out_dir / 'metrics.csv'}, metrics.json, per_image.csv")
    return 0
