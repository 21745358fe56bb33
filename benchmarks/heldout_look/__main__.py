"""``python -m benchmarks.heldout_look --out DIR``: write the held-out look (for testing generalisation only)."""

from __future__ import annotations

import argparse
from pathlib import Path

from artseg.cli import run_command
from artseg.io import atomic_folder, read_image, read_image_manifest, read_mask, write_image
from artseg.preview import montage

from .write import write_heldout_look


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.heldout_look",
                                     description="Write the held-out look (for testing generalisation only).")
    parser.add_argument("--out", required=True, type=Path, help="folder to create (must not exist)")
    parser.add_argument("--n-images", type=int, default=120)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bit-depth", type=int, default=12, choices=(12, 16))
    parser.add_argument("--preview", type=Path, default=None, help="also write a montage PNG of the first 16 fields")
    return run_command(write, parser.parse_args(argv))


def write(args: argparse.Namespace) -> int:
    """Write the folder (all or nothing) and the optional montage."""
    with atomic_folder(args.out) as staging:
        write_heldout_look(staging, n_images=args.n_images, size=args.size, seed=args.seed,
                           bit_depth=args.bit_depth, progress=True)
    print(f"wrote {args.n_images} fields to {args.out}")
    if args.preview is not None:
        rows = read_image_manifest(args.out / "manifest.csv").head(16)
        images = [read_image(path) for path in rows["image"]]
        masks = [read_mask(path) if path else None for path in rows["mask"]]
        write_image(args.preview, montage(images, masks, labels=list(rows["label"]), columns=4))
        print(f"wrote {args.preview}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
