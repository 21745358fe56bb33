"""ScoreCAM-U-Net (paper §2.2, Fig. 1): segment artifacts after training on image-level labels.

``fit``: normalise each image → train the ResNet classifier on image labels → Score-CAM on
artifact-labelled training and validation images → pseudo-masks = map > 0.05 (clean images:
empty) → train the U-Net on the pseudo-masks → choose the probability cut-off and the
smallest kept object on validation images by pooled pixel IoU.
``predict``: classifier probability; at or above the gate, the U-Net probability map (tiled) →
cut-off → small-object removal; below it, an empty mask.

``mode="strong"`` is the strongly supervised U-Net of the paper's comparison: the same class
trains the U-Net on the manifest's pixel masks and applies it to every image (no classifier).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from artseg import io as artseg_io
from artseg.cam._probability import class_probability, resolve_activation
from artseg.config import CAM_FLIPS, SegmenterConfig, config_from_dict, config_to_dict, load_config
from artseg.errors import ArtsegInputError
from artseg.losses import partial_mil_loss
from artseg.metrics import pixel_scores
from artseg.model_io import CONFIG_NAME, load_model_folder, save_model_folder
from artseg.nets import build_network
from artseg.tiling import extract_patches, predict_tiled
from artseg.train import TrainConfig, TrainResult, autocast_context, fit, memory_format_for, resolve_precision

SPLITS = ("train", "val", "test")


@dataclass
class Prediction:
    """Result of :meth:`ArtifactSegmenter.predict` for one image.

    Attributes
    ----------
    p_artifact : float
        Classifier probability that the image contains an artifact (weak mode); in strong
        mode the largest U-Net pixel probability.
    probability : numpy.ndarray
        float32 ``(H, W)`` U-Net artifact probability (zeros when the gate said clean).
    mask : numpy.ndarray
        bool ``(H, W)`` artifact mask after cut-off and small-object removal.
    contains_artifact : bool
        The image-level call: in weak mode the classifier's, ``p_artifact`` at or above the
        gate and :attr:`ArtifactSegmenter.image_call_threshold` (0.5 when the gate is chosen
        on validation data, so a low segmentation gate does not call every image artifact-
        containing); in strong mode "any mask pixel".
    """

    p_artifact: float
    probability: np.ndarray
    mask: np.ndarray
    contains_artifact: bool


@dataclass
class Calibration:
    """Post-processing numbers fixed at fit time (paper §2.3.3).

    ``selected_on`` is ``"pixel_masks"`` (the manifest's masks of validation images),
    ``"pseudo_masks"`` (no pixel masks: validation pseudo-masks) or ``"config"`` (both
    numbers given in the configuration).
    """

    cutoff: float
    min_object_size: int
    selected_on: str
    val_iou: float | None = None
    # the classifier gate chosen with the cut-off (postprocess.gate_threshold = None); None:
    # the configuration's gate_threshold applies
    gate: float | None = None


@dataclass
class TrainingData:
    """Normalised images and labels of the rows used for fitting (test rows excluded)."""

    images: list[np.ndarray]
    labels: np.ndarray
    masks: list[np.ndarray] | None
    splits: np.ndarray
    split_source: str
    names: list[str] = field(default_factory=list)


def make_pseudo_masks(
    cam_maps: Sequence[np.ndarray] | np.ndarray, labels: Sequence[int] | np.ndarray, config: SegmenterConfig,
    *, images: Sequence[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Turn Score-CAM maps into pseudo-masks for U-Net training (paper §2.3.1).

    Parameters
    ----------
    cam_maps : sequence of numpy.ndarray
        One map in [0, 1] per image (any 2-D shape each). Maps of clean images are ignored
        and may be zeros.
    labels : sequence of int
        Image labels, 1 = contains an artifact, 0 = clean.
    config : SegmenterConfig
        Uses ``config.cam.pseudo_cutoff`` (0.05 in the paper), ``pseudo_method`` and
        ``refine`` (see :class:`artseg.config.CamConfig` and :mod:`artseg.weak`).
    images : sequence of numpy.ndarray, optional
        Normalised images the maps belong to (same shapes); needed by ``refine="superpixels"``.

    Returns
    -------
    list of numpy.ndarray
        bool masks: ``map > cutoff`` (refined) for artifact images, all False for clean ones.

    Examples
    --------
    >>> maps = [np.array([[0.0, 0.5]]), np.array([[0.9, 0.9]])]
    >>> [m.tolist() for m in make_pseudo_masks(maps, [1, 0], SegmenterConfig())]
    [[[False, True]], [[False, False]]]
    """
    if len(cam_maps) != len(labels):
        raise ArtsegInputError(f"{len(cam_maps)} Score-CAM maps but {len(labels)} labels")
    from artseg.weak import adaptive_cutoff, refine_to_superpixels

    cam = config.cam
    if cam.refine == "superpixels" and (images is None or len(images) != len(labels)):
        raise ArtsegInputError("cam.refine='superpixels' needs the images the Score-CAM maps belong to")
    masks = []
    for row, (cam_map, label) in enumerate(zip(cam_maps, labels)):
        cam_map = np.asarray(cam_map)
        if int(label) != 1:
            masks.append(np.zeros(cam_map.shape, dtype=bool))
            continue
        cutoff = adaptive_cutoff(cam_map, cam.pseudo_method, fixed=cam.pseudo_cutoff,
                                 percentile=cam.pseudo_percentile, floor=cam.pseudo_cutoff)
        mask = cam_map > cutoff
        if cam.refine == "superpixels":
            mask = refine_to_superpixels(images[row], mask, n_segments=cam.superpixel_segments,
                                         min_fraction=cam.refine_min_fraction)
        masks.append(mask)
    return masks


def make_partial_targets(
    working_maps: Sequence[np.ndarray], labels: Sequence[int] | np.ndarray, pseudo_masks: Sequence[np.ndarray],
    config: SegmenterConfig,
) -> list[np.ndarray]:
    """Negative / positive / unknown U-Net targets for ``cam.unet_loss="mil"`` (issue 4).

    Parameters
    ----------
    working_maps : sequence of numpy.ndarray
        Score-CAM maps at the U-Net's working size (ignored for clean images).
    labels : sequence of int
        Image labels, 1 = contains an artifact.
    pseudo_masks : sequence of numpy.ndarray
        The pseudo-masks of :func:`make_pseudo_masks`, the positive core when
        ``config.cam.mil_positive_core``.
    config : SegmenterConfig

    Returns
    -------
    list of numpy.ndarray
        uint8 maps (:func:`artseg.weak.partial_targets`); all zeros for clean images.
    """
    from artseg.weak import partial_targets

    cam = config.cam
    targets = []
    for cam_map, label, core in zip(working_maps, labels, pseudo_masks):
        if int(label) != 1:
            targets.append(np.zeros(np.shape(cam_map), np.uint8))
            continue
        targets.append(partial_targets(cam_map, region_cutoff=cam.pseudo_cutoff,
                                       core=core if cam.mil_positive_core else None))
    return targets


def assign_splits(
    labels: np.ndarray, splits: Sequence[str | None] | None, *, val_fraction: float, seed: int
) -> tuple[np.ndarray, str]:
    """Complete a train/val/test assignment with a seeded split stratified by label.

    Rows without a split are divided into train and val (``val_fraction`` of each label,
    at least one val image per label when a label has two or more images). If the result
    has no val rows, a seeded share of the train rows becomes val.

    Returns
    -------
    splits : numpy.ndarray of str
    source : str
        ``"manifest"`` (all given), ``"seeded"`` (none given) or ``"manifest+seeded"``.
    """
    labels = np.asarray(labels)
    given = np.array([None] * len(labels), dtype=object) if splits is None else np.array(list(splits), dtype=object)
    given = np.array([s if isinstance(s, str) and s else None for s in given], dtype=object)
    missing = np.array([s is None for s in given])
    result = given.copy()
    rng = np.random.default_rng(seed)
    result[missing] = _stratified_val(labels, missing, val_fraction, rng)[missing]
    if not np.any(result == "val"):
        result[_stratified_val(labels, result == "train", val_fraction, rng) == "val"] = "val"
    if missing.all():
        source = "seeded"
    elif missing.any() or not np.any(given == "val"):
        source = "manifest+seeded"
    else:
        source = "manifest"
    return result.astype(str), source


def _stratified_val(labels: np.ndarray, candidates: np.ndarray, fraction: float, rng) -> np.ndarray:
    out = np.array(["train"] * len(labels), dtype=object)
    for label in np.unique(labels[candidates]):
        rows = np.flatnonzero(candidates & (labels == label))
        rows = rows[rng.permutation(len(rows))]
        n_val = int(round(fraction * len(rows)))
        if len(rows) >= 2:
            n_val = min(max(n_val, 1), len(rows) - 1)
        out[rows[:n_val]] = "val"
    return out


def resize_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D float image (antialiased when shrinking)."""
    image = np.asarray(image, dtype=np.float32)
    if image.shape == tuple(shape):
        return image.copy()
    tensor = torch.from_numpy(np.ascontiguousarray(image))[None, None]
    out = F.interpolate(tensor, size=tuple(shape), mode="bilinear", align_corners=False, antialias=True)
    return out[0, 0].numpy()


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a 2-D boolean mask."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape == tuple(shape):
        return mask.copy()
    tensor = torch.from_numpy(mask.astype(np.uint8))[None, None].float()
    return F.interpolate(tensor, size=tuple(shape), mode="nearest-exact")[0, 0].numpy() > 0.5


def load_training_data(manifest_df: pd.DataFrame, config: SegmenterConfig, *, progress: bool = True) -> TrainingData:
    """Read, check and normalise the manifest's train/val images (and masks when needed).

    Parameters
    ----------
    manifest_df : pandas.DataFrame
        As returned by :func:`artseg.io.read_image_manifest` (absolute paths; ``label`` 0/1;
        optional ``mask`` and ``split``).
    config : SegmenterConfig

    Raises
    ------
    ArtsegInputError
        No ``label`` column or an unlabelled row; strong mode without a ``mask`` for an
        artifact image; fewer than two train images.
    """
    if "image" not in manifest_df.columns:
        raise ArtsegInputError("manifest has no 'image' column")
    if config.mode == "strong" and "label" not in manifest_df.columns and "mask" in manifest_df.columns:
        # Pixel supervision needs no image labels: a row with a mask is a positive example.
        manifest_df = manifest_df.assign(label=[int(_has_path(p)) for p in manifest_df["mask"]])
    if "label" not in manifest_df.columns or manifest_df["label"].isna().any():
        raise ArtsegInputError("training needs a 'label' (1/artifact or 0/clean) on every manifest row")
    labels_all = manifest_df["label"].astype(int).to_numpy()
    split_column = manifest_df["split"].tolist() if "split" in manifest_df.columns else None
    splits_all, source = assign_splits(
        labels_all, split_column, val_fraction=config.val_fraction, seed=config.seed
    )
    keep = np.flatnonzero(splits_all != "test")
    if np.sum(splits_all == "train") < 2:
        raise ArtsegInputError("manifest: need at least two training images")
    has_masks = "mask" in manifest_df.columns
    mask_paths = manifest_df["mask"].tolist() if has_masks else [None] * len(manifest_df)
    if config.mode == "strong":
        for row in keep:
            if labels_all[row] == 1 and not _has_path(mask_paths[row]):
                raise ArtsegInputError(
                    f"manifest row {manifest_df.index[row]} ({manifest_df['image'].iloc[row]}): "
                    "strong mode needs a 'mask' for every artifact image"
                )
    images, masks = [], []
    paths = manifest_df["image"].tolist()
    for row in tqdm(keep, desc="reading images", unit="image", disable=not progress, leave=False):
        image = artseg_io.read_image(paths[row])
        images.append(normalize(image, config))
        if _has_path(mask_paths[row]):
            mask = artseg_io.read_mask(mask_paths[row])
            artseg_io.check_same_shape(image.shape, mask.shape, "mask", mask_paths[row], reference=paths[row])
            masks.append(mask)
        else:
            masks.append(None)
    all_artifact_masks = all(m is not None for m, row in zip(masks, keep) if labels_all[row] == 1)
    filled = [m if m is not None else np.zeros(img.shape, dtype=bool) for m, img in zip(masks, images)]
    return TrainingData(
        images=images,
        labels=labels_all[keep],
        masks=filled if (has_masks and all_artifact_masks) else None,
        splits=splits_all[keep],
        split_source=source,
        names=[str(paths[row]) for row in keep],
    )


def normalize(image: np.ndarray, config: SegmenterConfig) -> np.ndarray:
    """Whole-image percentile normalisation with the configured percentiles."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 2 or min(image.shape) < 1:
        raise ArtsegInputError(f"expected a 2-D grey image, got shape {image.shape}")
    return artseg_io.normalize_percentile(image, config.input.normalize_low, config.input.normalize_high)


def _has_path(value: Any) -> bool:
    return isinstance(value, str) and value != ""


class ArtifactSegmenter:
    """ScoreCAM-U-Net artifact segmenter: fit on labelled images, predict masks, save, load.

    Parameters
    ----------
    config : SegmenterConfig or str, optional
        A configuration or a name/path for :func:`artseg.config.load_config`; default ``"paper"``.

    Notes
    -----
    Usage, given an image manifest on disk (``tests/test_pipeline.py`` runs the same on tiny data)::

        segmenter = ArtifactSegmenter("fast")
        segmenter.fit(artseg.io.read_image_manifest("manifest.csv", require_label=True))
        segmenter.predict(image).mask
        segmenter.save("model/")
    """

    def __init__(self, config: SegmenterConfig | str | Path | None = None):
        if config is None:
            config = SegmenterConfig()
        elif not isinstance(config, SegmenterConfig):
            config = load_config(config)
        self.config = config
        self.classifier: nn.Module | None = None
        self.unet: nn.Module | None = None
        self.calibration: Calibration | None = None
        # the Score-CAM stage(s) in use: cam.target_stage, or the candidate "auto" chose at fit time
        self.cam_stage: str | None = None
        self.histories: dict[str, list[dict]] = {}
        self.summary: dict[str, Any] = {}
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    # ------------------------------------------------------------------ fitting

    def fit(self, manifest_df: pd.DataFrame, *, progress: bool = True, log_dir: str | Path | None = None):
        """Fit on a validated image manifest (see :func:`load_training_data`); returns ``self``."""
        data = load_training_data(manifest_df, self.config, progress=progress)
        return self.fit_arrays(
            data.images, data.labels, masks=data.masks, splits=data.splits, split_source=data.split_source,
            progress=progress, log_dir=log_dir,
        )

    def fit_arrays(
        self,
        images: Sequence[np.ndarray],
        labels: Sequence[int],
        *,
        masks: Sequence[np.ndarray] | None = None,
        splits: Sequence[str] | None = None,
        split_source: str = "given",
        progress: bool = True,
        log_dir: str | Path | None = None,
        classifier: nn.Module | None = None,
    ):
        """Fit on normalised 2-D images (the pure core of :meth:`fit`); returns ``self``.

        Parameters
        ----------
        images : sequence of numpy.ndarray
            Normalised 2-D images (see :func:`normalize`).
        labels : sequence of int
            1 = contains an artifact, 0 = clean.
        masks : sequence of numpy.ndarray, optional
            Pixel masks (all False for clean images). Required in strong mode; in weak mode
            used only to choose the cut-offs.
        splits : sequence of str, optional
            ``train`` / ``val`` per image; missing → seeded split (:func:`assign_splits`).
        log_dir : path, optional
            Where to write per-epoch CSV logs while training.
        classifier : torch.nn.Module, optional
            An already trained classifier of ``config.classifier``'s architecture (e.g. from
            a saved model) to reuse in weak mode instead of training one, so the pseudo-label
            and U-Net settings can be changed without retraining it.
        """
        cfg = self.config
        labels = np.asarray(labels, dtype=int)
        if len(images) != len(labels) or (masks is not None and len(masks) != len(labels)):
            raise ArtsegInputError("images, labels and masks must have the same length")
        if splits is None:
            splits, split_source = assign_splits(labels, None, val_fraction=cfg.val_fraction, seed=cfg.seed)
        splits = np.asarray(splits)
        train_rows, val_rows = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "val")
        if len(train_rows) == 0:
            raise ArtsegInputError("no training images")
        if cfg.mode == "strong" and masks is None:
            raise ArtsegInputError("strong mode needs pixel masks for the training images")
        if cfg.mode == "weak" and len(np.unique(labels[train_rows])) < 2:
            raise ArtsegInputError("the classifier needs both artifact and clean images in the training split")
        timings: dict[str, float] = {}
        self.summary = {
            "split_source": split_source,
            "n_train": int(len(train_rows)),
            "n_val": int(len(val_rows)),
            "n_train_artifact": int(labels[train_rows].sum()),
            "n_val_artifact": int(labels[val_rows].sum()),
        }
        log_dir = Path(log_dir) if log_dir is not None else None
        working = [self._to_unet_scale(image) for image in images]
        used_rows = np.concatenate([train_rows, val_rows])

        if cfg.mode == "weak":
            started = time.perf_counter()
            classifier_inputs = self._classifier_inputs(images)
            if classifier is None:
                self.classifier = self._seeded_network(cfg.classifier, cfg.seed)
                self._train(
                    self.classifier, classifier_inputs[train_rows], _column(labels[train_rows]),
                    classifier_inputs[val_rows], _column(labels[val_rows]), cfg.classifier_train, cfg.seed,
                    log_dir, "classifier", progress,
                )
            else:
                self.classifier = classifier.to(self.device).eval()
                self.summary["classifier"] = {"reused": True}
            timings["classifier_seconds"] = time.perf_counter() - started
            started = time.perf_counter()
            cam_rows = used_rows[labels[used_rows] == 1]
            maps_by_row = self._choose_cam_stage(classifier_inputs, working, labels, masks, val_rows, progress)
            todo = np.array([row for row in cam_rows if int(row) not in maps_by_row], dtype=int)
            maps_by_row.update(zip(todo.tolist(), self._score_cam(classifier_inputs[todo], progress)))
            working_maps = [resize_image(maps_by_row[row], working[row].shape) if row in maps_by_row
                            else np.zeros(working[row].shape, np.float32) for row in range(len(images))]
            targets = make_pseudo_masks(working_maps, labels, cfg, images=working)
            if cfg.cam.unet_loss == "mil":
                targets = make_partial_targets(working_maps, labels, targets, cfg)
            timings["score_cam_seconds"] = time.perf_counter() - started
            self.summary["pseudo_mask_fraction"] = float(
                np.mean([(targets[row] > 0).mean() for row in cam_rows])) if len(cam_rows) else 0.0
        else:
            targets = [resize_mask(mask, w.shape) for mask, w in zip(masks, working)]

        started = time.perf_counter()
        unet_train_rows, unet_val_rows = train_rows, val_rows
        if cfg.mode == "weak" and cfg.cam.min_image_probability > 0:
            unsure = self._unsure_artifact_rows(classifier_inputs, labels, used_rows)
            unet_train_rows = np.setdiff1d(train_rows, unsure)
            unet_val_rows = np.setdiff1d(val_rows, unsure)
        train_px, train_py = self._unet_patches(working, targets, unet_train_rows)
        val_px, val_py = self._unet_patches(working, targets, unet_val_rows)
        self.unet = self._seeded_network(cfg.unet, cfg.seed + 1)
        self._train(self.unet, train_px, train_py, val_px, val_py, cfg.unet_train, cfg.seed + 1,
                    log_dir, "unet", progress, compute_loss=self._unet_loss())
        timings["unet_seconds"] = time.perf_counter() - started
        val_images = [images[row] for row in val_rows]

        def calibration_truth(current_targets) -> tuple[list[np.ndarray], str]:
            if masks is not None and (cfg.mode == "strong" or cfg.postprocess.calibrate_on == "masks"):
                return [np.asarray(masks[row], dtype=bool) for row in val_rows], "pixel_masks"
            return [resize_mask(current_targets[row], images[row].shape) for row in val_rows], "pseudo_masks"

        if cfg.mode == "weak" and cfg.cam.self_training_rounds > 0:
            started = time.perf_counter()
            confidence = cfg.cam.self_training_confidence
            if confidence is None:
                # the first U-Net's own cut-off, chosen on validation data like the final one
                confidence = self._calibrate(val_images, *calibration_truth(targets), progress).cutoff
            elif confidence == "clean":
                from artseg.weak import clean_image_confidence

                clean_rows = train_rows[labels[train_rows] == 0]
                confidence = clean_image_confidence([self._probability_map(images[row]) for row in clean_rows],
                                                    quantile=cfg.cam.self_training_clean_quantile)
            self.summary["self_training_confidence"] = float(confidence)
            targets = self._self_train(images, working, labels, targets, train_rows, val_rows, log_dir, progress,
                                       confidence=float(confidence))
            timings["self_training_seconds"] = time.perf_counter() - started

        started = time.perf_counter()
        self.calibration = self._calibrate(val_images, *calibration_truth(targets), progress)
        timings["calibration_seconds"] = time.perf_counter() - started
        timings["total_seconds"] = sum(timings.values())
        self.summary["seconds"] = timings
        return self

    def _self_train(self, images, working, labels, cam_targets, train_rows, val_rows, log_dir, progress, *,
                    confidence: float):
        """Retrain the U-Net on its confident predictions inside the dilated CAM region (issue 4)."""
        from artseg.weak import self_training_labels

        cam = self.config.cam
        targets = list(cam_targets)
        fallbacks = 0
        for round_index in range(cam.self_training_rounds):
            for row in np.concatenate([train_rows, val_rows]):
                if labels[row] != 1:
                    continue
                probability = self._probability_map(images[row])
                if probability.shape != working[row].shape:
                    probability = resize_image(probability, working[row].shape)
                confident = self_training_labels(probability, cam_targets[row], confidence=confidence,
                                                 dilation=cam.self_training_dilation)
                if cam.self_training_fallback and not confident.any():
                    fallbacks += 1
                    continue
                targets[row] = confident
            train_px, train_py = self._unet_patches(working, targets, train_rows)
            val_px, val_py = self._unet_patches(working, targets, val_rows)
            self._train(self.unet, train_px, train_py, val_px, val_py, self.config.unet_train,
                        self.config.seed + 2 + round_index, log_dir, f"unet_self_training_{round_index + 1}", progress)
        self.summary["self_training_fallback_images"] = fallbacks
        self.summary["self_training_mask_fraction"] = float(np.mean(
            [targets[row].mean() for row in np.concatenate([train_rows, val_rows]) if labels[row] == 1] or [0.0]))
        return targets

    def _unsure_artifact_rows(self, classifier_inputs: torch.Tensor, labels: np.ndarray,
                              rows: np.ndarray) -> np.ndarray:
        """Artifact-labelled rows the classifier scores below ``cam.min_image_probability``.

        Score-CAM explains the classifier's artifact score; where the classifier does not see
        the artifact, the map (normalised to [0, 1] whatever its scale) points at something
        else: these images have the least accurate pseudo-masks. They are left out of the
        U-Net's training and validation patches (clean images never are). Measured in
        benchmarks/RESULTS.md (Weak supervision, session 8): leaving them out cost IoU on both
        presets measured, so the built-in configs keep them.
        """
        candidates = rows[labels[rows] == 1]
        probabilities = self._classifier_probabilities(classifier_inputs[candidates])
        unsure = candidates[probabilities < self.config.cam.min_image_probability]
        self.summary["unsure_artifact_images_left_out"] = int(len(unsure))
        return unsure

    def _unet_loss(self):
        """The U-Net's ``compute_loss``: None (BCE) unless weak mode asks for ``cam.unet_loss="mil"``."""
        cam = self.config.cam
        if self.config.mode != "weak" or cam.unet_loss != "mil":
            return None
        return functools.partial(partial_mil_loss, top_fraction=cam.mil_top_fraction,
                                 min_pixels=cam.mil_min_pixels, mil_weight=cam.mil_weight)

    def _train(self, network, train_x, train_y, val_x, val_y, train_config: TrainConfig, seed: int,
               log_dir: Path | None, name: str, progress: bool, compute_loss=None) -> TrainResult:
        network.to(self.device)
        result = fit(
            network, train_x, train_y, val_x if len(val_x) else None, val_y if len(val_x) else None,
            config=dataclasses.replace(train_config, seed=seed), compute_loss=compute_loss,
            log_csv=None if log_dir is None else log_dir / f"{name}_log.csv",
            desc=name, progress=progress,
        )
        self.histories[name] = result.history
        self.summary[name] = {
            "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val_loss,
            "epochs_run": len(result.history),
            "stopped_early": result.stopped_early,
            "precision": result.precision,
        }
        return result

    def _seeded_network(self, spec: dict, seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_network(spec).to(self.device)

    def _classifier_inputs(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        size = self.config.input.classifier_size
        return torch.from_numpy(np.stack([resize_image(image, (size, size)) for image in images])[:, None])

    def _to_unet_scale(self, image: np.ndarray) -> np.ndarray:
        scale = self.config.input.unet_scale
        if scale == 1.0:
            return np.asarray(image, dtype=np.float32)
        shape = tuple(max(1, int(round(side * scale))) for side in image.shape)
        return resize_image(image, shape)

    def _unet_patches(self, working, targets, rows) -> tuple[torch.Tensor, torch.Tensor]:
        patch = self.config.input.unet_patch
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

    def _score_cam(self, classifier_inputs: torch.Tensor, progress: bool, stage: str | None = None) -> np.ndarray:
        """Score-CAM maps at the classifier's input size; several stages (``"a+b"``) are averaged.

        ``stage`` defaults to the segmenter's own (:attr:`cam_stage`). With ``cam.flips`` the
        maps of the mirrored inputs, mirrored back, join the average.
        """
        from artseg.cam import score_cam

        cam = self.config.cam
        if len(classifier_inputs) == 0:
            size = self.config.input.classifier_size
            return np.zeros((0, size, size), np.float32)
        inputs = classifier_inputs.to(self.device)
        maps = []
        for layer in self._target_layers(stage):
            for dims in CAM_FLIPS[cam.flips]:
                explained = score_cam(
                    self.classifier, inputs.flip(dims) if dims else inputs, target_layer=layer,
                    class_idx=1, batch_size=cam.batch_size, top_k=cam.top_k, baseline=cam.baseline,
                    precision=cam.precision, progress=progress,
                )
                maps.append(np.flip(explained, axis=dims) if dims else explained)
        # Every map is min-max normalised to [0, 1] per image, so their mean is too; a deep
        # stage says which object, a shallower one (stride 16) where its edges are.
        return maps[0] if len(maps) == 1 else np.mean(maps, axis=0).astype(np.float32)

    def _choose_cam_stage(self, classifier_inputs, working, labels, masks, val_rows, progress) -> dict[int, np.ndarray]:
        """Resolve ``cam.target_stage="auto"``; returns the chosen stage's maps of the rows it scored.

        Each candidate's pseudo-masks of the validation artifact images are scored against
        their pixel masks (pooled IoU); without masks (or ``calibrate_on="pseudo"``) the
        first candidate is taken and nothing is scored.
        """
        cam = self.config.cam
        if cam.target_stage != "auto":
            self.cam_stage = cam.target_stage
            return {}
        rows = val_rows[labels[val_rows] == 1]
        if masks is None or self.config.postprocess.calibrate_on != "masks" or len(rows) == 0:
            self.cam_stage = cam.stage_candidates[0]
            self.summary["cam_stage"] = {"chosen": self.cam_stage, "selected_on": "default"}
            return {}
        truth = [resize_mask(masks[row], working[row].shape) for row in rows]
        scored = {}
        for candidate in cam.stage_candidates:
            raw = self._score_cam(classifier_inputs[rows], progress, stage=candidate)
            maps = [resize_image(m, working[row].shape) for m, row in zip(raw, rows)]
            pseudo = make_pseudo_masks(maps, np.ones(len(rows), int), self.config, images=[working[r] for r in rows])
            scored[candidate] = (pixel_scores(truth, pseudo)["iou"], dict(zip(rows.tolist(), raw)))
        self.cam_stage = max(cam.stage_candidates, key=lambda c: scored[c][0])  # ties: the earlier candidate
        self.summary["cam_stage"] = {"chosen": self.cam_stage, "selected_on": "pixel_masks",
                                     "val_pseudo_iou": {c: round(float(v[0]), 4) for c, v in scored.items()}}
        return scored[self.cam_stage][1]

    def _target_layers(self, stage: str | None = None) -> list[nn.Module]:
        """The classifier stages named by `stage` (attribute paths joined by ``+``).

        Default: the stage in use, :attr:`cam_stage`, else ``cam.target_stage``.
        """
        if stage is None:
            stage = self.cam_stage if self.cam_stage is not None else self.config.cam.target_stage
        if stage == "auto":
            raise ArtsegInputError("cam.target_stage 'auto' is chosen at fit time: call fit() or load() first")
        layers = []
        for path in stage.split("+"):
            layer: Any = self.classifier
            for part in path.strip().split("."):
                layer = getattr(layer, part, None)
            if not isinstance(layer, nn.Module):
                raise ArtsegInputError(
                    f"cam.target_stage {stage!r}: {path.strip()!r} is not a module of the "
                    "classifier"
                )
            layers.append(layer)
        return layers

    def _calibrate(self, val_images, truth, selected_on: str, progress: bool) -> Calibration:
        from artseg.postprocess import search_cutoff

        post = self.config.postprocess
        choose_gate = self.config.mode == "weak" and post.gate_threshold is None
        if post.cutoff is not None and post.min_object_size is not None and not choose_gate:
            return Calibration(post.cutoff, post.min_object_size, "config")
        if not val_images:
            raise ArtsegInputError("no validation images to choose the cut-off on; set postprocess.cutoff, "
                                   "postprocess.min_object_size and postprocess.gate_threshold or add val images")
        if self.config.mode != "weak":
            gates = [0.0]
        elif choose_gate:
            gates = sorted(set(float(g) for g in post.gate_grid))
        else:
            gates = [float(post.gate_threshold)]
        maps, probabilities = [], []
        for image in tqdm(val_images, desc="calibrating", unit="image", disable=not progress, leave=False):
            probability = self.classifier_probability(image) if self.config.mode == "weak" else 1.0
            probabilities.append(probability)
            # an image below every candidate gate is zeroed anyway: skip its U-Net pass
            maps.append(self._probability_map(image) if probability >= gates[0] else np.zeros(image.shape, np.float32))
        cutoffs = [post.cutoff] if post.cutoff is not None else post.cutoff_grid
        sizes = [post.min_object_size] if post.min_object_size is not None else post.min_object_size_grid
        best, tried = None, set()
        for gate in gates:
            kept = tuple(p >= gate for p in probabilities)
            if kept in tried:  # a gate letting the same images through scores the same
                continue
            tried.add(kept)
            gated = [m if keep else np.zeros_like(m) for m, keep in zip(maps, kept)]
            for size in sizes:
                cutoff, iou = search_cutoff(gated, truth, cutoffs=cutoffs, min_size=int(size), progress=False)
                if best is None or iou > best[2]:
                    best = (cutoff, int(size), iou, gate)
        return Calibration(float(best[0]), best[1], selected_on, float(best[2]),
                           gate=best[3] if choose_gate else None)

    @property
    def image_call_threshold(self) -> float:
        """Classifier probability at which a weak-mode image is called artifact-containing.

        The configured gate, or 0.5 (the classifier's own decision) when the gate is chosen
        on validation data: that choice optimises pixel IoU and may let every image through.
        """
        configured = self.config.postprocess.gate_threshold
        return 0.5 if configured is None else float(configured)

    @property
    def gate_threshold(self) -> float:
        """Classifier probability below which a weak-mode image gets an empty mask.

        The gate chosen on validation data when ``postprocess.gate_threshold`` is ``None``,
        else the configured one.
        """
        if self.calibration is not None and self.calibration.gate is not None:
            return float(self.calibration.gate)
        configured = self.config.postprocess.gate_threshold
        if configured is None:
            raise ArtsegInputError("the classifier gate is chosen at fit time: call fit() or load() first")
        return float(configured)

    # ------------------------------------------------------------------ prediction

    def _require_fitted(self) -> None:
        if self.unet is None or self.calibration is None or (self.config.mode == "weak" and self.classifier is None):
            raise ArtsegInputError("the segmenter is not fitted: call fit() or ArtifactSegmenter.load() first")

    def classifier_probability(self, normalized_image: np.ndarray) -> float:
        """Classifier probability that a normalised image contains an artifact."""
        if self.classifier is None:
            raise ArtsegInputError("no classifier: strong-mode segmenters have none, or fit() was not called")
        return float(self._classifier_probabilities(self._classifier_inputs([normalized_image]))[0])

    def _classifier_probabilities(self, classifier_inputs: torch.Tensor, batch_size: int = 32) -> np.ndarray:
        """Artifact probabilities of a batch of classifier inputs (``(N, 1, S, S)``)."""
        precision = resolve_precision(self.config.classifier_train.precision, self.device.type)
        memory_format = memory_format_for(precision, self.device.type)
        self.classifier.eval()
        probabilities = []
        with torch.no_grad(), autocast_context(precision, self.device.type):
            for start in range(0, len(classifier_inputs), batch_size):
                x = classifier_inputs[start:start + batch_size].to(self.device).contiguous(memory_format=memory_format)
                logits = self.classifier(x)
                artifact = torch.ones(len(logits), dtype=torch.long, device=logits.device)
                probabilities.append(class_probability(logits, artifact, resolve_activation("auto", logits.shape[1])))
        if not probabilities:
            return np.zeros(0, np.float32)
        return torch.cat(probabilities).cpu().numpy()

    def _probability_map(self, normalized_image: np.ndarray) -> np.ndarray:
        working = self._to_unet_scale(normalized_image)
        tiling = self.config.tiling
        multiple = max(32, self.unet.size_multiple if hasattr(self.unet, "size_multiple") else 32)
        probability = predict_tiled(
            self._unet_batch, working, tile_size=tiling.tile_size, overlap=tiling.overlap,
            batch_size=tiling.batch_size, multiple=multiple,
        )[0]
        if probability.shape != normalized_image.shape:
            probability = np.clip(resize_image(probability, normalized_image.shape), 0.0, 1.0)
        return probability

    def _unet_batch(self, batch: np.ndarray) -> np.ndarray:
        precision = resolve_precision(self.config.unet_train.precision, self.device.type)
        x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=memory_format_for(precision, self.device.type))
        self.unet.eval()
        with torch.no_grad(), autocast_context(precision, self.device.type):
            logits = self.unet(x)
        return torch.sigmoid(logits.float()).cpu().numpy()

    def predict_probability_map(self, image: np.ndarray) -> np.ndarray:
        """U-Net artifact probability of a raw image, float32 ``(H, W)``, without the gate."""
        self._require_fitted()
        return self._probability_map(normalize(image, self.config))

    def cam_map(self, image: np.ndarray) -> np.ndarray:
        """Score-CAM map of a raw image at its own size (weak mode), float32 in [0, 1]."""
        self._require_fitted()
        normalized = normalize(image, self.config)
        cam = self._score_cam(self._classifier_inputs([normalized]), progress=False)[0]
        return np.clip(resize_image(cam, normalized.shape), 0.0, 1.0)

    def predict(self, image: np.ndarray) -> Prediction:
        """Segment artifacts in one raw 2-D image (normalised here, as in training).

        Returns
        -------
        Prediction
        """
        from artseg.postprocess import binarize, remove_small

        self._require_fitted()
        normalized = normalize(image, self.config)
        if self.config.mode == "weak":
            gate = self.gate_threshold
            p_artifact = self.classifier_probability(normalized)
            if p_artifact < gate:
                empty = np.zeros(normalized.shape, np.float32)
                return Prediction(p_artifact, empty, empty.astype(bool), False)
        probability = self._probability_map(normalized)
        mask = remove_small(binarize(probability, self.calibration.cutoff), self.calibration.min_object_size)
        if self.config.mode == "strong":
            p_artifact = float(probability.max())
            return Prediction(p_artifact, probability, mask, bool(mask.any()))
        return Prediction(p_artifact, probability, mask, p_artifact >= self.image_call_threshold)

    def predict_mask(self, image: np.ndarray) -> np.ndarray:
        """Boolean artifact mask of one raw image (see :meth:`predict`)."""
        return self.predict(image).mask

    # ------------------------------------------------------------------ persistence

    def save(self, folder: str | Path) -> Path:
        """Write the model folder (``config.json`` + weights + training logs); returns the folder."""
        self._require_fitted()
        folder = Path(folder)
        networks = {"unet": self.unet}
        if self.classifier is not None:
            networks["classifier"] = self.classifier
        folder.mkdir(parents=True, exist_ok=True)
        for name, history in self.histories.items():
            artseg_io.atomic_write_csv(pd.DataFrame(history), folder / f"{name}_log.csv")
        metadata = {
            "mode": self.config.mode,
            "config": config_to_dict(self.config),
            "normalization": {"method": "percentile", "low": self.config.input.normalize_low,
                              "high": self.config.input.normalize_high},
            "calibration": dataclasses.asdict(self.calibration),
            "cam_stage": self.cam_stage,
            "training": self.summary,
        }
        save_model_folder(folder, networks, metadata)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "ArtifactSegmenter":
        """Rebuild a segmenter from a folder written by :meth:`save`.

        Raises
        ------
        ArtsegInputError
            Missing folder, incompatible format version, modified weight file, or a
            config.json that does not describe a complete segmenter.
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
        segmenter = cls(config)
        segmenter.unet = networks["unet"].to(segmenter.device)
        classifier = networks.get("classifier")
        segmenter.classifier = None if classifier is None else classifier.to(segmenter.device)
        segmenter.calibration = calibration
        segmenter.cam_stage = metadata.get("cam_stage") or config.cam.target_stage
        segmenter.summary = metadata.get("training", {})
        return segmenter


def _column(values: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float32)[:, None]
