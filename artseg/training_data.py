"""The rows a model is fitted on: a manifest's train and validation images, read and normalised.

Test rows are never read. Rows without a split get a seeded split stratified by label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from artseg.config import SegmenterConfig
from artseg.errors import ArtsegInputError
from artseg.io import check_same_shape, read_image, read_mask
from artseg.preprocess import normalize_image

__all__ = ["TrainingData", "assign_splits", "has_path", "load_training_data"]


@dataclass
class TrainingData:
    """Normalised images and labels of the rows used for fitting (test rows excluded).

    ``masks`` is ``None`` when no artifact field has a pixel mask; otherwise one entry per row:
    the mask, all False for a clean field without one, ``None`` for an artifact field without one
    (a manifest may annotate only a few fields).
    """

    images: list[np.ndarray]
    labels: np.ndarray
    masks: list[np.ndarray | None] | None
    splits: np.ndarray
    split_source: str
    names: list[str] = field(default_factory=list)


def assign_splits(
    labels: np.ndarray, splits: Sequence[str | None] | None, *, val_fraction: float, seed: int
) -> tuple[np.ndarray, str]:
    """Complete a train/val/test assignment with a seeded split stratified by label.

    Rows without a split are divided into train and val (``val_fraction`` of each label,
    at least one val image per label when a label has two or more images). If the result
    has no val rows, a seeded share of the train rows becomes val.

    Returns
    -------
    splits : numpy.ndarray of str
    source : str
        ``"manifest"`` (all given), ``"seeded"`` (none given) or ``"manifest+seeded"``.
    """
    labels = np.asarray(labels)
    given = np.array([None] * len(labels), dtype=object) if splits is None else np.array(list(splits), dtype=object)
    given = np.array([s if isinstance(s, str) and s else None for s in given], dtype=object)
    missing = np.array([s is None for s in given])
    result = given.copy()
    rng = np.random.default_rng(seed)
    result[missing] = _stratified_val(labels, missing, val_fraction, rng)[missing]
    if not np.any(result == "val"):
        result[_stratified_val(labels, result == "train", val_fraction, rng) == "val"] = "val"
    if missing.all():
        source = "seeded"
    elif missing.any() or not np.any(given == "val"):
        source = "manifest+seeded"
    else:
        source = "manifest"
    return result.astype(str), source


def _stratified_val(labels: np.ndarray, candidates: np.ndarray, fraction: float, rng) -> np.ndarray:
    out = np.array(["train"] * len(labels), dtype=object)
    for label in np.unique(labels[candidates]):
        rows = np.flatnonzero(candidates & (labels == label))
        rows = rows[rng.permutation(len(rows))]
        n_val = int(round(fraction * len(rows)))
        if len(rows) >= 2:
            n_val = min(max(n_val, 1), len(rows) - 1)
        out[rows[:n_val]] = "val"
    return out


def load_training_data(manifest_df: pd.DataFrame, config: SegmenterConfig, *, progress: bool = True) -> TrainingData:
    """Read, check and normalise the manifest's train/val images (and masks when needed).

    Parameters
    ----------
    manifest_df : pandas.DataFrame
        As returned by :func:`artseg.io.read_image_manifest` (absolute paths; ``label`` 0/1;
        optional ``mask`` and ``split``).
    config : SegmenterConfig

    Raises
    ------
    ArtsegInputError
        No ``label`` column or an unlabelled row; strong mode without a ``mask`` for an
        artifact image; fewer than two train images.
    """
    if "image" not in manifest_df.columns:
        raise ArtsegInputError("manifest has no 'image' column")
    if config.mode == "strong" and "label" not in manifest_df.columns and "mask" in manifest_df.columns:
        # Pixel supervision needs no image labels: a row with a mask is a positive example.
        manifest_df = manifest_df.assign(label=[int(has_path(p)) for p in manifest_df["mask"]])
    if "label" not in manifest_df.columns or manifest_df["label"].isna().any():
        raise ArtsegInputError("training needs a 'label' (1/artifact or 0/clean) on every manifest row")
    labels_all = manifest_df["label"].astype(int).to_numpy()
    split_column = manifest_df["split"].tolist() if "split" in manifest_df.columns else None
    splits_all, source = assign_splits(
        labels_all, split_column, val_fraction=config.val_fraction, seed=config.seed
    )
    keep = np.flatnonzero(splits_all != "test")
    if np.sum(splits_all == "train") < 2:
        raise ArtsegInputError("manifest: need at least two training images")
    has_masks = "mask" in manifest_df.columns
    mask_paths = manifest_df["mask"].tolist() if has_masks else [None] * len(manifest_df)
    if config.mode == "strong":
        for row in keep:
            if labels_all[row] == 1 and not has_path(mask_paths[row]):
                raise ArtsegInputError(
                    f"manifest row {manifest_df.index[row]} ({manifest_df['image'].iloc[row]}): "
                    "strong mode needs a 'mask' for every artifact image"
                )
    images, masks = [], []
    paths = manifest_df["image"].tolist()
    for row in tqdm(keep, desc="reading images", unit="image", disable=not progress, leave=False):
        image = read_image(paths[row])
        images.append(normalize_image(image, config.input.normalize_low, config.input.normalize_high))
        if has_path(mask_paths[row]):
            mask = read_mask(mask_paths[row])
            check_same_shape(image.shape, mask.shape, "mask", mask_paths[row], reference=paths[row])
            masks.append(mask)
        else:
            masks.append(None)
    # A clean field's truth is known without a mask (nothing); an artifact field's only from its mask.
    labels = labels_all[keep]
    any_artifact_mask = any(m is not None for m, label in zip(masks, labels) if label == 1)
    filled = [m if m is not None else (np.zeros(img.shape, dtype=bool) if label == 0 else None)
              for m, img, label in zip(masks, images, labels)]
    return TrainingData(
        images=images,
        labels=labels,
        masks=filled if any_artifact_mask else None,
        splits=splits_all[keep],
        split_source=source,
        names=[str(paths[row]) for row in keep],
    )


def has_path(value: Any) -> bool:
    """Whether a manifest cell holds a path (not empty, not missing)."""
    return isinstance(value, str) and value != ""
