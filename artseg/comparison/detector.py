"""The one protocol of every model in the paper's comparison (section 2.3.2).

A :class:`Detector` is fitted on an image manifest (``fit(manifest, seed=, progress=)``,
test rows never seen), turns a raw image, as :func:`artseg.io.read_image` returns it, into a
:class:`DetectorOutput` (``predict(image)``: an ``(H, W)`` float32 probability map in
``[0, 1]`` and an image score), and saves itself into a model folder (``save(folder)``,
restored with ``load(folder)``). Each model applies the segmenter configuration's whole-image
percentile normalisation itself, so all of them see the same pixels.

Saved models use the :mod:`artseg.model_io` folder format: ``config.json`` (its metadata holds
a ``"comparison"`` entry: the model's name, fit time and settings) and SHA-256-checked tensor
files; segmenter-based models keep their segmenter folder (:mod:`artseg.segmenter`) in
a subfolder. ``config.json`` is written last, so a folder without it is incomplete.
Folders of the format used before (``detector.json``, or a baseline's own ``config.json`` +
``weights.pt``) are refused with a message asking to refit them.
"""

from __future__ import annotations

import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from artseg.errors import ArtsegInputError
from artseg.model_io import CONFIG_NAME, read_model_config, save_model_folder

__all__ = [
    "IMAGE_SCORE_QUANTILE",
    "Detector",
    "DetectorOutput",
    "map_quantile",
    "predict_all",
    "read_saved_model",
    "training_rows",
]

IMAGE_SCORE_QUANTILE = 0.999
METADATA_KEY = "comparison"
# Marks of the folder formats written before the comparison used artseg.model_io.
LEGACY_MARKER = "detector.json"
LEGACY_BASELINE_FORMAT = "artseg-anomaly-detector"


@dataclass(frozen=True)
class DetectorOutput:
    """One image's result: the probability map and the image-level score."""

    probability_map: np.ndarray
    image_score: float


def map_quantile(probability: np.ndarray) -> float:
    """Image score of an ungated model: the 99.9th percentile of its map.

    Robust to a few hot pixels, unlike the maximum.

    Examples
    --------
    >>> probability = np.zeros((100, 100), np.float32); probability[0, 0] = 1.0
    >>> map_quantile(probability)
    0.0
    """
    return float(np.quantile(probability, IMAGE_SCORE_QUANTILE))


def training_rows(manifest: pd.DataFrame) -> pd.DataFrame:
    """The rows a model may learn from: everything but the test split."""
    if not isinstance(manifest, pd.DataFrame) or "image" not in manifest.columns:
        raise ArtsegInputError("fit needs an image manifest DataFrame with an 'image' column")
    if "split" in manifest.columns:
        return manifest[manifest["split"] != "test"]
    return manifest


def _as_probability_map(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    if values.shape != shape:
        raise ArtsegInputError(f"model returned a map of shape {values.shape} for an image of shape {shape}")
    return np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0)


def _refit_error(folder: Path, what: str) -> ArtsegInputError:
    return ArtsegInputError(f"{folder}: a model saved by an older artseg ({what}); delete the folder to refit it")


def read_saved_model(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``"comparison"`` metadata of a saved model folder (weights not read).

    Raises
    ------
    ArtsegInputError
        No ``config.json``, a folder of the format used before (to refit), or a model folder
        that is not one of the comparison's.
    """
    folder = Path(folder)
    if (folder / LEGACY_MARKER).is_file():
        raise _refit_error(folder, LEGACY_MARKER)
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise ArtsegInputError(f"{folder}: no saved comparison model ({CONFIG_NAME} missing)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArtsegInputError(f"{path}: unreadable model config ({error})") from None
    if isinstance(raw, dict) and raw.get("format") == LEGACY_BASELINE_FORMAT:
        raise _refit_error(folder, "config.json + weights.pt of an anomaly detector")
    model = read_model_config(folder)["metadata"].get(METADATA_KEY)
    if not isinstance(model, dict) or not isinstance(model.get("model"), str):
        raise ArtsegInputError(f"{path}: not a saved comparison model (no '{METADATA_KEY}' entry)")
    return model


class Detector(ABC):
    """A model of the comparison: fit on a manifest, then map and score raw images.

    Subclasses implement :meth:`_fit`, :meth:`_predict`, :meth:`_save` and :meth:`_load`;
    test-row filtering, image checks, map clipping, timing and the folder format are shared.

    Attributes
    ----------
    name : str
        The paper's model name (an :data:`artseg.comparison.DETECTOR_NAMES` entry).
    slug : str
        Folder-safe name (``"ScoreCAM-U-Net"`` -> ``"scorecam_unet"``).
    gated : bool
        Whether a classifier decides "contains artifact" (``image_score`` is its
        probability and the map is zero on images it calls clean).
    fit_seconds : float or None
        Wall time of the last :meth:`fit` (or the one recorded when the model was saved).
    """

    name: ClassVar[str] = ""
    slug: ClassVar[str] = ""
    gated: ClassVar[bool] = False

    def __init__(self) -> None:
        self.fit_seconds: float | None = None

    @property
    def image_call_threshold(self) -> float | None:
        """Image score at which a gated model calls an image artifact-containing (``None``: ungated)."""
        return None

    def fit(self, manifest: pd.DataFrame, *, seed: int = 0, progress: bool = True) -> "Detector":
        """Train on a manifest's non-test rows.

        Parameters
        ----------
        manifest : pandas.DataFrame
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
        self._fit(training_rows(manifest), seed=seed, progress=progress)
        self.fit_seconds = time.perf_counter() - started
        return self

    def predict(self, image: np.ndarray) -> DetectorOutput:
        """Probability map and image score of one raw 2-D image in one pass."""
        array = np.asarray(image)
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
            raise ArtsegInputError(f"expected a 2-D numeric image, got shape {array.shape} and dtype {array.dtype}")
        array = array.astype(np.float32, copy=False)
        probability, score = self._predict(array)
        return DetectorOutput(_as_probability_map(probability, array.shape), float(score))

    def probability_map(self, image: np.ndarray) -> np.ndarray:
        """Per-pixel artifact probability ``(H, W)`` float32 in ``[0, 1]`` of a raw 2-D image."""
        return self.predict(image).probability_map

    def image_score(self, image: np.ndarray) -> float:
        """How strongly the model believes the image contains an artifact, in ``[0, 1]``."""
        return self.predict(image).image_score

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the fitted model into ``folder`` (an :mod:`artseg.model_io` folder); returns it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        extra, tensors = self._save(folder)
        metadata = {METADATA_KEY: {"model": self.name, "fit_seconds": self.fit_seconds, **extra}}
        save_model_folder(folder, {}, metadata, tensors=tensors)
        return folder

    def load(self, folder: str | os.PathLike) -> "Detector":
        """Restore a model written by :meth:`save` into this detector; returns ``self``.

        Raises
        ------
        ArtsegInputError
            If ``folder`` holds no complete saved model of this kind, or one saved by an
            older artseg.
        """
        folder = Path(folder)
        model = read_saved_model(folder)
        if model["model"] != self.name:
            raise ArtsegInputError(f"{folder}: holds model {model['model']!r}, not {self.name!r}")
        self._load(folder, model)
        self.fit_seconds = model.get("fit_seconds")
        return self

    @staticmethod
    def is_saved(folder: str | os.PathLike) -> bool:
        """Whether ``folder`` holds a saved model (complete, or of an older format :meth:`load` refuses)."""
        folder = Path(folder)
        return (folder / CONFIG_NAME).is_file() or (folder / LEGACY_MARKER).is_file()

    @abstractmethod
    def _fit(self, manifest: pd.DataFrame, *, seed: int, progress: bool) -> None:
        """Train on the non-test rows."""

    @abstractmethod
    def _predict(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """Map (any float range, clipped by the caller) and image score of a raw image."""

    @abstractmethod
    def _save(self, folder: Path) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]] | None]:
        """Write any subfolders; return the extra metadata and the tensor sets to save."""

    @abstractmethod
    def _load(self, folder: Path, model: dict[str, Any]) -> None:
        """Read what :meth:`_save` wrote (``model``: the folder's comparison metadata)."""


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
