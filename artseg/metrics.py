"""Pixel-, object- and image-level scores of a segmentation (paper Box 1).

Every function takes arrays and returns numbers or tables. Scores come from counts of
true positives (TP), false positives (FP) and false negatives (FN):

- precision = TP / (TP + FP), recall = TP / (TP + FN),
- F1 = 2 P R / (P + R) = 2 TP / (2 TP + FP + FN), IoU = TP / (TP + FP + FN).

Empty cases never divide by zero: with nothing to find and nothing found (TP = FP = FN = 0)
every score is 1.0. Otherwise an undefined ratio is 0.0: precision when nothing was
predicted but something was there to find, recall when something was predicted but
there was nothing to find. With these choices both F1 formulas above always agree.

Many images are scored *pooled*: counts are summed over all images, then turned into
scores. :func:`pixel_scores_per_image` gives the per-image scores and their mean instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from artseg.errors import ArtsegInputError
from artseg.postprocess import DEFAULT_CUTOFFS, PAPER_MIN_SIZES, binarize, label_objects

__all__ = [
    "DEFAULT_IOU_THRESHOLDS",
    "SCORE_NAMES",
    "area_under_pr_curve",
    "confusion_scores",
    "image_f1",
    "image_scores",
    "iou_after_size_filter",
    "mean_object_f1",
    "object_scores",
    "object_scores_table",
    "pixel_scores",
    "pixel_scores_per_image",
    "pr_auc",
    "pr_curve",
]

# 0.50, 0.55, ..., 0.90 (Caicedo et al. 2019); np.arange(0.5, 0.95, 0.05) without its rounding noise.
DEFAULT_IOU_THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.5, 0.95, 0.05), 2))
SCORE_NAMES = ("precision", "recall", "f1", "iou")

# Object-pair contingency tables up to this many cells are dense bincounts, larger ones sparse.
_DENSE_PAIR_LIMIT = 1 << 22


# --------------------------------------------------------------------------- inputs


def _image_list(images, name: str) -> list[np.ndarray]:
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


def _paired(true, pred, true_name: str, pred_name: str, *, any_shape: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pair ground truth with predictions, checking counts and shapes.

    With ``any_shape`` a single array (of any dimensionality) is one item, as pooled
    pixel counts do not care about image boundaries.
    """
    if any_shape and isinstance(true, np.ndarray) and isinstance(pred, np.ndarray):
        true_items, pred_items = [true], [pred]
    else:
        true_items, pred_items = _image_list(true, true_name), _image_list(pred, pred_name)
    if len(true_items) != len(pred_items):
        raise ArtsegInputError(f"{true_name} has {len(true_items)} images but {pred_name} has {len(pred_items)}")
    for index, (truth, prediction) in enumerate(zip(true_items, pred_items)):
        if truth.shape != prediction.shape:
            raise ArtsegInputError(
                f"{pred_name}[{index}]: shape {prediction.shape} does not match {true_name}[{index}] shape {truth.shape}"
            )
    return list(zip(true_items, pred_items))


def _as_mask(array: np.ndarray) -> np.ndarray:
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


# --------------------------------------------------------------------------- pixel-wise


def _pixel_counts(truth: np.ndarray, prediction: np.ndarray) -> tuple[int, int, int]:
    truth, prediction = _as_mask(truth), _as_mask(prediction)
    tp = int(np.count_nonzero(truth & prediction))
    return tp, int(np.count_nonzero(prediction)) - tp, int(np.count_nonzero(truth)) - tp


def pixel_scores(true_mask, pred_mask) -> dict:
    """Pixel-wise precision, recall, F1 and IoU, pooled over all pixels given.

    Parameters
    ----------
    true_mask : numpy.ndarray or sequence of numpy.ndarray
        Ground truth (non-zero = foreground): one array of any shape, an ``(N, H, W)``
        stack, or a list of arrays whose shapes may differ from each other.
    pred_mask : numpy.ndarray or sequence of numpy.ndarray
        Prediction, paired with ``true_mask`` array by array.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1``, ``iou`` (float) and ``tp``, ``fp``, ``fn``
        (int pixel counts summed over all arrays).

    Raises
    ------
    ArtsegInputError
        Different numbers of arrays, or a pair with different shapes.

    Notes
    -----
    Box 1 of the paper: P = TP / (TP + FP), R = TP / (TP + FN), F1 = 2PR / (P + R),
    IoU = TP / (TP + FP + FN). Empty-versus-empty scores 1.0 everywhere; precision with
    no predicted pixels (but some true ones) is 0.0, and so is recall with no true pixels
    (but some predicted ones).

    See Also
    --------
    pixel_scores_per_image : scores of each image and their mean.

    Examples
    --------
    >>> truth = np.array([[1, 1, 0, 0]], dtype=bool)
    >>> pred = np.array([[0, 1, 1, 0]], dtype=bool)
    >>> pixel_scores(truth, pred)["iou"]
    0.3333333333333333
    """
    pairs = _paired(true_mask, pred_mask, "true_mask", "pred_mask", any_shape=True)
    counts = np.array([_pixel_counts(truth, prediction) for truth, prediction in pairs], dtype=np.int64).reshape(-1, 3)
    tp, fp, fn = (int(count) for count in counts.sum(axis=0))
    return {**confusion_scores(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn}


def pixel_scores_per_image(true_masks, pred_masks, names: Sequence[str] | None = None) -> tuple[pd.DataFrame, dict]:
    """Pixel-wise scores of every image and their unweighted mean over images.

    Parameters
    ----------
    true_masks, pred_masks : numpy.ndarray or sequence of numpy.ndarray
        Paired 2-D masks: an ``(N, H, W)`` stack or a list (shapes may differ between images).
    names : sequence of str, optional
        Image names for the ``image`` column (default ``0..N-1``).

    Returns
    -------
    per_image : pandas.DataFrame
        One row per image: ``image, precision, recall, f1, iou, tp, fp, fn``.
    mean : dict
        Mean ``precision``, ``recall``, ``f1``, ``iou`` over images (each image weighs
        the same; an image with empty truth and empty prediction counts as 1.0).

    See Also
    --------
    pixel_scores : the same scores pooled over all pixels.
    """
    pairs = _paired(true_masks, pred_masks, "true_masks", "pred_masks")
    names = list(range(len(pairs))) if names is None else list(names)
    if len(names) != len(pairs):
        raise ArtsegInputError(f"names has {len(names)} entries but there are {len(pairs)} images")
    counts = np.array([_pixel_counts(truth, prediction) for truth, prediction in pairs], dtype=np.int64).reshape(-1, 3)
    table = pd.DataFrame({"image": names, **confusion_scores(*counts.T)})
    table[["tp", "fp", "fn"]] = counts
    mean = {name: float(table[name].mean()) if len(table) else float("nan") for name in SCORE_NAMES}
    return table, mean


# --------------------------------------------------------------------------- thresholds and sizes


def _cutoff_counts(pairs, cutoffs: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """TP and FP pixel counts at every cutoff, and the number of true pixels, in one pass."""
    n_bins = len(cutoffs) + 1
    histogram = np.zeros(2 * n_bins, dtype=np.int64)
    for index, (truth, prob) in enumerate(pairs):
        prob = np.asarray(prob, dtype=np.float64).ravel()
        if not np.all(np.isfinite(prob)):
            raise ArtsegInputError(f"prob_maps[{index}]: contains NaN or infinite values")
        # bin = number of cutoffs strictly below the probability: the pixel is foreground
        # (prob > cutoff) at exactly the cutoffs with index < bin.
        bins = np.searchsorted(cutoffs, prob, side="left")
        histogram += np.bincount(2 * bins + _as_mask(truth).ravel(), minlength=2 * n_bins)
    negatives, positives = histogram[0::2], histogram[1::2]
    tp = np.cumsum(positives[::-1])[::-1][1:]
    fp = np.cumsum(negatives[::-1])[::-1][1:]
    return tp, fp, int(positives.sum())


def pr_curve(prob_maps, true_masks, cutoffs: Sequence[float] | None = None) -> pd.DataFrame:
    """Pooled pixel-wise precision, recall, F1 and IoU at many probability cutoffs.

    Parameters
    ----------
    prob_maps : numpy.ndarray or sequence of numpy.ndarray
        Probability maps: a 2-D map, an ``(N, H, W)`` stack or a list of 2-D maps.
    true_masks : numpy.ndarray or sequence of numpy.ndarray
        Ground-truth masks paired with ``prob_maps`` (non-zero = foreground).
    cutoffs : sequence of float, optional
        Cutoffs; a pixel is predicted foreground when ``prob > cutoff``. Default
        :data:`artseg.postprocess.DEFAULT_CUTOFFS` (0, 1e-5 ... 5e-3, 0.01 ... 0.99),
        meant for maps in [0, 1]; pass your own for other scores.

    Returns
    -------
    pandas.DataFrame
        One row per distinct cutoff, ascending: ``cutoff, precision, recall, f1, iou,
        tp, fp, fn``. Recall never increases with the cutoff.

    Raises
    ------
    ArtsegInputError
        Mismatched shapes or counts, non-finite probabilities or cutoffs.

    Notes
    -----
    One pass over the pixels whatever the number of cutoffs: each pixel falls into the
    bin of cutoffs just below its probability; histograms of positive and negative
    pixels, summed from the top, give TP and FP at every cutoff. Counts equal those of
    :func:`artseg.postprocess.binarize` followed by :func:`pixel_scores`.

    See Also
    --------
    pr_auc, artseg.postprocess.search_cutoff

    Examples
    --------
    >>> prob = np.array([[0.2, 0.6, 0.9]])
    >>> truth = np.array([[0, 1, 1]], dtype=bool)
    >>> pr_curve(prob, truth, cutoffs=[0.5, 0.8])["recall"].tolist()
    [1.0, 0.5]
    """
    grid = np.unique(np.asarray(DEFAULT_CUTOFFS if cutoffs is None else cutoffs, dtype=np.float64).ravel())
    if grid.size == 0 or not np.all(np.isfinite(grid)):
        raise ArtsegInputError("cutoffs must be a non-empty list of finite numbers")
    pairs = _paired(true_masks, prob_maps, "true_masks", "prob_maps")
    tp, fp, n_true = _cutoff_counts(pairs, grid)
    fn = n_true - tp
    return pd.DataFrame({"cutoff": grid, **confusion_scores(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn})


def area_under_pr_curve(curve: pd.DataFrame) -> float:
    """Area under a precision-recall curve from :func:`pr_curve`, as average precision.

    Parameters
    ----------
    curve : pandas.DataFrame
        Columns ``cutoff``, ``precision``, ``recall``, ``tp``, ``fn``.

    Returns
    -------
    float
        :math:`\\sum_k (R_k - R_{k-1}) P_k` over cutoffs from the highest down, with
        :math:`R_0 = 0`: a step function, so no precision is interpolated between
        cutoffs. NaN when there are no true pixels (the curve is then undefined).
    """
    ordered = curve.sort_values("cutoff", ascending=False)
    if int(ordered["tp"].iloc[0] + ordered["fn"].iloc[0]) == 0:
        return float("nan")
    recall = ordered["recall"].to_numpy()
    recall_gain = np.diff(recall, prepend=0.0)
    return float(np.sum(recall_gain * ordered["precision"].to_numpy()))


def pr_auc(prob_maps, true_masks, cutoffs: Sequence[float] | None = None) -> float:
    """Area under the pooled pixel-wise precision-recall curve (average precision).

    Parameters
    ----------
    prob_maps, true_masks, cutoffs
        As for :func:`pr_curve`.

    Returns
    -------
    float
        See :func:`area_under_pr_curve`; 1.0 for a map that separates the classes at
        one of the cutoffs.

    Examples
    --------
    >>> pr_auc(np.array([[0.1, 0.9]]), np.array([[0, 1]], dtype=bool), cutoffs=[0.5])
    1.0
    """
    return area_under_pr_curve(pr_curve(prob_maps, true_masks, cutoffs))


def iou_after_size_filter(
    prob_or_masks,
    true_masks,
    cutoff: float | None = None,
    sizes: Sequence[int] = PAPER_MIN_SIZES,
    *,
    connectivity: int = 1,
) -> pd.DataFrame:
    """Pooled pixel scores after removing predicted objects smaller than each size.

    Reproduces the paper's Supplementary Tables 2-4 (IoU after size filtering).

    Parameters
    ----------
    prob_or_masks : numpy.ndarray or sequence of numpy.ndarray
        Probability maps (binarized at ``cutoff``) or, with ``cutoff=None``, masks
        (non-zero = foreground): a 2-D array, an ``(N, H, W)`` stack or a list.
    true_masks : numpy.ndarray or sequence of numpy.ndarray
        Ground-truth masks paired with ``prob_or_masks``.
    cutoff : float, optional
        Binarization cutoff (``prob > cutoff``); None when masks are given.
    sizes : sequence of int
        ``min_size`` values of :func:`artseg.postprocess.remove_small` (0 = no filter).
    connectivity : int
        Object connectivity (see :func:`artseg.postprocess.label_objects`).

    Returns
    -------
    pandas.DataFrame
        One row per distinct size, ascending: ``min_size, precision, recall, f1, iou,
        tp, fp, fn``.

    Notes
    -----
    Each image is labelled once; every object's size and overlap with the truth then
    give the counts for all sizes, which equal ``remove_small(mask, size)`` followed by
    :func:`pixel_scores`.
    """
    size_grid = np.unique(np.asarray(sizes).ravel())
    if size_grid.size == 0 or size_grid.dtype.kind not in "iu" or size_grid[0] < 0:
        raise ArtsegInputError(f"sizes must be a non-empty list of integers >= 0, got {list(sizes)!r}")
    pairs = _paired(true_masks, prob_or_masks, "true_masks", "prob_or_masks")
    tp = np.zeros(len(size_grid), dtype=np.int64)
    predicted = np.zeros(len(size_grid), dtype=np.int64)
    n_true = 0
    for truth, prediction in pairs:
        truth = _as_mask(truth)
        mask = _as_mask(prediction) if cutoff is None else binarize(prediction, cutoff)
        labels = label_objects(mask, connectivity)
        n_objects = int(labels.max()) if labels.size else 0
        object_size = np.bincount(labels.ravel(), minlength=n_objects + 1)[1:]
        object_tp = np.bincount(labels[truth], minlength=n_objects + 1)[1:]
        order = np.argsort(object_size, kind="stable")
        # Objects kept at size s are those from the first one with object_size >= s on.
        first_kept = np.searchsorted(object_size[order], size_grid, side="left")
        kept_pixels = np.concatenate([np.cumsum(object_size[order][::-1])[::-1], [0]])
        kept_tp = np.concatenate([np.cumsum(object_tp[order][::-1])[::-1], [0]])
        predicted += kept_pixels[first_kept]
        tp += kept_tp[first_kept]
        n_true += int(np.count_nonzero(truth))
    fp, fn = predicted - tp, n_true - tp
    return pd.DataFrame({"min_size": size_grid, **confusion_scores(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn})


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
    pairs = _paired(true_labels, pred_labels, "true_labels", "pred_labels")
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
