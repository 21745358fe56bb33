"""``artseg benchmark``: the paper's six-model comparison on one dataset (Fig. 3, Supp. Tables 1-4).

Generates the preset's synthetic dataset (or reuses it from the cache), trains U-Net,
ScoreCAM-U-Net, ScoreCAM, AE, PaDiM and PatchSVDD on its train split, chooses each model's
cut-off on the val split and scores the test split (the rules: :mod:`artseg.benchmark`), then
writes the tables and figures (:func:`write_outputs`). Trained models and maps are kept in ``OUT/models`` and ``OUT/maps``,
so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from artseg.errors import ArtsegInputError
from artseg.io import check_output_folder

if TYPE_CHECKING:  # the benchmark imports torch; the CLI loads this module on every command
    from artseg.benchmark import BenchmarkResult

# Images generated for a preset when --n-images is not given and the config is not "paper":
# enough for every split to hold a few dozen images, small enough for a 2-core CPU.
FAST_N_IMAGES = 240
DEFAULT_SIZE = 256


def register(subparsers) -> None:
    """Add the ``benchmark`` subcommand."""
    from artseg.synth import PRESETS

    parser = subparsers.add_parser(
        "benchmark",
        help="compare the paper's six artifact segmenters on one dataset",
        description=(
            "Train U-Net (pixel masks), ScoreCAM-U-Net and ScoreCAM (image labels, one shared classifier), "
            "and the anomaly detectors AE, PaDiM and PatchSVDD (clean images) on the train split; choose "
            "each model's cut-off on the val split by pixel IoU; score the test split. Writes table.csv/.md "
            "(Supp. Table 1), size_cutoffs.csv/.md (Supp. Tables 2-4), pr_curves.csv/.png, iou_bars.png, "
            "overlays.png, cutoffs.json, timings.csv and more into --out."
        ),
    )
    source = parser.add_argument_group("dataset")
    source.add_argument("--preset", choices=sorted(PRESETS),
                        help="synthetic dataset preset, generated once into the cache (artseg.cache.cache_dir); "
                             "with --manifest it only sets the paper's object-size filter")
    source.add_argument("--manifest", type=Path, default=None,
                        help="your own image manifest with image, label, mask and split (train/val/test) columns")
    parser.add_argument("--out", required=True, type=Path, help="benchmark folder (resumable)")
    parser.add_argument("--config", default="fast",
                        help="segmenter config: 'fast' (default), 'paper', or a JSON/TOML file of overrides; "
                             "the anomaly baselines use their matching preset")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and of all training")
    parser.add_argument("--n-images", type=int, default=None,
                        help=f"synthetic images to generate (default {FAST_N_IMAGES}, or the preset's paper-sized "
                             "set with --config paper)")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="side of the synthetic fields in pixels")
    parser.add_argument("--models", default=None,
                        help="comma-separated subset of the models, in table order (default: all six, "
                             "'U-Net,ScoreCAM-U-Net,ScoreCAM,AE,PaDiM,PatchSVDD')")
    parser.add_argument("--min-object-size", type=int, default=None,
                        help="smallest kept object in pixels of these images (default: the paper's size for the "
                             "preset scaled by field area; 0 for --manifest without --preset)")
    parser.add_argument("--examples", type=int, default=4, help="test images in the overlay figure")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice); 1 is often faster on a busy shared CPU")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def cached_dataset(preset: str, *, n_images: int, seed: int, size: int, progress: bool = True) -> Path:
    """Manifest of the preset's synthetic dataset, generated into the cache on first use.

    The dataset is generated into a temporary folder and renamed into place when complete,
    so an interrupted generation is never mistaken for a finished one.

    Returns
    -------
    pathlib.Path
        ``<cache>/benchmark-data/<preset>-n<N>-seed<S>-<size>px/manifest.csv``.
    """
    from artseg.cache import cache_dir
    from artseg.synth import generate_dataset, is_current_dataset

    folder = cache_dir() / "benchmark-data" / f"{preset}-n{n_images}-seed{seed}-{size}px"
    manifest = folder / "manifest.csv"
    if is_current_dataset(folder):
        if progress:
            print(f"reusing dataset {folder}")
        return manifest
    partial = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    if progress:
        print(f"generating {n_images} {preset} fields of {size}x{size} px into {folder}")
    generate_dataset(preset, partial, n_images=n_images, seed=seed, size=size, plate=None, progress=progress)
    if folder.exists() and not is_current_dataset(folder):  # made by an older generator
        shutil.rmtree(folder, ignore_errors=True)
    try:
        partial.rename(folder)
    except OSError:
        if not is_current_dataset(folder):  # not a concurrent run that finished first
            raise
        shutil.rmtree(partial, ignore_errors=True)
    return manifest


def _table_markdown(result: BenchmarkResult) -> str:
    from artseg.benchmark import markdown_table

    summary, sizes = result.summary, result.object_sizes
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
        markdown_table(result.table),
        "| model | cut-off (val) | val IoU | fit (s) | predict (s/image) |",
        "|---|---|---|---|---|",
    ]
    for name, model in result.results.items():
        fit = model.timings.get("fit_seconds")
        lines.append(
            f"| {name} | {model.cutoff:g} | {100 * model.val_iou:.1f} | "
            f"{'n/a' if fit is None else f'{fit:.0f}'} | {model.timings.get('predict_seconds_per_image', float('nan')):.3f} |"
        )
    return "\n".join(lines) + "\n"


def _size_markdown(result: BenchmarkResult) -> str:
    from artseg.benchmark import markdown_table

    sizes = result.object_sizes
    header = "# IoU (%) after removing predicted objects smaller than each size (Supp. Tables 2-4)\n\n"
    if sizes["paper_shape"] is not None:
        header += (f"`paper_size_px` is the paper's size at {sizes['paper_shape'][0]}x{sizes['paper_shape'][1]}; "
                   f"`min_size_px` the same share of a {sizes['shape'][0]}x{sizes['shape'][1]} field.\n\n")
    return header + markdown_table(result.size_table, index=False)


def _save_figure(figure, path: Path) -> None:
    from artseg.benchmark import atomic_save

    atomic_save(path, lambda temporary: figure.savefig(temporary, dpi=120, format=path.suffix.lstrip(".")))


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
    from artseg.benchmark import atomic_save, scores_table
    from artseg.detectors import detector_slug
    from artseg.io import atomic_write_csv, atomic_write_text
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

    scores = scores_table(result)
    csv(result.table, "table.csv", index=True)
    text(_table_markdown(result), "table.md")
    csv(result.size_table, "size_cutoffs.csv")
    text(_size_markdown(result), "size_cutoffs.md")
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
    atomic_save(out_dir / "overlays.npz", lambda temporary: np.savez_compressed(temporary, **arrays))
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


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and write its outputs; returns the exit status."""
    from artseg.benchmark import run_benchmark
    from artseg.config import load_config
    from artseg.io import read_image_manifest

    if args.preset is None and args.manifest is None:
        raise ArtsegInputError("give --preset (synthetic dataset) or --manifest (your own data)")
    check_output_folder(args.out)
    if args.n_images is not None and args.n_images < 8:
        raise ArtsegInputError(f"--n-images must be at least 8 (every split needs images), got {args.n_images}")
    if args.min_object_size is not None and args.min_object_size < 0:
        raise ArtsegInputError(f"--min-object-size must be >= 0, got {args.min_object_size}")
    from artseg.detectors import DETECTOR_NAMES

    if args.threads is not None:
        if args.threads < 1:
            raise ArtsegInputError(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    models = DETECTOR_NAMES if args.models is None else [name.strip() for name in args.models.split(",") if name.strip()]
    config = dataclasses.replace(load_config(args.config), seed=args.seed)
    progress = not args.quiet
    started = time.perf_counter()
    if args.manifest is not None:
        manifest_path = Path(args.manifest)
    else:
        from artseg.synth import get_preset

        n_images = args.n_images
        if n_images is None:
            n_images = get_preset(args.preset).default_n_images if config.name == "paper" else FAST_N_IMAGES
        manifest_path = cached_dataset(args.preset, n_images=n_images, seed=args.seed, size=args.size,
                                       progress=progress)
    manifest = read_image_manifest(manifest_path, require_label=True)
    result = run_benchmark(
        manifest, args.out, config=config, preset=args.preset, min_object_size=args.min_object_size,
        models=models, seed=args.seed, n_examples=args.examples, progress=progress,
    )
    result.summary["manifest"] = str(manifest_path)
    result.summary["command_seconds"] = time.perf_counter() - started
    write_outputs(result, args.out)
    print((Path(args.out) / "table.md").read_text())
    print(f"benchmark written to {args.out} in {result.summary['command_seconds']:.0f} s")
    return 0
