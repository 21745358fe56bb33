"""Random fields and small shapes the held-out look is drawn with (its own; nothing from ``artseg.synth``)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise scaled to zero mean and unit standard deviation.

    Examples
    --------
    >>> field = smooth_noise(np.random.default_rng(0), (32, 32), 3.0)
    >>> round(float(field.std()), 6)
    1.0
    """
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    spread = field.std()
    return ((field - field.mean()) / spread if spread > 0 else field).astype(np.float64)


def granules(rng: np.random.Generator, shape: tuple[int, int], fine: float = 0.8, coarse: float = 2.5) -> np.ndarray:
    """Band-pass noise (difference of two blurs): the grain of cytoplasm, unit standard deviation."""
    white = rng.standard_normal(shape)
    band = ndimage.gaussian_filter(white, fine, mode="wrap") - ndimage.gaussian_filter(white, coarse, mode="wrap")
    return band / max(float(band.std()), 1e-12)


def dots(shape: tuple[int, int], centres: np.ndarray, weights: np.ndarray, sigma: float) -> np.ndarray:
    """Sum of Gaussian blobs of peak ``weight`` at ``centres`` (row, col), drawn by blurring impulses."""
    impulses = np.zeros(shape)
    if len(centres):
        rows = np.clip(np.rint(centres[:, 0]).astype(int), 0, shape[0] - 1)
        cols = np.clip(np.rint(centres[:, 1]).astype(int), 0, shape[1] - 1)
        np.add.at(impulses, (rows, cols), weights)
    return ndimage.gaussian_filter(impulses, sigma, mode="constant") * (2 * np.pi * sigma**2)


def elliptic_radius(shape: tuple[int, int], centre, radius: float, aspect: float = 1.0,
                    angle: float = 0.0) -> np.ndarray:
    """Distance from ``centre`` in units of ``radius`` along an ellipse's axes (1.0 on its outline)."""
    rows, cols = np.indices(shape, dtype=np.float64)
    dy, dx = rows - centre[0], cols - centre[1]
    along = dx * np.cos(angle) + dy * np.sin(angle)
    across = -dx * np.sin(angle) + dy * np.cos(angle)
    return np.hypot(along / (radius * aspect), across / radius)


def bump(x: np.ndarray, centre: float, width: float) -> np.ndarray:
    """Smooth 0..1 bump of half-width ``width`` around ``centre`` (a raised cosine)."""
    t = np.clip(np.abs(x - centre) / width, 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * t))
