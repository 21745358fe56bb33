"""``artseg import-cho-m4r``: turn the public ArtSeg-CHO-M4R folder layout into a manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from artseg.io import check_output_file
from artseg.layouts import import_cho_m4r


def register(subparsers) -> None:
    """Add the ``import-cho-m4r`` subcommand."""
    parser = subparsers.add_parser(
        "import-cho-m4r",
        help="write an image manifest for the ArtSeg-CHO-M4R folder layout",
        description=(
            "Read ROOT/{train,validation,test}/{clean,artifact/x,artifact/y} (x/N paired with "
            "y/N by file stem) and write an image manifest (image,label,mask,split) with paths "
            "relative to the manifest."
        ),
    )
    parser.add_argument("root", type=Path, help="dataset folder")
    parser.add_argument("--out", type=Path, default=None, help="manifest to write (default ROOT/manifest.csv)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Import the layout and write the manifest; return the exit status."""
    out_csv = check_output_file(args.out if args.out is not None else Path(args.root) / "manifest.csv")
    manifest = import_cho_m4r(args.root, out_csv)
    counts = manifest.groupby(["split", "label"]).size()
    summary = ", ".join(f"{split} {'artifact' if label else 'clean'} {n}" for (split, label), n in counts.items())
    print(f"wrote {out_csv} ({len(manifest)} images: {summary})")
    return 0
