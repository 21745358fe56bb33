"""Build anomaly detectors by name: ``"padim"``, ``"patchsvdd"``, ``"ssim_ae"``."""

from __future__ import annotations

from typing import Any

from torch import nn

from artseg.baselines.base import AnomalyDetector, DetectorConfig
from artseg.baselines.padim import PaDiM
from artseg.baselines.patchsvdd import PatchSVDD
from artseg.baselines.ssim_ae import SSIMAutoencoderDetector
from artseg.errors import ArtsegInputError

__all__ = ["DETECTORS", "detector_class", "make_detector"]

DETECTORS: dict[str, type[AnomalyDetector]] = {
    PaDiM.name: PaDiM,
    PatchSVDD.name: PatchSVDD,
    SSIMAutoencoderDetector.name: SSIMAutoencoderDetector,
}


def detector_class(name: str) -> type[AnomalyDetector]:
    """Return the detector class registered as ``name``.

    Raises
    ------
    ArtsegInputError
        For an unknown name.
    """
    try:
        return DETECTORS[name]
    except KeyError:
        raise ArtsegInputError(f"unknown anomaly detector {name!r} (known: {', '.join(DETECTORS)})") from None


def make_detector(
    name: str,
    config: DetectorConfig | str | dict[str, Any] | None = None,
    backbone: nn.Module | None = None,
) -> AnomalyDetector:
    """Create an unfitted anomaly detector.

    Parameters
    ----------
    name : {"padim", "patchsvdd", "ssim_ae"}
        Which detector.
    config : DetectorConfig, {"fast", "paper"}, dict or None
        The detector's config dataclass, a preset name, a dict of settings (missing ones
        take the paper defaults), or ``None`` for the paper defaults.
    backbone : torch.nn.Module, optional
        Feature extractor for PaDiM (e.g. the trained artifact classifier's ResNet); PaDiM
        builds a seeded random ResNet-18 without one. The other detectors train their own
        networks and reject a backbone.

    Returns
    -------
    AnomalyDetector

    Raises
    ------
    ArtsegInputError
        Unknown name or preset, a config of the wrong kind, or a backbone for a detector
        that does not use one.

    Examples
    --------
    >>> detector = make_detector("ssim_ae", "fast")
    >>> detector.config.patch_size
    64
    """
    cls = detector_class(name)
    config_cls = cls.config_class
    if config is None:
        config = config_cls.paper()
    elif isinstance(config, str):
        config = config_cls.preset(config)
    elif isinstance(config, dict):
        config = config_cls.from_dict(config)
    elif not isinstance(config, config_cls):
        raise ArtsegInputError(f"{name} needs a {config_cls.__name__}, got {type(config).__name__}")
    if cls is PaDiM:
        return PaDiM(config, backbone=backbone)
    if backbone is not None:
        raise ArtsegInputError(f"{name} trains its own network and takes no backbone (only padim does)")
    return cls(config)
