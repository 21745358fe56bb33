"""The three comparison models built on the segmenters (:class:`artseg.ArtifactSegmenter`, :class:`artseg.PixelSegmenter`).

- ``"ScoreCAM-U-Net"``: the segmenter in weak mode; the map is the U-Net probability on
  images the classifier calls artifact-containing, zeros elsewhere (paper section 2.2).
- ``"ScoreCAM"``: the same trained classifier (trained once, :class:`SharedClassifier`) as
  gate, and its Score-CAM map (the pseudo-label source of ScoreCAM-U-Net) as probability map.
- ``"U-Net"``: the strongly supervised segmenter (a U-Net trained on the manifest's pixel
  masks, applied to every image).

The two classifier-based models score images with the classifier probability; the U-Net with
the 99.9th percentile of its map (:func:`artseg.comparison.detector.map_quantile`).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from artseg import ArtifactSegmenter, PixelSegmenter
from artseg.comparison.detector import Detector, map_quantile
from artseg.config import SegmenterConfig
from artseg.errors import ArtsegInputError
from artseg.preprocess import normalize_percentile

__all__ = ["SEGMENTER_FOLDER", "ScoreCamDetector", "ScoreCamUNetDetector", "SharedClassifier", "StrongUNetDetector"]

SEGMENTER_FOLDER = "segmenter"


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
        self.segmenter: ArtifactSegmenter | None = None
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
        started = time.perf_counter()
        segmenter = ArtifactSegmenter(dataclasses.replace(self.config, seed=seed))
        segmenter.fit(manifest, progress=progress)
        self.segmenter = segmenter
        self.fit_seconds = time.perf_counter() - started

    def require_fitted(self, who: str) -> ArtifactSegmenter:
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

        The map is :meth:`artseg.ArtifactSegmenter.cam_map`, the segmenter's own
        pseudo-label source; it is only computed for images the classifier calls
        artifact-containing (the rest would be zeroed by the gate anyway).
        """
        segmenter = self.require_fitted("ScoreCAM")
        probability = segmenter.classifier_probability(self.normalise(image))
        if probability < segmenter.gate_threshold:
            return np.zeros(image.shape, np.float32), probability
        return segmenter.cam_map(image), probability


class ScoreCamUNetDetector(Detector):
    """ScoreCAM-U-Net: the classifier-gated U-Net of the weak pipeline (paper section 2.2)."""

    name = "ScoreCAM-U-Net"
    slug = "scorecam_unet"
    gated = True

    def __init__(self, shared: SharedClassifier):
        super().__init__()
        self.shared = shared

    @property
    def image_call_threshold(self) -> float:
        """The segmenter's image-level call threshold (shared by both classifier-based models)."""
        return self.shared.require_fitted(self.name).image_call_threshold

    def _fit(self, manifest, *, seed, progress):
        self.shared.ensure_fitted(manifest, seed=seed, progress=progress)

    def _predict(self, image):
        # predict() applies the segmenter's gate: below it the probability map is all zeros
        prediction = self.shared.require_fitted(self.name).predict(image)
        return np.asarray(prediction.probability, dtype=np.float32), float(prediction.p_artifact)

    def _save(self, folder):
        where = self.shared.save(folder / SEGMENTER_FOLDER)
        return {"segmenter": os.path.relpath(where, folder)}, None

    def _load(self, folder, model):
        self.shared.load(folder / model["segmenter"])


class ScoreCamDetector(ScoreCamUNetDetector):
    """ScoreCAM: the shared classifier's Score-CAM map, gated by the same classifier."""

    name = "ScoreCAM"
    slug = "scorecam"

    def fit(self, manifest: pd.DataFrame, *, seed: int = 0, progress: bool = True) -> "ScoreCamDetector":
        """Train (or reuse) the shared classifier; ``fit_seconds`` is the classifier's training time."""
        super().fit(manifest, seed=seed, progress=progress)
        seconds = getattr(self.shared.segmenter, "summary", {}).get("seconds", {})
        self.fit_seconds = seconds.get("classifier_seconds", self.fit_seconds)
        return self

    def _predict(self, image):
        return self.shared.gated_score_cam_map(image)


class StrongUNetDetector(Detector):
    """U-Net trained on pixel masks (:class:`artseg.PixelSegmenter`), applied to every image."""

    name = "U-Net"
    slug = "unet"

    def __init__(self, config: SegmenterConfig):
        super().__init__()
        self.config = dataclasses.replace(config, mode="strong")
        self.segmenter: PixelSegmenter | None = None

    def _fit(self, manifest, *, seed, progress):
        if "mask" not in manifest.columns:
            raise ArtsegInputError("the strongly supervised U-Net needs a 'mask' column in the manifest")
        self.segmenter = PixelSegmenter(dataclasses.replace(self.config, seed=seed))
        self.segmenter.fit(manifest, progress=progress)

    def _predict(self, image):
        if self.segmenter is None:
            raise ArtsegInputError("U-Net is not trained: call fit() or load() first")
        probability = np.asarray(self.segmenter.predict_probability_map(image), dtype=np.float32)
        return probability, map_quantile(np.clip(probability, 0.0, 1.0))

    def _save(self, folder):
        if self.segmenter is None:
            raise ArtsegInputError("U-Net is not trained: call fit() before save()")
        self.segmenter.save(folder / SEGMENTER_FOLDER)
        return {"segmenter": SEGMENTER_FOLDER}, None

    def _load(self, folder, model):
        self.segmenter = PixelSegmenter.load(folder / model["segmenter"])
