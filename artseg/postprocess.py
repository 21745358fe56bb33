"""Post-processing of artifact probability maps: threshold, label objects, drop small ones.

The paper (section 2.3.3) binarizes each model's probability map at a cutoff chosen to
maximise pixel-wise IoU on validation data, then removes objects smaller than a size
chosen the same way (``skimage.morphology.remove_small_objects``). These are the pure
array functions for those steps; the searches that choose the cutoff and size are
:mod:`artseg.calibration`.

Conventions shared with :mod:`artseg.metrics`, which measures exactly what these
functions produce:

- a pixel is foreground when its probability is strictly greater than the cutoff,
  compared in float64 (so a float32 map and a Python float cutoff agree everywhere);
- objects are connected components with ``connectivity=1`` (4-neighbours in 2-D) by
  default, as in skimage; an object with exactly ``min_size`` pixels is kept.
"""

from __future__ import annotations

import inspect

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import remove_small_objects

from artseg.errors import ArtsegInputError

__all__ = ["binarize", "label_objects", "remove_small"]

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
