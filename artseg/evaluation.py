"""Score a set of predicted artifact masks against ground truth, into tables.

Pure: arrays in, tables out. ``artseg evaluate`` (:mod:`artseg.commands.evaluate`) reads
the files and writes what :func:`evaluate_masks` returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from artseg.errors import ArtsegInputError
from artseg.metrics import (
    DEFAULT_IOU_THRESHOLDS,
    SCORE_NAMES,
    confusion_scores,
    image_scores,
    object_scores_table,
    pixel_scores,
)
from artseg.postprocess import label_objects

__all__ = ["Evaluation", "evaluate_masks", "format_report"]

_COUNT_NAMES = ("tp", "fp", "fn")


@dataclass(frozen=True)
class Evaluation:
    """Scores of one evaluation.

    Attributes
    ----------
    metrics : dict
        Nested scores (what ``metrics.json`` holds): ``pixel`` (``pooled`` and
        ``mean_per_image``), ``object`` (``at_threshold`` and ``mean_f1`` over
        ``thresholds``), ``image``, and ``n_images``.
    per_image : pandas.DataFrame
        One row per image (what ``per_image.csv`` holds).
    """

    metrics: dict
    per_image: pd.DataFrame

    def summary_table(self) -> pd.DataFrame:
        """Flatten :attr:`metrics` into rows ``level, metric, aggregation, value`` (``metrics.csv``)."""
        pixel, objects, image = self.metrics["pixel"], self.metrics["object"], self.metrics["image"]
        at_threshold = f"pooled over images, IoU > {objects['iou_threshold']:g}"
        thresholds = objects["thresholds"]
        rows = [("pixel", key, "pooled over all pixels", pixel["pooled"][key]) for key in (*SCORE_NAMES, *_COUNT_NAMES)]
        rows += [("pixel", key, "mean per image", pixel["mean_per_image"][key]) for key in SCORE_NAMES]
        rows += [("object", key, at_threshold, objects["at_threshold"][key]) for key in ("precision", "recall", "f1", *_COUNT_NAMES)]
        rows.append(
            ("object", "mean_f1", f"pooled over images, mean over IoU {min(thresholds):.2f}-{max(thresholds):.2f}", objects["mean_f1"])
        )
        rows += [
            ("image", key, "contains artifact, over images", image[key])
            for key in ("precision", "recall", "f1", "accuracy", *_COUNT_NAMES, "tn")
        ]
        return pd.DataFrame(rows, columns=["level", "metric", "aggregation", "value"])


def _image_labels(given, from_masks: np.ndarray, name: str, source: str) -> tuple[np.ndarray, str]:
    """Labels per image: the given ones, the mask's "any pixel set" where a label is missing."""
    if given is None:
        return from_masks, "from masks (any pixel set)"
    values = pd.array(list(given), dtype="Float64")
    if len(values) != len(from_masks):
        raise ArtsegInputError(f"{name} has {len(values)} entries but there are {len(from_masks)} images")
    missing = np.asarray(values.isna())
    labels = np.where(missing, from_masks, np.asarray(values.fillna(0), dtype=np.float64) != 0)
    if missing.all():
        return labels, "from masks (any pixel set)"
    return labels, f"{source}, from masks where missing" if missing.any() else source


def evaluate_masks(
    mask_pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    names: Sequence[str] | None = None,
    *,
    true_image_labels=None,
    pred_image_labels=None,
    true_labels_source: str = "given",
    pred_labels_source: str = "given",
    iou_threshold: float = 0.5,
    iou_thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS,
    connectivity: int = 1,
) -> Evaluation:
    """Pixel-, object- and image-level scores of predicted artifact masks (paper Box 1).

    Parameters
    ----------
    mask_pairs : iterable of (numpy.ndarray, numpy.ndarray)
        ``(true_mask, pred_mask)`` per image, 2-D, non-zero = artifact; shapes may differ
        between images. Consumed once, one pair at a time (a generator reading files
        keeps one image in memory).
    names : sequence of str, optional
        Image names for messages and the per-image table (default ``0..N-1``).
    true_image_labels, pred_image_labels : sequence, optional
        "Contains artifact" per image (1/0/True/False). None, or a missing entry
        (None/NaN), falls back to "the mask has any artifact pixel".
    true_labels_source, pred_labels_source : str
        Where given labels come from, in words, for the report (e.g. ``"manifest label"``).
    iou_threshold : float
        Object matching threshold of the headline object scores.
    iou_thresholds : sequence of float
        Thresholds averaged for the mean object F1 (default 0.50-0.90, step 0.05).
    connectivity : int
        Objects are the connected components of each mask with this connectivity.

    Returns
    -------
    Evaluation
        ``metrics`` (nested dict) and ``per_image`` (table).

    Raises
    ------
    ArtsegInputError
        No images, a pair with different shapes (named), label or name counts that
        differ from the number of images.

    Notes
    -----
    Pixel scores are given twice: pooled (counts summed over all pixels of all images,
    then scored) and as the mean of per-image scores (an image with no artifact in
    truth and prediction scores 1.0). Object scores are pooled over images, matching
    objects within each image (:func:`artseg.metrics.object_scores`).

    Examples
    --------
    >>> truth = np.array([[1, 1, 0, 0]], dtype=bool)
    >>> pred = np.array([[0, 1, 1, 0]], dtype=bool)
    >>> evaluate_masks([(truth, pred)]).metrics["pixel"]["pooled"]["iou"]
    0.3333333333333333
    """
    if len(iou_thresholds) == 0:
        raise ArtsegInputError("iou_thresholds is empty")
    thresholds = [float(iou_threshold), *(float(t) for t in iou_thresholds)]
    rows, object_counts, any_true, any_pred = [], [], [], []
    for index, (truth, prediction) in enumerate(mask_pairs):
        name = names[index] if names is not None and index < len(names) else index
        truth, prediction = np.asarray(truth), np.asarray(prediction)
        if truth.shape != prediction.shape:
            raise ArtsegInputError(
                f"image {name}: predicted mask shape {prediction.shape} does not match true mask shape {truth.shape}"
            )
        pixels = pixel_scores(truth, prediction)
        table = object_scores_table(label_objects(truth, connectivity), label_objects(prediction, connectivity), thresholds)
        counts = table[list(_COUNT_NAMES)].to_numpy()
        object_counts.append(counts)
        tp, fp, fn = (int(count) for count in counts[0])
        rows.append(
            {
                "image": name,
                **{f"pixel_{key}": pixels[key] for key in (*SCORE_NAMES, *_COUNT_NAMES)},
                "true_objects": tp + fn,
                "pred_objects": tp + fp,
                "object_tp": tp,
                "object_fp": fp,
                "object_fn": fn,
                "object_f1": float(table["f1"].iloc[0]),
                "object_mean_f1": float(table["f1"].iloc[1:].mean()),
            }
        )
        any_true.append(pixels["tp"] + pixels["fn"] > 0)
        any_pred.append(pixels["tp"] + pixels["fp"] > 0)
    if not rows:
        raise ArtsegInputError("no images to evaluate")
    if names is not None and len(names) != len(rows):
        raise ArtsegInputError(f"names has {len(names)} entries but there are {len(rows)} images")
    per_image = pd.DataFrame(rows)
    true_labels, true_source = _image_labels(true_image_labels, np.array(any_true), "true_image_labels", true_labels_source)
    pred_labels, pred_source = _image_labels(pred_image_labels, np.array(any_pred), "pred_image_labels", pred_labels_source)
    per_image.insert(1, "true_label", true_labels.astype(int))
    per_image.insert(2, "pred_label", pred_labels.astype(int))

    pooled_pixels = {key: int(per_image[f"pixel_{key}"].sum()) for key in _COUNT_NAMES}
    pooled_objects = np.sum(object_counts, axis=0)
    object_scores = confusion_scores(*pooled_objects.T)
    metrics = {
        "n_images": len(rows),
        "pixel": {
            "pooled": {**confusion_scores(*pooled_pixels.values()), **pooled_pixels},
            "mean_per_image": {key: float(per_image[f"pixel_{key}"].mean()) for key in SCORE_NAMES},
        },
        "object": {
            "iou_threshold": thresholds[0],
            "at_threshold": {
                **{key: int(pooled_objects[0, i]) for i, key in enumerate(_COUNT_NAMES)},
                **{key: float(object_scores[key][0]) for key in ("precision", "recall", "f1")},
            },
            "thresholds": thresholds[1:],
            "f1_per_threshold": [float(f1) for f1 in object_scores["f1"][1:]],
            "mean_f1": float(np.mean(object_scores["f1"][1:])),
            "aggregation": "counts pooled over images, objects matched within each image",
        },
        "image": {**image_scores(true_labels, pred_labels), "true_labels": true_source, "pred_labels": pred_source},
    }
    return Evaluation(metrics=metrics, per_image=per_image)


def format_report(evaluation: Evaluation) -> str:
    """A short plain-text summary of an evaluation, for the terminal."""
    m = evaluation.metrics
    pixel, objects, image = m["pixel"], m["object"], m["image"]

    def scores(values: dict, keys: Sequence[str] = SCORE_NAMES) -> str:
        return "  ".join(f"{key} {values[key]:.3f}" for key in keys)

    thresholds = objects["thresholds"]
    lines = [
        f"{m['n_images']} images",
        f"pixel, pooled over all pixels: {scores(pixel['pooled'])}",
        f"pixel, mean per image:         {scores(pixel['mean_per_image'])}",
        f"object, IoU > {objects['iou_threshold']:g}, pooled:     {scores(objects['at_threshold'], ('precision', 'recall', 'f1'))}"
        f"  (tp {objects['at_threshold']['tp']}, fp {objects['at_threshold']['fp']}, fn {objects['at_threshold']['fn']})",
        f"object, mean F1 over IoU {min(thresholds):.2f}-{max(thresholds):.2f}: {objects['mean_f1']:.3f}",
        f"image, contains artifact:      {scores(image, ('precision', 'recall', 'f1', 'accuracy'))}",
        f"  (true image labels: {image['true_labels']}; predicted: {image['pred_labels']})",
    ]
    return "\n".join(lines)
