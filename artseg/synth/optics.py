"""Brightfield image formation: phase halos, absorption, illumination and the camera.

A slightly defocused brightfield microscope turns the optical thickness of transparent
cells into intensity through its curvature (transport-of-intensity: ``I ~ I0 (1 + k
laplacian(phase))``), which gives each cell a dark rim just inside its edge and a bright
halo just outside. Absorption multiplies by ``exp(-absorbance)``. Illumination is a smooth
polynomial times a vignette; the camera adds Poisson-Gaussian noise, gain and offset.
Every field gets its own exposure, gain, offset, focus and illumination, so global
intensity statistics say little about the sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from artseg.synth.artifacts import ArtifactLayers
from artseg.synth.cells import CellLayers
from artseg.synth.textures import smooth_noise

__all__ = [
    "BrightfieldImaging",
    "Illumination",
    "camera",
    "illumination_field",
    "laplacian_of_gaussian",
    "render_brightfield",
    "sample_brightfield_imaging",
    "sample_illumination",
]


@dataclass(frozen=True)
class Illumination:
    """Smooth illumination: ``1 + c . (x, y, x^2, y^2, xy)`` times a radial vignette.

    Coordinates run over [-1, 1] across the field; the vignette is
    ``1 - strength * r^2 / 8`` around ``center``, so the far corner of a field whose
    vignette is centred on the opposite corner keeps ``1 - strength`` of the light.
    """

    coefficients: tuple[float, float, float, float, float]
    vignette_strength: float
    vignette_center: tuple[float, float]


@dataclass(frozen=True)
class BrightfieldImaging:
    """Acquisition settings of one brightfield field.

    Attributes
    ----------
    exposure_electrons : float
        Photo-electrons per pixel of empty background at unit illumination.
    adu_per_electron, offset, read_noise : float
        Camera gain, dark offset (ADU) and read noise (electrons).
    phase_contrast : float
        Gain on the Laplacian of optical thickness (how far from focus).
    halo_sigma : float
        Scale (px) of that Laplacian: the width of halos and rims.
    blur_sigma : float
        Residual optical blur (px).
    mottle_amplitude, mottle_length : float
        Optical density and feature size (px) of faint background unevenness
        (medium, plate bottom, condenser dirt).
    illumination : Illumination
    """

    exposure_electrons: float
    adu_per_electron: float
    offset: float
    read_noise: float
    phase_contrast: float
    halo_sigma: float
    blur_sigma: float
    mottle_amplitude: float
    mottle_length: float
    illumination: Illumination


def sample_illumination(rng: np.random.Generator, strength: float = 1.0) -> Illumination:
    """Draw a smooth illumination pattern; ``strength`` scales its non-uniformity."""
    coefficients = tuple(float(c) for c in rng.normal(0.0, 0.04 * strength, 5))
    return Illumination(
        coefficients=coefficients,
        vignette_strength=float(rng.uniform(0.0, 0.3) * strength),
        vignette_center=(float(rng.uniform(-1.0, 1.0)), float(rng.uniform(-1.0, 1.0))),
    )


def illumination_field(shape: tuple[int, int], illumination: Illumination) -> np.ndarray:
    """Evaluate an :class:`Illumination` on a ``(H, W)`` grid (float32, >= 0.2)."""
    height, width = shape
    y = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    a, b, c, d, e = illumination.coefficients
    polynomial = 1.0 + a * x + b * y + c * x * x + d * y * y + e * x * y
    cy, cx = illumination.vignette_center
    vignette = 1.0 - illumination.vignette_strength * ((y - cy) ** 2 + (x - cx) ** 2) / 8.0
    return np.maximum(polynomial * np.clip(vignette, 0.2, None), 0.2).astype(np.float32)


def sample_brightfield_imaging(rng: np.random.Generator, *, live_cells: bool = False) -> BrightfieldImaging:
    """Draw per-field acquisition settings.

    Exposure and camera gain vary several-fold between fields (different plates, lamp
    ageing, auto-exposure); focus varies the halo strength by about +-35 %.
    """
    exposure = float(max(rng.lognormal(np.log(5000.0), 0.7), 500.0))
    gain = float(rng.uniform(0.8, 3.0))
    # Keep the brightest expected pixels well below 16-bit saturation.
    gain = min(gain, 28_000.0 / exposure)
    return BrightfieldImaging(
        exposure_electrons=exposure,
        adu_per_electron=gain,
        offset=float(rng.uniform(100.0, 3000.0)),
        read_noise=float(rng.uniform(2.0, 12.0)),
        phase_contrast=float(rng.lognormal(0.0, 0.5) * (0.9 if live_cells else 0.7)),
        halo_sigma=float(rng.uniform(1.3, 2.1)),
        blur_sigma=float(rng.uniform(0.3, 0.9)),
        mottle_amplitude=float(rng.uniform(0.002, 0.02)),
        mottle_length=float(rng.uniform(15.0, 80.0)),
        illumination=sample_illumination(rng),
    )


def camera(
    rng: np.random.Generator,
    expected_electrons: np.ndarray,
    *,
    adu_per_electron: float,
    offset: float,
    read_noise: float,
) -> np.ndarray:
    """Photon shot noise, read noise, gain and offset, quantised to uint16.

    Shot noise uses the normal approximation of the Poisson distribution (variance =
    mean), accurate at the photo-electron counts of microscopy cameras.
    """
    electrons = np.maximum(expected_electrons, 0.0).astype(np.float32)
    noise = np.sqrt(electrons) * rng.standard_normal(electrons.shape, dtype=np.float32)
    noise += np.float32(read_noise) * rng.standard_normal(electrons.shape, dtype=np.float32)
    values = np.float32(offset) + np.float32(adu_per_electron) * (electrons + noise)
    return np.clip(np.rint(values), 0, 65535).astype(np.uint16)


def laplacian_of_gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing followed by the 5-point discrete Laplacian (edges replicated).

    Two separable passes instead of the four of :func:`scipy.ndimage.gaussian_laplace`.
    """
    smooth = ndimage.gaussian_filter(np.asarray(image, np.float32), sigma)
    padded = np.pad(smooth, 1, mode="edge")
    return (
        padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:] - 4.0 * smooth
    ).astype(np.float32)


def render_brightfield(
    rng: np.random.Generator,
    cells: CellLayers,
    artifacts: ArtifactLayers,
    imaging: BrightfieldImaging,
) -> np.ndarray:
    """Form the 16-bit brightfield image of cells under artifacts.

    Parameters
    ----------
    rng : numpy.random.Generator
        Camera noise.
    cells : CellLayers
        Optical thickness and absorbance of the cells.
    artifacts : ArtifactLayers
        Artifacts hide the cells beneath them (occlusion) and add their own optics.
    imaging : BrightfieldImaging
        Acquisition settings.

    Returns
    -------
    numpy.ndarray
        uint16 ``(H, W)``.

    Notes
    -----
    ``I = E * illumination * exp(-A) * (1 + k * s^2 * LoG_s(T))`` with ``T`` and ``A`` the
    thickness and absorbance of visible cells plus artifacts, ``LoG_s`` the Laplacian of
    Gaussian at scale ``s`` (scale-normalised by ``s^2``), then blur and camera noise.
    """
    visible = 1.0 - artifacts.occlusion
    thickness = cells.thickness * visible + artifacts.thickness
    absorbance = cells.absorbance * visible + artifacts.absorbance
    absorbance = absorbance + np.float32(imaging.mottle_amplitude) * smooth_noise(rng, absorbance.shape, imaging.mottle_length)
    sigma = imaging.halo_sigma
    curvature = laplacian_of_gaussian(thickness, sigma) * np.float32(sigma * sigma)
    relative = np.exp(-absorbance) * (1.0 + np.float32(imaging.phase_contrast) * curvature)
    if imaging.blur_sigma > 0:
        relative = ndimage.gaussian_filter(relative, imaging.blur_sigma)
    relative = np.maximum(relative, 0.02)
    expected = np.float32(imaging.exposure_electrons) * illumination_field(relative.shape, imaging.illumination) * relative
    return camera(
        rng,
        expected,
        adu_per_electron=imaging.adu_per_electron,
        offset=imaging.offset,
        read_noise=imaging.read_noise,
    )
