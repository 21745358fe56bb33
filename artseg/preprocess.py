"""Preprocessing of arrays: the one normaliser and the one resizer of images and masks."""

from __future__ import annotations

import numpy as np

from artseg.errors import ArtsegInputError

__all__ = ["normalize_image", "normalize_percentile", "resize_image", "resize_mask"]


def normalize_percentile(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """Scale a whole image so its ``low`` and ``high`` percentiles map to 0 and 1.

    Computed on the whole image, so call it before tiling: tiles of one image then
    share one scaling and tiled predictions agree with whole-image ones.

    Parameters
    ----------
    image : numpy.ndarray
        Any-shaped numeric array; non-finite values are ignored for the percentiles.
    low, high : float
        Percentiles (0-100, ``low < high``).

    Returns
    -------
    numpy.ndarray
        float32, ~[0, 1] (values beyond the percentiles are not clipped). A flat
        image (both percentiles equal) becomes all zeros instead of dividing by zero.

    Examples
    --------
    >>> import numpy as np
    >>> out = normalize_percentile(np.arange(101, dtype=np.uint16), 0, 100)
    >>> float(out.min()), float(out.max())
    (0.0, 1.0)
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}")
    values = np.asarray(image, dtype=np.float32)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros_like(values)
    lo, hi = np.percentile(finite, [low, high])
    span = hi - lo
    if not span > np.finfo(np.float32).eps * max(abs(lo), abs(hi), 1.0):
        return np.where(np.isfinite(values), 0.0, values).astype(np.float32)
    return ((values - lo) / span).astype(np.float32)



def normalize_image(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """:func:`normalize_percentile` of a 2-D grey image (a leading axis of one is dropped).

    Raises
    ------
    ArtsegInputError
        The image is not 2-D (or 1×H×W) or is empty.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 2 or min(image.shape) < 1:
        raise ArtsegInputError(f"expected a 2-D grey image, got shape {image.shape}")
    return normalize_percentile(image, low, high)


def resize_image(image: np.ndarray, shape: tuple[int, int], *, antialias: str = "always") -> np.ndarray:
    """Bilinear resize of a 2-D image to float32.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image.
    shape : (int, int)
        Output shape.
    antialias : {"always", "when_shrinking"}
        torch's antialiased bilinear kernel on every resize (the segmenters' rule since they
        were first trained), or only when a side shrinks (the comparison's anomaly detectors).
        When enlarging the two differ by float rounding only (about 1e-6), but a model keeps
        the rule it was trained with so that it predicts exactly as it did.

    Examples
    --------
    >>> import numpy as np
    >>> resize_image(np.ones((4, 6)), (2, 3)).shape
    (2, 3)
    """
    import torch  # here, not at the top: readers and the CLI import this module without torch
    import torch.nn.functional as F

    if antialias not in ("always", "when_shrinking"):
        raise ValueError(f"antialias must be 'always' or 'when_shrinking', got {antialias!r}")
    image = np.asarray(image, dtype=np.float32)
    shape = tuple(int(side) for side in shape)
    if image.shape == shape:
        return image.copy()
    tensor = torch.from_numpy(np.ascontiguousarray(image))[None, None]
    smooth = antialias == "always" or shape[0] < image.shape[0] or shape[1] < image.shape[1]
    out = F.interpolate(tensor, size=shape, mode="bilinear", align_corners=False, antialias=smooth)
    return out[0, 0].numpy()


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a 2-D boolean mask."""
    import torch
    import torch.nn.functional as F

    mask = np.asarray(mask, dtype=bool)
    shape = tuple(int(side) for side in shape)
    if mask.shape == shape:
        return mask.copy()
    tensor = torch.from_numpy(mask.astype(np.uint8))[None, None].float()
    return F.interpolate(tensor, size=shape, mode="nearest-exact")[0, 0].numpy() > 0.5
