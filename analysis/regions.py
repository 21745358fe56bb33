"""Score nuclei segmentation and morphometry inside image regions (paper §2.3.4, §3.3.1).

A region is a boolean mask (for example "inside the manual artifact mask" or "outside the
model's artifact mask"). Pixel-wise scores count only the pixels of the region. For
object-wise scores every nucleus, true or predicted, belongs to the region that holds the
majority of its pixels; matching then follows :func:`artseg.metrics.object_scores`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from skimage.measure import regionprops_table

from artseg.metrics import matched_predictions, object_scores, pixel_scores

REGIONS = ("artifact", "artifact_free_manual", "artifact_free_model", "whole_image")


def region_masks(
    manual_artifact: np.ndarray, model_artifact: np.ndarray
) -> dict[str, np.ndarray]:
    """Return the four analysis regions of one image as boolean masks.

    Parameters
    ----------
    manual_artifact, model_artifact : ndarray of bool, shape (H, W)
        Manually annotated and model-predicted artifact masks.

    Returns
    -------
    dict
        ``artifact`` (inside the manual mask), ``artifact_free_manual`` (outside it),
        ``artifact_free_model`` (outside the model's mask) and ``whole_image``.
    """
    manual = np.asarray(manual_artifact, dtype=bool)
    model = np.asarray(model_artifact, dtype=bool)
    if manual.shape != model.shape:
        raise ValueError(f"mask shapes differ: {manual.shape} vs {model.shape}")
    return {
        "artifact": manual,
        "artifact_free_manual": ~manual,
        "artifact_free_model": ~model,
        "whole_image": np.ones_like(manual),
    }


def majority_in_region(labels: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Return, for every label id, whether most of its pixels lie inside ``region``.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Instance labels, 0 = background.
    region : ndarray of bool, shape (H, W)

    Returns
    -------
    ndarray of bool, shape (labels.max() + 1,)
        Entry ``i`` is True when object ``i`` has strictly more than half of its pixels in
        the region (entry 0, the background, is always False). Ties go outside, so an
        object is never counted in two complementary regions.
    """
    labels = np.asarray(labels)
    n = int(labels.max()) + 1 if labels.size else 1
    total = np.bincount(labels.ravel(), minlength=n)
    inside = np.bincount(labels.ravel(), weights=np.asarray(region, bool).ravel(), minlength=n)
    keep = 2 * inside > total
    keep[0] = False
    return keep


def restrict_labels(labels: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Keep only the objects whose pixel majority lies in ``region`` (others become 0)."""
    labels = np.asarray(labels)
    keep = majority_in_region(labels, region)
    return np.where(keep[labels], labels, 0)


def score_region(
    true_labels: np.ndarray, pred_labels: np.ndarray, region: np.ndarray, iou_threshold: float = 0.5
) -> dict[str, float]:
    """Pixel-wise and object-wise F1 of a nuclei segmentation within one region.

    Parameters
    ----------
    true_labels, pred_labels : ndarray of int, shape (H, W)
        Ground-truth and predicted nuclei instance labels.
    region : ndarray of bool, shape (H, W)
    iou_threshold : float
        Matching threshold of :func:`artseg.metrics.object_scores`.

    Returns
    -------
    dict
        ``pixel_f1`` (over the region's pixels), ``object_f1`` (objects assigned to the region
        by pixel majority), ``n_true``, ``n_pred``, ``n_pixels``.

    Notes
    -----
    F1 = 2TP / (2TP + FP + FN) is undefined (0 / 0) where there is nothing to find and
    nothing was found, so a score is NaN, not 1, when the region is empty, or when it holds
    no true and no predicted nucleus pixels (pixel-wise) or nuclei (object-wise). Averaged
    over images, a perfect score for "no nuclei here, none predicted" would otherwise pull
    the small artifact regions, most of which hold no nucleus, towards 1.
    """
    region = np.asarray(region, dtype=bool)
    n_pixels = int(region.sum())
    true_in = restrict_labels(true_labels, region)
    pred_in = restrict_labels(pred_labels, region)
    n_true = int(np.count_nonzero(np.unique(true_in)))
    n_pred = int(np.count_nonzero(np.unique(pred_in)))
    if n_pixels == 0:
        return {"pixel_f1": np.nan, "object_f1": np.nan, "n_true": 0, "n_pred": 0, "n_pixels": 0}
    true_pixels = np.asarray(true_labels)[region] > 0
    pred_pixels = np.asarray(pred_labels)[region] > 0
    if true_pixels.any() or pred_pixels.any():
        pixel_f1 = pixel_scores(true_pixels, pred_pixels)["f1"]
    else:
        pixel_f1 = np.nan
    if n_true == 0 and n_pred == 0:
        object_f1 = np.nan
    else:
        object_f1 = object_scores(true_in, pred_in, iou_threshold=iou_threshold)["f1"]
    return {
        "pixel_f1": float(pixel_f1),
        "object_f1": float(object_f1),
        "n_true": n_true,
        "n_pred": n_pred,
        "n_pixels": n_pixels,
    }


def nuclei_morphometry(
    pred_labels: np.ndarray, true_labels: np.ndarray, regions: dict[str, np.ndarray],
    iou_threshold: float = 0.5,
) -> pd.DataFrame:
    """Area and solidity of every predicted nucleus, once per region that holds it.

    Parameters
    ----------
    pred_labels, true_labels : ndarray of int, shape (H, W)
    regions : dict of str to ndarray of bool
        As returned by :func:`region_masks`.
    iou_threshold : float
        A predicted nucleus is ``matched`` when some true nucleus overlaps it with IoU above
        this threshold.

    Returns
    -------
    DataFrame
        Columns ``label``, ``region``, ``area``, ``solidity``, ``matched``.
    """
    pred_labels = np.asarray(pred_labels)
    columns = ["label", "region", "area", "solidity", "matched"]
    if pred_labels.max() == 0:
        return pd.DataFrame(columns=columns)
    props = pd.DataFrame(regionprops_table(pred_labels, properties=("label", "area", "solidity")))
    matched = matched_predictions(true_labels, pred_labels, iou_threshold)
    props["matched"] = matched[props["label"].to_numpy()]
    frames = []
    for name, region in regions.items():
        inside = majority_in_region(pred_labels, region)
        rows = props[inside[props["label"].to_numpy()]].copy()
        rows["region"] = name
        frames.append(rows)
    out = pd.concat(frames, ignore_index=True)
    return out[columns]

