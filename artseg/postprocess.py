"""Post-processing of artifact probability maps: threshold, drop small objects, tune both.

The paper (section 2.3.3) binarizes each model's probability map at a cutoff chosen to
maximise pixel-wise IoU on validation data, then removes objects smaller than a size
chosen the same way (``skimage.morphology.remove_small_objects``). These are the pure
array functions for those steps and for the two searches.

Conventions shared with :mod:`artseg.metrics`, which measures exactly what these
functions produce:

- a pixel is foreground when its probability is strictly greater than the cutoff,
  compared in float64 (so a float32 map and a Python float cutoff agree everywhere);
- objects are connected components with ``connectivity=1`` (4-neighbours in 2-D) by
  default, as in skimage; an object with exactly ``min_size`` pixels is kept.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import remove_small_objects
from tqdm.auto import tqdm

from artseg.errors import ArtsegInputError

__all__ = [
    "COARSE_CUTOFFS",
    "DEFAULT_CUTOFFS",
    "PAPER_MIN_SIZES",
    "binarize",
    "label_objects",
    "remove_small",
    "search_cutoff",
    "search_min_size",
]

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
# Cutoffs tried first when every candidate needs a connected-component pass (min_size > 0).
COARSE_CUTOFFS = np.array([0.0, 1e-4, 1e-3, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99])
# Object-size cutoffs of the paper's Supplementary Tables 2-4.
PAPER_MIN_SIZES = (20, 50, 100, 500, 1000, 2000)

# skimage 0.26 replaced ``min_size`` (remove sizes < min_size) by ``max_size`` (remove
# sizes <= max_size) and warns on the old name; warnings are errors in our tests.
_SKIMAGE_HAS_MAX_SIZE = "max_size" in inspect.signature(remove_small_objects).parameters


def _check_connectivity(connectivity: int, ndim: int) -> None:
    if not 1 <= connectivity <= max(ndim, 1):
        raise ArtsegInputError(f"connectivity must be between 1 and {ndim} for {ndim}-D masks, got {connectivity}")


def binarize(prob: np.ndarray, cutoff: float) -> np.ndarray:
    """Threshold a probability (or anomaly score) map.

    Parameters
    ----------
    prob : numpy.ndarray
        Probability map of any shape.
    cutoff : float
        Pixels with ``prob > cutoff`` become foreground.

    Returns
    -------
    numpy.ndarray of bool
        Same shape as ``prob``. NaN pixels are background.

    Raises
    ------
    ArtsegInputError
        ``cutoff`` is not a finite number.

    Notes
    -----
    The comparison is made in float64, so ``binarize(prob, c)`` agrees pixel for pixel
    with the counts of :func:`artseg.metrics.pr_curve` at cutoff ``c``.

    Examples
    --------
    >>> binarize(np.array([0.1, 0.5, 0.9], dtype=np.float32), 0.5)
    array([False, False,  True])
    """
    if not np.isfinite(cutoff):
        raise ArtsegInputError(f"cutoff must be a finite number, got {cutoff!r}")
    return np.asarray(prob) > np.float64(cutoff)


def label_objects(mask: np.ndarray, connectivity: int = 1) -> np.ndarray:
    """Label the connected components (objects) of a mask.

    Parameters
    ----------
    mask : numpy.ndarray
        Non-zero pixels are foreground.
    connectivity : int
        Neighbours that connect pixels, as in skimage: 1 = share a face (4-neighbours in
        2-D), ``mask.ndim`` = share a face, edge or corner (8-neighbours in 2-D).

    Returns
    -------
    numpy.ndarray of int32
        Same shape; 0 = background, objects numbered 1..n.

    Examples
    --------
    >>> label_objects(np.array([[1, 0, 1], [0, 1, 0]]))
    array([[1, 0, 2],
           [0, 3, 0]], dtype=int32)
    """
    mask = np.asarray(mask) != 0
    _check_connectivity(connectivity, mask.ndim)
    structure = ndi.generate_binary_structure(mask.ndim, connectivity)
    labels = np.zeros(mask.shape, dtype=np.int32)
    ndi.label(mask, structure=structure, output=labels)
    return labels


def remove_small(mask: np.ndarray, min_size: int, connectivity: int = 1) -> np.ndarray:
    """Remove objects with fewer than ``min_size`` pixels from a mask.

    Parameters
    ----------
    mask : numpy.ndarray
        Non-zero pixels are foreground.
    min_size : int
        Objects with fewer pixels are removed; an object of exactly ``min_size``
        pixels is kept. ``0`` or ``1`` keeps everything.
    connectivity : int
        Neighbours that connect pixels into one object (see :func:`label_objects`);
        1 (4-neighbours in 2-D) is skimage's default and what the paper used.

    Returns
    -------
    numpy.ndarray of bool
        A new mask of the same shape.

    Raises
    ------
    ArtsegInputError
        ``min_size`` is negative or not an integer, or ``connectivity`` is out of range.

    See Also
    --------
    skimage.morphology.remove_small_objects : the function this wraps (paper section 2.3.3).

    Examples
    --------
    >>> mask = np.array([[1, 1, 0, 1],
    ...                  [1, 0, 0, 0]], dtype=bool)
    >>> remove_small(mask, 2).astype(int)
    array([[1, 1, 0, 0],
           [1, 0, 0, 0]])
    """
    mask = np.asarray(mask) != 0
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 0:
        raise ArtsegInputError(f"min_size must be an integer >= 0, got {min_size!r}")
    _check_connectivity(connectivity, mask.ndim)
    if min_size <= 1:
        return mask.copy()
    if _SKIMAGE_HAS_MAX_SIZE:
        return remove_small_objects(mask, max_size=int(min_size) - 1, connectivity=connectivity)
    return remove_small_objects(mask, min_size=int(min_size), connectivity=connectivity)


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
    # metrics measures what this module produces, so it imports us; importing it here breaks the cycle.
    from artseg.metrics import iou_after_size_filter, pr_curve

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
    from artseg.metrics import iou_after_size_filter  # see search_cutoff

    table = iou_after_size_filter(prob_or_masks, true_masks, cutoff, sizes=sizes, connectivity=connectivity)
    best = int(np.argmax(table["iou"].to_numpy()))
    return int(table["min_size"].iloc[best]), float(table["iou"].iloc[best])
