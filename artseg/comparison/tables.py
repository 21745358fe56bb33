"""The comparison's tables: Supplementary Tables 1-4, the scores table and their Markdown pages.

Pure functions of :class:`~artseg.comparison.protocol.ModelResult` objects (and of a run's
summary, :attr:`artseg.comparison.BenchmarkResult.summary`); writing them is
:func:`artseg.comparison.outputs.write_outputs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from artseg.comparison.protocol import ModelResult
from artseg.errors import ArtsegInputError

__all__ = [
    "TABLE_ROWS",
    "comparison_markdown",
    "comparison_table",
    "markdown_table",
    "scores_table",
    "size_cutoff_markdown",
    "size_cutoff_table",
]

# Rows of Supplementary Table 1: (key in the score dicts, row label).
TABLE_ROWS = (
    ("image_f1", "image F1"),
    ("f1", "pixel F1"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("iou", "IoU"),
)


def _as_list(results: Mapping[str, ModelResult] | Sequence[ModelResult]) -> list[ModelResult]:
    return list(results.values()) if isinstance(results, Mapping) else list(results)


def comparison_table(results: Mapping[str, ModelResult] | Sequence[ModelResult]) -> pd.DataFrame:
    """Supplementary Table 1: rows image F1, pixel F1, precision, recall, IoU; one column per model.

    Parameters
    ----------
    results : mapping or sequence of ModelResult
        Models in column order.

    Returns
    -------
    pandas.DataFrame
        Percentages rounded to one decimal, index named ``metric``.

    See Also
    --------
    markdown_table : the same as a pipe table (``table.md``).
    """
    results = _as_list(results)
    data = {result.name: [round(100.0 * result.scores[key], 1) for key, _ in TABLE_ROWS] for result in results}
    return pd.DataFrame(data, index=pd.Index([label for _, label in TABLE_ROWS], name="metric"))


def size_cutoff_table(
    results: Mapping[str, ModelResult] | Sequence[ModelResult],
    paper_sizes: Sequence[int],
    scaled_sizes: Sequence[int],
) -> pd.DataFrame:
    """Supplementary Tables 2-4: test IoU (%) after removing objects smaller than each size.

    Parameters
    ----------
    results : mapping or sequence of ModelResult
        Their ``size_table`` must contain every scaled size.
    paper_sizes : sequence of int
        Sizes at the paper's field size (the rows).
    scaled_sizes : sequence of int
        The same sizes in pixels of the images at hand, in the same order.

    Returns
    -------
    pandas.DataFrame
        Columns ``paper_size_px``, ``min_size_px`` and one IoU column per model.
    """
    results = _as_list(results)
    if len(paper_sizes) != len(scaled_sizes):
        raise ArtsegInputError("paper_sizes and scaled_sizes must have the same length")
    table = pd.DataFrame({"paper_size_px": list(paper_sizes), "min_size_px": list(scaled_sizes)})
    for result in results:
        iou_by_size = dict(zip(result.size_table["min_size"].astype(int), result.size_table["iou"]))
        missing = [size for size in scaled_sizes if int(size) not in iou_by_size]
        if missing:
            raise ArtsegInputError(f"{result.name}: no size-filter score for size(s) {missing}")
        table[result.name] = [round(100.0 * iou_by_size[int(size)], 1) for size in scaled_sizes]
    return table


def markdown_table(table: pd.DataFrame, *, index: bool = True) -> str:
    """A pipe table of a DataFrame (numbers as they are, one decimal for floats)."""
    frame = table.reset_index() if index else table

    def cell(value: Any) -> str:
        if isinstance(value, (float, np.floating)):
            return "n/a" if not np.isfinite(value) else f"{value:.1f}"
        return str(value)
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def scores_table(results: Mapping[str, ModelResult] | Sequence[ModelResult]) -> pd.DataFrame:
    """One row per model: test scores (fractions), cut-off, object size and timings (``scores.csv``)."""
    rows = []
    for model in _as_list(results):
        name = model.name
        rows.append({
            "model": name,
            **model.scores,
            "cutoff": model.cutoff,
            "val_iou": model.val_iou,
            "min_object_size": model.min_object_size,
            **model.timings,
        })
    return pd.DataFrame(rows)


def comparison_markdown(results: Mapping[str, ModelResult], summary: dict) -> str:
    """``table.md``: Supplementary Table 1 with the dataset, the filter and each model's cut-off and timings.

    ``summary`` is a run's summary (:attr:`artseg.comparison.BenchmarkResult.summary`).
    """
    sizes = summary["object_sizes"]
    counts = summary["n_images"]
    artifacts = summary["n_artifact_images"]
    if sizes["paper_min_object_size"] is not None:
        size_note = (f"objects smaller than {sizes['min_object_size']} px removed (the paper's "
                     f"{sizes['paper_min_object_size']} px at {sizes['paper_shape'][0]}x{sizes['paper_shape'][1]}, "
                     f"scaled by field area to {sizes['shape'][0]}x{sizes['shape'][1]})")
    else:
        size_note = f"objects smaller than {sizes['min_object_size']} px removed"
    lines = [
        f"# Model comparison: {summary['preset'] or 'manifest'} (config {summary['config']}, seed {summary['seed']})",
        "",
        f"Test split: {counts['test']} images ({artifacts['test']} with artifacts); trained on {counts['train']}, "
        f"cut-offs chosen on {counts['val']} validation images by pooled pixel IoU; {size_note}. "
        "Pixel scores are pooled over all test pixels; percentages.",
        "",
        markdown_table(comparison_table(results)),
        "| model | cut-off (val) | val IoU | fit (s) | predict (s/image) |",
        "|---|---|---|---|---|",
    ]
    for name, model in results.items():
        fit = model.timings.get("fit_seconds")
        lines.append(
            f"| {name} | {model.cutoff:g} | {100 * model.val_iou:.1f} | "
            f"{'n/a' if fit is None else f'{fit:.0f}'} | {model.timings.get('predict_seconds_per_image', float('nan')):.3f} |"
        )
    return "\n".join(lines) + "\n"


def size_cutoff_markdown(results: Mapping[str, ModelResult], object_sizes: dict) -> str:
    """``size_cutoffs.md``: Supplementary Tables 2-4 with the size conversion explained.

    ``object_sizes`` as :func:`artseg.comparison.protocol.object_size_settings` returns them.
    """
    sizes = object_sizes
    header = "# IoU (%) after removing predicted objects smaller than each size (Supp. Tables 2-4)\n\n"
    if sizes["paper_shape"] is not None:
        header += (f"`paper_size_px` is the paper's size at {sizes['paper_shape'][0]}x{sizes['paper_shape'][1]}; "
                   f"`min_size_px` the same share of a {sizes['shape'][0]}x{sizes['shape'][1]} field.\n\n")
    table = size_cutoff_table(results, sizes["paper_sizes"], sizes["sizes"])
    return header + markdown_table(table, index=False)
