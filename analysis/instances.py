"""Instance labels from a nuclear stain or from a foreground probability map.

The paper's nuclei model (its reference [4]) was trained on brightfield images with labels
derived from a fluorescent nuclear stain; instances are split with a distance transform
and a watershed. Both steps are pure functions here.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.filters import gaussian, threshold_otsu
from skimage.segmentation import relabel_sequential, watershed

from artseg.postprocess import remove_small


def split_instances(
    foreground: np.ndarray, *, min_distance: int = 4, min_size: int = 10, smooth: float = 1.0
) -> np.ndarray:
    """Split a binary foreground into touching objects with a distance-transform watershed.

    Parameters
    ----------
    foreground : ndarray of bool, shape (H, W)
    min_distance : int
        Minimum distance in pixels between two object centres (seed peaks).
    min_size : int
        Objects with fewer pixels are removed before splitting.
    smooth : float
        Gaussian sigma applied to the distance map, which suppresses spurious seeds on
        ragged outlines.

    Returns
    -------
    ndarray of int32, shape (H, W)
        Instance labels, 0 = background, consecutive from 1.
    """
    mask = remove_small(np.asarray(foreground, dtype=bool), min_size)
    if not mask.any():
        return np.zeros(mask.shape, dtype=np.int32)
    distance = ndi.distance_transform_edt(mask)
    if smooth > 0:
        distance = ndi.gaussian_filter(distance, smooth)
    components, _ = ndi.label(mask)
    peaks = peak_local_max(
        distance, min_distance=min_distance, labels=components, exclude_border=False
    )
    markers = np.zeros(mask.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    # Components without a peak (tiny or flat) still get one marker each.
    missing = np.setdiff1d(np.unique(components[mask]), np.unique(components[markers > 0]))
    for component in missing:
        r, c = np.argwhere(components == component)[0]
        markers[r, c] = markers.max() + 1
    labels = watershed(-distance, markers, mask=mask)
    return relabel_sequential(labels.astype(np.int32))[0]


def nuclei_from_stain(
    stain: np.ndarray, *, sigma: float = 1.0, min_distance: int = 4, min_size: int = 10
) -> np.ndarray:
    """Derive nuclei instance labels from a nuclear-stain fluorescence image.

    Smooths the stain, thresholds it with Otsu's method and splits touching nuclei with
    :func:`split_instances`. These labels stand in for manual annotation when training a
    brightfield nuclei model, as in the paper's reference [4].

    Parameters
    ----------
    stain : ndarray, shape (H, W)
        Nuclear-stain image (any dtype).
    sigma : float
        Gaussian smoothing before thresholding.
    min_distance, min_size : int
        Passed to :func:`split_instances`.

    Returns
    -------
    ndarray of int32, shape (H, W)
    """
    image = gaussian(np.asarray(stain, dtype=np.float32), sigma=sigma, preserve_range=True)
    if float(image.max()) == float(image.min()):
        return np.zeros(image.shape, dtype=np.int32)
    foreground = image > threshold_otsu(image)
    return split_instances(foreground, min_distance=min_distance, min_size=min_size)

