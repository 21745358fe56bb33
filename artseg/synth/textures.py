"""Random textures: smooth noise fields and band-pass granularity.

All functions draw from the generator they are given and return float32 arrays with
zero mean and unit standard deviation, so callers scale them by a physical amplitude.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["bandpass_noise", "smooth_noise"]


def _standardize(values: np.ndarray) -> np.ndarray:
    values = values - values.mean()
    spread = values.std()
    return (values / spread if spread > 0 else values).astype(np.float32)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], correlation_length: float) -> np.ndarray:
    """Gaussian-like random field with features about ``correlation_length`` pixels wide.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    shape : tuple of int
        ``(H, W)`` of the output.
    correlation_length : float
        Typical feature size in pixels.

    Returns
    -------
    numpy.ndarray
        float32 ``shape``, zero mean, unit standard deviation.

    Notes
    -----
    Long correlation lengths are made by Gaussian-kernel interpolation of a coarse
    white-noise grid (two small matrix products), so the cost does not grow with the
    feature size as a direct Gaussian filter's would.
    """
    height, width = shape
    if correlation_length <= 3.0:
        white = rng.standard_normal(shape, dtype=np.float32)
        return _standardize(ndimage.gaussian_filter(white, correlation_length / 2.0))
    step = correlation_length / 1.5
    rows = _interpolation_matrix(height, step)
    cols = _interpolation_matrix(width, step)
    coarse = rng.standard_normal((rows.shape[1], cols.shape[1]))
    # einsum's own loops: BLAS threads cost far more than these small products.
    row_smoothed = np.einsum("ij,jk->ik", rows, coarse)
    return _standardize(np.einsum("ik,lk->il", row_smoothed, cols))


def _interpolation_matrix(length: int, step: float) -> np.ndarray:
    """Weights of coarse grid nodes (``step`` apart, 2 nodes of margin) for each output pixel."""
    nodes = (np.arange(int(np.ceil(length / step)) + 5) - 2) * step
    offsets = (np.arange(length)[:, None] - nodes[None, :]) / (0.6 * step)
    return np.exp(-0.5 * offsets**2)


def bandpass_noise(rng: np.random.Generator, shape: tuple[int, int], fine: float, coarse: float) -> np.ndarray:
    """Granular texture: white noise band-passed between two Gaussian scales (pixels).

    Returns
    -------
    numpy.ndarray
        float32 ``shape``, zero mean, unit standard deviation.
    """
    white = rng.standard_normal(shape, dtype=np.float32)
    return _standardize(ndimage.gaussian_filter(white, fine) - ndimage.gaussian_filter(white, coarse))
