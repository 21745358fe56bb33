"""``artseg preview``: a montage of a manifest's fields with their artifact outlines."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from artseg.errors import ArtsegInputError
from artseg.io import check_output_file, read_image, read_image_manifest, read_mask, write_image
from artseg.preview import montage


def register(subparsers) -> None:
    """Add the ``preview`` subcommand."""
    parser = subparsers.add_parser(
        "preview",
        help="montage of a manifest's images with artifact outlines (PNG)",
        description=(
            "Draw the first N images of an image manifest in a grid, each scaled by its own "
            "percentiles, with the outlines of their masks in red and a frame showing the "
            "image label (amber = artifact, green = clean)."
        ),
    )
    parser.add_argument("--manifest", required=True, type=Path, help="image manifest CSV")
    parser.add_argument("--out", required=True, type=Path, help="PNG to write")
    parser.add_argument("--n", type=int, default=12, help="number of images (default 12)")
    parser.add_argument("--artifacts-only", action="store_true", help="only images labelled as containing artifacts")
    parser.add_argument("--columns", type=int, default=None, help="grid columns (default: about square)")
    parser.add_argument("--tile", type=int, default=None, help="resize every image to TILE x TILE pixels")
    parser.add_argument("--gray-levels", type=int, default=256, help="distinct gray levels, 2..256 (fewer = smaller PNG; default 256)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Read the images, build the montage and write it; return the exit status."""
    if args.n < 1:
        raise ArtsegInputError(f"--n must be at least 1, got {args.n}")
    if not 2 <= args.gray_levels <= 256:
        raise ArtsegInputError(f"--gray-levels must be in 2..256, got {args.gray_levels}")
    if args.out.suffix.lower() != ".png":
        raise ArtsegInputError(f"{args.out}: the montage is written as .png")
    check_output_file(args.out)
    manifest = read_image_manifest(args.manifest)
    if args.artifacts_only:
        if "label" not in manifest.columns:
            raise ArtsegInputError(f"{args.manifest}: --artifacts-only needs a label column")
        manifest = manifest[manifest["label"] == 1]
        if manifest.empty:
            raise ArtsegInputError(f"{args.manifest}: no image is labelled as containing artifacts")
    rows = manifest.head(args.n)
    images = [read_image(path) for path in rows["image"]]
    masks = None
    if "mask" in rows.columns:
        masks = [None if path is None else read_mask(path) for path in rows["mask"]]
    labels = None
    if "label" in rows.columns:
        labels = [None if value is None or (isinstance(value, float) and np.isnan(value)) else int(value) for value in rows["label"]]
    grid = montage(images, masks, labels=labels, columns=args.columns, tile_size=args.tile, gray_levels=args.gray_levels)
    write_image(args.out, grid)
    print(f"wrote {args.out} ({len(images)} images)")
    return 0
