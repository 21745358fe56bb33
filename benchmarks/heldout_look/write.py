"""Write the held-out look as ordinary files: 16-bit TIFF fields, PNG masks and an image manifest.

Layout of a folder written by :func:`write_heldout_look`::

    manifest.csv            image, label, mask, split, artifact_kinds (what artseg.io.read_image_manifest reads)
    look.json               the settings it was made with (LOOK_VERSION, seed, n_images, size, bit_depth)
    images/<split>/f000.tif uint16 fields
    masks/f000.png          0/255 artifact masks (artifact fields only; clean fields have an empty mask cell)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from artseg.errors import ArtsegInputError
from artseg.io import atomic_write_csv, atomic_write_text, write_mask, write_tiff

from .render import render_field

# Bump when a change to the renderer changes any pixel: cached copies are then regenerated.
LOOK_VERSION = 1
SPLIT_FRACTIONS = {"train": 0.6, "val": 0.15, "test": 0.25}


def split_plan(n_images: int, seed: int) -> pd.DataFrame:
    """Which field goes to which split, and which fields carry artifacts (half of each split).

    Fields are numbered train first, then val, then test; within a split the artifact fields are
    a seeded random half (the odd one of an odd-sized split is an artifact field).

    Examples
    --------
    >>> plan = split_plan(120, 0)
    >>> plan.groupby("split", sort=False)["label"].agg(["size", "sum"]).to_dict("index")
    {'train': {'size': 72, 'sum': 36}, 'val': {'size': 18, 'sum': 9}, 'test': {'size': 30, 'sum': 15}}
    """
    if n_images < 6:
        raise ArtsegInputError(f"--n-images: need at least 6 fields (two per split), got {n_images}")
    n_val = max(2, round(n_images * SPLIT_FRACTIONS["val"]))
    n_test = max(2, round(n_images * SPLIT_FRACTIONS["test"]))
    sizes = {"train": n_images - n_val - n_test, "val": n_val, "test": n_test}
    rng = np.random.default_rng(seed)
    rows = []
    for split, count in sizes.items():
        labels = np.zeros(count, int)
        labels[: (count + 1) // 2] = 1
        rows += [{"split": split, "label": int(label)} for label in rng.permutation(labels)]
    plan = pd.DataFrame(rows)
    plan.insert(0, "field", np.arange(len(plan)))
    return plan


def look_settings(*, n_images: int, size: int, seed: int, bit_depth: int) -> dict:
    """The record (``look.json``) of a dataset made with these settings."""
    return {"look_version": LOOK_VERSION, "n_images": n_images, "size": size, "seed": seed, "bit_depth": bit_depth}


def write_heldout_look(folder: str | Path, *, n_images: int = 120, size: int = 192, seed: int = 0,
                       bit_depth: int = 12, progress: bool = False) -> Path:
    """Render and write the held-out look into ``folder``; returns the manifest's path.

    FOR TESTING GENERALISATION ONLY: never choose settings by their scores on these fields.

    Parameters
    ----------
    folder : str or path-like
        Where to write (created; existing files of the same names are replaced). Wrap the call in
        :func:`artseg.io.atomic_folder` for an all-or-nothing folder.
    n_images : int
        Fields (60 % train, 15 % val, 25 % test; half of each split with artifacts).
    size : int
        Side of the square fields in pixels (at least 48).
    seed : int
        Seed of every random stream: the same seed writes the same pixels.
    bit_depth : {12, 16}
        Camera range of the fields (stored as uint16 either way).
    progress : bool
        Print one line per 20 fields.

    Raises
    ------
    ArtsegInputError
        Fewer than 6 fields, fields smaller than 48 pixels, a bit depth other than 12 or 16.
    """
    if size < 48:
        raise ArtsegInputError(f"--size: fields must be at least 48 pixels wide, got {size}")
    if bit_depth not in (12, 16):
        raise ArtsegInputError(f"--bit-depth: must be 12 or 16, got {bit_depth}")
    folder = Path(folder)
    rows = []
    plan = split_plan(n_images, seed)
    for field, split, label in plan[["field", "split", "label"]].itertuples(index=False):
        rendered = render_field(seed, int(field), size=size, with_artifacts=bool(label), bit_depth=bit_depth)
        image = f"images/{split}/f{field:03d}.tif"
        write_tiff(folder / image, rendered.image)
        mask = ""
        if label:
            mask = f"masks/f{field:03d}.png"
            write_mask(folder / mask, rendered.mask)
        rows.append({"image": image, "label": int(label), "mask": mask, "split": split,
                     "artifact_kinds": ";".join(rendered.kinds)})
        if progress and (field + 1) % 20 == 0:
            print(f"  {field + 1}/{n_images} held-out fields", flush=True)
    atomic_write_csv(pd.DataFrame(rows), folder / "manifest.csv")
    settings = look_settings(n_images=n_images, size=size, seed=seed, bit_depth=bit_depth)
    atomic_write_text(folder / "look.json", json.dumps(settings, indent=1))
    return folder / "manifest.csv"
