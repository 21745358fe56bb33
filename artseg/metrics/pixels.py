"""Pixel-wise scores, precision-recall curves and the size-filter table (paper Supp. Tables 2-4)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from artseg.errors import ArtsegInputError
from artseg.postprocess import binarize, label_objects

from artseg.metrics.scores import SCORE_NAMES, as_mask, confusion_scores, paired


# 0, a 1-2-5 series from 1e-5 (the paper's Score-CAM and PatchSVDD cutoffs are 1e-3 and
# 5e-4) and then every 0.01 up to 0.99: fine enough for maps that are not calibrated.
DEFAULT_CUTOFFS = np.unique(
    np.round(
        np.concatenate(
            [[0.0], np.outer([1e-5, 1e-4, 1e-3], [1.0, 2.0, 5.0]).ravel(), np.arange(1, 100) / 100]
        ),
        10,
    )
)
# Object-size cutoffs of the paper's Supplementary Tables 2-4.
PAPER_MIN_SIZES = (20, 50, 100, 500, 1000, 2000)


# --------------------------------------------------------------------------- pixel-wise


def _pixel_counts(truth: np.ndarray, prediction: np.ndarray) -> tuple[int, int, int]:
    truth, prediction = as_mask(truth), as_mask(prediction)
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
    pairs = paired(true_mask, pred_mask, "true_mask", "pred_mask", any_shape=True)
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
    pairs = paired(true_masks, pred_masks, "true_masks", "pred_masks")
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
        histogram += np.bincount(2 * bins + as_mask(truth).ravel(), minlength=2 * n_bins)
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
        :data:`DEFAULT_CUTOFFS` (0, 1e-5 ... 5e-3, 0.01 ... 0.99),
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
    pr_auc, artseg.calibration.search_cutoff

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
    pairs = paired(true_masks, prob_maps, "true_masks", "prob_maps")
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


def _size_grid(sizes) -> np.ndarray:
    size_grid = np.unique(np.asarray(sizes).ravel())
    if size_grid.size == 0 or size_grid.dtype.kind not in "iu" or size_grid[0] < 0:
        raise ArtsegInputError(f"sizes must be a non-empty list of integers >= 0, got {list(sizes)!r}")
    return size_grid


def _kept_after_size_filter(mask: np.ndarray, truth: np.ndarray, size_grid: np.ndarray,
                            connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true-positive pixels left by ``remove_small(mask, s)`` for every ``s`` in ``size_grid``."""
    labels = label_objects(mask, connectivity)
    n_objects = int(labels.max()) if labels.size else 0
    object_size = np.bincount(labels.ravel(), minlength=n_objects + 1)[1:]
    object_tp = np.bincount(labels[truth], minlength=n_objects + 1)[1:]
    order = np.argsort(object_size, kind="stable")
    # Objects kept at size s are those from the first one with object_size >= s on.
    first_kept = np.searchsorted(object_size[order], size_grid, side="left")
    kept_pixels = np.concatenate([np.cumsum(object_size[order][::-1])[::-1], [0]])
    kept_tp = np.concatenate([np.cumsum(object_tp[order][::-1])[::-1], [0]])
    return kept_pixels[first_kept], kept_tp[first_kept]


def size_filter_counts(prob_maps, true_masks, cutoffs: Sequence[float], sizes: Sequence[int], *,
                       connectivity: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image, cut-off and size: the pixels a cut-off and size filter keep, and how many are true.

    Each map is labelled once per cut-off; every size then costs nothing, so a search over
    cut-offs × sizes × image subsets (the classifier gate) sums these counts instead of
    labelling again.

    Parameters
    ----------
    prob_maps : numpy.ndarray or sequence of numpy.ndarray
        Probability maps (``prob > cutoff`` is foreground); all values finite.
    true_masks : numpy.ndarray or sequence of numpy.ndarray
        Ground-truth masks paired with ``prob_maps``.
    cutoffs, sizes : sequence
        Candidates, used sorted and without repeats.
    connectivity : int
        Object connectivity (see :func:`artseg.postprocess.label_objects`).

    Returns
    -------
    predicted, tp : numpy.ndarray
        int64 ``(n_images, n_cutoffs, n_sizes)``: pixels kept, and those of them in the truth.
    n_true : numpy.ndarray
        int64 ``(n_images,)``: true pixels per image.

    Examples
    --------
    >>> prob = np.array([[0.9, 0.0, 0.8, 0.7]])
    >>> truth = np.array([[0, 0, 1, 1]], dtype=bool)
    >>> predicted, tp, n_true = size_filter_counts(prob, truth, cutoffs=[0.5], sizes=[0, 2])
    >>> predicted[0, 0].tolist(), tp[0, 0].tolist(), n_true.tolist()
    ([3, 2], [2, 2], [2])
    """
    grid = np.unique(np.asarray(cutoffs, dtype=np.float64).ravel())
    if grid.size == 0 or not np.all(np.isfinite(grid)):
        raise ArtsegInputError("cutoffs must be a non-empty list of finite numbers")
    size_grid = _size_grid(sizes)
    pairs = paired(true_masks, prob_maps, "true_masks", "prob_maps")
    predicted = np.zeros((len(pairs), len(grid), len(size_grid)), dtype=np.int64)
    tp = np.zeros_like(predicted)
    n_true = np.zeros(len(pairs), dtype=np.int64)
    for index, (truth, prob) in enumerate(pairs):
        prob = np.asarray(prob, dtype=np.float64)
        if not np.all(np.isfinite(prob)):
            raise ArtsegInputError(f"prob_maps[{index}]: contains NaN or infinite values")
        truth = as_mask(truth)
        n_true[index] = np.count_nonzero(truth)
        for position, cutoff in enumerate(grid):
            predicted[index, position], tp[index, position] = _kept_after_size_filter(
                prob > cutoff, truth, size_grid, connectivity)
    return predicted, tp, n_true


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
    size_grid = _size_grid(sizes)
    pairs = paired(true_masks, prob_or_masks, "true_masks", "prob_or_masks")
    tp = np.zeros(len(size_grid), dtype=np.int64)
    predicted = np.zeros(len(size_grid), dtype=np.int64)
    n_true = 0
    for truth, prediction in pairs:
        truth = as_mask(truth)
        mask = as_mask(prediction) if cutoff is None else binarize(prediction, cutoff)
        kept, kept_tp = _kept_after_size_filter(mask, truth, size_grid, connectivity)
        predicted += kept
        tp += kept_tp
        n_true += int(np.count_nonzero(truth))
    fp, fn = predicted - tp, n_true - tp
    return pd.DataFrame({"min_size": size_grid, **confusion_scores(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn})


