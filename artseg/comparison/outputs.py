"""Write a comparison run's tables, curves and figures (the files of ``artseg benchmark``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from artseg.comparison.registry import detector_slug
from artseg.comparison.runner import BenchmarkResult
from artseg.comparison.tables import comparison_markdown, scores_table, size_cutoff_markdown
from artseg.io import atomic_target, atomic_write_csv, atomic_write_text

__all__ = ["write_outputs"]


def _save_figure(figure, path: Path) -> None:
    with atomic_target(path) as temporary:
        figure.savefig(temporary, dpi=120, format=path.suffix.lstrip("."))


def write_outputs(result: BenchmarkResult, out_dir: str | os.PathLike) -> list[Path]:
    """Write the benchmark's tables, curves, figures and settings into ``out_dir``.

    Files: ``table.csv`` / ``table.md`` (Supp. Table 1), ``size_cutoffs.csv`` / ``.md``
    (Supp. Tables 2-4), ``scores.csv`` (all scores, cut-offs and timings per model),
    ``timings.csv``, ``per_image.csv``, ``pr_curves.csv``, ``cutoffs.json``,
    ``summary.json``, ``overlays.npz`` (the example fields and masks) and the figures
    ``pr_curves.png``, ``iou_bars.png`` and ``overlays.png``. Every file is written
    atomically.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    from artseg.plots import outline_overlays, pr_curves_figure, score_bars

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def csv(table: pd.DataFrame, name: str, index: bool = False) -> None:
        atomic_write_csv(table.reset_index() if index else table, out_dir / name)
        written.append(out_dir / name)

    def text(content: str, name: str) -> None:
        atomic_write_text(out_dir / name, content)
        written.append(out_dir / name)

    scores = scores_table(result.results)
    csv(result.table, "table.csv", index=True)
    text(comparison_markdown(result.results, result.summary), "table.md")
    csv(result.size_table, "size_cutoffs.csv")
    text(size_cutoff_markdown(result.results, result.object_sizes), "size_cutoffs.md")
    csv(scores, "scores.csv")
    csv(scores[["model", "fit_seconds", "predict_seconds_per_image", "from_cache"]], "timings.csv")
    csv(pd.concat([model.per_image.assign(model=name) for name, model in result.results.items()], ignore_index=True)
        [["model", *result.results[next(iter(result.results))].per_image.columns]], "per_image.csv")
    curves = pd.concat([model.pr_curve.assign(model=name) for name, model in result.results.items()], ignore_index=True)
    curves = curves[["model", *[c for c in curves.columns if c != "model"]]]
    csv(curves, "pr_curves.csv")
    cutoffs = {
        "selected_on": "val",
        "criterion": "pooled pixel IoU after removing objects smaller than min_object_size",
        "object_sizes": result.object_sizes,
        "models": {name: {"cutoff": model.cutoff, "val_iou": model.val_iou, "min_object_size": model.min_object_size}
                   for name, model in result.results.items()},
    }
    text(json.dumps(cutoffs, indent=2), "cutoffs.json")
    text(json.dumps(result.summary, indent=2), "summary.json")

    examples = result.examples
    arrays = {
        "models": np.array(list(result.results), dtype=str),
        "names": np.array([Path(result.test.names[i]).name for i in examples], dtype=str),
        "images": np.stack([result.test.images[i] for i in examples]) if examples else np.zeros((0, 1, 1), np.float32),
        "true_masks": np.stack([result.test.masks[i] for i in examples]) if examples else np.zeros((0, 1, 1), bool),
    }
    for name, model in result.results.items():
        arrays[f"mask_{detector_slug(name)}"] = (np.stack([model.masks[i] for i in examples]) if examples
                                                 else np.zeros((0, 1, 1), bool))
    with atomic_target(out_dir / "overlays.npz") as temporary:
        np.savez_compressed(temporary, **arrays)
    written.append(out_dir / "overlays.npz")

    title = f"{result.summary['preset'] or 'manifest'} (test split)"
    chosen = {name: model.cutoff for name, model in result.results.items()}
    figures = {
        "pr_curves.png": pr_curves_figure(curves, chosen, title=title),
        "iou_bars.png": score_bars(scores, ("iou", "image_f1"), title=title),
    }
    if examples:
        figures["overlays.png"] = outline_overlays(
            list(arrays["images"]), list(arrays["true_masks"]),
            {name: list(arrays[f"mask_{detector_slug(name)}"]) for name in result.results},
            row_titles=list(arrays["names"]),
        )
    for name, figure in figures.items():
        _save_figure(figure, out_dir / name)
        written.append(out_dir / name)
    return written
