"""What the anomaly-detection baselines share: settings and presets, clean-image fitting, score scale.

A baseline is a :class:`~artseg.comparison.detector.Detector` fitted on the clean training
images of a manifest only (:meth:`AnomalyBaseline.fit`; the array-level step is
:meth:`AnomalyBaseline.fit_clean`) that turns any image into a per-pixel anomaly map. Raw
scores have detector-specific scales (a Mahalanobis distance, an embedding distance,
``1 - SSIM``), so each baseline also records the score statistics of held-out clean images
and maps raw scores to ``[0, 1)`` with them (:func:`normalise_with`), letting one cut-off grid
serve every model.

Settings are a dataclass per baseline whose defaults are the original paper's; a preset
(:data:`BASELINE_PRESETS`) is a set of overrides of those defaults, and a dict of settings
overrides them too (:meth:`BaselineSettings.resolve`).
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from artseg.comparison.detector import Detector, map_quantile
from artseg.errors import ArtsegInputError
from artseg.io import read_image
from artseg.preprocess import normalize_percentile, resize_image

__all__ = [
    "BASELINE_PRESETS",
    "AnomalyBaseline",
    "BaselineSettings",
    "ScoreCalibration",
    "as_clean_images",
    "as_image",
    "clean_training_images",
    "normalise_with",
    "split_calibration",
    "train_on_crops",
]

BASELINE_PRESETS = ("fast", "paper")


@dataclass
class BaselineSettings:
    """Settings shared by all baselines (subclasses add their own; defaults are the paper's).

    Attributes
    ----------
    image_size : int or None
        Images are resized to ``image_size x image_size`` before scoring and the map is
        resized back (the three original papers all work on resized images); ``None``
        works at native resolution (not possible for PaDiM, whose Gaussians are per position).
    calibration_fraction : float
        Share of the clean images held out of fitting to calibrate the score scale (and
        to select the best epoch of trained baselines). At least one image is held out.
    """

    image_size: int | None = 256
    calibration_fraction: float = 0.1

    # Each preset's overrides of the defaults ("paper" is the defaults themselves).
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"fast": {}, "paper": {}}

    @classmethod
    def preset(cls, name: str) -> "BaselineSettings":
        """The settings of a named preset (:data:`BASELINE_PRESETS`)."""
        if name not in cls.PRESETS:
            raise ArtsegInputError(f"unknown baseline preset {name!r} (known: {', '.join(cls.PRESETS)})")
        return cls(**cls.PRESETS[name])

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "BaselineSettings":
        """Settings from a dict (missing keys take the paper's values); unknown keys are an error."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ArtsegInputError(f"{cls.__name__}: unknown setting(s) {', '.join(unknown)}")
        converted = {key: tuple(value) if isinstance(value, list) else value for key, value in values.items()}
        return cls(**converted)

    @classmethod
    def resolve(cls, value: "BaselineSettings | str | dict | None") -> "BaselineSettings":
        """Settings from ``None`` (the paper's), a preset name, a dict of overrides or settings.

        Examples
        --------
        >>> BaselineSettings.resolve({"image_size": 64})
        BaselineSettings(image_size=64, calibration_fraction=0.1)
        """
        if value is None:
            return cls()
        if isinstance(value, str):
            return cls.preset(value)
        if isinstance(value, dict):
            return cls.from_dict(value)
        if not isinstance(value, cls):
            raise ArtsegInputError(f"expected {cls.__name__}, a preset name or a dict, got {type(value).__name__}")
        return value

    def to_dict(self) -> dict[str, Any]:
        """Every setting as plain JSON data (tuples become lists), as stored with a fitted model."""
        return json.loads(json.dumps(asdict(self)))


@dataclass(frozen=True)
class ScoreCalibration:
    """Raw-score statistics of held-out clean images.

    ``typical`` is the median clean pixel score and ``extreme`` the largest one.
    """

    typical: float
    extreme: float


def normalise_with(scores: np.ndarray, calibration: ScoreCalibration) -> np.ndarray:
    """Map raw scores to ``[0, 1)`` with clean-image statistics.

    Parameters
    ----------
    scores : ndarray
        Raw anomaly scores (any shape).
    calibration : ScoreCalibration
        Statistics of clean images.

    Returns
    -------
    ndarray
        float32 ``z / (1 + z)`` with ``z = max(0, (s - typical) / (extreme - typical))``:
        0 at or below the typical clean score, 0.5 at the most anomalous clean pixel seen,
        approaching 1 beyond. Monotone, so no ranking information is lost.

    Examples
    --------
    >>> normalise_with(np.array([0.0, 1.0, 2.0, 3.0]), ScoreCalibration(typical=1.0, extreme=2.0))
    array([0.       , 0.       , 0.5      , 0.6666667], dtype=float32)
    """
    spread = max(calibration.extreme - calibration.typical, 1e-12)
    excess = np.maximum((np.asarray(scores, dtype=np.float64) - calibration.typical) / spread, 0.0)
    return (excess / (1.0 + excess)).astype(np.float32)


def as_image(image: Any, where: str = "image") -> np.ndarray:
    """Validate one 2-D gray image and return it as float32.

    Raises
    ------
    ArtsegInputError
        Naming ``where`` if the array is not 2-D, not numeric, or not finite.
    """
    array = np.asarray(image)
    if array.ndim != 2:
        raise ArtsegInputError(f"{where}: expected a 2-D gray image, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ArtsegInputError(f"{where}: expected numeric pixels, got dtype {array.dtype}")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise ArtsegInputError(f"{where}: contains NaN or infinite pixels")
    return array


def as_clean_images(clean_images: Any, minimum: int = 2) -> list[np.ndarray]:
    """Validate the clean training images: an ``(N, H, W)`` array or a sequence of 2-D arrays.

    Raises
    ------
    ArtsegInputError
        Naming the offending image, or if fewer than ``minimum`` images are given.
    """
    if isinstance(clean_images, (np.ndarray, torch.Tensor)):
        array = np.asarray(clean_images)
        if array.ndim != 3:
            raise ArtsegInputError(f"clean images: expected (N, H, W) or a list of 2-D images, got shape {array.shape}")
        clean_images = list(array)
    if not isinstance(clean_images, Sequence) or isinstance(clean_images, (str, bytes)):
        raise ArtsegInputError(f"clean images: expected (N, H, W) or a list of 2-D images, got {type(clean_images).__name__}")
    images = [as_image(image, where=f"clean image {index}") for index, image in enumerate(clean_images)]
    if len(images) < minimum:
        raise ArtsegInputError(f"clean images: need at least {minimum} clean images, got {len(images)}")
    return images


def clean_training_images(manifest: pd.DataFrame, low: float, high: float) -> list[np.ndarray]:
    """The normalised clean (``label == 0``) images of a manifest's ``train`` split.

    Without ``train`` rows, the clean images of every given row.

    Raises
    ------
    ArtsegInputError
        No ``label`` column, or fewer than two clean images.
    """
    if "label" not in manifest.columns:
        raise ArtsegInputError("anomaly baselines need a 'label' column to find the clean images")
    chosen = manifest["label"] == 0
    if "split" in manifest.columns and (manifest["split"] == "train").any():
        chosen &= manifest["split"] == "train"
    paths = manifest.loc[chosen, "image"].tolist()
    if len(paths) < 2:
        raise ArtsegInputError(f"anomaly baselines need at least 2 clean training images, the manifest has {len(paths)}")
    return [normalize_percentile(read_image(path), low, high) for path in paths]


def split_calibration(count: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``count`` image indices into (fitting, calibration) index arrays.

    At least one image goes to each side.
    """
    if not 0.0 < fraction < 1.0:
        raise ArtsegInputError(f"calibration_fraction must be in (0, 1), got {fraction}")
    held_out = min(count - 1, max(1, int(round(fraction * count))))
    order = rng.permutation(count)
    return np.sort(order[held_out:]), np.sort(order[:held_out])


class AnomalyBaseline(Detector):
    """Base class of the baselines: fit on clean images, score any image pixel by pixel.

    Subclasses implement :meth:`_fit_prepared`, :meth:`_score_prepared` and the state hooks;
    clean-image selection, resizing, validation, score calibration and saving are shared.

    Parameters
    ----------
    settings : BaselineSettings, str, dict or None
        The baseline's settings, a preset name, a dict of overrides of the paper's settings,
        or ``None`` for the paper's (:meth:`BaselineSettings.resolve`).
    normalization : (float, float)
        Percentiles of the whole-image normalisation applied to raw images (the segmenter
        configuration's ``input.normalize_low`` / ``normalize_high``).
    """

    settings_class: ClassVar[type[BaselineSettings]] = BaselineSettings

    def __init__(self, settings: BaselineSettings | str | dict | None = None, *,
                 normalization: tuple[float, float] = (1.0, 99.8)):
        super().__init__()
        self.settings = self.settings_class.resolve(settings)
        self.normalization = (float(normalization[0]), float(normalization[1]))
        self.calibration: ScoreCalibration | None = None

    # ----------------------------------------------------------------- fitting
    def _fit(self, manifest, *, seed, progress):
        self.fit_clean(clean_training_images(manifest, *self.normalization), seed=seed, progress=progress)

    def fit_clean(self, clean_images: Any, *, seed: int = 0, progress: bool = True) -> "AnomalyBaseline":
        """Fit on clean (artifact-free) images, normalised as at prediction time.

        Parameters
        ----------
        clean_images : ndarray or sequence of ndarray
            ``(N, H, W)`` or a list of 2-D float images (e.g. after
            :func:`artseg.preprocess.normalize_percentile`). At least two.
        seed : int
            Seeds the calibration split, weight initialisation and sampling: same seed,
            same baseline.
        progress : bool
            Show tqdm progress bars.

        Returns
        -------
        AnomalyBaseline
            ``self``, fitted.
        """
        images = [self._prepare(image) for image in as_clean_images(clean_images)]
        fit_index, calibration_index = split_calibration(
            len(images), self.settings.calibration_fraction, np.random.default_rng(seed)
        )
        fit_images = [images[i] for i in fit_index]
        calibration_images = [images[i] for i in calibration_index]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._fit_prepared(fit_images, calibration_images, seed=seed, progress=progress)
        clean_scores = np.concatenate([self._score_prepared(image).ravel() for image in calibration_images])
        self.calibration = ScoreCalibration(typical=float(np.median(clean_scores)), extreme=float(clean_scores.max()))
        return self

    # ----------------------------------------------------------------- scoring
    def score_map(self, image: np.ndarray) -> np.ndarray:
        """Raw anomaly scores ``(H, W)`` float32 of a normalised 2-D image (higher = more anomalous)."""
        self._require_fitted()
        image = as_image(image)
        scores = self._score_prepared(self._prepare(image))
        return resize_image(scores, image.shape, antialias="when_shrinking")

    def normalise_scores(self, scores: np.ndarray) -> np.ndarray:
        """Map raw scores to ``[0, 1)`` with the clean-image statistics (see :func:`normalise_with`)."""
        self._require_fitted()
        return normalise_with(scores, self.calibration)

    def predict_map(self, image: np.ndarray) -> np.ndarray:
        """Probability-like anomaly map ``(H, W)`` float32 in ``[0, 1)`` of a normalised 2-D image."""
        return self.normalise_scores(self.score_map(image))

    def _predict(self, image):
        self._require_fitted()
        probability = self.predict_map(normalize_percentile(image, *self.normalization))
        return probability, map_quantile(probability)

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, torch.Tensor]:
        """All fitted numbers as tensors (weights, statistics, calibration)."""
        self._require_fitted()
        state = dict(self._model_state())
        state["calibration"] = torch.tensor([self.calibration.typical, self.calibration.extreme], dtype=torch.float64)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned (for a baseline built with the same settings)."""
        state = dict(state)
        if "calibration" not in state:
            raise ArtsegInputError(f"{self.name} state has no 'calibration' entry")
        typical, extreme = (float(v) for v in state.pop("calibration"))
        self._load_model_state(state)
        self.calibration = ScoreCalibration(typical=typical, extreme=extreme)

    def _save(self, folder):
        extra = {"settings": self.settings.to_dict(), "normalization": list(self.normalization),
                 **self._extra_metadata()}
        return extra, {"state": self.state_dict()}

    def _load(self, folder, model):
        from artseg.model_io import load_model_tensors

        saved = model.get("settings")
        wanted = self.settings.to_dict()
        if saved != wanted:
            changed = sorted(key for key in wanted if not isinstance(saved, dict) or saved.get(key) != wanted[key])
            raise ArtsegInputError(
                f"{folder}: this {self.name} was trained with other settings ({', '.join(changed) or 'format'} "
                "differ); delete the folder to retrain"
            )
        low, high = model.get("normalization", self.normalization)
        self.normalization = (float(low), float(high))
        self._restore_extra(model)
        tensors = load_model_tensors(folder)
        if "state" not in tensors:
            raise ArtsegInputError(f"{folder}: {self.name} folder has no fitted state")
        self.load_state_dict(tensors["state"])

    # ------------------------------------------------------------ subclass hooks
    @abstractmethod
    def _fit_prepared(
        self, fit_images: list[np.ndarray], calibration_images: list[np.ndarray], *, seed: int, progress: bool
    ) -> None:
        """Fit on resized clean images; ``calibration_images`` may serve for validation."""

    @abstractmethod
    def _score_prepared(self, image: np.ndarray) -> np.ndarray:
        """Raw scores of one resized image, same shape as it."""

    @abstractmethod
    def _model_state(self) -> dict[str, torch.Tensor]:
        """Fitted tensors (without the calibration)."""

    @abstractmethod
    def _load_model_state(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`_model_state`."""

    def _extra_metadata(self) -> dict[str, Any]:
        """JSON-serialisable extras stored with the model (e.g. a backbone spec)."""
        return {}

    def _restore_extra(self, model: dict[str, Any]) -> None:
        """Prepare for :meth:`load_state_dict` from the saved extras (inverse of :meth:`_extra_metadata`)."""

    # ------------------------------------------------------------------ helpers
    def _prepare(self, image: np.ndarray) -> np.ndarray:
        size = self.settings.image_size
        if size is None:
            return image
        return resize_image(image, (size, size), antialias="when_shrinking")

    def _require_fitted(self) -> None:
        if self.calibration is None:
            raise ArtsegInputError(f"{self.name} is not trained: call fit() or load() first")


def train_on_crops(network, train_crops: np.ndarray, val_crops: np.ndarray, settings: BaselineSettings, *,
                   seed: int, compute_loss, desc: str, progress: bool) -> None:
    """Train a baseline's network on clean crops with the project's one training loop.

    Self-supervised (no targets); the learning rate stays constant, as in the baselines' papers
    (the plateau patience equals the number of epochs). The network is left in eval mode.
    """
    from artseg.train import TrainConfig, fit

    train_config = TrainConfig(
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        plateau_patience=settings.epochs,
        precision=settings.precision,
        seed=seed,
    )
    fit(network, torch.from_numpy(train_crops)[:, None], None, torch.from_numpy(val_crops)[:, None], None,
        config=train_config, compute_loss=compute_loss, desc=desc, progress=progress)
    network.eval()
