"""The one cache of generated synthetic datasets, shared by the CLI, the analyses and the benchmarks.

A dataset is generated once into ``<cache>/datasets/<preset>-n<N>-seed<S>-<size>px[-plate]/`` and
reused while its ``generation.json`` equals the settings asked for (preset, seed, number of
fields, field size, generator version); any difference, or no record, regenerates it. Generation
goes to a staging folder renamed into place when complete, so an interrupted run is never
mistaken for a finished one.
"""

from __future__ import annotations

import json
from pathlib import Path

from artseg.cache import cache_dir
from artseg.io import atomic_folder
from artseg.synth import GENERATOR_VERSION, generate_dataset

__all__ = ["dataset_folder", "generation_settings", "synthetic_dataset"]

RECORD = "generation.json"


def generation_settings(preset: str, seed: int, n_images: int, size: int | None = None) -> dict:
    """The record (``generation.json``) of a dataset generated with these settings.

    Examples
    --------
    >>> sorted(generation_settings("lncap", 0, 8, 64))
    ['generator_version', 'n_images', 'preset', 'seed', 'size']
    """
    return {"preset": preset, "seed": seed, "n_images": n_images, "size": size, "generator_version": GENERATOR_VERSION}


def dataset_folder(preset: str, seed: int, n_images: int, size: int | None = None, *, plate: bool = False) -> Path:
    """Where :func:`synthetic_dataset` keeps this dataset (it need not exist yet).

    ``size=None`` is the generator's default field size; ``plate`` adds the binding plate
    (``cho_m4r`` only: ``plate.csv``, ``truth.json``).
    """
    side = "default" if size is None else f"{size}"
    return cache_dir() / "datasets" / f"{preset}-n{n_images}-seed{seed}-{side}px{'-plate' if plate else ''}"


def synthetic_dataset(preset: str, *, n_images: int, seed: int = 0, size: int | None = None, plate: bool = False,
                      progress: bool = True) -> Path:
    """Folder of the preset's synthetic dataset, generated into the cache when missing or stale.

    Parameters
    ----------
    preset : str
        ``seven_cell_lines``, ``lncap`` or ``cho_m4r``.
    n_images : int
        Fields in ``manifest.csv``.
    seed : int
        Seed of the generator (the same seed writes byte-identical files).
    size : int, optional
        Side of the square fields; ``None`` the generator's default.
    plate : bool
        Also generate the ``cho_m4r`` binding plate.
    progress : bool
        Messages and progress bars.

    Returns
    -------
    pathlib.Path
        The dataset folder (``manifest.csv`` in it).
    """
    folder = dataset_folder(preset, seed, n_images, size, plate=plate)
    settings = generation_settings(preset, seed, n_images, size)
    record = folder / RECORD
    if (folder / "manifest.csv").is_file() and record.is_file():
        try:
            if json.loads(record.read_text()) == settings:
                return folder
        except ValueError:
            pass
    if progress:
        shape = "" if size is None else f" of {size}x{size} px"
        print(f"generating {n_images} {preset} fields{shape} (seed {seed}) into {folder} ...", flush=True)
    kwargs = {} if plate else {"plate": None}
    with atomic_folder(folder, replace=True) as staging:
        generate_dataset(preset, staging, n_images=n_images, seed=seed, size=size, progress=progress, **kwargs)
        (staging / RECORD).write_text(json.dumps(settings))
    return folder
