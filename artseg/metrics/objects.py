"""Object-wise (matched instances, Caicedo et al. 2019) and image-level scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from artseg.errors import ArtsegInputError

from artseg.metrics.scores import confusion_scores, paired
from artseg.postprocess import label_objects

# 0.50, 0.55, ..., 0.90 (Caicedo et al. 2019); np.arange(0.5, 0.95, 0.05) without its rounding noise.
DEFAULT_IOU_THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.5, 0.95, 0.05), 2))

# Object-pair contingency tables up to this many cells are dense bincounts, larger ones sparse.
_DENSE_PAIR_LIMIT = 1 << 22


# --------------------------------------------------------------------------- object-wise


@dataclass(frozen=True)
class _Overlaps:
    """IoU of every overlapping (true, predicted) object pair; objects indexed from 0."""

    n_true: int
    n_pred: int
    true_index: np.ndarray
    pred_index: np.ndarray
    iou: np.ndarray


def _consecutive_labels(labels: np.ndarray, name: str) -> tuple[np.ndarray, int]:
    """Relabel objects 1..n (0 stays background); a bool mask is split into connected components."""
    if labels.dtype == bool:
        labels = label_objects(labels)
    elif labels.dtype.kind not in "iu":
        raise ArtsegInputError(f"{name}: instance labels must be integers (or a bool mask), got {labels.dtype}")
    if labels.size == 0:
        return labels.astype(np.int64), 0
    if labels.min() < 0:
        raise ArtsegInputError(f"{name}: instance labels must be >= 0 (0 = background)")
    top = int(labels.max())
    if top <= max(4 * labels.size, 1 << 16):
        present = np.zeros(top + 1, dtype=bool)
        present[labels.ravel()] = True
        present[0] = False
        lookup = np.cumsum(present)
        n_objects = int(lookup[-1])
        # intp: np.bincount refuses uint64 labels.
        return (labels.astype(np.intp, copy=False) if n_objects == top else lookup[labels]), n_objects
    values, inverse = np.unique(labels, return_inverse=True)
    n_objects = int(np.count_nonzero(values))
    return (inverse.reshape(labels.shape) + (values[0] != 0)), n_objects


def _image_overlaps(true_labels: np.ndarray, pred_labels: np.ndarray, index: int) -> _Overlaps:
    true_labels, n_true = _consecutive_labels(true_labels, f"true_labels[{index}]")
    pred_labels, n_pred = _consecutive_labels(pred_labels, f"pred_labels[{index}]")
    if n_true == 0 or n_pred == 0:
        empty = np.zeros(0, dtype=np.int64)
        return _Overlaps(n_true, n_pred, empty, empty, np.zeros(0))
    true_area = np.bincount(true_labels.ravel(), minlength=n_true + 1)
    pred_area = np.bincount(pred_labels.ravel(), minlength=n_pred + 1)
    both = (true_labels > 0) & (pred_labels > 0)
    pair_key = (true_labels[both].astype(np.int64) - 1) * n_pred + (pred_labels[both].astype(np.int64) - 1)
    if n_true * n_pred <= _DENSE_PAIR_LIMIT:
        contingency = np.bincount(pair_key, minlength=n_true * n_pred)
        pair_key = np.flatnonzero(contingency)
        intersection = contingency[pair_key]
    else:
        pair_key, intersection = np.unique(pair_key, return_counts=True)
    true_index, pred_index = np.divmod(pair_key, n_pred)
    union = true_area[true_index + 1] + pred_area[pred_index + 1] - intersection
    return _Overlaps(n_true, n_pred, true_index, pred_index, intersection / union)


def _pooled_overlaps(true_labels, pred_labels) -> _Overlaps:
    """Overlaps of all images with object indices offset per image, so no pair crosses images."""
    pairs = paired(true_labels, pred_labels, "true_labels", "pred_labels")
    parts = [_image_overlaps(truth, prediction, index) for index, (truth, prediction) in enumerate(pairs)]
    true_offset = np.cumsum([0] + [part.n_true for part in parts])
    pred_offset = np.cumsum([0] + [part.n_pred for part in parts])
    return _Overlaps(
        int(true_offset[-1]),
        int(pred_offset[-1]),
        np.concatenate([part.true_index + offset for part, offset in zip(parts, true_offset)] or [np.zeros(0, int)]),
        np.concatenate([part.pred_index + offset for part, offset in zip(parts, pred_offset)] or [np.zeros(0, int)]),
        np.concatenate([part.iou for part in parts] or [np.zeros(0)]),
    )


def _count_matches(overlaps: _Overlaps, threshold: float) -> int:
    """Number of one-to-one (true, predicted) matches with IoU above ``threshold``."""
    candidate = overlaps.iou > threshold
    if threshold >= 0.5:
        return int(np.count_nonzero(candidate))  # IoU > 0.5 can pair an object with one partner at most
    true_index, pred_index = overlaps.true_index[candidate], overlaps.pred_index[candidate]
    iou = overlaps.iou[candidate]
    n_nodes = overlaps.n_true + overlaps.n_pred
    graph = coo_matrix((np.ones(len(iou)), (true_index, overlaps.n_true + pred_index)), shape=(n_nodes, n_nodes))
    _, component = connected_components(graph, directed=False)
    edge_component = component[true_index]
    edges_in_component = np.bincount(edge_component)[edge_component]
    matches = int(np.count_nonzero(edges_in_component == 1))
    # Components with several candidate pairs: assignment that maximises the number of
    # matches first and their total IoU second (the IoU term sums to less than one match).
    for label in np.unique(edge_component[edges_in_component > 1]):
        in_component = edge_component == label
        rows, row_index = np.unique(true_index[in_component], return_inverse=True)
        columns, column_index = np.unique(pred_index[in_component], return_inverse=True)
        weight = np.zeros((len(rows), len(columns)))
        weight[row_index, column_index] = 1.0 + iou[in_component] / (2 * min(weight.shape))
        chosen_rows, chosen_columns = linear_sum_assignment(weight, maximize=True)
        matches += int(np.count_nonzero(weight[chosen_rows, chosen_columns]))
    return matches


def matched_predictions(true_labels: np.ndarray, pred_labels: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
    """Which predicted objects overlap some true object with IoU above ``iou_threshold``.

    Parameters
    ----------
    true_labels, pred_labels : ndarray of int, shape (H, W)
        Instance labels of one image, 0 = background.
    iou_threshold : float

    Returns
    -------
    ndarray of bool, shape (pred_labels.max() + 1,)
        Indexed by the predicted label id (entry 0, the background, is False).
    """
    pred_labels = np.asarray(pred_labels)
    matched = np.zeros(int(pred_labels.max(initial=0)) + 1, dtype=bool)
    ids = np.unique(pred_labels)
    ids = ids[ids > 0]
    overlaps = _image_overlaps(np.asarray(true_labels), pred_labels, 0)
    hit = overlaps.pred_index[overlaps.iou > iou_threshold]
    matched[ids[hit]] = True  # consecutive index i is the i-th smallest predicted id
    return matched


def _check_thresholds(thresholds) -> np.ndarray:
    # Rounded so that np.arange steps (0.6000000000000001) act as the numbers they stand for.
    values = np.round(np.asarray(thresholds, dtype=np.float64).ravel(), 10)
    if values.size == 0 or not np.all((values >= 0) & (values < 1)):
        raise ArtsegInputError(f"IoU thresholds must be in [0, 1), got {np.asarray(thresholds).tolist()!r}")
    return values


def object_scores_table(true_labels, pred_labels, thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS) -> pd.DataFrame:
    """Object-wise TP/FP/FN and scores at several IoU thresholds (one overlap computation).

    Parameters
    ----------
    true_labels, pred_labels
        As for :func:`object_scores`.
    thresholds : sequence of float
        IoU thresholds in [0, 1) (rounded to 10 decimals).

    Returns
    -------
    pandas.DataFrame
        One row per threshold, in the order given: ``threshold, tp, fp, fn, precision,
        recall, f1``.
    """
    levels = _check_thresholds(thresholds)
    overlaps = _pooled_overlaps(true_labels, pred_labels)
    tp = np.array([_count_matches(overlaps, level) for level in levels], dtype=np.int64)
    fp, fn = overlaps.n_pred - tp, overlaps.n_true - tp
    scores = confusion_scores(tp, fp, fn)
    return pd.DataFrame(
        {"threshold": levels, "tp": tp, "fp": fp, "fn": fn, **{key: scores[key] for key in ("precision", "recall", "f1")}}
    )


def object_scores(true_labels, pred_labels, iou_threshold: float = 0.5) -> dict:
    """Object-wise precision, recall and F1 by IoU matching (Caicedo et al. 2019).

    Parameters
    ----------
    true_labels : numpy.ndarray or sequence of numpy.ndarray
        Ground-truth instance labels (0 = background; labels need not be consecutive):
        one 2-D image, an ``(N, H, W)`` stack or a list of 2-D images. A bool mask is
        split into connected components (4-connectivity).
    pred_labels : numpy.ndarray or sequence of numpy.ndarray
        Predicted instance labels, paired with ``true_labels``.
    iou_threshold : float
        A pair matches when its IoU is strictly above this (in [0, 1)).

    Returns
    -------
    dict
        ``tp``, ``fp``, ``fn`` (int, summed over images) and ``precision``, ``recall``,
        ``f1`` (float).

    Raises
    ------
    ArtsegInputError
        Non-integer or negative labels, mismatched shapes or counts, threshold outside [0, 1).

    Notes
    -----
    IoU(T, P) = |T ∩ P| / |T ∪ P| for every overlapping pair, from one contingency
    count over the pixels. A ground-truth object is a TP when matched to a prediction
    with IoU > threshold, each object in at most one match; unmatched predictions are
    FP, unmatched ground truth FN; F1 = 2TP / (2TP + FP + FN). Above 0.5 a match is
    unique by construction. Below 0.5 an object may have several candidates, and an
    optimal assignment (:func:`scipy.optimize.linear_sum_assignment`) maximises the
    number of matches, then their total IoU. Objects are matched within their own image.

    See Also
    --------
    mean_object_f1, object_scores_table, artseg.postprocess.label_objects

    Examples
    --------
    >>> truth = np.array([[1, 1, 0, 2, 2]])
    >>> pred = np.array([[7, 7, 0, 0, 9]])
    >>> object_scores(truth, pred)["f1"]
    0.5
    """
    row = object_scores_table(true_labels, pred_labels, [iou_threshold]).iloc[0]
    return {key: int(row[key]) for key in ("tp", "fp", "fn")} | {
        key: float(row[key]) for key in ("precision", "recall", "f1")
    }


def mean_object_f1(true_labels, pred_labels, thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS) -> float:
    """Object-wise F1 averaged over IoU thresholds (default 0.50, 0.55, ..., 0.90).

    Parameters
    ----------
    true_labels, pred_labels
        As for :func:`object_scores`.
    thresholds : sequence of float
        IoU thresholds, e.g. ``np.arange(0.5, 0.95, 0.05)`` (rounded to 10 decimals).

    Returns
    -------
    float
        Mean of the pooled object F1 at each threshold.
    """
    return float(object_scores_table(true_labels, pred_labels, thresholds)["f1"].mean())


# --------------------------------------------------------------------------- image-level


def image_scores(true_labels, pred_labels) -> dict:
    """Image-level "contains artifact" scores against image labels.

    Parameters
    ----------
    true_labels, pred_labels : array_like
        One label per image (non-zero / True = contains artifact).

    Returns
    -------
    dict
        ``tp``, ``fp``, ``fn``, ``tn`` (int), ``precision``, ``recall``, ``f1``,
        ``accuracy`` (float; module conventions for empty cases).

    Raises
    ------
    ArtsegInputError
        Different lengths or missing (NaN) labels.
    """
    truth = np.asarray(true_labels).ravel()
    prediction = np.asarray(pred_labels).ravel()
    if truth.shape != prediction.shape:
        raise ArtsegInputError(f"true_labels has {truth.size} images but pred_labels has {prediction.size}")
    for name, values in (("true_labels", truth), ("pred_labels", prediction)):
        if values.dtype.kind == "f" and np.isnan(values).any():
            raise ArtsegInputError(f"{name}: missing (NaN) image labels")
    truth, prediction = truth != 0, prediction != 0
    tp = int(np.count_nonzero(truth & prediction))
    fp = int(np.count_nonzero(~truth & prediction))
    fn = int(np.count_nonzero(truth & ~prediction))
    tn = int(truth.size) - tp - fp - fn
    scores = confusion_scores(tp, fp, fn)
    return {
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "precision": scores["precision"], "recall": scores["recall"], "f1": scores["f1"],
        "accuracy": (tp + tn) / truth.size if truth.size else 1.0,
    }


def image_f1(true_labels, pred_labels) -> float:
    """F1 of image-level "contains artifact" predictions (paper Supplementary Table 1).

    Parameters
    ----------
    true_labels, pred_labels : array_like
        One label per image (non-zero / True = contains artifact).

    Returns
    -------
    float
        2TP / (2TP + FP + FN) over images; 1.0 when no image is positive in either.

    Examples
    --------
    >>> image_f1([1, 1, 0, 0], [1, 0, 1, 0])
    0.5
    """
    return image_scores(true_labels, pred_labels)["f1"]
