"""The weak recipe's stages (paper §2.2, §2.3.1): classifier → Score-CAM maps → pseudo-masks.

Pure functions on arrays and networks, composed by :class:`artseg.segmenter.ArtifactSegmenter`
(which adds the U-Net of :mod:`artseg.pixel_model` and the calibration of
:mod:`artseg.calibration`). None of them sees a pixel label, except :func:`choose_cam_stage`,
which picks the explained stage on validation pixel masks the way the cut-off is chosen.

- :func:`classifier_inputs`, :func:`train_classifier`, :func:`classifier_probabilities`:
  the ResNet trained on image labels and its artifact probabilities.
- :func:`score_cam_maps` (one stage or several averaged, optionally with mirrored inputs),
  :func:`choose_cam_stage`.
- :func:`make_pseudo_masks`: map > cut-off (the paper's fixed 0.05, or a per-map Otsu cut-off
  from :func:`adaptive_cutoff`) for artifact images; empty masks for clean ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from artseg.cam._probability import class_probability, resolve_activation
from artseg.config import CAM_FLIPS, CamConfig, SegmenterConfig
from artseg.errors import ArtsegInputError
from artseg.metrics import pixel_scores
from artseg.nets import build_network
from artseg.preprocess import resize_image, resize_mask
from artseg.hardware import inference_layout, inference_memory_format
from artseg.train import TrainResult, autocast_context, resolve_precision, train_network

CUTOFF_METHODS = ("fixed", "otsu")


# --------------------------------------------------------------------------- the classifier


def classifier_inputs(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """Normalised images resized to the classifier's ``size`` × ``size``, as ``(N, 1, size, size)``."""
    if len(images) == 0:
        return torch.zeros((0, 1, size, size))
    return torch.from_numpy(np.stack([resize_image(image, (size, size)) for image in images])[:, None])


def train_classifier(inputs: torch.Tensor, labels: np.ndarray, train_rows: np.ndarray, val_rows: np.ndarray,
                     config: SegmenterConfig, *, device: torch.device, log_dir: Path | None = None,
                     progress: bool = True) -> tuple[nn.Module, TrainResult]:
    """Train the ResNet of ``config.classifier`` on image labels (1 = artifact), seeded by ``config.seed``.

    Returns
    -------
    classifier : torch.nn.Module
        Holding its best-validation weights, in eval mode.
    result : TrainResult
    """
    classifier = build_network(config.classifier, seed=config.seed).to(device)
    targets = torch.as_tensor(np.asarray(labels), dtype=torch.float32)[:, None]
    result = train_network(classifier, inputs[train_rows], targets[train_rows], inputs[val_rows], targets[val_rows],
                           config.classifier_train, seed=config.seed, name="classifier", log_dir=log_dir,
                           progress=progress)
    return classifier, result


def classifier_probabilities(classifier: nn.Module, inputs: torch.Tensor, *, precision: str,
                             device: torch.device, batch_size: int = 32) -> np.ndarray:
    """Artifact probabilities of classifier inputs ``(N, 1, S, S)``, float32 ``(N,)``."""
    precision = resolve_precision(precision, device.type)
    memory_format = inference_memory_format(precision, device.type)
    classifier.eval()
    probabilities = []
    with torch.no_grad(), autocast_context(precision, device.type), inference_layout(classifier, memory_format):
        for start in range(0, len(inputs), batch_size):
            x = inputs[start:start + batch_size].to(device).contiguous(memory_format=memory_format)
            logits = classifier(x)
            artifact = torch.ones(len(logits), dtype=torch.long, device=logits.device)
            probabilities.append(class_probability(logits, artifact, resolve_activation("auto", logits.shape[1])))
    if not probabilities:
        return np.zeros(0, np.float32)
    return torch.cat(probabilities).cpu().numpy()


# --------------------------------------------------------------------------- Score-CAM


def target_layers(classifier: nn.Module, stage: str) -> list[nn.Module]:
    """The classifier stages named by ``stage`` (attribute paths joined by ``+``).

    Raises
    ------
    ArtsegInputError
        ``stage`` is ``"auto"`` (chosen at fit time) or names no module of the classifier.
    """
    if stage == "auto":
        raise ArtsegInputError("cam.target_stage 'auto' is chosen at fit time: call fit() or load() first")
    layers = []
    for path in stage.split("+"):
        layer: Any = classifier
        for part in path.strip().split("."):
            layer = getattr(layer, part, None)
        if not isinstance(layer, nn.Module):
            raise ArtsegInputError(f"cam.target_stage {stage!r}: {path.strip()!r} is not a module of the classifier")
        layers.append(layer)
    return layers


def score_cam_maps(classifier: nn.Module, inputs: torch.Tensor, stage: str, cam: CamConfig, *,
                   device: torch.device, progress: bool = True) -> np.ndarray:
    """Score-CAM maps ``(N, S, S)`` in [0, 1] of the artifact class at the classifier's input size.

    Several stages (``"a+b"``) are averaged; with ``cam.flips`` the maps of the mirrored
    inputs, mirrored back, join the average.
    """
    from artseg.cam import score_cam

    if len(inputs) == 0:
        return np.zeros((0, *inputs.shape[-2:]), np.float32)
    inputs = inputs.to(device)
    maps = []
    for layer in target_layers(classifier, stage):
        for dims in CAM_FLIPS[cam.flips]:
            explained = score_cam(classifier, inputs.flip(dims) if dims else inputs, target_layer=layer,
                                  class_idx=1, batch_size=cam.batch_size, top_k=cam.top_k,
                                  precision=cam.precision, progress=progress)
            maps.append(np.flip(explained, axis=dims) if dims else explained)
    # Every map is min-max normalised to [0, 1] per image, so their mean is too; a deep
    # stage says which object, a shallower one (stride 16) where its edges are.
    return maps[0] if len(maps) == 1 else np.mean(maps, axis=0).astype(np.float32)


def choose_cam_stage(classifier: nn.Module, inputs: torch.Tensor, working: Sequence[np.ndarray],
                     rows: np.ndarray, masks: Sequence[np.ndarray] | None, config: SegmenterConfig, *,
                     device: torch.device, progress: bool = True) -> tuple[str, dict[int, np.ndarray], dict]:
    """Resolve ``cam.target_stage="auto"`` on the validation artifact images ``rows``.

    Each candidate's pseudo-masks are scored against the pixel masks (pooled IoU, ties to the
    earlier candidate); without masks (or ``calibrate_on="pseudo"``) the first candidate is
    taken and nothing is scored.

    Returns
    -------
    stage : str
    maps : dict
        The chosen stage's raw maps of the rows it scored (row → map), to reuse.
    record : dict
        What was chosen and how, for the model folder (empty for a fixed stage).
    """
    cam = config.cam
    if cam.target_stage != "auto":
        return cam.target_stage, {}, {}
    if masks is None or config.postprocess.calibrate_on != "masks" or len(rows) == 0:
        return cam.stage_candidates[0], {}, {"chosen": cam.stage_candidates[0], "selected_on": "default"}
    truth = [resize_mask(masks[row], working[row].shape) for row in rows]
    scored = {}
    for candidate in cam.stage_candidates:
        raw = score_cam_maps(classifier, inputs[rows], candidate, cam, device=device, progress=progress)
        maps = [resize_image(m, working[row].shape) for m, row in zip(raw, rows)]
        pseudo = make_pseudo_masks(maps, np.ones(len(rows), int), config)
        scored[candidate] = (pixel_scores(truth, pseudo)["iou"], dict(zip(rows.tolist(), raw)))
    stage = max(cam.stage_candidates, key=lambda c: scored[c][0])
    record = {"chosen": stage, "selected_on": "pixel_masks",
              "val_pseudo_iou": {c: round(float(v[0]), 4) for c, v in scored.items()}}
    return stage, scored[stage][1], record


# --------------------------------------------------------------------------- pseudo-masks


def make_pseudo_masks(cam_maps: Sequence[np.ndarray] | np.ndarray, labels: Sequence[int] | np.ndarray,
                      config: SegmenterConfig) -> list[np.ndarray]:
    """Turn Score-CAM maps into pseudo-masks for U-Net training (paper §2.3.1).

    Parameters
    ----------
    cam_maps : sequence of numpy.ndarray
        One map in [0, 1] per image (any 2-D shape each). Maps of clean images are ignored
        and may be zeros.
    labels : sequence of int
        Image labels, 1 = contains an artifact, 0 = clean.
    config : SegmenterConfig
        Uses ``config.cam.pseudo_method`` and ``pseudo_cutoff`` (0.05 in the paper; with
        ``"otsu"`` the floor of the per-map cut-off).

    Returns
    -------
    list of numpy.ndarray
        bool masks: ``map > cutoff`` for artifact images, all False for clean ones.

    Examples
    --------
    >>> maps = [np.array([[0.0, 0.5]]), np.array([[0.9, 0.9]])]
    >>> [m.tolist() for m in make_pseudo_masks(maps, [1, 0], SegmenterConfig())]
    [[[False, True]], [[False, False]]]
    """
    if len(cam_maps) != len(labels):
        raise ArtsegInputError(f"{len(cam_maps)} Score-CAM maps but {len(labels)} labels")
    cam = config.cam
    masks = []
    for cam_map, label in zip(cam_maps, labels):
        cam_map = np.asarray(cam_map)
        if int(label) != 1:
            masks.append(np.zeros(cam_map.shape, dtype=bool))
            continue
        masks.append(cam_map > adaptive_cutoff(cam_map, cam.pseudo_method, fixed=cam.pseudo_cutoff,
                                               floor=cam.pseudo_cutoff))
    return masks


def _as_2d_float(array, name: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 2 or min(array.shape) < 1:
        raise ArtsegInputError(f"{name}: expected a non-empty 2-D array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ArtsegInputError(f"{name}: contains NaN or infinite values")
    return array


def adaptive_cutoff(cam_map: np.ndarray, method: str = "otsu", *, fixed: float = 0.05, floor: float = 0.0) -> float:
    """Pseudo-label cut-off of one Score-CAM map chosen from the map's own values.

    Parameters
    ----------
    cam_map : numpy.ndarray
        2-D map in [0, 1].
    method : {"fixed", "otsu"}, default "otsu"
        ``"fixed"`` returns `fixed` (the paper's 0.05, §2.3.1); ``"otsu"`` the threshold
        that best separates the map's two intensity modes (Otsu 1979).
    fixed : float, default 0.05
    floor : float, default 0.0
        The cut-off is never below this value (guards against near-empty maps).

    Returns
    -------
    float
        Pixels with ``cam_map > cutoff`` are pseudo-mask pixels.

    Raises
    ------
    ArtsegInputError
        Unknown `method`, a map that is not 2-D, or non-finite values.

    Examples
    --------
    >>> cam = np.zeros((8, 8)); cam[:, 4:] = 0.8
    >>> 0.0 <= adaptive_cutoff(cam) < 0.8
    True
    """
    cam_map = _as_2d_float(cam_map, "cam_map")
    if method == "fixed":
        cutoff = float(fixed)
    elif method == "otsu":
        cutoff = _exact_otsu(cam_map)
    else:
        raise ArtsegInputError(f"pseudo-label cut-off method must be one of {CUTOFF_METHODS}, got {method!r}")
    return max(cutoff, float(floor))


def _exact_otsu(values: np.ndarray) -> float:
    """Otsu's threshold over the exact sorted values (no histogram bins), mid-gap.

    Binned Otsu (``skimage.filters.threshold_otsu``) can put the cut-off inside a bin
    that holds values of both modes; splitting between consecutive distinct values cannot.
    """
    ordered = np.sort(values, axis=None).astype(np.float64)
    if ordered[0] == ordered[-1]:
        return float(ordered[0])  # constant map: any cut-off gives the same mask
    splits = np.flatnonzero(np.diff(ordered) > 0)  # split after index i: [0..i] | [i+1..]
    count_low = splits + 1.0
    total = ordered.sum()
    sum_low = np.cumsum(ordered)[splits]
    mean_low = sum_low / count_low
    mean_high = (total - sum_low) / (ordered.size - count_low)
    between = count_low * (ordered.size - count_low) * (mean_low - mean_high) ** 2
    best = splits[int(np.argmax(between))]
    return float(0.5 * (ordered[best] + ordered[best + 1]))


