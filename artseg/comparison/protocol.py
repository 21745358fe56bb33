"""The rules of the paper's model comparison (sections 2.3.2-2.3.3), as pure functions.

Each model's probability cut-off is chosen on the ``val`` split by pooled pixel IoU
(:func:`choose_cutoff`, the search of :func:`artseg.calibration.search_cutoff`), with the
dataset's smallest-object filter applied; the model is then scored on the ``test`` split with
that cut-off (:func:`evaluate_model`). Conventions:

- pixel-wise precision, recall, F1 and IoU are *pooled* over all test pixels (paper Box 1);
  ``mean_image_iou`` is the unweighted mean of per-image IoU;
- the image-level call "contains artifact" is the classifier's (image score at least the
  model's ``image_call_threshold``) for the classifier-based models (ScoreCAM-U-Net and
  ScoreCAM, which therefore share it, as in the paper) and "the post-processed mask is not
  empty" for the others;
- object sizes are given at the paper's field size and scaled by field area to the images
  at hand (:func:`scale_object_size`; the synthetic presets draw artifact areas as shares of
  the field).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from artseg.calibration import DEFAULT_CUTOFFS, PAPER_MIN_SIZES, search_cutoff
from artseg.errors import ArtsegInputError
from artseg.metrics import image_scores, iou_after_size_filter, pixel_scores, pixel_scores_per_image, pr_auc, pr_curve
from artseg.postprocess import binarize, remove_small

__all__ = [
    "PAPER_MIN_OBJECT_SIZE",
    "ModelResult",
    "choose_cutoff",
    "evaluate_model",
    "object_size_settings",
    "paper_min_object_size",
    "pick_examples",
    "scale_object_size",
]

# Smallest kept object at the paper's field size (section 2.3.3).
PAPER_MIN_OBJECT_SIZE = {"seven_cell_lines": 1000, "cho_m4r": 500, "lncap": 500}


def scale_object_size(size: int, paper_shape: Sequence[int], shape: Sequence[int]) -> int:
    """Scale an object size in pixels from the paper's field to another field by area.

    Parameters
    ----------
    size : int
        Pixels at the paper's field size (0 = no filter).
    paper_shape, shape : sequence of int
        ``(H, W)`` of the paper's fields and of the fields at hand.

    Returns
    -------
    int
        ``round(size * H * W / (H_paper * W_paper))``, at least 1 for a positive size.

    Examples
    --------
    >>> scale_object_size(500, (904, 1224), (256, 256))
    30
    """
    if size < 0:
        raise ArtsegInputError(f"object size must be >= 0, got {size}")
    if size == 0:
        return 0
    ratio = float(np.prod(shape)) / float(np.prod(paper_shape))
    return max(1, int(round(size * ratio)))


def paper_min_object_size(preset: str) -> int:
    """The paper's smallest kept object (pixels at its field size) for a dataset preset.

    Raises
    ------
    ArtsegInputError
        For a preset the paper gives no size for.
    """
    try:
        return PAPER_MIN_OBJECT_SIZE[preset]
    except KeyError:
        raise ArtsegInputError(
            f"no paper object-size filter for preset {preset!r} (known: {', '.join(PAPER_MIN_OBJECT_SIZE)}); "
            "give the size explicitly"
        ) from None


def object_size_settings(
    shape: Sequence[int],
    preset: str | None = None,
    min_object_size: int | None = None,
    paper_shape: Sequence[int] | None = None,
) -> dict:
    """The smallest-object filter and the size-table grid for fields of ``shape``.

    Parameters
    ----------
    shape : sequence of int
        ``(H, W)`` of the benchmark's images.
    preset : str, optional
        Dataset preset: supplies the paper's field size and smallest object (§2.3.3).
    min_object_size : int, optional
        Override, in pixels of the images at hand.
    paper_shape : sequence of int, optional
        The paper's field size; default the preset's.

    Returns
    -------
    dict
        ``shape``, ``paper_shape``, ``paper_min_object_size``, ``min_object_size``,
        ``paper_sizes`` (Supp. Tables 2-4 sizes) and ``sizes`` (the same scaled by area).
    """
    if preset is not None and paper_shape is None:
        from artseg.synth import get_preset

        paper_shape = get_preset(preset).paper_shape
    paper_min = paper_min_object_size(preset) if preset is not None else None
    if paper_shape is None:
        scale = lambda size: int(size)  # noqa: E731  sizes are already in pixels of these images
    else:
        scale = lambda size: scale_object_size(size, paper_shape, shape)  # noqa: E731
    if min_object_size is None:
        min_object_size = scale(paper_min) if paper_min is not None else 0
    if min_object_size < 0:
        raise ArtsegInputError(f"min_object_size must be >= 0, got {min_object_size}")
    return {
        "shape": [int(v) for v in shape],
        "paper_shape": None if paper_shape is None else [int(v) for v in paper_shape],
        "paper_min_object_size": paper_min,
        "min_object_size": int(min_object_size),
        "paper_sizes": list(PAPER_MIN_SIZES),
        "sizes": [scale(size) for size in PAPER_MIN_SIZES],
    }



def choose_cutoff(
    val_maps: Sequence[np.ndarray],
    val_masks: Sequence[np.ndarray],
    min_object_size: int,
    cutoffs: Sequence[float] = DEFAULT_CUTOFFS,
) -> tuple[float, float]:
    """The probability cut-off maximising pooled pixel IoU on validation images (§2.3.3).

    Parameters
    ----------
    val_maps : sequence of numpy.ndarray
        Probability maps of the validation images.
    val_masks : sequence of numpy.ndarray
        Their ground-truth artifact masks.
    min_object_size : int
        Objects smaller than this are removed before scoring, as at test time.
    cutoffs : sequence of float
        Candidates (default: :data:`artseg.calibration.DEFAULT_CUTOFFS`, 0 and 1e-5 ... 0.99).

    Returns
    -------
    cutoff : float
        The smallest candidate reaching the best IoU.
    val_iou : float
        That IoU.

    Examples
    --------
    >>> truth = np.zeros((1, 8, 8), bool); truth[0, 2:6, 2:6] = True
    >>> probability = np.where(truth, 0.7, 0.2)
    >>> choose_cutoff(probability, truth, min_object_size=0)
    (0.2, 1.0)
    """
    return search_cutoff(list(val_maps), list(val_masks), cutoffs=cutoffs, min_size=int(min_object_size), progress=False)


@dataclass
class ModelResult:
    """Everything the benchmark measured for one model.

    Attributes
    ----------
    name : str
        Model name.
    cutoff, val_iou : float
        Cut-off chosen on validation data and its pooled validation IoU.
    min_object_size : int
        Smallest kept object (pixels of the images at hand).
    scores : dict
        Test scores (fractions): ``image_f1``, ``image_precision``, ``image_recall``,
        pooled pixel ``precision``, ``recall``, ``f1``, ``iou``, ``mean_image_iou``, ``pr_auc``.
    per_image : pandas.DataFrame
        One row per test image.
    pr_curve : pandas.DataFrame
        Pooled pixel PR curve on the test images (no size filter), one row per cut-off.
    size_table : pandas.DataFrame
        Pooled test scores after each object-size filter (``min_size`` column).
    masks : list of numpy.ndarray
        Post-processed test masks.
    timings : dict
        ``fit_seconds``, ``predict_seconds_per_image``, ``from_cache``.
    """

    name: str
    cutoff: float
    val_iou: float
    min_object_size: int
    scores: dict
    per_image: pd.DataFrame
    pr_curve: pd.DataFrame
    size_table: pd.DataFrame
    masks: list
    timings: dict = field(default_factory=dict)


def evaluate_model(
    name: str,
    test_maps: Sequence[np.ndarray],
    test_masks: Sequence[np.ndarray],
    test_labels: Sequence[int],
    test_image_scores: Sequence[float],
    *,
    cutoff: float,
    min_object_size: int,
    gate_threshold: float | None = None,
    size_grid: Sequence[int] = PAPER_MIN_SIZES,
    image_names: Sequence[str] | None = None,
    val_iou: float = float("nan"),
) -> ModelResult:
    """Score one model's test maps at a fixed cut-off and object-size filter.

    Parameters
    ----------
    name : str
        Model name.
    test_maps, test_masks : sequence of numpy.ndarray
        Probability maps and ground-truth masks of the test images.
    test_labels : sequence of int
        Image labels (1 = contains artifact).
    test_image_scores : sequence of float
        The model's image scores (:meth:`artseg.comparison.Detector.image_score`).
    cutoff : float
        Probability cut-off, chosen beforehand on validation data.
    min_object_size : int
        Objects smaller than this are removed.
    gate_threshold : float, optional
        For classifier-gated models: the image is called artifact-containing when its
        score is at least this. ``None``: when its post-processed mask is not empty.
    size_grid : sequence of int
        Object-size filters of the size table (pixels of the images at hand).
    image_names : sequence of str, optional
        Names for the per-image table.
    val_iou : float
        Validation IoU at ``cutoff`` (recorded only).

    Returns
    -------
    ModelResult
    """
    test_maps, test_masks = list(test_maps), list(test_masks)
    labels = np.asarray(test_labels, dtype=int)
    image_score_values = np.asarray(test_image_scores, dtype=float)
    if not (len(test_maps) == len(test_masks) == len(labels) == len(image_score_values)):
        raise ArtsegInputError(
            f"{name}: {len(test_maps)} maps, {len(test_masks)} masks, {len(labels)} labels and "
            f"{len(image_score_values)} image scores; they must pair up"
        )
    masks = [remove_small(binarize(prob, cutoff), int(min_object_size)) for prob in test_maps]
    if gate_threshold is None:
        calls = np.array([bool(mask.any()) for mask in masks])
    else:
        calls = image_score_values >= gate_threshold
    pooled = pixel_scores(test_masks, masks)
    names = list(image_names) if image_names is not None else [str(i) for i in range(len(masks))]
    per_image, mean = pixel_scores_per_image(test_masks, masks, names=names)
    per_image.insert(1, "label", labels)
    per_image.insert(2, "image_score", image_score_values)
    per_image.insert(3, "called_artifact", calls.astype(int))
    image = image_scores(labels, calls)
    curve = pr_curve(test_maps, test_masks)
    size_table = iou_after_size_filter(test_maps, test_masks, cutoff, sizes=sorted(set(int(s) for s in size_grid)))
    scores = {
        "image_f1": image["f1"],
        "image_precision": image["precision"],
        "image_recall": image["recall"],
        "precision": pooled["precision"],
        "recall": pooled["recall"],
        "f1": pooled["f1"],
        "iou": pooled["iou"],
        "mean_image_iou": mean["iou"],
        "pr_auc": area if np.isfinite(area := pr_auc(test_maps, test_masks)) else float("nan"),
    }
    return ModelResult(
        name=name, cutoff=float(cutoff), val_iou=float(val_iou), min_object_size=int(min_object_size),
        scores=scores, per_image=per_image, pr_curve=curve, size_table=size_table, masks=masks,
    )


def pick_examples(test_masks: Sequence[np.ndarray], test_labels: Sequence[int], count: int = 4) -> list[int]:
    """Test images to show as examples (Fig. 3A), chosen without looking at any model.

    Artifact-containing images are ranked by true artifact area and ``count`` of them are
    taken evenly from the largest down to the lower quartile (the smallest artifacts are
    hard to see at figure scale).

    Returns
    -------
    list of int
        Indices into the test images, largest artifact first.

    Examples
    --------
    >>> masks = [np.zeros((4, 4), bool), np.ones((4, 4), bool), np.eye(4, dtype=bool)]
    >>> pick_examples(masks, [0, 1, 1], count=1)
    [1]
    """
    areas = [int(np.count_nonzero(mask)) for mask in test_masks]
    positive = [i for i, (label, area) in enumerate(zip(test_labels, areas)) if int(label) == 1 and area > 0]
    ranked = sorted(positive, key=lambda i: (-areas[i], i))
    if count <= 0 or not ranked:
        return []
    if len(ranked) <= count:
        return ranked
    last = max(count - 1, int(round(0.75 * (len(ranked) - 1))))
    positions = np.unique(np.round(np.linspace(0, last, count)).astype(int))
    return [ranked[p] for p in positions]
