"""The U-Net stage and the strongly supervised pixel segmenter (artifacts, cells, nuclei).

The U-Net works on each normalised image scaled by ``input.unet_scale``, is trained on
``input.unet_patch`` patches of it (:func:`train_unet`) and predicts through tiled inference
(:func:`unet_probability_map`). :class:`PixelSegmenter` trains it on pixel masks — the
paper's strongly supervised U-Net, and the cell and nuclei models of the analyses; the weakly
supervised :class:`artseg.segmenter.ArtifactSegmenter` trains it on Score-CAM pseudo-masks.
Both save the same model folder (:mod:`artseg.model_io`): ``config.json`` with the
configuration, calibration and training record, and sha256-checked weights.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from artseg.calibration import Calibration, calibrate
from artseg.config import SegmenterConfig, config_from_dict, config_to_dict, load_config
from artseg.errors import ArtsegInputError
from artseg.io import atomic_write_csv
from artseg.model_io import CONFIG_NAME, load_model_folder, save_model_folder
from artseg.nets import build_network
from artseg.postprocess import binarize, remove_small
from artseg.preprocess import normalize_image, resize_image, resize_mask
from artseg.tiling import extract_patches, predict_tiled
from artseg.hardware import inference_layout, inference_memory_format
from artseg.train import TrainResult, autocast_context, resolve_precision, train_network, training_summary
from artseg.training_data import assign_splits, load_training_data

__all__ = ["PixelSegmenter", "Prediction", "UNetSegmenter", "to_unet_scale", "train_unet", "unet_patches", "unet_probability_map"]


@dataclass
class Prediction:
    """Result of ``predict`` for one image.

    Attributes
    ----------
    p_artifact : float
        Classifier probability that the image contains an artifact (weak models); for a
        pixel model the largest U-Net pixel probability.
    probability : numpy.ndarray
        float32 ``(H, W)`` U-Net probability (zeros when the gate said clean).
    mask : numpy.ndarray
        bool ``(H, W)`` mask after cut-off and small-object removal.
    contains_artifact : bool
        The image-level call: for weak models the classifier's (``p_artifact`` at or above
        the gate and the image-call threshold); for a pixel model "any mask pixel".
    """

    p_artifact: float
    probability: np.ndarray
    mask: np.ndarray
    contains_artifact: bool


# --------------------------------------------------------------------------- the U-Net stage


def to_unet_scale(image: np.ndarray, scale: float) -> np.ndarray:
    """The image at the U-Net's working scale (``scale`` × each side, at least one pixel)."""
    if scale == 1.0:
        return np.asarray(image, dtype=np.float32)
    return resize_image(image, tuple(max(1, int(round(side * scale))) for side in image.shape))


def unet_patches(working: Sequence[np.ndarray], targets: Sequence[np.ndarray], rows: np.ndarray,
                 patch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training patches ``(N, 1, patch, patch)`` of the images ``rows`` and their uint8 targets."""
    image_patches, target_patches = [], []
    for row in rows:
        x, y = extract_patches(working[row], targets[row], patch)
        image_patches.append(x)
        target_patches.append(y)
    if not image_patches:
        empty = torch.zeros((0, 1, patch, patch))
        return empty, empty.to(torch.uint8)
    x = torch.from_numpy(np.concatenate(image_patches)[:, None].astype(np.float32))
    y = torch.from_numpy(np.concatenate(target_patches)[:, None].astype(np.uint8))
    return x, y


def train_unet(working: Sequence[np.ndarray], targets: Sequence[np.ndarray], train_rows: np.ndarray,
               val_rows: np.ndarray, config: SegmenterConfig, *, device: torch.device, log_dir: Path | None = None,
               progress: bool = True) -> tuple[nn.Module, TrainResult]:
    """Train the U-Net of ``config.unet`` on working-scale images and their targets (seed ``config.seed + 1``)."""
    patch = config.input.unet_patch
    train_x, train_y = unet_patches(working, targets, train_rows, patch)
    val_x, val_y = unet_patches(working, targets, val_rows, patch)
    unet = build_network(config.unet, seed=config.seed + 1).to(device)
    result = train_network(unet, train_x, train_y, val_x, val_y, config.unet_train, seed=config.seed + 1,
                           name="unet", log_dir=log_dir, progress=progress)
    return unet, result


def unet_probability_map(unet: nn.Module, normalized_image: np.ndarray, config: SegmenterConfig, *,
                         device: torch.device) -> np.ndarray:
    """Tiled U-Net probability of a normalised image, float32 at the image's own size."""
    precision = resolve_precision(config.unet_train.precision, device.type)
    memory_format = inference_memory_format(precision, device.type)

    def batch_probability(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(device).contiguous(memory_format=memory_format)
        with torch.no_grad(), autocast_context(precision, device.type):
            logits = unet(x)
        return torch.sigmoid(logits.float()).cpu().numpy()

    working = to_unet_scale(normalized_image, config.input.unet_scale)
    tiling = config.tiling
    multiple = max(32, getattr(unet, "size_multiple", 32))
    unet.eval()
    with inference_layout(unet, memory_format):
        probability = predict_tiled(batch_probability, working, tile_size=tiling.tile_size, overlap=tiling.overlap,
                                    batch_size=tiling.batch_size, multiple=multiple)[0]
    if probability.shape != normalized_image.shape:
        probability = np.clip(resize_image(probability, normalized_image.shape), 0.0, 1.0)
    return probability


def calibrate_model(config: SegmenterConfig, val_images: Sequence[np.ndarray], truth: Sequence[np.ndarray],
                    selected_on: str, probability_map: Callable[[np.ndarray], np.ndarray], *,
                    classifier_probability: Callable[[np.ndarray], float] | None = None,
                    progress: bool = True) -> Calibration:
    """:func:`artseg.calibration.calibrate` with the candidates of ``config.postprocess``.

    Numbers given in the configuration are used as they are; a weak model
    (``classifier_probability`` given) with ``gate_threshold=None`` has its gate chosen too.
    """
    post = config.postprocess
    choose_gate = classifier_probability is not None and post.gate_threshold is None
    if post.cutoff is not None and post.min_object_size is not None and not choose_gate:
        return Calibration(post.cutoff, post.min_object_size, "config")
    if not val_images:
        raise ArtsegInputError("no validation images to choose the cut-off on; set postprocess.cutoff, "
                               "postprocess.min_object_size and postprocess.gate_threshold or add val images")
    if classifier_probability is None:
        gates = [0.0]
    elif choose_gate:
        gates = sorted(set(float(g) for g in post.gate_grid))
    else:
        gates = [float(post.gate_threshold)]
    maps, probabilities = [], []
    for image in tqdm(val_images, desc="calibrating", unit="image", disable=not progress, leave=False):
        probability = 1.0 if classifier_probability is None else classifier_probability(image)
        probabilities.append(probability)
        # an image below every candidate gate is zeroed anyway: skip its U-Net pass
        maps.append(probability_map(image) if probability >= gates[0] else np.zeros(image.shape, np.float32))
    return calibrate(maps, truth, cutoffs=[post.cutoff] if post.cutoff is not None else post.cutoff_grid,
                     min_object_sizes=([post.min_object_size] if post.min_object_size is not None
                                       else post.min_object_size_grid),
                     image_probabilities=probabilities, gates=gates, selected_on=selected_on, choose_gate=choose_gate)


# --------------------------------------------------------------------------- model folders


def save_segmenter(folder: str | Path, networks: dict[str, nn.Module], config: SegmenterConfig,
                   calibration: Calibration, *, cam_stage: str | None, summary: dict,
                   histories: dict[str, list[dict]]) -> Path:
    """Write a segmenter's model folder (``config.json``, weights, ``<network>_log.csv``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, history in histories.items():
        atomic_write_csv(pd.DataFrame(history), folder / f"{name}_log.csv")
    metadata = {
        "mode": config.mode,
        "config": config_to_dict(config),
        "normalization": {"method": "percentile", "low": config.input.normalize_low,
                          "high": config.input.normalize_high},
        "calibration": dataclasses.asdict(calibration),
        "cam_stage": cam_stage,
        "training": summary,
    }
    save_model_folder(folder, networks, metadata)
    return folder


def read_segmenter(folder: str | Path) -> tuple[dict[str, nn.Module], SegmenterConfig, Calibration, dict]:
    """Networks, configuration, calibration and metadata of a segmenter's model folder.

    Raises
    ------
    ArtsegInputError
        Missing folder, incompatible format, modified weights, incomplete metadata or a
        network missing for the folder's mode.
    """
    networks, metadata = load_model_folder(folder)
    source = str(Path(folder) / CONFIG_NAME)
    try:
        config = config_from_dict(metadata["config"], source=source)
        calibration = Calibration(**metadata["calibration"])
    except (KeyError, TypeError) as err:
        raise ArtsegInputError(f"{source}: incomplete segmenter metadata ({err})") from None
    needed = ("unet", "classifier") if config.mode == "weak" else ("unet",)
    missing = [name for name in needed if name not in networks]
    if missing:
        raise ArtsegInputError(f"{source}: {config.mode}-mode model lacks network(s) {', '.join(missing)}")
    return networks, config, calibration, metadata


def as_config(config: SegmenterConfig | str | Path | None) -> SegmenterConfig:
    """A configuration, or one loaded by name or path (:func:`artseg.config.load_config`); default paper."""
    if config is None:
        return SegmenterConfig()
    return config if isinstance(config, SegmenterConfig) else load_config(config)


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# --------------------------------------------------------------------------- the pixel segmenter


class UNetSegmenter:
    """What every segmenter built on the U-Net stage shares: normalising, the probability map,
    the training record and the fitted-or-not check. Subclasses fit, calibrate, predict, save and load.
    """

    def __init__(self, config: SegmenterConfig):
        self.config = config
        self.unet: nn.Module | None = None
        self.classifier: nn.Module | None = None
        self.calibration: Calibration | None = None
        self.histories: dict[str, list[dict]] = {}
        self.summary: dict[str, Any] = {}
        self.device = default_device()

    def normalize(self, image: np.ndarray) -> np.ndarray:
        """Whole-image percentile normalisation with the configured percentiles."""
        return normalize_image(image, self.config.input.normalize_low, self.config.input.normalize_high)

    def record_training(self, name: str, result: TrainResult) -> None:
        """Keep a network's training log and summary for the model folder."""
        self.histories[name] = result.history
        self.summary[name] = training_summary(result)

    def require_fitted(self) -> None:
        """Raise a one-line error unless the model is trained or loaded."""
        if self.unet is None or self.calibration is None:
            raise ArtsegInputError(f"the {type(self).__name__} is not fitted: call fit() or load() first")

    def probability_map(self, normalized_image: np.ndarray) -> np.ndarray:
        """U-Net probability of a normalised image, without any gate (:func:`unet_probability_map`)."""
        return unet_probability_map(self.unet, normalized_image, self.config, device=self.device)

    def predict_probability_map(self, image: np.ndarray) -> np.ndarray:
        """U-Net probability of a raw image, float32 ``(H, W)``, without any gate."""
        self.require_fitted()
        return self.probability_map(self.normalize(image))

    def predict_mask(self, image: np.ndarray) -> np.ndarray:
        """Boolean mask of one raw image (see ``predict``)."""
        return self.predict(image).mask

    def masks_from(self, probability: np.ndarray, cutoff: float | None) -> np.ndarray:
        """The calibrated post-processing of a probability map (``cutoff`` overrides the calibrated one)."""
        return remove_small(binarize(probability, self.calibration.cutoff if cutoff is None else cutoff),
                            self.calibration.min_object_size)


class PixelSegmenter(UNetSegmenter):
    """U-Net trained on pixel masks and applied to every image (``mode="strong"``).

    Parameters
    ----------
    config : SegmenterConfig or str, optional
        A configuration or a name/path for :func:`artseg.config.load_config`; its ``mode``
        is set to ``"strong"`` (the classifier and Score-CAM settings are not used).

    Notes
    -----
    Usage, given a manifest with ``image`` and ``mask`` columns::

        segmenter = PixelSegmenter("fast").fit(artseg.io.read_image_manifest("cells.csv"))
        segmenter.predict(image).mask
        segmenter.save("cells_model/")
    """

    def __init__(self, config: SegmenterConfig | str | Path | None = None):
        super().__init__(dataclasses.replace(as_config(config), mode="strong"))

    def fit(self, manifest_df: pd.DataFrame, *, progress: bool = True, log_dir: str | Path | None = None):
        """Fit on an image manifest with pixel masks (:func:`artseg.training_data.load_training_data`)."""
        data = load_training_data(manifest_df, self.config, progress=progress)
        return self.fit_arrays(data.images, data.labels, masks=data.masks, splits=data.splits,
                               split_source=data.split_source, progress=progress, log_dir=log_dir)

    def fit_arrays(self, images: Sequence[np.ndarray], labels: Sequence[int], *, masks: Sequence[np.ndarray],
                   splits: Sequence[str] | None = None, split_source: str = "given", progress: bool = True,
                   log_dir: str | Path | None = None):
        """Fit on normalised images and their masks; ``labels`` (1 = any mask pixel) stratify the split."""
        labels = np.asarray(labels, dtype=int)
        if masks is None:
            raise ArtsegInputError("strong mode needs pixel masks for the training images")
        if len(images) != len(labels) or len(masks) != len(labels):
            raise ArtsegInputError("images, labels and masks must have the same length")
        train_rows, val_rows, split_source = split_rows(labels, splits, split_source, self.config)
        self.summary = split_summary(labels, train_rows, val_rows, split_source)
        log_dir = Path(log_dir) if log_dir is not None else None
        started = time.perf_counter()
        working = [to_unet_scale(image, self.config.input.unet_scale) for image in images]
        targets = [resize_mask(mask, w.shape) for mask, w in zip(masks, working)]
        self.unet, result = train_unet(working, targets, train_rows, val_rows, self.config, device=self.device,
                                       log_dir=log_dir, progress=progress)
        self.record_training("unet", result)
        timings = {"unet_seconds": time.perf_counter() - started}
        started = time.perf_counter()
        truth = [np.asarray(masks[row], dtype=bool) for row in val_rows]
        self.calibration = self.calibrate([images[row] for row in val_rows], truth, progress=progress)
        timings["calibration_seconds"] = time.perf_counter() - started
        timings["total_seconds"] = sum(timings.values())
        self.summary["seconds"] = timings
        return self

    def calibrate(self, val_images: Sequence[np.ndarray], truth: Sequence[np.ndarray], *,
                  selected_on: str = "pixel_masks", progress: bool = True) -> Calibration:
        """Choose the cut-off and smallest kept object on normalised validation images and their masks."""
        return calibrate_model(self.config, val_images, truth, selected_on, self.probability_map, progress=progress)

    def predict(self, image: np.ndarray, *, cutoff: float | None = None) -> Prediction:
        """Segment one raw 2-D image; ``cutoff`` overrides the calibrated one for this call."""
        self.require_fitted()
        probability = self.probability_map(self.normalize(image))
        mask = self.masks_from(probability, cutoff)
        return Prediction(float(probability.max()), probability, mask, bool(mask.any()))

    def save(self, folder: str | Path) -> Path:
        """Write the model folder; returns it."""
        self.require_fitted()
        return save_segmenter(folder, {"unet": self.unet}, self.config, self.calibration, cam_stage=None,
                              summary=self.summary, histories=self.histories)

    @classmethod
    def load(cls, folder: str | Path) -> "PixelSegmenter":
        """Rebuild a pixel segmenter from a folder written by :meth:`save`."""
        networks, config, calibration, metadata = read_segmenter(folder)
        if config.mode != "strong":
            raise ArtsegInputError(f"{Path(folder)}: a weakly supervised model: load it with ArtifactSegmenter")
        segmenter = cls(config)
        segmenter.unet = networks["unet"].to(segmenter.device)
        segmenter.calibration = calibration
        segmenter.summary = metadata.get("training", {})
        return segmenter


def split_rows(labels: np.ndarray, splits: Sequence[str] | None, split_source: str,
               config: SegmenterConfig) -> tuple[np.ndarray, np.ndarray, str]:
    """Train and validation row indices (a seeded split when ``splits`` is None)."""
    if splits is None:
        splits, split_source = assign_splits(labels, None, val_fraction=config.val_fraction, seed=config.seed)
    splits = np.asarray(splits)
    train_rows, val_rows = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "val")
    if len(train_rows) == 0:
        raise ArtsegInputError("no training images")
    return train_rows, val_rows, split_source


def split_summary(labels: np.ndarray, train_rows: np.ndarray, val_rows: np.ndarray, split_source: str) -> dict:
    """The split counts a model folder records."""
    return {"split_source": split_source, "n_train": int(len(train_rows)), "n_val": int(len(val_rows)),
            "n_train_artifact": int(labels[train_rows].sum()), "n_val_artifact": int(labels[val_rows].sum())}
