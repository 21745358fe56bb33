"""Anomaly-detection baselines of the paper's comparison, trained on clean images only.

PaDiM (Defard et al. 2020), Patch SVDD (Yi & Yoon 2020) and the SSIM autoencoder
(Bergmann et al. 2019), all behind :class:`AnomalyDetector`: ``fit(clean_images)``,
``predict_map(image)`` (scores in ``[0, 1)``), ``score_map(image)`` (raw scores),
``save(dir)`` / ``AnomalyDetector.load(dir)``. Build them with :func:`make_detector`.
"""

from artseg.baselines.base import AnomalyDetector, DetectorConfig, ScoreCalibration
from artseg.baselines.padim import PaDiM, PaDiMConfig
from artseg.baselines.patchsvdd import PatchSVDD, PatchSVDDConfig
from artseg.baselines.registry import DETECTORS, detector_class, make_detector
from artseg.baselines.ssim_ae import SSIMAEConfig, SSIMAutoencoderDetector

__all__ = [
    "AnomalyDetector",
    "DetectorConfig",
    "ScoreCalibration",
    "PaDiM",
    "PaDiMConfig",
    "PatchSVDD",
    "PatchSVDDConfig",
    "SSIMAutoencoderDetector",
    "SSIMAEConfig",
    "DETECTORS",
    "detector_class",
    "make_detector",
]
