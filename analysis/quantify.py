"""Artifact-aware fluorescence quantification: per-field intensities and well averages.

The paper (Methods, "Ligand binding") measures the mean fluorescence of cell pixels and of
background pixels in each field, leaving out artifact pixels (manual or predicted masks, or
none), averages the fields of a well, and takes cell minus background as the specific
signal that is fitted with the Hill equation. Work is streamed one field at a time through
:func:`field_intensities`; :func:`aggregate_wells` only touches the small per-field table.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage, stats

from artseg.errors import ArtsegInputError

__all__ = [
    "DEFAULT_BACKGROUND_MARGIN",
    "WELL_KEYS",
    "aggregate_wells",
    "field_intensities",
    "pearson_with_ci",
    "well_table",
]

DEFAULT_BACKGROUND_MARGIN = 0
"""Pixels around cells left out of the background by default (none, as in the paper)."""

WELL_KEYS: tuple[str, ...] = ("experiment", "ligand", "concentration", "well", "mode")
"""Columns that identify one well average; ``mode`` (artifact removal mode) is optional."""


def _as_mask(mask: np.ndarray, name: str, shape: tuple[int, ...], source: str) -> np.ndarray:
    array = np.asarray(mask)
    if array.shape != shape:
        raise ArtsegInputError(
            f"{source}: {name} has shape {array.shape}, fluorescence has shape {shape}"
        )
    return array != 0


def _grow(mask: np.ndarray, margin: int) -> np.ndarray:
    """``mask`` grown by ``margin`` pixels (4-connected dilation)."""
    if margin <= 0 or not mask.any():
        return mask
    return ndimage.binary_dilation(mask, structure=ndimage.generate_binary_structure(2, 1), iterations=margin)


def _check_margin(value: int, name: str, source: str) -> int:
    if value < 0 or int(value) != value:
        raise ArtsegInputError(f"{source}: {name} must be a non-negative integer, got {value}")
    return int(value)


def field_intensities(
    fluorescence: np.ndarray,
    cell_mask: np.ndarray,
    exclusion_mask: np.ndarray | None = None,
    *,
    background_margin: int = DEFAULT_BACKGROUND_MARGIN,
    exclusion_margin: int = 0,
    source: str = "fluorescence image",
) -> dict[str, float | int]:
    """Mean fluorescence of cells and background in one field, leaving out excluded pixels.

    Parameters
    ----------
    fluorescence : numpy.ndarray
        2-D fluorescence image (any real dtype; means are computed in float64).
    cell_mask : numpy.ndarray
        Same shape; non-zero = cell (a boolean mask or an instance label image).
    exclusion_mask : numpy.ndarray, optional
        Same shape; non-zero = excluded (artifact) pixels, removed from both the cell and the
        background measurement. None excludes nothing ("no removal" mode).
    background_margin : int, default 0
        Width in pixels of a ring around cells that is left out of the background
        (4-connected dilation). 0 keeps the paper's definition, background = every pixel
        that is neither cell nor excluded; set 2-3 px when the cell mask is tight and cell
        fluorescence blurs into the neighbouring pixels.
    exclusion_margin : int, default 0
        Width in pixels of a ring around excluded regions that is excluded too
        (4-connected dilation): the glow of an autofluorescent artifact spreads beyond its
        brightfield outline (optics blur), and predicted masks are least certain at their
        edges.
    source : str
        Name of the field (e.g. the fluorescence file) used in error messages.

    Returns
    -------
    dict
        ``cell_mean``, ``background_mean`` (float; NaN when no pixel is left, the caller
        decides what to do), ``n_cell_px``, ``n_background_px``, ``n_excluded_px`` (int;
        excluded pixels after the exclusion margin), ``n_artifact_px`` (pixels of the
        exclusion mask itself, before the margin) and ``n_pixels`` (the field's size), whose
        ratio is the field's artifact coverage.

    Raises
    ------
    ArtsegInputError
        If the image is not 2-D, shapes differ, the margin is negative, or the fluorescence
        contains NaN or infinite pixels; the message starts with `source`.

    Notes
    -----
    With ``excluded = dilate(exclusion, exclusion_margin)``: cell pixels
    ``cell & ~excluded``; background pixels ``~dilate(cell, background_margin) & ~excluded``.

    Examples
    --------
    >>> image = np.array([[10.0, 10.0, 2.0, 2.0], [10.0, 50.0, 2.0, 4.0]])
    >>> cells = image >= 10
    >>> artifact = image == 50
    >>> result = field_intensities(image, cells, artifact)
    >>> result["cell_mean"], result["background_mean"], result["n_cell_px"]
    (10.0, 2.5, 3)
    """
    image = np.asarray(fluorescence)
    if image.ndim != 2:
        raise ArtsegInputError(f"{source}: fluorescence must be 2-D, got shape {image.shape}")
    if not np.issubdtype(image.dtype, np.number) or np.iscomplexobj(image):
        raise ArtsegInputError(f"{source}: fluorescence must be real numbers, got {image.dtype}")
    background_margin = _check_margin(background_margin, "background_margin", source)
    exclusion_margin = _check_margin(exclusion_margin, "exclusion_margin", source)
    values = image.astype(np.float64, copy=False)
    n_bad = int(np.count_nonzero(~np.isfinite(values)))
    if n_bad:
        raise ArtsegInputError(f"{source}: fluorescence contains {n_bad} NaN or infinite pixels")

    cells = _as_mask(cell_mask, "cell mask", image.shape, source)
    artifact = (
        np.zeros(image.shape, dtype=bool)
        if exclusion_mask is None
        else _as_mask(exclusion_mask, "exclusion mask", image.shape, source)
    )
    excluded = _grow(artifact, exclusion_margin)
    cell_pixels = cells & ~excluded
    background_pixels = ~_grow(cells, background_margin) & ~excluded
    n_cell = int(np.count_nonzero(cell_pixels))
    n_background = int(np.count_nonzero(background_pixels))
    return {
        "cell_mean": float(values[cell_pixels].mean()) if n_cell else math.nan,
        "background_mean": float(values[background_pixels].mean()) if n_background else math.nan,
        "n_cell_px": n_cell,
        "n_background_px": n_background,
        "n_excluded_px": int(np.count_nonzero(excluded)),
        "n_artifact_px": int(np.count_nonzero(artifact)),
        "n_pixels": int(image.size),
    }


def aggregate_wells(field_rows: pd.DataFrame) -> pd.DataFrame:
    """Average per-field intensities into one row per well (and removal mode).

    Parameters
    ----------
    field_rows : pandas.DataFrame
        One row per field with ``experiment, ligand, concentration, well`` (optional
        ``mode``) and the :func:`field_intensities` outputs ``cell_mean, background_mean``
        (optional ``n_cell_px, n_background_px``).

    Returns
    -------
    pandas.DataFrame
        One row per ``experiment, ligand, concentration, well[, mode]`` (sorted) with
        ``n_fields`` (fields with both a cell and a background value), ``n_fields_total``,
        ``cell_mean`` and ``background_mean`` (unweighted means over the usable fields),
        ``specific = cell_mean - background_mean`` and, when given, the summed pixel counts.
        A well without usable fields gets NaN means and ``n_fields = 0``; reporting it is
        up to the caller.

    Raises
    ------
    ArtsegInputError
        If a required column is missing.

    Notes
    -----
    Fields are averaged with equal weight, as the paper averages "all images from the
    same well"; a field counts only when both its means are defined, so ``specific`` is
    taken over the same fields for cells and background.
    """
    required = ["experiment", "ligand", "concentration", "well", "cell_mean", "background_mean"]
    missing = [name for name in required if name not in field_rows.columns]
    if missing:
        raise ArtsegInputError(f"field table: missing column(s) {', '.join(missing)}")
    keys = [name for name in WELL_KEYS if name in field_rows.columns]
    table = field_rows.copy()
    usable = table["cell_mean"].notna() & table["background_mean"].notna()
    table["_usable"] = usable.astype(int)
    table["_cell"] = table["cell_mean"].where(usable)
    table["_background"] = table["background_mean"].where(usable)
    aggregations = {
        "n_fields": ("_usable", "sum"),
        "n_fields_total": ("_usable", "size"),
        "cell_mean": ("_cell", "mean"),
        "background_mean": ("_background", "mean"),
    }
    for count in ("n_cell_px", "n_background_px"):
        if count in table.columns:
            aggregations[count] = (count, "sum")
    wells = table.groupby(keys, sort=True, dropna=False).agg(**aggregations).reset_index()
    wells["specific"] = wells["cell_mean"] - wells["background_mean"]
    return wells


well_table = aggregate_wells
"""Alias of :func:`aggregate_wells`, for scripts that call it by its earlier name."""


def pearson_with_ci(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """Pearson correlation with a Fisher-z confidence interval.

    Parameters
    ----------
    x, y : array_like
        Paired values (e.g. well intensities with manual vs. predicted artifact removal).
        Pairs with a NaN on either side are dropped.
    alpha : float, default 0.05
        1 - coverage of the interval.

    Returns
    -------
    tuple of float
        ``(r, low, high)``. ``r`` is NaN with fewer than 3 pairs or a constant side; the
        interval is NaN with fewer than 4 pairs.

    Raises
    ------
    ArtsegInputError
        If `x` and `y` differ in length or `alpha` is not in (0, 1).

    Notes
    -----
    :math:`z = \\operatorname{artanh} r`, interval
    :math:`\\tanh(z \\pm z_{1-\\alpha/2} / \\sqrt{n - 3})`.

    Examples
    --------
    >>> r, low, high = pearson_with_ci([1, 2, 3, 4, 5], [1.1, 1.9, 3.2, 3.9, 5.1])
    >>> round(r, 4), low < r < high
    (0.9964, True)
    """
    x_values = np.asarray(x, dtype=np.float64).ravel()
    y_values = np.asarray(y, dtype=np.float64).ravel()
    if x_values.shape != y_values.shape:
        raise ArtsegInputError(
            f"pearson_with_ci: x and y differ in length ({x_values.size} vs {y_values.size})"
        )
    if not 0.0 < alpha < 1.0:
        raise ArtsegInputError(f"pearson_with_ci: alpha must be in (0, 1), got {alpha}")
    paired = ~(np.isnan(x_values) | np.isnan(y_values))
    x_values, y_values = x_values[paired], y_values[paired]
    n = x_values.size
    if n < 3:
        return math.nan, math.nan, math.nan
    x_centred = x_values - x_values.mean()
    y_centred = y_values - y_values.mean()
    denominator = math.sqrt(float(x_centred @ x_centred) * float(y_centred @ y_centred))
    if denominator == 0.0:
        return math.nan, math.nan, math.nan
    r = float(np.clip(x_centred @ y_centred / denominator, -1.0, 1.0))
    if n < 4:
        return r, math.nan, math.nan
    if abs(r) == 1.0:
        return r, r, r
    half_width = stats.norm.ppf(1.0 - alpha / 2.0) / math.sqrt(n - 3)
    z = math.atanh(r)
    return r, math.tanh(z - half_width), math.tanh(z + half_width)
