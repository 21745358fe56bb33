"""The images, ground-truth masks and labels of one split of a comparison manifest."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from artseg.errors import ArtsegInputError
from artseg.io import check_same_shape, read_image, read_mask

__all__ = ["SplitData", "load_split"]


@dataclass
class SplitData:
    """Raw images, ground-truth masks and labels of one manifest split."""

    names: list[str]
    images: list[np.ndarray]
    masks: list[np.ndarray]
    labels: np.ndarray


def load_split(manifest: pd.DataFrame, split: str, *, progress: bool = True) -> SplitData:
    """Read one split's images and masks (clean images without a mask get an empty one).

    Raises
    ------
    ArtsegInputError
        No rows in the split, a row without a label, an artifact image without a mask,
        or a mask whose shape differs from its image.
    """
    if "split" not in manifest.columns:
        raise ArtsegInputError("the benchmark needs a manifest with a 'split' column (train/val/test)")
    if "label" not in manifest.columns:
        raise ArtsegInputError("the benchmark needs a manifest with a 'label' column")
    rows = manifest[manifest["split"] == split]
    if rows.empty:
        raise ArtsegInputError(f"manifest has no {split!r} images")
    names, images, masks, labels = [], [], [], []
    has_masks = "mask" in rows.columns
    for index, row in tqdm(rows.iterrows(), total=len(rows), desc=f"reading {split} images", unit="image",
                           disable=not progress, leave=False):
        if pd.isna(row["label"]):
            raise ArtsegInputError(f"manifest row {index} ({row['image']}): no label")
        image = read_image(row["image"])
        mask_path = row["mask"] if has_masks else None
        if isinstance(mask_path, str) and mask_path:
            mask = read_mask(mask_path)
            check_same_shape(image.shape, mask.shape, "mask", mask_path)
        elif int(row["label"]) == 1:
            raise ArtsegInputError(f"manifest row {index} ({row['image']}): an artifact image needs a mask to be scored")
        else:
            mask = np.zeros(image.shape, dtype=bool)
        names.append(str(row["image"]))
        images.append(image)
        masks.append(mask)
        labels.append(int(row["label"]))
    return SplitData(names, images, masks, np.asarray(labels, dtype=int))
