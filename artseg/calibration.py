"""Calibration: the searches that choose a model's cut-off, minimum object size and image gate.

The paper (section 2.3.3) binarizes each probability map at the cut-off that maximises pooled
pixel IoU on validation data, then removes objects smaller than a size chosen the same way.
These searches score candidates with :mod:`artseg.metrics` (which measures exactly what
:mod:`artseg.postprocess` produces), so calibration sits above both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from artseg.errors import ArtsegInputError
from artseg.metrics import (DEFAULT_CUTOFFS, PAPER_MIN_SIZES, confusion_scores, iou_after_size_filter, pr_curve,
                            size_filter_counts)

__all__ = ["COARSE_CUTOFFS", "DEFAULT_CUTOFFS", "PAPER_MIN_SIZES", "Calibration", "calibrate", "search_cutoff",
           "search_min_size"]

# Cutoffs tried first when every candidate needs a connected-component pass (min_size > 0).
COARSE_CUTOFFS = np.array([0.0, 1e-4, 1e-3, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99])

def _check_grid(values, name: str) -> np.ndarray:
    grid = np.unique(np.asarray(values, dtype=np.float64).ravel())
    if grid.size == 0 or not np.all(np.isfinite(grid)):
        raise ArtsegInputError(f"{name} must be a non-empty list of finite numbers")
    return grid


def search_cutoff(
    prob_maps,
    true_masks,
    cutoffs: Sequence[float] | None = None,
    min_size: int = 0,
    *,
    connectivity: int = 1,
    progress: bool = True,
) -> tuple[float, float]:
    """Find the probability cutoff that maximises pooled pixel IoU on validation data.

    Parameters
    ----------
    prob_maps : numpy.ndarray or sequence of numpy.ndarray
        Probability maps: a 2-D map, an ``(N, H, W)`` stack or a list of 2-D maps.
    true_masks : numpy.ndarray or sequence of numpy.ndarray
        Ground-truth artifact masks, paired with ``prob_maps`` (non-zero = artifact).
    cutoffs : sequence of float, optional
        Candidates to evaluate, exactly. Default: :data:`DEFAULT_CUTOFFS` when
        ``min_size == 0``; :data:`COARSE_CUTOFFS` refined around the best one otherwise.
    min_size : int
        Objects smaller than this are removed (:func:`remove_small`) before scoring.
    connectivity : int
        Object connectivity for ``min_size`` (see :func:`label_objects`).
    progress : bool
        Show a progress bar over candidates when ``min_size > 0``.

    Returns
    -------
    best_cutoff : float
        The smallest candidate reaching the highest IoU.
    best_iou : float
        Pooled IoU = TP / (TP + FP + FN) over all pixels of all maps at that cutoff.

    Raises
    ------
    ArtsegInputError
        Mismatched shapes or counts, non-finite probabilities or cutoffs.

    Notes
    -----
    With ``min_size == 0`` every candidate is scored from one pass over the pixels
    (histograms of positive and negative pixel probabilities, see
    :func:`artseg.metrics.pr_curve`), so thousands of candidates cost no more than one.
    With ``min_size > 0`` each candidate needs a connected-component pass per image, so
    the default is a coarse grid followed by 8 evenly spaced candidates on each side of
    the best coarse cutoff, up to its neighbours.

    Examples
    --------
    >>> prob = np.array([[0.1, 0.4, 0.8, 0.9]])
    >>> truth = np.array([[0, 0, 1, 1]], dtype=bool)
    >>> search_cutoff(prob, truth, cutoffs=[0.2, 0.5, 0.85])
    (0.5, 1.0)
    """
    if min_size == 0:
        curve = pr_curve(prob_maps, true_masks, DEFAULT_CUTOFFS if cutoffs is None else cutoffs)
        best = int(np.argmax(curve["iou"].to_numpy()))
        return float(curve["cutoff"].iloc[best]), float(curve["iou"].iloc[best])

    def pooled_iou(cutoff: float) -> float:
        table = iou_after_size_filter(prob_maps, true_masks, cutoff, sizes=(min_size,), connectivity=connectivity)
        return float(table["iou"].iloc[0])

    grid = _check_grid(COARSE_CUTOFFS if cutoffs is None else cutoffs, "cutoffs")
    scores = {float(c): pooled_iou(c) for c in tqdm(grid, desc="cutoff search", disable=not progress, leave=False)}
    if cutoffs is None:
        best = max(scores, key=lambda c: (scores[c], -c))
        position = int(np.searchsorted(grid, best))
        low = grid[max(position - 1, 0)]
        high = grid[min(position + 1, len(grid) - 1)]
        refined = np.concatenate([np.linspace(low, best, 10)[1:-1], np.linspace(best, high, 10)[1:-1]])
        for cutoff in tqdm(refined, desc="refine cutoff", disable=not progress, leave=False):
            scores.setdefault(float(cutoff), pooled_iou(cutoff))
    best = max(scores, key=lambda c: (scores[c], -c))
    return best, scores[best]


def search_min_size(
    prob_or_masks,
    true_masks,
    cutoff: float | None = None,
    sizes: Sequence[int] = (0, *PAPER_MIN_SIZES),
    *,
    connectivity: int = 1,
) -> tuple[int, float]:
    """Find the smallest-object size filter that maximises pooled pixel IoU.

    Parameters
    ----------
    prob_or_masks : numpy.ndarray or sequence of numpy.ndarray
        Probability maps (with ``cutoff``) or masks (``cutoff=None``; non-zero = foreground).
    true_masks : numpy.ndarray or sequence of numpy.ndarray
        Ground-truth masks, paired with ``prob_or_masks``.
    cutoff : float, optional
        Binarization cutoff for probability maps.
    sizes : sequence of int
        Candidate ``min_size`` values for :func:`remove_small` (0 = no filtering).
    connectivity : int
        Object connectivity (see :func:`label_objects`).

    Returns
    -------
    best_min_size : int
        The smallest candidate reaching the highest IoU.
    best_iou : float
        Pooled IoU at that size.

    See Also
    --------
    artseg.metrics.iou_after_size_filter : the whole table (paper Supplementary Tables 2-4).

    Examples
    --------
    >>> mask = np.array([[1, 0, 1, 1, 1]], dtype=bool)
    >>> truth = np.array([[0, 0, 1, 1, 1]], dtype=bool)
    >>> search_min_size(mask, truth, sizes=[0, 2, 5])
    (2, 1.0)
    """
    table = iou_after_size_filter(prob_or_masks, true_masks, cutoff, sizes=sizes, connectivity=connectivity)
    best = int(np.argmax(table["iou"].to_numpy()))
    return int(table["min_size"].iloc[best]), float(table["iou"].iloc[best])


@dataclass
class Calibration:
    """Post-processing numbers of a fitted model (paper §2.3.3).

    Attributes
    ----------
    cutoff : float
        Pixels with probability above it are artifact.
    min_object_size : int
        Smaller objects are removed.
    selected_on : str
        ``"pixel_masks"`` (validation pixel masks), ``"pseudo_masks"`` (no pixel masks: the
        validation pseudo-masks) or ``"config"`` (all numbers given in the configuration).
    val_iou : float or None
        Pooled validation IoU at the chosen numbers.
    gate : float or None
        The classifier gate chosen with them; ``None``: the configured gate applies.
    """

    cutoff: float
    min_object_size: int
    selected_on: str
    val_iou: float | None = None
    gate: float | None = None


def calibrate(probability_maps: Sequence[np.ndarray], truth: Sequence[np.ndarray], *,
              cutoffs: Sequence[float], min_object_sizes: Sequence[int],
              image_probabilities: Sequence[float] | None = None, gates: Sequence[float] = (0.0,),
              selected_on: str = "pixel_masks", choose_gate: bool = False) -> Calibration:
    """Choose the gate, smallest kept object and cut-off that maximise pooled validation IoU.

    Every gate × size × cut-off combination is scored on the validation images: below the
    gate an image's map counts as all zeros (the classifier called it clean). Each map is
    labelled once per cut-off (:func:`artseg.metrics.size_filter_counts`); sizes and gates
    then only sum counts.

    Parameters
    ----------
    probability_maps : sequence of numpy.ndarray
        One map per validation image (may be zeros where every gate drops the image).
    truth : sequence of numpy.ndarray
        The masks they are scored against, paired with ``probability_maps``.
    cutoffs, min_object_sizes : sequence
        Candidates (one each to fix a number).
    image_probabilities : sequence of float, optional
        The classifier's artifact probability per image; ``None``: no gate (all 1.0).
    gates : sequence of float
        Candidate gates (one to fix it).
    selected_on : str
        Recorded in the result (see :class:`Calibration`).
    choose_gate : bool
        Record the chosen gate in the result (``Calibration.gate``).

    Returns
    -------
    Calibration
        The first best combination in gate, size, cut-off order.

    Examples
    --------
    >>> maps = [np.array([[0.1, 0.9]]), np.array([[0.8, 0.2]])]
    >>> truth = [np.array([[False, True]]), np.array([[False, False]])]
    >>> chosen = calibrate(maps, truth, cutoffs=[0.5], min_object_sizes=[0],
    ...                    image_probabilities=[0.9, 0.2], gates=[0.0, 0.5], choose_gate=True)
    >>> chosen.gate, chosen.val_iou
    (0.5, 1.0)
    """
    if len(probability_maps) == 0:
        raise ArtsegInputError("no validation images to choose the cut-off on")
    probabilities = [1.0] * len(probability_maps) if image_probabilities is None else list(image_probabilities)
    if len(probabilities) != len(probability_maps):
        raise ArtsegInputError(f"{len(probabilities)} image probabilities for {len(probability_maps)} maps")
    cutoff_grid = _check_grid(cutoffs, "cutoffs")
    size_grid = np.unique(np.asarray(min_object_sizes).ravel())
    predicted, tp, n_true = size_filter_counts(probability_maps, truth, cutoff_grid, size_grid)
    # a gated image's map counts as all zeros: nothing kept at a cut-off >= 0; below 0 the
    # whole image is one object
    pixels = np.array([np.size(m) for m in probability_maps], dtype=np.int64)[:, None, None]
    whole_image_kept = (cutoff_grid[:, None] < 0) & (pixels >= size_grid)
    gated_predicted = np.where(whole_image_kept, pixels, 0)
    gated_tp = np.where(whole_image_kept, n_true[:, None, None], 0)
    total_true = int(n_true.sum())
    best, tried = None, set()
    for gate in sorted(set(float(g) for g in gates)):
        kept = tuple(p >= gate for p in probabilities)
        if kept in tried:  # a gate letting the same images through scores the same
            continue
        tried.add(kept)
        keep = np.array(kept)[:, None, None]
        kept_predicted = np.where(keep, predicted, gated_predicted).sum(axis=0)
        kept_tp = np.where(keep, tp, gated_tp).sum(axis=0)
        iou = confusion_scores(kept_tp, kept_predicted - kept_tp, total_true - kept_tp)["iou"]
        for size in min_object_sizes:
            column = int(np.searchsorted(size_grid, size))
            # the smallest cut-off reaching the highest IoU at this size
            position = int(np.argmax(iou[:, column]))
            if best is None or iou[position, column] > best[2]:
                best = (float(cutoff_grid[position]), int(size), float(iou[position, column]), gate)
    return Calibration(float(best[0]), best[1], selected_on, float(best[2]), gate=best[3] if choose_gate else None)
