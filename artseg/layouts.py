"""Importers that turn public dataset folder layouts into ArtSeg image manifests."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from artseg.errors import ArtsegInputError
from artseg.io import IMAGE_SUFFIXES, atomic_write_csv

__all__ = ["CHO_M4R_SPLITS", "import_cho_m4r", "list_images"]

# Folder name in the public release -> manifest split.
CHO_M4R_SPLITS = {"train": "train", "validation": "val", "val": "val", "test": "test"}

MANIFEST_COLUMNS = ["image", "label", "mask", "split"]


def _natural_key(path: Path) -> list:
    # "img2" sorts before "img10", as a file browser shows them.
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_images(folder: Path) -> dict[str, Path]:
    """Map file stem -> image path for the images directly inside ``folder``.

    Hidden files and files with other suffixes (thumbnails, notes) are ignored.

    Raises
    ------
    ArtsegInputError
        Two images share a stem (e.g. ``3.png`` and ``3.tif``), so pairing would be ambiguous.
    """
    images: dict[str, Path] = {}
    candidates = (
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
    for path in sorted(candidates, key=_natural_key):
        if path.stem in images:
            raise ArtsegInputError(f"{path}: two images named {path.stem!r} in {folder}; cannot pair them")
        images[path.stem] = path
    return images


def _split_rows(split_dir: Path, split: str) -> list[dict]:
    rows = []
    clean_dir = split_dir / "clean"
    if clean_dir.is_dir():
        for path in list_images(clean_dir).values():
            rows.append({"image": path, "label": 0, "mask": None, "split": split})
    artifact_dir = split_dir / "artifact"
    if artifact_dir.is_dir():
        image_dir, mask_dir = artifact_dir / "x", artifact_dir / "y"
        if not image_dir.is_dir():
            raise ArtsegInputError(f"{image_dir}: folder of artifact images (x) not found")
        if not mask_dir.is_dir():
            raise ArtsegInputError(f"{mask_dir}: folder of artifact masks (y) not found")
        images, masks = list_images(image_dir), list_images(mask_dir)
        for stem, image_path in images.items():
            if stem not in masks:
                raise ArtsegInputError(f"{image_path}: no mask named {stem}.* in {mask_dir}")
            rows.append({"image": image_path, "label": 1, "mask": masks[stem], "split": split})
        orphans = sorted(set(masks) - set(images))
        if orphans:
            raise ArtsegInputError(f"{masks[orphans[0]]}: no image named {orphans[0]}.* in {image_dir}")
    return rows


def _relative_to(path: str | None, folder: Path) -> str | None:
    return None if path is None else Path(os.path.relpath(path, folder)).as_posix()


def import_cho_m4r(root: str | os.PathLike, out_csv: str | os.PathLike | None = None) -> pd.DataFrame:
    """Build an image manifest from the ArtSeg-CHO-M4R folder layout.

    Parameters
    ----------
    root : str or path-like
        Folder holding ``train``, ``validation`` (or ``val``) and ``test``, each with
        ``clean/`` images and ``artifact/x`` images paired by file stem with
        ``artifact/y`` masks. Missing split folders are skipped.
    out_csv : str or path-like, optional
        Where to write the manifest (atomically, paths relative to its folder).

    Returns
    -------
    pandas.DataFrame
        Columns ``image, label, mask, split``: absolute paths, label 1 for artifact
        images and 0 for clean ones, mask ``None`` for clean images, split
        ``train``/``val``/``test``. Rows are ordered by split, then clean before
        artifact, then file name.

    Raises
    ------
    ArtsegInputError
        ``root`` missing, no split folder, no images, an image without its mask
        (or a mask without its image), or ambiguous stems.

    Notes
    -----
    Usage, on the unpacked public dataset::

        manifest = import_cho_m4r("ArtSeg-CHO-M4R", "ArtSeg-CHO-M4R/manifest.csv")
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise ArtsegInputError(f"{root}: dataset folder not found")
    split_dirs = [(root / name, split) for name, split in CHO_M4R_SPLITS.items() if (root / name).is_dir()]
    if not split_dirs:
        raise ArtsegInputError(f"{root}: no train, validation or test folder (expected the ArtSeg-CHO-M4R layout)")
    seen_splits = [split for _, split in split_dirs]
    if len(seen_splits) != len(set(seen_splits)):
        raise ArtsegInputError(f"{root}: both 'validation' and 'val' folders exist; keep one")
    rows = [row for split_dir, split in split_dirs for row in _split_rows(split_dir, split)]
    if not rows:
        raise ArtsegInputError(f"{root}: no images found in the split folders")
    order = {"train": 0, "val": 1, "test": 2}
    rows.sort(key=lambda r: (order[r["split"]], r["label"], _natural_key(r["image"])))
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    manifest["image"] = manifest["image"].map(str)
    manifest["mask"] = pd.Series([None if m is None else str(m) for m in manifest["mask"]], dtype=object)
    manifest["label"] = manifest["label"].astype("int64")
    if out_csv is not None:
        out_csv = Path(out_csv).expanduser().resolve()
        relative = manifest.copy()
        for column in ("image", "mask"):
            relative[column] = [_relative_to(path, out_csv.parent) for path in manifest[column]]
        atomic_write_csv(relative, out_csv)
    return manifest
