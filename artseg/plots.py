"""Figures of the model comparison (paper Fig. 3): PR curves, score bars, outline overlays.

Every function takes arrays or tables and returns a :class:`matplotlib.figure.Figure`
built without pyplot, so no global figure state is touched; saving is the caller's job.
Models keep one colour across all figures (:data:`MODEL_COLOURS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from artseg.errors import ArtsegInputError

__all__ = ["MODEL_COLOURS", "model_colour", "outline_overlays", "pr_curves_figure", "score_bars"]

# Colour-blind-safe (Okabe-Ito), in the paper's Supplementary Table 1 column order.
MODEL_COLOURS = {
    "U-Net": "#0072B2",
    "ScoreCAM-U-Net": "#D55E00",
    "ScoreCAM": "#CC79A7",
    "AE": "#009E73",
    "PaDiM": "#E69F00",
    "PatchSVDD": "#56B4E9",
}
_FALLBACK_COLOURS = ("#F0E442", "#000000", "#999999", "#882255")
SCORE_LABELS = {
    "image_f1": "image-level F1 (%)",
    "f1": "pixel-wise F1 (%)",
    "precision": "pixel-wise precision (%)",
    "recall": "pixel-wise recall (%)",
    "iou": "pixel-wise IoU (%)",
    "pr_auc": "PR AUC (%)",
}


def model_colour(name: str, index: int = 0) -> str:
    """Colour of a model: its entry in :data:`MODEL_COLOURS`, else a fallback by ``index``."""
    return MODEL_COLOURS.get(name, _FALLBACK_COLOURS[index % len(_FALLBACK_COLOURS)])


def _require_columns(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ArtsegInputError(f"{what}: missing column(s) {', '.join(missing)}")


def pr_curves_figure(
    curves: pd.DataFrame,
    chosen_cutoffs: Mapping[str, float] | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """Pixel-wise precision-recall curves of several models (paper Fig. 3B, left).

    Parameters
    ----------
    curves : pandas.DataFrame
        Long table with columns ``model, cutoff, precision, recall`` (one row per model and
        cutoff, as :func:`artseg.metrics.pr_curve` gives per model). With ``tp`` and ``fp``
        columns, cut-offs at which nothing is predicted are left out (precision undefined).
    chosen_cutoffs : mapping of str to float, optional
        Each model's operating cutoff; the curve point nearest to it is marked.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        Precision on the x axis and recall on the y axis, as in the paper.

    Raises
    ------
    ArtsegInputError
        A required column is missing.

    Examples
    --------
    >>> curves = pd.DataFrame({"model": ["AE", "AE"], "cutoff": [0.1, 0.5],
    ...                        "precision": [0.2, 0.6], "recall": [0.9, 0.4]})
    >>> pr_curves_figure(curves, {"AE": 0.5}).axes[0].get_xlabel()
    'pixel-wise precision'
    """
    _require_columns(curves, ("model", "cutoff", "precision", "recall"), "PR curves")
    fig = Figure(figsize=(6.2, 4.4), layout="constrained")
    ax = fig.subplots()
    for index, (model, rows) in enumerate(curves.groupby("model", sort=False)):
        rows = rows.sort_values("cutoff")
        if {"tp", "fp"} <= set(rows.columns):
            rows = rows[(rows["tp"] + rows["fp"]) > 0]  # precision is undefined where nothing is predicted
        if rows.empty:
            continue
        colour = model_colour(str(model), index)
        ax.plot(rows["precision"], rows["recall"], color=colour, lw=1.6, label=str(model))
        if chosen_cutoffs and model in chosen_cutoffs:
            nearest = rows.iloc[int(np.argmin(np.abs(rows["cutoff"].to_numpy() - chosen_cutoffs[model])))]
            ax.plot(nearest["precision"], nearest["recall"], "o", color=colour, ms=6, mec="black", mew=0.6)
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="pixel-wise precision", ylabel="pixel-wise recall")
    ax.grid(alpha=0.3)
    fig.legend(fontsize=8, loc="outside right upper", frameon=False)
    if title:
        ax.set_title(title)
    return fig


def score_bars(
    scores: pd.DataFrame,
    metrics: Sequence[str] = ("iou", "image_f1"),
    *,
    title: str | None = None,
) -> Figure:
    """Bar charts of per-model scores, one panel per metric (paper Fig. 3B, middle and right).

    Parameters
    ----------
    scores : pandas.DataFrame
        One row per model: a ``model`` column and one column per metric, as fractions in
        [0, 1] (drawn as percentages).
    metrics : sequence of str
        Columns to draw, e.g. ``("iou",)`` for the IoU chart alone.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ArtsegInputError
        A required column is missing or no metric is asked for.

    Examples
    --------
    >>> scores = pd.DataFrame({"model": ["U-Net", "AE"], "iou": [0.45, 0.27], "image_f1": [0.81, 0.67]})
    >>> len(score_bars(scores).axes)
    2
    """
    if not metrics:
        raise ArtsegInputError("score_bars: give at least one metric")
    _require_columns(scores, ("model", *metrics), "score table")
    models = scores["model"].astype(str).tolist()
    colours = [model_colour(model, index) for index, model in enumerate(models)]
    fig = Figure(figsize=(0.55 * len(models) * len(metrics) + 1.8, 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    positions = np.arange(len(models))
    for ax, metric in zip(axes, metrics):
        values = 100.0 * scores[metric].to_numpy(dtype=float)
        ax.bar(positions, values, color=colours, edgecolor="black", linewidth=0.4)
        for x, value in zip(positions, values):
            if np.isfinite(value):
                ax.text(x, value + 1.0, f"{value:.1f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(positions, models, rotation=40, ha="right", fontsize=8)
        ax.set(ylim=(0, 105), ylabel=SCORE_LABELS.get(metric, metric))
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def _draw_outline(ax, mask: np.ndarray, colour: str, width: float) -> None:
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():  # nothing to outline (and contour would warn on a constant array)
        return
    # A False border lets a mask touching (or filling) the field close its outline at the edge.
    padded = np.pad(mask, 1).astype(np.float32)
    rows = np.arange(-1, mask.shape[0] + 1)
    cols = np.arange(-1, mask.shape[1] + 1)
    ax.contour(cols, rows, padded, levels=[0.5], colors=[colour], linewidths=width)


def outline_overlays(
    images: Sequence[np.ndarray],
    true_masks: Sequence[np.ndarray],
    predicted_masks: Mapping[str, Sequence[np.ndarray]],
    *,
    row_titles: Sequence[str] | None = None,
    low: float = 0.5,
    high: float = 99.5,
    panel_size: float = 2.0,
) -> Figure:
    """Example fields with the true artifact outline in white and each model's in its colour.

    Paper Fig. 3A / Supplementary Fig. 3: one row per field, one column per model.

    Parameters
    ----------
    images : sequence of numpy.ndarray
        2-D gray fields (any range; each shown between its ``low`` and ``high`` percentiles).
    true_masks : sequence of numpy.ndarray
        Ground-truth artifact masks, one per image.
    predicted_masks : mapping of str to sequence of numpy.ndarray
        Model name to its binary masks, one per image, in column order.
    row_titles : sequence of str, optional
        Label of each row (e.g. the image file name).
    low, high : float
        Display percentiles.
    panel_size : float
        Side of one panel in inches.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ArtsegInputError
        No images, or masks whose count or shape does not match the images.

    Examples
    --------
    >>> truth = np.zeros((32, 32), bool); truth[8:16, 8:16] = True
    >>> figure = outline_overlays([np.random.default_rng(0).random((32, 32))], [truth], {"U-Net": [truth]})
    >>> figure.axes[0].get_title()
    'U-Net'
    """
    if len(images) == 0:
        raise ArtsegInputError("outline_overlays: no images to draw")
    if len(true_masks) != len(images):
        raise ArtsegInputError(f"outline_overlays: {len(true_masks)} true masks for {len(images)} images")
    for model, masks in predicted_masks.items():
        if len(masks) != len(images):
            raise ArtsegInputError(f"outline_overlays: model {model} has {len(masks)} masks for {len(images)} images")
    models = list(predicted_masks)
    n_rows, n_cols = len(images), len(models)
    fig = Figure(figsize=(panel_size * max(n_cols, 1), panel_size * n_rows + 0.5), layout="constrained")
    axes = fig.subplots(n_rows, max(n_cols, 1), squeeze=False)
    line_width = 1.2
    for row, image in enumerate(images):
        image = np.asarray(image, dtype=np.float32)
        vmin, vmax = np.percentile(image, [low, high])
        for col in range(max(n_cols, 1)):
            ax = axes[row, col]
            ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1, interpolation="nearest")
            truth = np.asarray(true_masks[row], dtype=bool)
            if truth.shape != image.shape:
                raise ArtsegInputError(f"outline_overlays: true mask {row} has shape {truth.shape}, image {image.shape}")
            _draw_outline(ax, truth, "white", line_width)
            if n_cols:
                model = models[col]
                predicted = np.asarray(predicted_masks[model][row], dtype=bool)
                if predicted.shape != image.shape:
                    raise ArtsegInputError(
                        f"outline_overlays: {model} mask {row} has shape {predicted.shape}, image {image.shape}"
                    )
                _draw_outline(ax, predicted, model_colour(model, col), line_width)
                if row == 0:
                    ax.set_title(model, fontsize=9, color=model_colour(model, col))
            ax.set_xlim(-0.5, image.shape[1] - 0.5)
            ax.set_ylim(image.shape[0] - 0.5, -0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0 and row_titles is not None:
                ax.set_ylabel(row_titles[row], fontsize=7)
    fig.suptitle("white: annotated artifact outline; colour: model outline", fontsize=9)
    return fig

