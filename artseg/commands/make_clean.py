"""``artseg make-clean``: synthesize artifact-free copies of masked images (paper §2.1)."""

from __future__ import annotations

import argparse
import os
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from artseg.background import synthesize_clean
from artseg.errors import ArtsegInputError
from artseg.io import (
    atomic_write_csv,
    check_output_folder,
    check_same_shape,
    read_image_manifest,
    read_image_raw,
    read_mask,
    write_tiff,
)


def register(subparsers) -> None:
    """Add the ``make-clean`` subcommand."""
    parser = subparsers.add_parser(
        "make-clean",
        help="replace masked artifacts with synthetic background (clean training images)",
        description=(
            "For every manifest row with a mask, replace the masked pixels with a robust "
            "2nd-order polynomial background plus resampled background noise, and write the "
            "result as a TIFF (same dtype) under OUT, mirroring the image's path relative to "
            "the manifest, together with OUT/manifest.csv labelling the new images clean (0)."
        ),
    )
    parser.add_argument("--manifest", required=True, type=Path, help="image manifest CSV with a mask column")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="redo images already written")
    parser.set_defaults(func=run)


def clean_image_name(image_path: Path, manifest_dir: Path) -> Path:
    """Relative output name of a clean image: its path relative to the manifest, as ``.tif``.

    Images outside the manifest's folder keep only their file name.
    """
    try:
        relative = image_path.resolve().relative_to(manifest_dir.resolve())
    except ValueError:
        relative = Path(image_path.name)
    return relative.with_suffix(".tif")


def image_seed(seed: int, relative_name: Path) -> list[int]:
    """Seed for one image from the run seed and the image's name, so resumed runs match full ones."""
    return [seed, zlib.crc32(relative_name.as_posix().encode("utf-8"))]


def run(args: argparse.Namespace) -> int:
    """Write the clean images and their manifest; return the exit status."""
    out_dir = check_output_folder(args.out)
    manifest = read_image_manifest(args.manifest)
    if "mask" not in manifest.columns:
        raise ArtsegInputError(f"{args.manifest}: no mask column; make-clean needs artifact masks")
    with_mask = manifest[manifest["mask"].notna()]
    if with_mask.empty:
        raise ArtsegInputError(f"{args.manifest}: no row has a mask")
    manifest_dir = Path(args.manifest).parent
    names = [clean_image_name(Path(p), manifest_dir) for p in with_mask["image"]]
    duplicates = pd.Series([n.as_posix() for n in names]).duplicated()
    if duplicates.any():
        clash = names[int(np.flatnonzero(duplicates)[0])]
        raise ArtsegInputError(f"{args.manifest}: two images would be written as {out_dir / clash}")
    for name, source in zip(names, with_mask["image"]):
        if (out_dir / name).resolve() == Path(source).resolve():
            raise ArtsegInputError(f"{source}: --out would overwrite the original image; choose another folder")

    rows = []
    for name, (_, row) in tqdm(zip(names, with_mask.iterrows()), total=len(names), desc="make-clean", unit="image"):
        target = out_dir / name
        if args.overwrite or not target.exists():
            image = read_image_raw(row["image"])
            artifact_mask = read_mask(row["mask"])
            check_same_shape(image, artifact_mask, "mask", row["mask"], reference=row["image"])
            try:
                clean = synthesize_clean(image, artifact_mask, np.random.default_rng(image_seed(args.seed, name)))
            except ArtsegInputError as err:
                raise ArtsegInputError(f"{row['image']}: {err}") from None
            write_tiff(target, clean)
        rows.append(
            {
                "image": name.as_posix(),
                "label": 0,
                "mask": None,
                "split": row["split"] if "split" in manifest.columns else None,
                "source": Path(os.path.relpath(row["image"], out_dir.resolve())).as_posix(),
            }
        )
    atomic_write_csv(pd.DataFrame(rows), out_dir / "manifest.csv")
    print(f"wrote {len(rows)} clean images and {out_dir / 'manifest.csv'}")
    return 0
