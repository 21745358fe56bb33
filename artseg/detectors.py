"""The six models of the paper's comparison (§2.3.2) behind one small interface.

:class:`Detector` is what the benchmark needs from a model: ``fit(manifest_df, seed=,
progress=)``, ``probability_map(image)`` (``(H, W)`` float32 in ``[0, 1]``) and
``image_score(image)`` (how strongly the model believes the image contains an artifact).
Images are given raw, as :func:`artseg.io.read_image` returns them; every adapter applies the
segmenter configuration's whole-image percentile normalisation itself, so all six models see
the same pixels.

The models:

- ``"ScoreCAM-U-Net"``: :class:`artseg.pipeline.ArtifactSegmenter` in weak mode; the map is
  the U-Net probability on images the classifier calls artifact-containing, zeros elsewhere.
- ``"ScoreCAM"``: the same trained classifier (trained once, shared with ScoreCAM-U-Net) as
  gate, and its Score-CAM map (the pseudo-label source of ScoreCAM-U-Net) as probability map.
- ``"U-Net"``: the segmenter in strong mode (U-Net trained on the manifest's pixel masks,
  applied to every image).
- ``"PaDiM"``: :class:`artseg.baselines.PaDiM` with the shared classifier's ResNet as its
  backbone (no ImageNet weights exist here; the paper used a pretrained ResNet-18). The
  backbone has seen artifact images during classifier training, which the original method's
  generic ImageNet backbone had not; its Gaussians are still fitted on clean images only.
- ``"PatchSVDD"`` and ``"AE"`` (SSIM autoencoder): :mod:`artseg.baselines`, trained on the
  clean training images only.

``image_score`` is the classifier probability for the two classifier-gated models
(:attr:`Detector.gated`) and the 99.9th percentile of the map for the others (robust to a
few hot pixels, unlike the maximum).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from artseg.config import SegmenterConfig
from artseg.errors import ArtsegInputError
from artseg.io import atomic_write_text, normalize_percentile, read_image

__all__ = [
    "DETECTOR_NAMES",
    "Detector",
    "DetectorOutput",
    "SharedClassifier",
    "baseline_preset",
    "build_detectors",
    "detector_slug",
    "predict_all",
    "saved_fit_seconds",
]

# Column order of the paper's Supplementary Table 1.
DETECTOR_NAMES = ("U-Net", "ScoreCAM-U-Net", "ScoreCAM", "AE", "PaDiM", "PatchSVDD")
_SLUGS = {
    "U-Net": "unet",
    "ScoreCAM-U-Net": "scorecam_unet",
    "ScoreCAM": "scorecam",
    "AE": "ae",
    "PaDiM": "padim",
    "PatchSVDD": "patchsvdd",
}
_BASELINE_KIND = {"AE": "ssim_ae", "PaDiM": "padim", "PatchSVDD": "patchsvdd"}
IMAGE_SCORE_QUANTILE = 0.999
MARKER_FILE = "detector.json"
MARKER_FORMAT = "artseg-benchmark-detector"
SEGMENTER_FOLDER = "segmenter"


def detector_slug(name: str) -> str:
    """Folder-safe name of a detector (``"ScoreCAM-U-Net"`` -> ``"scorecam_unet"``).

    Raises
    ------
    ArtsegInputError
        For a name that is not one of :data:`DETECTOR_NAMES`.
    """
    try:
        return _SLUGS[name]
    except KeyError:
        raise ArtsegInputError(f"unknown model {name!r} (known: {', '.join(DETECTOR_NAMES)})") from None


@dataclass(frozen=True)
class DetectorOutput:
    """One image's result: the probability map and the image-level score."""

    probability_map: np.ndarray
    image_score: float


def _as_probability_map(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    if values.shape != shape:
        raise ArtsegInputError(f"model returned a map of shape {values.shape} for an image of shape {shape}")
    return np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0)


def _training_rows(manifest: pd.DataFrame) -> pd.DataFrame:
    """The rows a model may learn from: everything but the test split."""
    if not isinstance(manifest, pd.DataFrame) or "image" not in manifest.columns:
        raise ArtsegInputError("fit needs an image manifest DataFrame with an 'image' column")
    if "split" in manifest.columns:
        return manifest[manifest["split"] != "test"]
    return manifest


def _clean_training_images(manifest: pd.DataFrame, low: float, high: float) -> list[np.ndarray]:
    rows = _training_rows(manifest)
    if "label" not in rows.columns:
        raise ArtsegInputError("anomaly baselines need a 'label' column to find the clean images")
    chosen = rows["label"] == 0
    if "split" in rows.columns and (rows["split"] == "train").any():
        chosen &= rows["split"] == "train"
    paths = rows.loc[chosen, "image"].tolist()
    if len(paths) < 2:
        raise ArtsegInputError(f"anomaly baselines need at least 2 clean training images, the manifest has {len(paths)}")
    return [normalize_percentile(read_image(path), low, high) for path in paths]


class Detector(ABC):
    """A model of the comparison: fit on a manifest, then map and score raw images.

    Attributes
    ----------
    name : str
        The paper's model name (a :data:`DETECTOR_NAMES` entry).
    gated : bool
        Whether a classifier decides "contains artifact" (``image_score`` is its
        probability and the map is zero on images it calls clean).
    fit_seconds : float or None
        Wall time of the last :meth:`fit` (or the one recorded when the model was saved).
    """

    name: ClassVar[str] = ""
    gated: ClassVar[bool] = False

    def __init__(self) -> None:
        self.fit_seconds: float | None = None

    @property
    def slug(self) -> str:
        """Folder-safe name, see :func:`detector_slug`."""
        return detector_slug(self.name)

    def fit(self, manifest_df: pd.DataFrame, *, seed: int = 0, progress: bool = True) -> "Detector":
        """Train on a manifest's non-test rows.

        Parameters
        ----------
        manifest_df : pandas.DataFrame
            Image manifest (:func:`artseg.io.read_image_manifest`) with ``label``, ``split``
            and, for the U-Net, ``mask``. ``train`` rows are learned from; ``val`` rows serve
            only for checkpoint selection inside the segmenter; ``test`` rows are dropped.
        seed : int
            Seeds all training randomness: same seed, same model.
        progress : bool
            Show tqdm progress bars.

        Returns
        -------
        Detector
            ``self``, fitted.
        """
        started = time.perf_counter()
        self._fit(_training_rows(manifest_df), seed=seed, progress=progress)
        self.fit_seconds = time.perf_counter() - started
        return self

    def predict(self, image: np.ndarray) -> DetectorOutput:
        """Probability map and image score of one raw 2-D image in one pass."""
        image = self._check_image(image)
        probability, score = self._predict(image)
        return DetectorOutput(_as_probability_map(probability, image.shape), float(score))

    def probability_map(self, image: np.ndarray) -> np.ndarray:
        """Per-pixel artifact probability ``(H, W)`` float32 in ``[0, 1]`` of a raw 2-D image."""
        return self.predict(image).probability_map

    def image_score(self, image: np.ndarray) -> float:
        """How strongly the model believes the image contains an artifact, in ``[0, 1]``."""
        return self.predict(image).image_score

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the fitted model to ``folder``; ``detector.json`` is written last (completion mark)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        extra = self._save(folder)
        marker = {"format": MARKER_FORMAT, "version": 1, "model": self.name, "fit_seconds": self.fit_seconds, **extra}
        atomic_write_text(folder / MARKER_FILE, json.dumps(marker, indent=2))
        return folder

    def load(self, folder: str | os.PathLike) -> "Detector":
        """Restore a model written by :meth:`save` into this detector.

        Raises
        ------
        ArtsegInputError
            If ``folder`` holds no complete saved model of this kind.
        """
        folder = Path(folder)
        marker = _read_marker(folder)
        if marker.get("model") != self.name:
            raise ArtsegInputError(f"{folder}: holds model {marker.get('model')!r}, not {self.name!r}")
        self._load(folder, marker)
        self.fit_seconds = marker.get("fit_seconds")
        return self

    @staticmethod
    def is_saved(folder: str | os.PathLike) -> bool:
        """Whether ``folder`` holds a completely saved detector."""
        return (Path(folder) / MARKER_FILE).is_file()

    @staticmethod
    def _check_image(image: np.ndarray) -> np.ndarray:
        array = np.asarray(image)
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
            raise ArtsegInputError(f"expected a 2-D numeric image, got shape {array.shape} and dtype {array.dtype}")
        return array.astype(np.float32, copy=False)

    @abstractmethod
    def _fit(self, manifest: pd.DataFrame, *, seed: int, progress: bool) -> None:
        """Train on the non-test rows."""

    @abstractmethod
    def _predict(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """Map (any float range, clipped by the caller) and image score of a raw image."""

    @abstractmethod
    def _save(self, folder: Path) -> dict[str, Any]:
        """Write the model's files; return extra JSON fields for the marker."""

    @abstractmethod
    def _load(self, folder: Path, marker: dict[str, Any]) -> None:
        """Read what :meth:`_save` wrote."""


def _read_marker(folder: Path) -> dict[str, Any]:
    path = folder / MARKER_FILE
    try:
        marker = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ArtsegInputError(f"{path}: not a saved benchmark model ({error})") from error
    if marker.get("format") != MARKER_FORMAT:
        raise ArtsegInputError(f"{path}: not a saved benchmark model")
    return marker


def saved_fit_seconds(folder: str | os.PathLike) -> float | None:
    """Training time recorded in a saved detector folder (``None`` if unknown)."""
    return _read_marker(Path(folder)).get("fit_seconds")


def _map_quantile(probability: np.ndarray) -> float:
    return float(np.quantile(probability, IMAGE_SCORE_QUANTILE))


class SharedClassifier:
    """The one weakly supervised segmenter whose classifier three models share.

    ScoreCAM-U-Net uses it whole, ScoreCAM uses its classifier and Score-CAM, and PaDiM
    uses the classifier's ResNet as backbone; it is trained at most once.

    Parameters
    ----------
    config : SegmenterConfig
        Segmenter settings; ``mode`` is forced to ``"weak"``.
    """

    def __init__(self, config: SegmenterConfig):
        self.config = dataclasses.replace(config, mode="weak")
        self.segmenter = None
        self.fit_seconds: float | None = None
        self.saved_at: Path | None = None

    @property
    def fitted(self) -> bool:
        """Whether the segmenter is trained or loaded."""
        return self.segmenter is not None

    def ensure_fitted(self, manifest: pd.DataFrame, *, seed: int, progress: bool) -> None:
        """Train the segmenter unless already trained (or loaded)."""
        if self.fitted:
            return
        from artseg.pipeline import ArtifactSegmenter

        started = time.perf_counter()
        segmenter = ArtifactSegmenter(dataclasses.replace(self.config, seed=seed))
        segmenter.fit(manifest, progress=progress)
        self.segmenter = segmenter
        self.fit_seconds = time.perf_counter() - started

    def require_fitted(self, who: str):
        """The trained segmenter, or an error naming the model that needed it."""
        if self.segmenter is None:
            raise ArtsegInputError(f"{who}: the shared classifier is not trained: call fit() or load() first")
        return self.segmenter

    def save(self, folder: Path) -> Path:
        """Save the segmenter once; later calls return where it already is."""
        if self.saved_at is None:
            self.require_fitted("shared classifier").save(folder)
            self.saved_at = folder
        return self.saved_at

    def load(self, folder: Path) -> None:
        """Load a saved segmenter (once)."""
        if self.fitted:
            return
        from artseg.pipeline import ArtifactSegmenter

        self.segmenter = ArtifactSegmenter.load(folder)
        self.saved_at = folder

    @property
    def classifier(self) -> torch.nn.Module:
        """The trained ResNet classifier."""
        return self.require_fitted("shared classifier").classifier

    def normalise(self, image: np.ndarray) -> np.ndarray:
        """Whole-image percentile normalisation of the segmenter configuration."""
        settings = self.config.input
        return normalize_percentile(image, settings.normalize_low, settings.normalize_high)

    def gated_score_cam_map(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """Score-CAM map ``(H, W)`` in ``[0, 1]`` (zeros below the gate) and classifier probability.

        The map is :meth:`artseg.pipeline.ArtifactSegmenter.cam_map`, the segmenter's own
        pseudo-label source; it is only computed for images the classifier calls
        artifact-containing (the rest would be zeroed by the gate anyway).
        """
        segmenter = self.require_fitted("ScoreCAM")
        probability = segmenter.classifier_probability(self.normalise(image))
        if probability < segmenter.gate_threshold:
            return np.zeros(image.shape, np.float32), probability
        return segmenter.cam_map(image), probability


class ScoreCamUNetDetector(Detector):
    """ScoreCAM-U-Net: the classifier-gated U-Net of the weak pipeline (paper §2.2)."""

    name = "ScoreCAM-U-Net"
    gated = True

    def __init__(self, shared: SharedClassifier):
        super().__init__()
        self.shared = shared

    def _fit(self, manifest, *, seed, progress):
        self.shared.ensure_fitted(manifest, seed=seed, progress=progress)

    def _predict(self, image):
        # predict() applies the segmenter's gate: below it the probability map is all zeros
        prediction = self.shared.require_fitted(self.name).predict(image)
        return np.asarray(prediction.probability, dtype=np.float32), float(prediction.p_artifact)

    def _save(self, folder):
        where = self.shared.save(folder / SEGMENTER_FOLDER)
        return {"segmenter": os.path.relpath(where, folder)}

    def _load(self, folder, marker):
        self.shared.load(folder / marker["segmenter"])


class ScoreCamDetector(ScoreCamUNetDetector):
    """ScoreCAM: the shared classifier's Score-CAM map, gated by the same classifier."""

    name = "ScoreCAM"
    gated = True

    def fit(self, manifest_df: pd.DataFrame, *, seed: int = 0, progress: bool = True) -> "ScoreCamDetector":
        """Train (or reuse) the shared classifier; ``fit_seconds`` is the classifier's training time."""
        super().fit(manifest_df, seed=seed, progress=progress)
        seconds = getattr(self.shared.segmenter, "summary", {}).get("seconds", {})
        self.fit_seconds = seconds.get("classifier_seconds", self.fit_seconds)
        return self

    def _predict(self, image):
        return self.shared.gated_score_cam_map(image)


class StrongUNetDetector(Detector):
    """U-Net trained on pixel masks (the segmenter's strong mode), applied to every image."""

    name = "U-Net"

    def __init__(self, config: SegmenterConfig):
        super().__init__()
        self.config = dataclasses.replace(config, mode="strong")
        self.segmenter = None

    def _fit(self, manifest, *, seed, progress):
        from artseg.pipeline import ArtifactSegmenter

        if "mask" not in manifest.columns:
            raise ArtsegInputError("the strongly supervised U-Net needs a 'mask' column in the manifest")
        self.segmenter = ArtifactSegmenter(dataclasses.replace(self.config, seed=seed))
        self.segmenter.fit(manifest, progress=progress)

    def _predict(self, image):
        if self.segmenter is None:
            raise ArtsegInputError("U-Net is not trained: call fit() or load() first")
        probability = np.asarray(self.segmenter.predict_probability_map(image), dtype=np.float32)
        return probability, _map_quantile(np.clip(probability, 0.0, 1.0))

    def _save(self, folder):
        self.segmenter.save(folder / SEGMENTER_FOLDER)
        return {"segmenter": SEGMENTER_FOLDER}

    def _load(self, folder, marker):
        from artseg.pipeline import ArtifactSegmenter

        self.segmenter = ArtifactSegmenter.load(folder / marker["segmenter"])


class AnomalyBaselineDetector(Detector):
    """An :mod:`artseg.baselines` anomaly detector fitted on the clean training images.

    Parameters
    ----------
    name : {"AE", "PaDiM", "PatchSVDD"}
        Which baseline.
    config : SegmenterConfig
        Supplies the image normalisation shared by all models.
    settings : str, dict or None
        The baseline's preset (``"fast"``/``"paper"``) or settings dict (see
        :func:`artseg.baselines.make_detector`).
    shared : SharedClassifier, optional
        For PaDiM: the classifier whose ResNet becomes the backbone (required for PaDiM).
    """

    def __init__(
        self,
        name: str,
        config: SegmenterConfig,
        settings: str | dict | None,
        shared: SharedClassifier | None = None,
    ):
        super().__init__()
        if name not in _BASELINE_KIND:
            raise ArtsegInputError(f"{name!r} is not an anomaly baseline (known: {', '.join(_BASELINE_KIND)})")
        if name == "PaDiM" and shared is None:
            raise ArtsegInputError("PaDiM needs the shared classifier as its backbone")
        self.name = name
        self.kind = _BASELINE_KIND[name]
        self.config = config
        self.settings = _resolved_settings(self.kind, settings)
        self.shared = shared
        self.detector = None

    def _normalise(self, image: np.ndarray) -> np.ndarray:
        settings = self.config.input
        return normalize_percentile(image, settings.normalize_low, settings.normalize_high)

    def _fit(self, manifest, *, seed, progress):
        from artseg.baselines import make_detector

        clean = _clean_training_images(manifest, self.config.input.normalize_low, self.config.input.normalize_high)
        backbone = None
        settings = self.settings
        if self.name == "PaDiM":
            self.shared.ensure_fitted(manifest, seed=seed, progress=progress)
            backbone = self.shared.classifier
            settings = _padim_settings_for(backbone, settings)
        self.detector = make_detector(self.kind, settings, backbone=backbone)
        self.detector.fit(clean, seed=seed, progress=progress)

    def _predict(self, image):
        if self.detector is None:
            raise ArtsegInputError(f"{self.name} is not trained: call fit() or load() first")
        probability = self.detector.predict_map(self._normalise(image))
        return probability, _map_quantile(probability)

    def _save(self, folder):
        self.detector.save(folder / self.kind)
        return {"baseline": self.kind, "settings": self.settings}

    def _load(self, folder, marker):
        from artseg.baselines import AnomalyDetector

        saved = marker.get("settings")
        if saved != self.settings:
            changed = sorted(key for key in self.settings if not isinstance(saved, dict) or saved.get(key) != self.settings[key])
            raise ArtsegInputError(
                f"{folder}: this {self.name} was trained with other settings ({', '.join(changed) or 'format'} "
                "differ); delete the folder to retrain"
            )
        self.detector = AnomalyDetector.load(folder / marker["baseline"])


def _resolved_settings(kind: str, settings: str | dict | None) -> dict:
    """Every setting of a baseline as plain JSON data: a preset name is expanded, a dict completed.

    Stored next to a trained baseline, so a later change of a preset is noticed on reload.
    """
    from artseg.baselines import detector_class

    config_class = detector_class(kind).config_class
    if settings is None or isinstance(settings, str):
        config = config_class.preset(settings or "paper")
    else:
        config = config_class.from_dict({**dataclasses.asdict(config_class.paper()), **settings})
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _padim_settings_for(backbone: torch.nn.Module, settings: dict) -> dict:
    """PaDiM settings with ``num_features`` capped at the backbone's embedding channels.

    Defard et al. keep a random subset of ``d`` embedding channels; a narrow classifier may
    have fewer than ``d`` in stages 1-3, and then all of them are kept.
    """
    values = dict(settings)
    available = 0
    for layer in values["layers"]:
        try:
            module = backbone.get_submodule(layer)
        except AttributeError:
            raise ArtsegInputError(f"PaDiM backbone has no stage {layer!r}") from None
        convolutions = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
        available += convolutions[-1].out_channels if convolutions else 0
    if available:
        values["num_features"] = min(int(values["num_features"]), available)
    return values


def baseline_preset(config: SegmenterConfig) -> str:
    """Baseline preset matching a segmenter configuration: ``"paper"`` for paper, else ``"fast"``."""
    return "paper" if config.name == "paper" else "fast"


def build_detectors(
    config: SegmenterConfig,
    names: Sequence[str] = DETECTOR_NAMES,
    *,
    baseline_settings: Mapping[str, str | dict] | None = None,
) -> list[Detector]:
    """Unfitted detectors for ``names``, sharing one classifier where the paper does.

    Parameters
    ----------
    config : SegmenterConfig
        Settings of the weak and strong segmenters (see :func:`artseg.config.load_config`).
    names : sequence of str
        Models from :data:`DETECTOR_NAMES`, in the order wanted.
    baseline_settings : mapping, optional
        Per-baseline (``"AE"``, ``"PaDiM"``, ``"PatchSVDD"``) preset name or settings dict;
        default: the preset matching ``config`` (:func:`baseline_preset`).

    Returns
    -------
    list of Detector

    Raises
    ------
    ArtsegInputError
        Unknown or repeated model names, settings for a model that is not a baseline.

    Examples
    --------
    >>> from artseg.config import load_config
    >>> [d.name for d in build_detectors(load_config("fast"), ["ScoreCAM", "AE"])]
    ['ScoreCAM', 'AE']
    """
    names = list(names)
    for name in names:
        detector_slug(name)
    if len(set(names)) != len(names):
        raise ArtsegInputError(f"models listed more than once: {', '.join(names)}")
    baseline_settings = dict(baseline_settings or {})
    unknown = sorted(set(baseline_settings) - set(_BASELINE_KIND))
    if unknown:
        raise ArtsegInputError(f"baseline settings given for non-baseline model(s): {', '.join(unknown)}")
    shared = SharedClassifier(config)
    detectors: list[Detector] = []
    for name in names:
        if name == "ScoreCAM-U-Net":
            detectors.append(ScoreCamUNetDetector(shared))
        elif name == "ScoreCAM":
            detectors.append(ScoreCamDetector(shared))
        elif name == "U-Net":
            detectors.append(StrongUNetDetector(config))
        else:
            settings = baseline_settings.get(name, baseline_preset(config))
            detectors.append(AnomalyBaselineDetector(name, config, settings, shared if name == "PaDiM" else None))
    return detectors


def predict_all(
    detector: Detector, images: Sequence[np.ndarray], *, progress: bool = True
) -> tuple[list[np.ndarray], np.ndarray, float]:
    """Maps (one per image), image scores ``(N,)`` and seconds per image of a detector on images."""
    started = time.perf_counter()
    outputs = [detector.predict(image) for image in tqdm(images, desc=f"{detector.name}: predict", unit="image",
                                                           disable=not progress, leave=False)]
    seconds = (time.perf_counter() - started) / max(len(images), 1)
    scores = np.array([output.image_score for output in outputs], dtype=np.float64)
    return [output.probability_map for output in outputs], scores, seconds
