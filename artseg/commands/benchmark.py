"""``artseg benchmark``: the paper's six-model comparison on one dataset (Fig. 3, Supp. Tables 1-4).

Generates the preset's synthetic dataset (or reuses it from the cache), then runs
:func:`artseg.comparison.run_benchmark` (train U-Net, ScoreCAM-U-Net, ScoreCAM, AE, PaDiM and
PatchSVDD on the train split, choose each model's cut-off on the val split, score the test
split) and writes the tables and figures (:func:`artseg.comparison.write_outputs`). Trained
models and maps are kept in ``OUT/models`` and ``OUT/maps``, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from artseg.errors import ArtsegInputError
from artseg.io import check_output_folder

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
                             "the anomaly baselines use their 'paper' preset with --config paper, else 'fast'")
    parser.add_argument("--baselines", default=None, metavar="PRESET",
                        help="settings of the anomaly baselines AE, PaDiM and PatchSVDD: 'fast' (CPU-sized) or "
                             "'paper' (the original papers'); default: 'paper' with --config paper, else 'fast'")
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


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and write its outputs; returns the exit status."""
    from artseg.comparison import BASELINE_PRESETS, DETECTOR_NAMES, run_benchmark, write_outputs
    from artseg.config import load_config
    from artseg.io import read_image_manifest

    if args.preset is None and args.manifest is None:
        raise ArtsegInputError("give --preset (synthetic dataset) or --manifest (your own data)")
    check_output_folder(args.out)
    if args.n_images is not None and args.n_images < 8:
        raise ArtsegInputError(f"--n-images must be at least 8 (every split needs images), got {args.n_images}")
    if args.min_object_size is not None and args.min_object_size < 0:
        raise ArtsegInputError(f"--min-object-size must be >= 0, got {args.min_object_size}")
    if args.threads is not None:
        if args.threads < 1:
            raise ArtsegInputError(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    # "--config paper" asks for the paper's scale: its dataset size and the baselines' paper settings
    paper_scale = args.config == "paper"
    baseline_preset = args.baselines or ("paper" if paper_scale else "fast")
    if baseline_preset not in BASELINE_PRESETS:
        raise ArtsegInputError(f"--baselines must be one of {', '.join(BASELINE_PRESETS)}, got {baseline_preset!r}")
    models = DETECTOR_NAMES if args.models is None else [name.strip() for name in args.models.split(",") if name.strip()]
    config = dataclasses.replace(load_config(args.config), seed=args.seed)
    progress = not args.quiet
    started = time.perf_counter()
    if args.manifest is not None:
        manifest_path = Path(args.manifest)
    else:
        from artseg.datasets import synthetic_dataset
        from artseg.synth import get_preset

        n_images = args.n_images
        if n_images is None:
            n_images = get_preset(args.preset).default_n_images if paper_scale else FAST_N_IMAGES
        manifest_path = synthetic_dataset(args.preset, n_images=n_images, seed=args.seed, size=args.size,
                                          progress=progress) / "manifest.csv"
    manifest = read_image_manifest(manifest_path, require_label=True)
    result = run_benchmark(
        manifest, args.out, config=config, preset=args.preset, min_object_size=args.min_object_size,
        models=models, seed=args.seed, baseline_preset=baseline_preset, n_examples=args.examples,
        progress=progress,
    )
    result.summary["manifest"] = str(manifest_path)
    result.summary["command_seconds"] = time.perf_counter() - started
    write_outputs(result, args.out)
    print((Path(args.out) / "table.md").read_text())
    print(f"benchmark written to {args.out} in {result.summary['command_seconds']:.0f} s")
    return 0
