"""The comparison's models by name, and how they are built for one configuration.

One table maps each of the paper's model names to its :class:`~artseg.comparison.detector.Detector`
class; :func:`build_detectors` builds unfitted models for a segmenter configuration, sharing
one classifier where the paper does and giving the anomaly baselines the settings of one
preset (:data:`~artseg.comparison.baselines.BASELINE_PRESETS`), per-model overrides aside.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from artseg.comparison.baselines import (
    BASELINE_PRESETS,
    AnomalyBaseline,
    BaselineSettings,
    PaDiM,
    PatchSVDD,
    SSIMAutoencoderDetector,
)
from artseg.comparison.detector import Detector
from artseg.comparison.segmenters import ScoreCamDetector, ScoreCamUNetDetector, SharedClassifier, StrongUNetDetector
from artseg.config import SegmenterConfig
from artseg.errors import ArtsegInputError

__all__ = [
    "BASELINE_NAMES",
    "DETECTORS",
    "DETECTOR_NAMES",
    "baseline_settings",
    "build_detectors",
    "detector_class",
    "detector_slug",
]

# In the column order of the paper's Supplementary Table 1.
DETECTORS: dict[str, type[Detector]] = {
    cls.name: cls
    for cls in (StrongUNetDetector, ScoreCamUNetDetector, ScoreCamDetector, SSIMAutoencoderDetector, PaDiM, PatchSVDD)
}
DETECTOR_NAMES = tuple(DETECTORS)
BASELINE_NAMES = tuple(name for name, cls in DETECTORS.items() if issubclass(cls, AnomalyBaseline))


def detector_class(name: str) -> type[Detector]:
    """The class of a model of the comparison.

    Raises
    ------
    ArtsegInputError
        For a name that is not one of :data:`DETECTOR_NAMES`.
    """
    try:
        return DETECTORS[name]
    except KeyError:
        raise ArtsegInputError(f"unknown model {name!r} (known: {', '.join(DETECTOR_NAMES)})") from None


def detector_slug(name: str) -> str:
    """Folder-safe name of a model (``"ScoreCAM-U-Net"`` -> ``"scorecam_unet"``).

    Examples
    --------
    >>> detector_slug("ScoreCAM-U-Net")
    'scorecam_unet'
    """
    return detector_class(name).slug


def baseline_settings(name: str, settings: BaselineSettings | str | dict | None = "fast") -> BaselineSettings:
    """The settings of an anomaly baseline from a preset name, a dict of overrides or settings.

    A dict overrides the paper's settings (see :meth:`BaselineSettings.resolve`).

    Examples
    --------
    >>> baseline_settings("AE", "fast").patch_size
    64
    >>> baseline_settings("AE", "paper").patch_size
    128
    """
    cls = detector_class(name)
    if not issubclass(cls, AnomalyBaseline):
        raise ArtsegInputError(f"{name!r} is not an anomaly baseline (known: {', '.join(BASELINE_NAMES)})")
    return cls.settings_class.resolve(settings)


def build_detectors(
    config: SegmenterConfig,
    names: Sequence[str] = DETECTOR_NAMES,
    *,
    baseline_preset: str = "fast",
    baseline_settings: Mapping[str, BaselineSettings | str | dict] | None = None,
) -> list[Detector]:
    """Unfitted models for ``names``, sharing one classifier where the paper does.

    ScoreCAM-U-Net, ScoreCAM and PaDiM (as its backbone) share one trained classifier.

    Parameters
    ----------
    config : SegmenterConfig
        Settings of the weak and strong segmenters (see :func:`artseg.config.load_config`);
        its ``input`` normalisation also applies to the baselines.
    names : sequence of str
        Models from :data:`DETECTOR_NAMES`, in the order wanted.
    baseline_preset : {"fast", "paper"}
        Settings of the anomaly baselines: ``"fast"`` (CPU-sized) or ``"paper"`` (the
        original papers').
    baseline_settings : mapping, optional
        Per-baseline (``"AE"``, ``"PaDiM"``, ``"PatchSVDD"``) preset name, settings or dict
        of overrides of the paper's settings, instead of ``baseline_preset``.

    Returns
    -------
    list of Detector

    Raises
    ------
    ArtsegInputError
        Unknown or repeated model names, an unknown preset, settings for a model that is not
        a baseline.

    Examples
    --------
    >>> from artseg.config import load_config
    >>> [d.name for d in build_detectors(load_config("fast"), ["ScoreCAM", "AE"])]
    ['ScoreCAM', 'AE']
    """
    names = list(names)
    classes = [detector_class(name) for name in names]
    if len(set(names)) != len(names):
        raise ArtsegInputError(f"models listed more than once: {', '.join(names)}")
    if baseline_preset not in BASELINE_PRESETS:
        raise ArtsegInputError(f"unknown baseline preset {baseline_preset!r} (known: {', '.join(BASELINE_PRESETS)})")
    overrides = dict(baseline_settings or {})
    unknown = sorted(set(overrides) - set(BASELINE_NAMES))
    if unknown:
        raise ArtsegInputError(f"baseline settings given for non-baseline model(s): {', '.join(unknown)}")
    shared = SharedClassifier(config)
    normalization = (config.input.normalize_low, config.input.normalize_high)
    detectors: list[Detector] = []
    for name, cls in zip(names, classes):
        if cls is StrongUNetDetector:
            detectors.append(StrongUNetDetector(config))
        elif issubclass(cls, ScoreCamUNetDetector):
            detectors.append(cls(shared))
        else:
            settings = overrides.get(name, baseline_preset)
            extra = {"shared": shared} if cls is PaDiM else {}
            detectors.append(cls(settings, normalization=normalization, **extra))
    return detectors
