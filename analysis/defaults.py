"""The embedded default datasets and models of the analysis commands.

With no arguments, ``python -m analysis.ligand_affinity`` and ``python -m
analysis.nuclei_impact`` run on deterministic synthetic data generated on first use into
the git-ignored cache. Their models (seed 0) ship with the repository in ``data/weights/``,
made by ``python -m analysis.ship_models`` (its recipe and held-out scores in each folder's
``recipe.json``), so a first run only generates data and analyses it, and gives the same
outcome on every CPU. Other seeds, and ``--retrain``, train the models from scratch and
cache them. Everything here is the same code path a user's own files take: a manifest on
disk and a model folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from artseg.cache import cache_dir
from artseg.datasets import dataset_folder, synthetic_dataset
from artseg.config import config_from_dict, config_to_dict, load_config, merge_overrides
from artseg.errors import ArtsegInputError
from artseg.io import atomic_folder, atomic_target, atomic_write_csv, read_image, read_image_manifest, read_mask
from artseg.metrics import pixel_scores
from artseg.model_io import model_digest
from artseg.pixel_model import PixelSegmenter
from artseg.segmenter import ArtifactSegmenter, load_segmenter, make_segmenter

# Training fields of the embedded ligand default: the image classifier, trained from scratch on
# image labels, is the bottleneck of the weak path and needs data more than epochs (held-out AUC
# 0.72 with 120 fields, 0.87-0.89 with 480; benchmarks/RESULTS.md, "Weak supervision").
DEFAULT_TRAINING_IMAGES = 480
# Beside a cached model: the generation record of the dataset it was trained on.
_TRAINING_DATA_RECORD = "training_data.json"
# The committed default models (python -m analysis.ship_models).
SHIPPED_MODELS = Path(__file__).resolve().parents[1] / "data" / "weights"
# The default models train and run in fp32 on every CPU: bf16 (AVX-512 BF16, AMX) and fp32
# (AVX2) training learn different models, and bf16 inference moves mask edges, so the embedded
# defaults' numbers changed with the hardware (benchmarks/RESULTS.md, "Compute path").
CPU_INDEPENDENT_OVERRIDES = {
    "classifier_train": {"precision": "fp32"},
    "unet_train": {"precision": "fp32"},
    "cam": {"precision": "fp32"},
}
# Cells and nuclei are large, regular, high-contrast targets whose outlines matter (membrane
# signal, nuclear shape): a full-resolution U-Net without BatchNorm on 256² patches converges on
# them in a few epochs, which keeps the cold default runs short.
PIXEL_MODEL_OVERRIDES = {
    "unet": {"batch_norm": False},
    "input": {"unet_scale": 1.0, "unet_patch": 256},
    "unet_train": {"epochs": 8, "plateau_patience": 3},
}

# The analyses' artifact model explains plain maps, last stage or layer3 chosen on validation data.
# `fast`'s mirrored-map average and layer2 candidate raise pixel IoU on held-out fields, but on the
# ligand default they made mean |ΔLogIC50| vs manual worse on all three seeds measured (0.474 vs
# 0.369 over seeds 0-2; benchmarks/RESULTS.md, "Tried, not kept"): what the readout needs is the
# large fluorescent clumps, not pooled IoU.
ANALYSIS_ARTIFACT_OVERRIDES = {"cam": {"flips": "none", "stage_candidates": ["last_stage", "layer3"]}}


def default_root(preset: str, seed: int, size: int | None = None,
                 n_images: int = DEFAULT_TRAINING_IMAGES) -> Path:
    """Folder of the default synthetic dataset of ``preset`` for ``seed`` (and field ``size``)."""
    return dataset_folder(preset, seed, n_images, size, plate=preset == "cho_m4r")


def models_dir() -> Path:
    """Folder of the cached default models."""
    return cache_dir() / "default" / "models"


def masks_dir() -> Path:
    """Folder of the remembered masks of the default runs (:class:`RememberedMasks`)."""
    return cache_dir() / "default" / "masks"


def ensure_dataset(preset: str, seed: int, n_images: int = DEFAULT_TRAINING_IMAGES, size: int | None = None,
                   *, progress: bool = True) -> Path:
    """The default dataset's folder, generated once (:func:`artseg.datasets.synthetic_dataset`).

    ``size=None`` is the generator's default field size; ``cho_m4r`` comes with its binding plate.
    """
    return synthetic_dataset(preset, n_images=n_images, seed=seed, size=size, plate=preset == "cho_m4r",
                             progress=progress)


def train_or_load(
    manifest_csv: Path, model_dir: Path, *, config: str = "fast", strong: bool = False,
    seed: int = 0, what: str = "artifact model", overrides: dict | None = None, progress: bool = True,
    retrain: bool = False,
) -> ArtifactSegmenter | PixelSegmenter:
    """Load the shipped or a cached model folder, or train it on ``manifest_csv`` and cache it.

    The shipped folder (``SHIPPED_MODELS / model_dir.name``) is used when it was trained with
    the same settings on the same generated data; then a cached one under the same
    conditions; otherwise the model is trained and cached atomically in ``model_dir``.

    Parameters
    ----------
    manifest_csv : Path
        Image manifest (``image``, ``label``, optional ``mask``, ``split``).
    model_dir : Path
        Where the model folder lives (``config.json`` marks a finished folder).
    config : str
        Name or path of the segmenter config.
    strong : bool
        Train the strongly supervised U-Net from the ``mask`` column instead of the weakly
        supervised ScoreCAM-U-Net.
    seed : int
    what : str
        Name used in progress messages.
    overrides : dict, optional
        Config fields to override (nested dicts, as in a config file).
    progress : bool
        Show training progress bars.
    retrain : bool
        Train from scratch even when a shipped or cached model fits.
    """
    segmenter_config = default_model_config(config, strong=strong, seed=seed, what=what, overrides=overrides)
    data_record = _generation_record(manifest_csv.parent)
    if not retrain:
        for folder in (SHIPPED_MODELS / model_dir.name, model_dir):
            if (folder / "config.json").exists():
                found = load_segmenter(folder)
                same_data = _generation_record(folder, _TRAINING_DATA_RECORD) == data_record
                if same_data and _training_settings(found.config) == _training_settings(segmenter_config):
                    if folder != model_dir:
                        print(f"using the shipped {what} ({folder})", flush=True)
                    return found
                print(f"the {what} in {folder} was trained with other settings or data; not used", flush=True)
    print(f"training the {what} ({config} config) -> {model_dir} ...", flush=True)
    segmenter = make_segmenter(segmenter_config)
    segmenter.fit(read_image_manifest(manifest_csv, require_label=not strong), progress=progress)
    with atomic_folder(model_dir, replace=True) as staging:
        segmenter.save(staging)
        (staging / _TRAINING_DATA_RECORD).write_text(json.dumps(data_record))
    return segmenter


def default_model_config(config: str = "fast", *, strong: bool = False, seed: int = 0,
                         what: str = "artifact model", overrides: dict | None = None):
    """The configuration of a default model: ``config`` with the mode, seed, overrides and fp32.

    Examples
    --------
    >>> default_model_config("fast", strong=True).unet_train.precision
    'fp32'
    """
    settings = config_to_dict(load_config(config))
    settings.update(mode="strong" if strong else settings["mode"], seed=seed)
    settings = merge_overrides(settings, CPU_INDEPENDENT_OVERRIDES, source=what)
    if overrides:
        settings = merge_overrides(settings, overrides, source=what)
    return config_from_dict(settings, source=what)


def _generation_record(folder: Path, name: str = "generation.json") -> dict | None:
    """The generation settings recorded in ``folder`` (None when there are none)."""
    record = folder / name
    return json.loads(record.read_text()) if record.exists() else None


def _training_settings(config) -> dict:
    """The settings a model of ``config``'s mode depends on (strong mode has no classifier or Score-CAM)."""
    settings = config_to_dict(config)
    if config.mode == "strong":
        for unused in ("classifier", "classifier_train", "cam"):
            settings.pop(unused, None)
    return settings


def mask_manifest(manifest_csv: Path, mask_column: str, out_csv: Path) -> Path:
    """Write a copy of an image manifest whose ``mask`` column is taken from ``mask_column``.

    Used to train pixel models (cells, nuclei) with the same strongly supervised U-Net code
    path as the artifact segmenter.
    """
    manifest = pd.read_csv(manifest_csv)
    manifest["mask"] = manifest[mask_column]
    manifest = manifest.drop(columns=["label"], errors="ignore")
    atomic_write_csv(manifest, out_csv)
    return out_csv


def held_out_scores(segmenter: PixelSegmenter, manifest_csv: Path, split: str = "test") -> dict:
    """Pixel precision / recall / F1 / IoU of a pixel model on a manifest's held-out rows.

    Parameters
    ----------
    segmenter : PixelSegmenter
        A pixel model (cells, nuclei).
    manifest_csv : Path
        Image manifest with ``image``, ``mask`` and ``split`` columns (e.g. from
        :func:`mask_manifest`); the model must not have been trained on ``split`` rows.
    split : str
        The held-out split to score.

    Returns
    -------
    dict
        :func:`artseg.metrics.pixel_scores` pooled over the rows, plus ``n_fields``.
    """
    manifest = read_image_manifest(manifest_csv)
    rows = manifest[manifest["split"] == split]
    if rows.empty:
        raise ArtsegInputError(f"{manifest_csv}: no '{split}' rows to score the model on")
    truth = [read_mask(path) for path in rows["mask"]]
    predicted = [segmenter.predict_mask(read_image(path)) for path in rows["image"]]
    return {**pixel_scores(truth, predicted), "n_fields": int(len(rows))}


class RememberedMasks:
    """A segmenter's ``predict_mask``, remembered on disk per model and image content.

    The embedded default runs segment the same fields with the same models every time; a
    second run reads the masks back instead of running the networks again. The store is
    keyed by the model's weights, configuration and calibration, and each mask by the
    image's pixels, so a retrained model or a regenerated dataset never reads stale masks.

    Parameters
    ----------
    segmenter : ArtifactSegmenter or PixelSegmenter
    folder : Path
        Where the stores live (one ``<model key>.npz`` per model).

    Examples
    --------
    >>> import tempfile
    >>> class Threshold:
    ...     config, calibration, unet, classifier = {}, {}, None, None
    ...     def predict_mask(self, image):
    ...         return image > 0.5
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     masks = RememberedMasks(Threshold(), Path(folder))
    ...     first = masks.predict_mask(np.array([[0.2, 0.9]]))
    ...     masks.save()
    ...     again = RememberedMasks(Threshold(), Path(folder))
    ...     again.predict_mask(np.array([[0.2, 0.9]])).tolist(), again.n_computed
    ([[False, True]], 0)
    """

    def __init__(self, segmenter, folder: Path):
        self.segmenter = segmenter
        self.path = Path(folder) / f"{model_digest(segmenter)}.npz"
        self.n_computed = 0
        self._masks: dict[str, np.ndarray] = {}
        if self.path.exists():
            with np.load(self.path) as stored:
                self._masks = {key: stored[key] for key in stored.files}

    def predict_mask(self, image: np.ndarray) -> np.ndarray:
        """The model's mask of ``image``: remembered, or predicted now and remembered."""
        image = np.ascontiguousarray(image)
        key = hashlib.sha256(repr((image.shape, image.dtype.str)).encode() + image.tobytes()).hexdigest()
        packed = self._masks.get(key)
        if packed is None:
            mask = np.asarray(self.segmenter.predict_mask(image), dtype=bool)
            self._masks[key] = packed = np.packbits(mask, axis=None)
            self.n_computed += 1
        return np.unpackbits(packed, count=image.size).reshape(image.shape).astype(bool)

    def save(self) -> None:
        """Write the store atomically (only when masks were added)."""
        if self.n_computed == 0:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_target(self.path) as target, open(target, "wb") as handle:
            np.savez(handle, **self._masks)
