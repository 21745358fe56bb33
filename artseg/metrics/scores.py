"""Counts to scores, and the input checks every metric shares (paper Box 1).

See :mod:`artseg.metrics` for the conventions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from artseg.errors import ArtsegInputError

SCORE_NAMES = ("precision", "recall", "f1", "iou")


# --------------------------------------------------------------------------- inputs


def image_list(images, name: str) -> list[np.ndarray]:
    """A 2-D array is one image, a 3-D array an (N, H, W) stack, a sequence holds images."""
    if isinstance(images, np.ndarray):
        if images.ndim == 2:
            return [images]
        if images.ndim == 3:
            return list(images)
        raise ArtsegInputError(
            f"{name}: expected a 2-D image, an (N, H, W) stack or a list of images, got shape {images.shape}"
        )
    if not isinstance(images, Sequence) or isinstance(images, str):
        raise ArtsegInputError(f"{name}: expected an array or a list of arrays, got {type(images).__name__}")
    return [np.asarray(image) for image in images]


def paired(true, pred, true_name: str, pred_name: str, *, any_shape: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pair ground truth with predictions, checking counts and shapes.

    With ``any_shape`` a single array (of any dimensionality) is one item, as pooled
    pixel counts do not care about image boundaries.
    """
    if any_shape and isinstance(true, np.ndarray) and isinstance(pred, np.ndarray):
        true_items, pred_items = [true], [pred]
    else:
        true_items, pred_items = image_list(true, true_name), image_list(pred, pred_name)
    if len(true_items) != len(pred_items):
        raise ArtsegInputError(f"{true_name} has {len(true_items)} images but {pred_name} has {len(pred_items)}")
    for index, (truth, prediction) in enumerate(zip(true_items, pred_items)):
        if truth.shape != prediction.shape:
            raise ArtsegInputError(
                f"{pred_name}[{index}]: shape {prediction.shape} does not match {true_name}[{index}] shape {truth.shape}"
            )
    return list(zip(true_items, pred_items))


def as_mask(array: np.ndarray) -> np.ndarray:
    return array if array.dtype == bool else array != 0


# --------------------------------------------------------------------------- counts to scores


def confusion_scores(tp, fp, fn) -> dict:
    """Precision, recall, F1 and IoU from TP/FP/FN counts (scalars or arrays).

    Parameters
    ----------
    tp, fp, fn : int or array_like of int
        Counts; arrays are scored elementwise.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1``, ``iou``: floats for scalar counts, float
        arrays otherwise. Empty cases follow the module conventions (1.0 when
        TP = FP = FN = 0, else 0.0 for an undefined ratio).

    Examples
    --------
    >>> confusion_scores(1, 1, 1)["iou"]
    0.3333333333333333
    >>> confusion_scores(0, 0, 0)["f1"]
    1.0
    """
    tp, fp, fn = (np.asarray(count, dtype=np.float64) for count in (tp, fp, fn))
    nothing_at_all = (tp + fp + fn) == 0

    def ratio(numerator, denominator):
        out = np.where(nothing_at_all, 1.0, 0.0)
        return np.divide(numerator, denominator, out=out, where=denominator > 0)

    scores = {
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "iou": ratio(tp, tp + fp + fn),
    }
    if scores["iou"].ndim == 0:
        return {key: float(value) for key, value in scores.items()}
    return scores


