"""From optical path to camera counts: phase-contrast imaging, uneven illumination, a noisy sensor.

Phase contrast is modelled, to first order, as intensity falling with the optical path minus its
local mean over the halo width (Zernike's phase ring passes the low spatial frequencies
unshifted): objects denser than their surroundings turn dark and shed a bright halo, and the
gaps between confluent cells shine. Illumination is a tilted, vignetted field with a slow
mottle. The sensor adds shot noise (Gaussian limit of Poisson, in electrons), read noise, a column pattern and an
offset, and clips to a 12- or 16-bit range.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .textures import smooth_noise

FULL_SCALE = {12: 4095, 16: 65535}


def phase_contrast(phase: np.ndarray, *, halo_sigma: float, strength: float) -> np.ndarray:
    """Relative intensity of a phase object: ``1 - strength * (phase - local mean of phase)``.

    Examples
    --------
    >>> disc = np.zeros((33, 33)); disc[12:21, 12:21] = 1.0
    >>> image = phase_contrast(disc, halo_sigma=4.0, strength=0.6)
    >>> bool(image[16, 16] < 1.0 < image[16, 23])   # dark object, bright halo beside it
    True
    """
    local_mean = ndimage.gaussian_filter(phase, halo_sigma, mode="reflect")
    return np.clip(1.0 - strength * (phase - local_mean), 0.05, None)


def illumination(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Relative illumination: vignetting about an off-centre point, a tilt and a slow mottle (mean ~1)."""
    height, width = shape
    rows, cols = np.indices(shape, dtype=np.float64)
    centre = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
    reach = np.hypot(height, width)
    vignette = 1.0 - rng.uniform(0.05, 0.3) * (np.hypot(rows - centre[0], cols - centre[1]) / reach) ** 2 * 4
    direction = rng.uniform(0, 2 * np.pi)
    tilt = rng.uniform(-0.15, 0.15) * ((cols - width / 2) * np.cos(direction)
                                       + (rows - height / 2) * np.sin(direction)) / max(height, width)
    mottle = rng.uniform(0.01, 0.05) * smooth_noise(rng, shape, max(height, width) / 5)
    return np.clip(vignette + tilt + mottle, 0.2, None)


def camera(rng: np.random.Generator, relative: np.ndarray, *, bit_depth: int = 12) -> np.ndarray:
    """Record relative intensity on a sensor: uint16 counts within ``bit_depth`` bits.

    Parameters
    ----------
    rng : numpy.random.Generator
        The field's camera stream.
    relative : numpy.ndarray
        Relative intensity (mean ~1).
    bit_depth : {12, 16}
        The converter's range: 0..4095 or 0..65535.
    """
    full = FULL_SCALE[bit_depth]
    offset = 0.025 * full
    exposure = rng.uniform(0.3, 0.6) * full
    electrons_per_count = rng.uniform(2.0, 5.0) * (4095 / full) ** 0.5
    electrons = np.clip(relative, 0.0, None) * exposure * electrons_per_count
    # shot noise in its Gaussian limit (thousands of electrons a pixel): one normal draw per pixel,
    # so a field drawn with and without artifacts gets the same noise wherever the signal is the same
    electrons = electrons + np.sqrt(electrons) * rng.standard_normal(relative.shape)
    counts = electrons / electrons_per_count
    counts = counts + rng.normal(0.0, rng.uniform(1.0, 3.0) * full / 4095, relative.shape)
    counts = counts + rng.normal(0.0, 0.003 * exposure, (1, relative.shape[1]))  # column pattern
    return np.clip(np.rint(counts + offset), 0, full).astype(np.uint16)
