"""The fluorescence channel: a nuclear stain, or a fluorescent ligand bound to the membrane.

Seven cell lines and LNCaP carry a nuclear stain (Hoechst 33342, DRAQ5): bright nuclei on
a dark background. CHO-M4R cells bind the TAMRA-labelled ligand UR-CG072 at their
membrane (paper §2.1, §2.3.4): the cell signal is proportional to the bound ligand, on top
of the medium's own fluorescence. Artifacts either glow (autofluorescent debris, fibres,
dead-cell clumps) or block light (dust, bubbles, shadows), which biases both cell and
background intensities unless the artifacts are excluded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from artseg.synth.artifacts import ArtifactLayers
from artseg.synth.cells import CellLayers
from artseg.synth.optics import Illumination, camera, illumination_field, sample_illumination
from artseg.synth.textures import bandpass_noise

__all__ = [
    "LIGAND_ARTIFACT_GLOW",
    "FluorescenceImaging",
    "membrane_signal",
    "nuclear_signal",
    "render_fluorescence",
    "sample_fluorescence_imaging",
]

# Autofluorescence of a glowing artifact in the ligand channel, in units of a cell's
# top signal (debris and dead cells glow far brighter than specifically bound ligand).
# Calibrated on the default plate (benchmarks/bench_synth.py, true cell labels): LogIC50
# fitted without artifact removal differs from the fit with the true artifact masks
# excluded by ~0.28 log units with R^2 ~0.70 (paper §3.3.2: 0.29 and 0.74), while the
# masked fit stays within ~0.06 of the truth (glow 4 / 5 / 6 / 8 / 20: 0.20 / 0.24 / 0.28 /
# 0.35 / 1.45, R^2 0.81 / 0.76 / 0.70 / 0.60 / 0.30).
LIGAND_ARTIFACT_GLOW = 6.0


@dataclass(frozen=True)
class FluorescenceImaging:
    """Signal levels and acquisition settings of one fluorescence field (ADU above offset).

    Attributes
    ----------
    cell_signal : float
        Mean signal of a cell (membrane ligand) or nucleus (stain).
    cell_variation : float
        Log-normal sigma of the signal between cells.
    background : float
        Medium / unspecific background.
    autofluorescence : float
        Signal of an artifact of relative glow 1.
    offset, adu_per_electron, read_noise : float
        Camera dark offset (ADU), gain, read noise (electrons).
    psf_sigma : float
        Blur (px) of the fluorescence optics.
    illumination : Illumination
        Excitation non-uniformity.
    """

    cell_signal: float
    cell_variation: float
    background: float
    autofluorescence: float
    offset: float
    adu_per_electron: float
    read_noise: float
    psf_sigma: float
    illumination: Illumination

    def with_cell_signal(self, cell_signal: float) -> "FluorescenceImaging":
        """The same settings with another mean cell signal (one well of a plate)."""
        return replace(self, cell_signal=float(cell_signal))


def sample_fluorescence_imaging(rng: np.random.Generator, kind: str) -> FluorescenceImaging:
    """Draw per-field fluorescence settings for a ``"nuclear"`` or ``"membrane"`` channel."""
    if kind == "nuclear":
        signal = float(rng.lognormal(np.log(3000.0), 0.4))
        return FluorescenceImaging(
            cell_signal=signal,
            cell_variation=0.35,
            background=float(rng.uniform(0.01, 0.05) * signal),
            autofluorescence=signal,
            offset=float(rng.uniform(100.0, 500.0)),
            adu_per_electron=float(rng.uniform(0.5, 2.0)),
            read_noise=float(rng.uniform(2.0, 8.0)),
            psf_sigma=float(rng.uniform(0.8, 1.3)),
            illumination=sample_illumination(rng, 0.5),
        )
    if kind == "membrane":
        signal = float(rng.lognormal(np.log(800.0), 0.25))
        return FluorescenceImaging(
            cell_signal=signal,
            cell_variation=0.2,
            background=float(rng.uniform(0.3, 0.6) * signal),
            autofluorescence=LIGAND_ARTIFACT_GLOW * signal,
            offset=float(rng.uniform(100.0, 300.0)),
            adu_per_electron=1.0,
            read_noise=float(rng.uniform(2.0, 6.0)),
            psf_sigma=float(rng.uniform(1.0, 1.8)),
            illumination=sample_illumination(rng, 0.3),
        )
    raise ValueError(f"unknown fluorescence kind {kind!r} (nuclear or membrane)")


def _per_cell_levels(rng: np.random.Generator, n_labels: int, mean: float, sigma: float) -> np.ndarray:
    # mu = -sigma^2 / 2 keeps the mean level equal to ``mean``.
    levels = mean * rng.lognormal(-(sigma**2) / 2, sigma, n_labels)
    return np.append(0.0, levels).astype(np.float32)


def nuclear_signal(rng: np.random.Generator, cells: CellLayers, imaging: FluorescenceImaging) -> np.ndarray:
    """Stained nuclei: a per-nucleus level, brighter centre and chromatin texture (float32 ADU)."""
    levels = _per_cell_levels(rng, cells.cell_radius.size - 1, imaging.cell_signal, imaging.cell_variation)
    dome = np.sqrt(np.clip(1.0 - cells.nucleus_radial**2, 0.0, 1.0))
    chromatin = bandpass_noise(rng, cells.nuclei.shape, 0.7, 2.0)
    profile = np.where(cells.nuclei > 0, (0.7 + 0.3 * dome) * (1.0 + 0.15 * chromatin), 0.0)
    return (levels[cells.nuclei] * profile).astype(np.float32)


def membrane_signal(rng: np.random.Generator, cells: CellLayers, imaging: FluorescenceImaging) -> np.ndarray:
    """Membrane-bound ligand: a bright outline plus weaker body, per-cell mean = the cell's level.

    Each cell's profile is normalised to mean 1 over its pixels, so the mean cell intensity
    is exactly its bound-ligand level before blur and noise.
    """
    labels = cells.cells
    levels = _per_cell_levels(rng, cells.cell_radius.size - 1, imaging.cell_signal, imaging.cell_variation)
    distance_to_edge = (1.0 - np.minimum(cells.cell_radial, 1.0)) * cells.cell_radius[labels]
    profile = np.where(labels > 0, 0.35 + np.exp(-((distance_to_edge / 2.5) ** 2)), 0.0).astype(np.float32)
    counts = np.bincount(labels.ravel(), minlength=levels.size)
    sums = np.bincount(labels.ravel(), weights=profile.ravel(), minlength=levels.size)
    mean_profile = np.where(counts > 0, sums / np.maximum(counts, 1), 1.0).astype(np.float32)
    mean_profile[0] = 1.0  # background: profile is zero there
    return (levels[labels] * profile / mean_profile[labels]).astype(np.float32)


def render_fluorescence(
    rng: np.random.Generator,
    sample_signal: np.ndarray,
    artifacts: ArtifactLayers,
    imaging: FluorescenceImaging,
) -> np.ndarray:
    """Form the 16-bit fluorescence image.

    Parameters
    ----------
    rng : numpy.random.Generator
        Camera noise.
    sample_signal : numpy.ndarray
        float32 cell / nucleus signal (ADU above background).
    artifacts : ArtifactLayers
        Blocking (transmission) and autofluorescence of the artifacts.
    imaging : FluorescenceImaging
        Levels and camera.

    Returns
    -------
    numpy.ndarray
        uint16 ``(H, W)``.

    Notes
    -----
    ``F = offset + gain * noise(illumination * blur((background + signal) * transmission
    + autofluorescence * glow))``.
    """
    light = (np.float32(imaging.background) + sample_signal) * artifacts.fluorescence_transmission
    light = light + np.float32(imaging.autofluorescence) * artifacts.fluorescence_added
    light = ndimage.gaussian_filter(light, imaging.psf_sigma)
    light = light * illumination_field(light.shape, imaging.illumination)
    return camera(
        rng,
        light / np.float32(imaging.adu_per_electron),
        adu_per_electron=imaging.adu_per_electron,
        offset=imaging.offset,
        read_noise=imaging.read_noise,
    )
