"""Anomaly-detection baselines of the paper's comparison, fitted on clean images only.

PaDiM (Defard et al. 2020), Patch SVDD (Yi & Yoon 2020) and the SSIM autoencoder
(Bergmann et al. 2019, the comparison's "AE"). Each is a
:class:`~artseg.comparison.detector.Detector` (``fit(manifest)``, ``predict(image)``,
``save`` / ``load``) whose array-level steps are ``fit_clean(clean_images)``,
``predict_map(normalised_image)`` (scores in ``[0, 1)``) and ``score_map`` (raw scores).
Settings: one dataclass per baseline with the paper's defaults and the presets of
:data:`BASELINE_PRESETS` (:meth:`BaselineSettings.resolve`).
"""

from artseg.comparison.baselines.base import (
    BASELINE_PRESETS,
    AnomalyBaseline,
    BaselineSettings,
    ScoreCalibration,
    clean_training_images,
    normalise_with,
)
from artseg.comparison.baselines.padim import PaDiM, PaDiMSettings
from artseg.comparison.baselines.patchsvdd import PatchSVDD, PatchSVDDSettings
from artseg.comparison.baselines.ssim_ae import SSIMAESettings, SSIMAutoencoderDetector

__all__ = [
    "BASELINE_PRESETS",
    "AnomalyBaseline",
    "BaselineSettings",
    "PaDiM",
    "PaDiMSettings",
    "PatchSVDD",
    "PatchSVDDSettings",
    "SSIMAESettings",
    "SSIMAutoencoderDetector",
    "ScoreCalibration",
    "clean_training_images",
    "normalise_with",
]
