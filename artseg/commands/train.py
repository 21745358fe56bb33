"""``artseg train``: fit a ScoreCAM-U-Net (or strongly supervised U-Net) and write a model folder."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from artseg.errors import ArtsegInputError
from artseg.io import check_output_folder, read_image_manifest


def register(subparsers) -> None:
    """Add the ``train`` subcommand."""
    parser = subparsers.add_parser(
        "train",
        help="train an artifact segmenter from an image manifest",
        description=(
            "Train the classifier on image-level labels, make Score-CAM pseudo-masks, train the U-Net on "
            "them and choose the cut-offs on validation images (mode weak, the paper's ScoreCAM-U-Net); "
            "or train the U-Net on the manifest's masks (mode strong). Writes MODEL_DIR/config.json, "
            "the weights and per-epoch logs."
        ),
    )
    parser.add_argument("--manifest", required=True, type=Path, help="image manifest CSV (image, label[, mask, split])")
    parser.add_argument("--out", required=True, type=Path, help="model folder to write")
    parser.add_argument("--config", default="paper",
                        help="built-in 'fast' or 'paper' (default), or a JSON/TOML file of overrides")
    parser.add_argument("--seed", type=int, default=None, help="seed for everything (default: the config's)")
    parser.add_argument("--mode", choices=("weak", "strong"), default=None,
                        help="override the config's mode: weak (image labels) or strong (pixel masks)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing model folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train and save; returns the exit status."""
    # torch is imported only when the command runs, so `artseg --help` starts fast
    from artseg.config import load_config
    from artseg.model_io import CONFIG_NAME
    from artseg.segmenter import make_segmenter

    config = load_config(args.config)
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    if args.mode is not None:
        config = dataclasses.replace(config, mode=args.mode)
    out = check_output_folder(args.out)
    existing = out / CONFIG_NAME
    if existing.exists() and not args.overwrite:
        raise ArtsegInputError(f"{out}: already holds a model; choose another --out or pass --overwrite")
    manifest = read_image_manifest(args.manifest, require_label=True)
    if existing.exists():
        existing.unlink()  # an interrupted retrain must not leave the old config next to new weights
    started = time.perf_counter()
    print(f"training {config.mode} segmenter, config {config.name!r}, seed {config.seed}, "
          f"{len(manifest)} manifest rows")
    segmenter = make_segmenter(config)
    segmenter.fit(manifest, progress=not args.quiet, log_dir=out)
    segmenter.save(out)
    calibration = segmenter.calibration
    fields = segmenter.summary.get("calibration_fields")
    where = calibration.selected_on.replace("_", " ") + (
        f" of {fields['pixel_masks']} of the {fields['val']} validation fields" if fields else "")
    print(f"saved {out} in {time.perf_counter() - started:.0f} s: cut-off {calibration.cutoff:g}, "
          f"min object size {calibration.min_object_size} px (chosen on the {where}, "
          f"val IoU {calibration.val_iou if calibration.val_iou is not None else float('nan'):.3f})")
    if calibration.selected_on == "pseudo_masks":
        print("no validation field has a pixel mask: the cut-off was chosen against the model's own pseudo-masks, "
              "which favours coarse masks; annotate ~10 artifact fields (a 'mask' column) and check with "
              "'artseg evaluate'")
    return 0
