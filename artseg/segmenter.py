"""ScoreCAM-U-Net (paper §2.2, Fig. 1): segment artifacts after training on image-level labels.

``fit`` composes the weak recipe's stages: normalise each image → train the ResNet classifier
on image labels (:func:`artseg.weak.train_classifier`) → Score-CAM maps of the artifact images
(:func:`artseg.weak.score_cam_maps`) → pseudo-masks (:func:`artseg.weak.make_pseudo_masks`;
clean images: empty) → train the U-Net on them (:func:`artseg.pixel_model.train_unet`) →
choose the gate, cut-off and smallest kept object on validation images (:meth:`calibrate`).
``predict``: classifier probability; at or above the gate, the U-Net probability map (tiled) →
cut-off → small-object removal; below it, an empty mask.

The strongly supervised U-Net of the paper's comparison is :class:`artseg.pixel_model.PixelSegmenter`;
:func:`load_segmenter` loads either from a model folder.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from artseg.calibration import Calibration
from artseg.config import SegmenterConfig
from artseg.errors import ArtsegInputError
from artseg.pixel_model import (
    PixelSegmenter,
    Prediction,
    UNetSegmenter,
    as_config,
    calibrate_model,
    read_segmenter,
    save_segmenter,
    split_rows,
    split_summary,
    to_unet_scale,
    train_unet,
)
from artseg.preprocess import resize_image, resize_mask
from artseg.training_data import load_training_data
from artseg.weak import (
    choose_cam_stage,
    classifier_inputs,
    classifier_probabilities,
    make_pseudo_masks,
    score_cam_maps,
    train_classifier,
)

__all__ = ["ArtifactSegmenter", "Prediction", "load_segmenter", "make_segmenter"]


class ArtifactSegmenter(UNetSegmenter):
    """ScoreCAM-U-Net artifact segmenter: fit on image-labelled images, predict masks, save, load.

    Parameters
    ----------
    config : SegmenterConfig or str, optional
        A weak-mode configuration or a name/path for :func:`artseg.config.load_config`;
        default ``"paper"``.

    Notes
    -----
    Usage, given an image manifest on disk (``tests/test_segmenter.py`` runs the same on tiny data)::

        segmenter = ArtifactSegmenter("fast")
        segmenter.fit(artseg.io.read_image_manifest("manifest.csv", require_label=True))
        segmenter.predict(image).mask
        segmenter.save("model/")
    """

    def __init__(self, config: SegmenterConfig | str | Path | None = None):
        config = as_config(config)
        if config.mode != "weak":
            raise ArtsegInputError("a strong-mode configuration trains a PixelSegmenter, not an ArtifactSegmenter")
        super().__init__(config)
        # the Score-CAM stage(s) in use: cam.target_stage, or the candidate "auto" chose at fit time
        self.cam_stage: str | None = None

    # ------------------------------------------------------------------ fitting

    def fit(self, manifest_df: pd.DataFrame, *, progress: bool = True, log_dir: str | Path | None = None):
        """Fit on a validated image manifest (see :func:`artseg.training_data.load_training_data`)."""
        data = load_training_data(manifest_df, self.config, progress=progress)
        return self.fit_arrays(data.images, data.labels, masks=data.masks, splits=data.splits,
                               split_source=data.split_source, progress=progress, log_dir=log_dir)

    def fit_arrays(self, images: Sequence[np.ndarray], labels: Sequence[int], *,
                   masks: Sequence[np.ndarray] | None = None, splits: Sequence[str] | None = None,
                   split_source: str = "given", progress: bool = True, log_dir: str | Path | None = None,
                   classifier: nn.Module | None = None):
        """Fit on normalised 2-D images (the pure core of :meth:`fit`); returns ``self``.

        Parameters
        ----------
        images : sequence of numpy.ndarray
            Normalised 2-D images (see :meth:`normalize`).
        labels : sequence of int
            1 = contains an artifact, 0 = clean.
        masks : sequence of numpy.ndarray, optional
            Pixel masks (all False for clean images), used only to choose the Score-CAM stage
            and the cut-offs (``postprocess.calibrate_on="masks"``). An entry may be ``None``
            for an artifact image without one: the choices are then made on the validation
            fields whose truth is known (annotating a few fields is enough); with no mask on
            any validation artifact field they are made against the pseudo-masks.
        splits : sequence of str, optional
            ``train`` / ``val`` per image; missing → seeded split (:func:`artseg.training_data.assign_splits`).
        log_dir : path, optional
            Where to write per-epoch CSV logs while training.
        classifier : torch.nn.Module, optional
            An already trained classifier of ``config.classifier``'s architecture to reuse
            instead of training one, so pseudo-label and U-Net settings can be changed
            without retraining it.
        """
        cfg = self.config
        labels = np.asarray(labels, dtype=int)
        if len(images) != len(labels) or (masks is not None and len(masks) != len(labels)):
            raise ArtsegInputError("images, labels and masks must have the same length")
        train_rows, val_rows, split_source = split_rows(labels, splits, split_source, cfg)
        if len(np.unique(labels[train_rows])) < 2:
            raise ArtsegInputError("the classifier needs both artifact and clean images in the training split")
        self.summary = split_summary(labels, train_rows, val_rows, split_source)
        log_dir = Path(log_dir) if log_dir is not None else None
        working = [to_unet_scale(image, cfg.input.unet_scale) for image in images]
        timings = {}

        started = time.perf_counter()
        inputs = classifier_inputs(images, cfg.input.classifier_size)
        if classifier is None:
            self.classifier, result = train_classifier(inputs, labels, train_rows, val_rows, cfg, device=self.device,
                                                       log_dir=log_dir, progress=progress)
            self.record_training("classifier", result)
        else:
            self.classifier = classifier.to(self.device).eval()
            self.summary["classifier"] = {"reused": True}
        timings["classifier_seconds"] = time.perf_counter() - started

        started = time.perf_counter()
        targets = self._pseudo_masks(inputs, working, labels, masks, train_rows, val_rows, progress)
        timings["score_cam_seconds"] = time.perf_counter() - started

        started = time.perf_counter()
        self.unet, result = train_unet(working, targets, train_rows, val_rows, cfg, device=self.device,
                                       log_dir=log_dir, progress=progress)
        self.record_training("unet", result)
        timings["unet_seconds"] = time.perf_counter() - started

        started = time.perf_counter()
        rows = annotated_rows(val_rows, labels, masks) if cfg.postprocess.calibrate_on == "masks" else val_rows[:0]
        if len(rows):
            truth, selected_on = [np.asarray(masks[row], dtype=bool) for row in rows], "pixel_masks"
            self.summary["calibration_fields"] = {"pixel_masks": int(len(rows)), "val": int(len(val_rows))}
        else:
            rows = val_rows
            truth, selected_on = [resize_mask(targets[row], images[row].shape) for row in rows], "pseudo_masks"
        self.calibration = self.calibrate([images[row] for row in rows], truth, selected_on=selected_on,
                                          progress=progress)
        timings["calibration_seconds"] = time.perf_counter() - started
        timings["total_seconds"] = sum(timings.values())
        self.summary["seconds"] = timings
        return self

    def _pseudo_masks(self, inputs, working, labels, masks, train_rows, val_rows, progress) -> list[np.ndarray]:
        """Choose the Score-CAM stage, explain the artifact images, threshold the maps (working scale)."""
        used_rows = np.concatenate([train_rows, val_rows])
        cam_rows = used_rows[labels[used_rows] == 1]
        artifact_val = val_rows[labels[val_rows] == 1]
        self.cam_stage, maps_by_row, record = choose_cam_stage(
            self.classifier, inputs, working, annotated_rows(artifact_val, labels, masks), masks, self.config,
            device=self.device, progress=progress)
        if record:
            self.summary["cam_stage"] = record
        todo = np.array([row for row in cam_rows if int(row) not in maps_by_row], dtype=int)
        maps_by_row.update(zip(todo.tolist(), score_cam_maps(self.classifier, inputs[todo], self.cam_stage,
                                                             self.config.cam, device=self.device, progress=progress)))
        working_maps = [resize_image(maps_by_row[row], working[row].shape) if row in maps_by_row
                        else np.zeros(working[row].shape, np.float32) for row in range(len(working))]
        targets = make_pseudo_masks(working_maps, labels, self.config)
        self.summary["pseudo_mask_fraction"] = float(
            np.mean([targets[row].mean() for row in cam_rows])) if len(cam_rows) else 0.0
        return targets

    def calibrate(self, val_images: Sequence[np.ndarray], truth: Sequence[np.ndarray], *,
                  selected_on: str = "pixel_masks", progress: bool = True) -> Calibration:
        """Choose the gate (when not configured), cut-off and smallest kept object (paper §2.3.3).

        Parameters
        ----------
        val_images : sequence of numpy.ndarray
            Normalised validation images.
        truth : sequence of numpy.ndarray
            Their masks (pixel masks, or pseudo-masks for a mask-free calibration).
        selected_on : str
            What ``truth`` is, recorded in the result.
        """
        return calibrate_model(self.config, val_images, truth, selected_on, self.probability_map,
                               classifier_probability=self.classifier_probability, progress=progress)

    # ------------------------------------------------------------------ prediction

    @property
    def image_call_threshold(self) -> float:
        """Classifier probability at which an image is called artifact-containing.

        The configured gate, or 0.5 (the classifier's own decision) when the gate is chosen
        on validation data: that choice optimises pixel IoU and may let every image through.
        """
        configured = self.config.postprocess.gate_threshold
        return 0.5 if configured is None else float(configured)

    @property
    def gate_threshold(self) -> float:
        """Classifier probability below which an image gets an empty mask.

        The gate chosen on validation data when ``postprocess.gate_threshold`` is ``None``,
        else the configured one.
        """
        if self.calibration is not None and self.calibration.gate is not None:
            return float(self.calibration.gate)
        configured = self.config.postprocess.gate_threshold
        if configured is None:
            raise ArtsegInputError("the classifier gate is chosen at fit time: call fit() or load() first")
        return float(configured)

    def require_fitted(self) -> None:
        """Raise a one-line error unless the model is trained or loaded."""
        if self.classifier is None:
            raise ArtsegInputError("the ArtifactSegmenter is not fitted: call fit() or ArtifactSegmenter.load() first")
        super().require_fitted()

    def classifier_probability(self, normalized_image: np.ndarray) -> float:
        """Classifier probability that a normalised image contains an artifact."""
        return float(self.classifier_probabilities([normalized_image])[0])

    def classifier_probabilities(self, normalized_images: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """Classifier probabilities of several normalised images, float32 ``(N,)``."""
        if self.classifier is None:
            raise ArtsegInputError("no classifier: call fit() or ArtifactSegmenter.load() first")
        return classifier_probabilities(self.classifier, classifier_inputs(normalized_images,
                                                                           self.config.input.classifier_size),
                                        precision=self.config.classifier_train.precision, device=self.device,
                                        batch_size=batch_size)

    def cam_map(self, image: np.ndarray) -> np.ndarray:
        """Score-CAM map of a raw image at its own size, float32 in [0, 1]."""
        self.require_fitted()
        normalized = self.normalize(image)
        inputs = classifier_inputs([normalized], self.config.input.classifier_size)
        cam = score_cam_maps(self.classifier, inputs, self.cam_stage, self.config.cam, device=self.device,
                             progress=False)[0]
        return np.clip(resize_image(cam, normalized.shape), 0.0, 1.0)

    def predict(self, image: np.ndarray, *, cutoff: float | None = None, gate: float | None = None) -> Prediction:
        """Segment artifacts in one raw 2-D image (normalised here, as in training).

        Parameters
        ----------
        image : numpy.ndarray
            Raw 2-D image.
        cutoff, gate : float, optional
            Override the calibrated probability cut-off and classifier gate for this call.
        """
        self.require_fitted()
        normalized = self.normalize(image)
        p_artifact = self.classifier_probability(normalized)
        if p_artifact < (self.gate_threshold if gate is None else gate):
            empty = np.zeros(normalized.shape, np.float32)
            return Prediction(p_artifact, empty, empty.astype(bool), False)
        probability = self.probability_map(normalized)
        mask = self.masks_from(probability, cutoff)
        return Prediction(p_artifact, probability, mask, p_artifact >= self.image_call_threshold)

    # ------------------------------------------------------------------ persistence

    def save(self, folder: str | Path) -> Path:
        """Write the model folder (``config.json`` + weights + training logs); returns the folder."""
        self.require_fitted()
        return save_segmenter(folder, {"unet": self.unet, "classifier": self.classifier}, self.config,
                              self.calibration, cam_stage=self.cam_stage, summary=self.summary,
                              histories=self.histories)

    @classmethod
    def load(cls, folder: str | Path) -> "ArtifactSegmenter":
        """Rebuild a segmenter from a folder written by :meth:`save`.

        Raises
        ------
        ArtsegInputError
            Missing folder, incompatible format version, modified weight file, a config.json
            that does not describe a complete segmenter, or a pixel (strong-mode) model.
        """
        networks, config, calibration, metadata = read_segmenter(folder)
        if config.mode != "weak":
            raise ArtsegInputError(f"{Path(folder)}: a pixel (strong-mode) model: load it with PixelSegmenter "
                                   "or artseg.load_segmenter")
        segmenter = cls(config)
        segmenter.unet = networks["unet"].to(segmenter.device)
        segmenter.classifier = networks["classifier"].to(segmenter.device)
        segmenter.calibration = calibration
        segmenter.cam_stage = metadata.get("cam_stage") or config.cam.target_stage
        segmenter.summary = metadata.get("training", {})
        return segmenter


def annotated_rows(rows: np.ndarray, labels: np.ndarray, masks: Sequence[np.ndarray | None] | None) -> np.ndarray:
    """The ``rows`` whose pixel truth is known: a mask given, or a clean field.

    Nothing is known without any mask, or when no artifact row among ``rows`` has one (a clean
    field alone cannot score a cut-off).
    """
    if masks is None:
        return rows[:0]
    known = np.array([masks[row] is not None for row in rows], dtype=bool)
    if not np.any(known & (labels[rows] == 1)):
        return rows[:0]
    return rows[known]


def make_segmenter(config: SegmenterConfig | str | Path | None = None) -> ArtifactSegmenter | PixelSegmenter:
    """An unfitted segmenter of the configuration's ``mode``: weak → ArtifactSegmenter, strong → PixelSegmenter."""
    config = as_config(config)
    return ArtifactSegmenter(config) if config.mode == "weak" else PixelSegmenter(config)


def load_segmenter(folder: str | Path) -> ArtifactSegmenter | PixelSegmenter:
    """Load any segmenter's model folder as the class its ``mode`` names."""
    from artseg.model_io import read_model_config

    mode = read_model_config(folder).get("metadata", {}).get("mode")
    return PixelSegmenter.load(folder) if mode == "strong" else ArtifactSegmenter.load(folder)
