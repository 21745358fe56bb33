"""The interface every anomaly-detection baseline implements, and what they share.

A detector is fitted on clean images only and turns any image into a per-pixel anomaly map.
Raw scores have detector-specific scales (a Mahalanobis distance, an embedding distance,
``1 - SSIM``), so each detector also records the score statistics of held-out clean images
and maps raw scores to ``[0, 1]`` with them (:meth:`AnomalyDetector.normalise_scores`), letting
one cutoff grid serve every detector.
"""

from __future__ import annotations

import json
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from artseg.errors import ArtsegInputError

__all__ = [
    "AnomalyDetector",
    "DetectorConfig",
    "ScoreCalibration",
    "as_clean_images",
    "as_image",
    "resize_image",
    "split_calibration",
    "normalise_with",
]

FORMAT_NAME = "artseg-anomaly-detector"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"


@dataclass
class DetectorConfig:
    """Settings shared by all detectors.

    Attributes
    ----------
    image_size : int or None
        Images are resized to ``image_size x image_size`` before scoring and the map is
        resized back (the three original papers all work on resized images); ``None``
        works at native resolution (not possible for PaDiM, whose Gaussians are per position).
    calibration_fraction : float
        Share of the clean images held out of fitting to calibrate the score scale (and
        to select the best epoch of trained detectors). At least one image is held out.
    """

    image_size: int | None = 256
    calibration_fraction: float = 0.1

    @classmethod
    def preset(cls, name: str) -> "DetectorConfig":
        """Return the ``"fast"`` or ``"paper"`` preset."""
        if name == "fast":
            return cls.fast()
        if name == "paper":
            return cls.paper()
        raise ArtsegInputError(f"unknown {cls.__name__} preset {name!r} (known: fast, paper)")

    @classmethod
    def fast(cls) -> "DetectorConfig":
        """Small settings that fit 100 clean 256 px images in minutes on a laptop CPU."""
        return cls()

    @classmethod
    def paper(cls) -> "DetectorConfig":
        """The settings of the detector's original paper."""
        return cls()

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DetectorConfig":
        """Rebuild from :func:`dataclasses.asdict` output; unknown keys are an error."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ArtsegInputError(f"{cls.__name__}: unknown setting(s) {', '.join(unknown)}")
        converted = {key: tuple(value) if isinstance(value, list) else value for key, value in values.items()}
        return cls(**converted)


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


def resize_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D float image (antialiased when shrinking)."""
    if image.shape == tuple(shape):
        return image.astype(np.float32, copy=False)
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    shrinking = shape[0] < image.shape[0] or shape[1] < image.shape[1]
    resized = F.interpolate(tensor, size=tuple(shape), mode="bilinear", align_corners=False, antialias=shrinking)
    return resized[0, 0].numpy()


def split_calibration(count: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``count`` image indices into (fitting, calibration) index arrays.

    At least one image goes to each side.
    """
    if not 0.0 < fraction < 1.0:
        raise ArtsegInputError(f"calibration_fraction must be in (0, 1), got {fraction}")
    held_out = min(count - 1, max(1, int(round(fraction * count))))
    order = rng.permutation(count)
    return np.sort(order[held_out:]), np.sort(order[:held_out])


class AnomalyDetector(ABC):
    """Base class: fit on clean images, score any image pixel by pixel.

    Subclasses implement :meth:`_fit_prepared`, :meth:`_score_prepared` and the state hooks;
    resizing, validation, score calibration, and saving are shared.

    Parameters
    ----------
    config : DetectorConfig
        The detector's settings dataclass.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[DetectorConfig]] = DetectorConfig

    def __init__(self, config: DetectorConfig | None = None):
        self.config = config if config is not None else self.config_class()
        if not isinstance(self.config, self.config_class):
            raise ArtsegInputError(
                f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(self.config).__name__}"
            )
        self.calibration: ScoreCalibration | None = None

    # ----------------------------------------------------------------- public API
    def fit(self, clean_images: Any, *, seed: int = 0, progress: bool = True) -> "AnomalyDetector":
        """Fit on clean (artifact-free) images.

        Parameters
        ----------
        clean_images : ndarray or sequence of ndarray
            ``(N, H, W)`` or a list of 2-D float images, normalised as at prediction time
            (e.g. :func:`artseg.io.normalize_percentile`). At least two.
        seed : int
            Seeds the calibration split, weight initialisation and sampling: same seed,
            same detector.
        progress : bool
            Show tqdm progress bars.

        Returns
        -------
        AnomalyDetector
            ``self``, fitted.
        """
        images = [self._prepare(image) for image in as_clean_images(clean_images)]
        fit_index, calibration_index = split_calibration(
            len(images), self.config.calibration_fraction, np.random.default_rng(seed)
        )
        fit_images = [images[i] for i in fit_index]
        calibration_images = [images[i] for i in calibration_index]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._fit_prepared(fit_images, calibration_images, seed=seed, progress=progress)
        clean_scores = np.concatenate([self._score_prepared(image).ravel() for image in calibration_images])
        self.calibration = ScoreCalibration(typical=float(np.median(clean_scores)), extreme=float(clean_scores.max()))
        return self

    def score_map(self, image: np.ndarray) -> np.ndarray:
        """Raw anomaly scores ``(H, W)`` float32 of a 2-D image (higher = more anomalous)."""
        self._require_fitted()
        image = as_image(image)
        scores = self._score_prepared(self._prepare(image))
        return resize_image(scores, image.shape)

    def normalise_scores(self, scores: np.ndarray) -> np.ndarray:
        """Map raw scores to ``[0, 1)`` with the clean-image statistics (see :func:`normalise_with`)."""
        self._require_fitted()
        return normalise_with(scores, self.calibration)

    def predict_map(self, image: np.ndarray) -> np.ndarray:
        """Probability-like anomaly map ``(H, W)`` float32 in ``[0, 1)`` of a 2-D image."""
        return self.normalise_scores(self.score_map(image))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """All fitted numbers as tensors (weights, statistics, calibration)."""
        self._require_fitted()
        state = dict(self._model_state())
        state["calibration"] = torch.tensor([self.calibration.typical, self.calibration.extreme], dtype=torch.float64)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned (for a detector built with the same config)."""
        state = dict(state)
        if "calibration" not in state:
            raise ArtsegInputError(f"{self.name} state has no 'calibration' entry")
        typical, extreme = (float(v) for v in state.pop("calibration"))
        self._load_model_state(state)
        self.calibration = ScoreCalibration(typical=typical, extreme=extreme)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``weights.pt`` (tensors only) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        metadata = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "detector": self.name,
            "config": asdict(self.config),
            **self._extra_metadata(),
        }
        _atomic_write(directory / WEIGHTS_FILE, lambda path: torch.save(self.state_dict(), path))
        _atomic_write(directory / CONFIG_FILE, lambda path: Path(path).write_text(json.dumps(metadata, indent=2)))
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "AnomalyDetector":
        """Rebuild a saved detector of any kind (no pickled code is executed).

        Raises
        ------
        ArtsegInputError
            If the folder is not a saved detector.
        """
        from artseg.baselines.registry import detector_class

        directory = Path(directory)
        config_path = directory / CONFIG_FILE
        try:
            metadata = json.loads(config_path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ArtsegInputError(f"{config_path}: not a readable detector config ({error})") from error
        if metadata.get("format") != FORMAT_NAME:
            raise ArtsegInputError(f"{config_path}: not an ArtSeg anomaly-detector folder")
        detector_cls = detector_class(metadata.get("detector", ""))
        if cls is not AnomalyDetector and not issubclass(detector_cls, cls):
            raise ArtsegInputError(f"{config_path}: holds a {detector_cls.name} detector, not {cls.name}")
        config = detector_cls.config_class.from_dict(metadata["config"])
        detector = detector_cls._from_metadata(config, metadata)
        weights_path = directory / WEIGHTS_FILE
        try:
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as error:
            raise ArtsegInputError(f"{weights_path}: cannot read detector weights ({error})") from error
        detector.load_state_dict(state)
        return detector

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
        """JSON-serialisable extras for ``config.json`` (e.g. a backbone spec)."""
        return {}

    @classmethod
    def _from_metadata(cls, config: DetectorConfig, metadata: dict[str, Any]) -> "AnomalyDetector":
        """Build an unfitted detector from a saved ``config.json``."""
        return cls(config)

    # ------------------------------------------------------------------ helpers
    def _prepare(self, image: np.ndarray) -> np.ndarray:
        size = self.config.image_size
        if size is None:
            return image
        return resize_image(image, (size, size))

    def _require_fitted(self) -> None:
        if self.calibration is None:
            raise ArtsegInputError(f"{self.name} detector is not fitted: call fit() or load() first")


def _atomic_write(path: Path, write) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def train_on_crops(network, train_crops: np.ndarray, val_crops: np.ndarray, config: DetectorConfig, *,
                   seed: int, compute_loss, desc: str, progress: bool) -> None:
    """Train a detector network on clean crops with the project's one training loop.

    Self-supervised (no targets); the learning rate stays constant, as in the baselines' papers
    (the plateau patience equals the number of epochs). The network is left in eval mode.
    """
    import torch

    from artseg.train import TrainConfig, fit

    train_config = TrainConfig(
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        plateau_patience=config.epochs,
        precision=config.precision,
        seed=seed,
    )
    fit(network, torch.from_numpy(train_crops)[:, None], None, torch.from_numpy(val_crops)[:, None], None,
        config=train_config, compute_loss=compute_loss, desc=desc, progress=progress)
    network.eval()
