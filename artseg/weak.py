"""Better pseudo-labels from image-level supervision (issue 4).

Pure functions on arrays that turn coarse Score-CAM maps into sharper pseudo-masks and
update them during self-training. None of them sees a pixel label: their inputs are the
normalised image, its Score-CAM map and (for self-training) the U-Net's own probability.

- :func:`adaptive_cutoff`: a per-image pseudo-label cut-off from the map's own statistics
  (Otsu or a percentile) instead of the paper's fixed 0.05 (§2.3.1).
- :func:`refine_to_superpixels`: snap a coarse mask to image edges with SLIC superpixels,
  dropping swallowed background.
- :func:`self_training_labels`: next-round labels = confident U-Net pixels inside the
  dilated Score-CAM region; :func:`clean_image_confidence` chooses "confident" from the
  U-Net's probabilities on clean images.
- :func:`partial_targets`: negative / positive / unknown pixel labels for the
  multiple-instance U-Net loss (:mod:`artseg.losses`).
- :func:`local_deviation`: ``|image - local background|``, the intensity-threshold baseline.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.segmentation import slic

from artseg.errors import ArtsegInputError

CUTOFF_METHODS = ("fixed", "otsu", "percentile")


def _as_2d_float(array, name: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 2 or min(array.shape) < 1:
        raise ArtsegInputError(f"{name}: expected a non-empty 2-D array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ArtsegInputError(f"{name}: contains NaN or infinite values")
    return array


def adaptive_cutoff(cam_map: np.ndarray, method: str = "otsu", *, fixed: float = 0.05,
                    percentile: float = 90.0, floor: float = 0.0) -> float:
    """Pseudo-label cut-off of one Score-CAM map chosen from the map's own values.

    Parameters
    ----------
    cam_map : numpy.ndarray
        2-D map in [0, 1].
    method : {"fixed", "otsu", "percentile"}, default "otsu"
        ``"fixed"`` returns `fixed` (the paper's 0.05, §2.3.1); ``"otsu"`` the threshold
        that best separates the map's two intensity modes (Otsu 1979); ``"percentile"``
        the `percentile`-th percentile of the map.
    fixed : float, default 0.05
    percentile : float, default 90.0
    floor : float, default 0.0
        The cut-off is never below this value (guards against near-empty maps).

    Returns
    -------
    float
        Pixels with ``cam_map > cutoff`` are pseudo-mask pixels.

    Raises
    ------
    ArtsegInputError
        Unknown `method`, a map that is not 2-D, or non-finite values.

    Examples
    --------
    >>> cam = np.zeros((8, 8)); cam[:, 4:] = 0.8
    >>> 0.0 <= adaptive_cutoff(cam) < 0.8
    True
    """
    cam_map = _as_2d_float(cam_map, "cam_map")
    if method == "fixed":
        cutoff = float(fixed)
    elif method == "otsu":
        cutoff = _exact_otsu(cam_map)
    elif method == "percentile":
        if not 0.0 <= percentile <= 100.0:
            raise ArtsegInputError(f"percentile must be in [0, 100], got {percentile}")
        cutoff = float(np.percentile(cam_map, percentile))
    else:
        raise ArtsegInputError(f"pseudo-label cut-off method must be one of {CUTOFF_METHODS}, got {method!r}")
    return max(cutoff, float(floor))


def _exact_otsu(values: np.ndarray) -> float:
    """Otsu's threshold over the exact sorted values (no histogram bins), mid-gap.

    Binned Otsu (``skimage.filters.threshold_otsu``) can put the cut-off inside a bin
    that holds values of both modes; splitting between consecutive distinct values cannot.
    """
    ordered = np.sort(values, axis=None).astype(np.float64)
    if ordered[0] == ordered[-1]:
        return float(ordered[0])  # constant map: any cut-off gives the same mask
    splits = np.flatnonzero(np.diff(ordered) > 0)  # split after index i: [0..i] | [i+1..]
    count_low = splits + 1.0
    total = ordered.sum()
    sum_low = np.cumsum(ordered)[splits]
    mean_low = sum_low / count_low
    mean_high = (total - sum_low) / (ordered.size - count_low)
    between = count_low * (ordered.size - count_low) * (mean_low - mean_high) ** 2
    best = splits[int(np.argmax(between))]
    return float(0.5 * (ordered[best] + ordered[best + 1]))


def refine_to_superpixels(image: np.ndarray, coarse_mask: np.ndarray, *, n_segments: int = 400,
                          compactness: float = 0.1, min_fraction: float = 0.5,
                          contrast_quantile: float = 0.9) -> np.ndarray:
    """Snap a coarse mask to image edges: keep SLIC superpixels inside it that stand out.

    A superpixel is kept when (1) at least `min_fraction` of it lies in `coarse_mask` and
    (2) its mean intensity differs from the image's background level (median of the
    pixels outside `coarse_mask`) by more than the `contrast_quantile` of that difference
    over the superpixels outside `coarse_mask`. So background that Score-CAM's coarse,
    over-inclusive region swallowed is dropped, and the kept region follows edges.

    Parameters
    ----------
    image : numpy.ndarray
        Normalised 2-D grey image.
    coarse_mask : numpy.ndarray
        2-D bool mask of the same shape (e.g. a thresholded Score-CAM map).
    n_segments : int, default 400
        Approximate number of SLIC superpixels (Achanta et al. 2012).
    compactness : float, default 0.1
        SLIC compactness for a single-channel image in ~[0, 1]; small values follow edges.
    min_fraction : float, default 0.5
        Least fraction of a kept superpixel inside `coarse_mask`.
    contrast_quantile : float, default 0.9
        Quantile of the outside superpixels' contrast a kept superpixel must exceed;
        0 keeps every superpixel passing (1).

    Returns
    -------
    numpy.ndarray
        bool mask, a union of superpixels (empty when `coarse_mask` is empty).

    Raises
    ------
    ArtsegInputError
        Shapes differ, or `min_fraction` / `contrast_quantile` out of range.
    """
    image = _as_2d_float(image, "image")
    coarse_mask = np.asarray(coarse_mask, dtype=bool)
    if coarse_mask.shape != image.shape:
        raise ArtsegInputError(f"coarse_mask shape {coarse_mask.shape} differs from image shape {image.shape}")
    if not 0.0 < min_fraction <= 1.0:
        raise ArtsegInputError(f"min_fraction must be in (0, 1], got {min_fraction}")
    if not 0.0 <= contrast_quantile <= 1.0:
        raise ArtsegInputError(f"contrast_quantile must be in [0, 1], got {contrast_quantile}")
    if not coarse_mask.any():
        return coarse_mask.copy()
    segments = slic(image, n_segments=int(n_segments), compactness=compactness, channel_axis=None,
                    start_label=0, enforce_connectivity=True)
    n_labels = segments.max() + 1
    sizes = np.maximum(np.bincount(segments.ravel(), minlength=n_labels), 1)
    coverage = np.bincount(segments.ravel(), weights=coarse_mask.ravel(), minlength=n_labels) / sizes
    means = np.bincount(segments.ravel(), weights=image.ravel(), minlength=n_labels) / sizes
    outside = ~coarse_mask
    background_level = float(np.median(image[outside])) if outside.any() else float(np.median(image))
    contrast = np.abs(means - background_level)
    candidates = coverage >= min_fraction
    reference = contrast[(coverage < min_fraction) & (np.bincount(segments.ravel(), minlength=n_labels) > 0)]
    threshold = float(np.quantile(reference, contrast_quantile)) if reference.size else -np.inf
    keep = candidates & (contrast > threshold)
    return keep[segments]


def self_training_labels(unet_probability: np.ndarray, cam_region: np.ndarray, *, confidence: float = 0.5,
                         dilation: int = 8) -> np.ndarray:
    """Next self-training round's pseudo-mask: confident U-Net pixels in the dilated CAM region.

    Parameters
    ----------
    unet_probability : numpy.ndarray
        2-D U-Net artifact probability of an artifact-labelled image.
    cam_region : numpy.ndarray
        2-D bool region where Score-CAM located the artifact (the previous pseudo-mask).
    confidence : float, default 0.5
        Pixels at or above this probability are labelled artifact.
    dilation : int, default 8
        Radius (pixels) by which `cam_region` is grown; predictions outside it are dropped,
        so self-training cannot drift to regions the classifier never pointed at.

    Returns
    -------
    numpy.ndarray
        bool mask ``(unet_probability >= confidence) & dilate(cam_region, dilation)``.

    Raises
    ------
    ArtsegInputError
        Shapes differ, `confidence` outside [0, 1] or negative `dilation`.
    """
    unet_probability = _as_2d_float(unet_probability, "unet_probability")
    cam_region = np.asarray(cam_region, dtype=bool)
    if cam_region.shape != unet_probability.shape:
        raise ArtsegInputError(
            f"cam_region shape {cam_region.shape} differs from probability shape {unet_probability.shape}"
        )
    if not 0.0 <= confidence <= 1.0:
        raise ArtsegInputError(f"confidence must be in [0, 1], got {confidence}")
    if dilation < 0:
        raise ArtsegInputError(f"dilation must be >= 0, got {dilation}")
    region = cam_region
    if dilation > 0 and region.any():
        radius = int(dilation)
        yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
        region = ndimage.binary_dilation(region, structure=yy**2 + xx**2 <= radius**2)
    return (unet_probability >= confidence) & region


def clean_image_confidence(clean_probabilities, *, quantile: float = 0.999) -> float:
    """Self-training cut-off from the U-Net's probabilities on clean images.

    Clean images hold no artifact pixel, so the ``quantile`` of their probabilities is a
    cut-off that almost no clean pixel reaches; pixels of artifact images above it are
    more artifact-like than (nearly) anything the U-Net sees where there is none. Unlike a
    fixed number it follows the U-Net's calibration, which differs from run to run.

    Parameters
    ----------
    clean_probabilities : sequence of numpy.ndarray
        U-Net artifact probability maps of clean (label 0) training images.
    quantile : float, default 0.999
        Share of clean pixels below the cut-off, in (0, 1].

    Returns
    -------
    float
        The cut-off, in [0, 1].

    Raises
    ------
    ArtsegInputError
        No clean image or `quantile` outside (0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> clean = [np.linspace(0, 0.2, 1001, dtype=np.float32).reshape(7, 143)]
    >>> round(clean_image_confidence(clean, quantile=0.5), 3)
    0.1
    """
    if not 0.0 < quantile <= 1.0:
        raise ArtsegInputError(f"quantile must be in (0, 1], got {quantile}")
    maps = [_as_2d_float(probability, "clean probability").ravel() for probability in clean_probabilities]
    if not maps:
        raise ArtsegInputError("self-training at the clean-image quantile needs clean training images")
    return float(np.clip(np.quantile(np.concatenate(maps), quantile), 0.0, 1.0))


def partial_targets(cam_map: np.ndarray, *, region_cutoff: float = 0.05,
                    core: np.ndarray | None = None) -> np.ndarray:
    """Partial pixel labels of an artifact-labelled image for :func:`artseg.losses.partial_mil_loss`.

    Parameters
    ----------
    cam_map : numpy.ndarray
        2-D Score-CAM map in [0, 1] at the U-Net's working size.
    region_cutoff : float, default 0.05
        Pixels with ``cam_map > region_cutoff`` may hold the artifact (the paper's
        pseudo-mask); the rest are labelled negative.
    core : numpy.ndarray, optional
        bool pixels inside the region confident enough to label positive (e.g. a refined
        pseudo-mask); ``None`` labels none.

    Returns
    -------
    numpy.ndarray
        uint8 map: 0 negative, 1 positive, 2 unknown.

    Examples
    --------
    >>> partial_targets(np.array([[0.0, 0.3, 0.9]]), core=np.array([[False, False, True]])).tolist()
    [[0, 2, 1]]
    """
    cam_map = _as_2d_float(cam_map, "cam_map")
    targets = np.where(cam_map > region_cutoff, 2, 0).astype(np.uint8)
    if core is not None:
        core = np.asarray(core, dtype=bool)
        if core.shape != cam_map.shape:
            raise ArtsegInputError(f"core shape {core.shape} differs from cam_map shape {cam_map.shape}")
        targets[core & (targets == 2)] = 1
    return targets


def local_deviation(image: np.ndarray, *, background_sigma: float = 16.0) -> np.ndarray:
    """``|image - local background|``, the intensity-threshold artifact baseline.

    Parameters
    ----------
    image : numpy.ndarray
        Normalised 2-D grey image.
    background_sigma : float, default 16.0
        Gaussian width (pixels) of the local background estimate.

    Returns
    -------
    numpy.ndarray
        float32 map, the same shape as `image`; threshold it for a mask.
    """
    image = _as_2d_float(image, "image")
    if background_sigma <= 0:
        raise ArtsegInputError(f"background_sigma must be positive, got {background_sigma}")
    background = ndimage.gaussian_filter(image, background_sigma, mode="reflect")
    return np.abs(image - background).astype(np.float32)
