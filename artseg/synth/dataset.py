"""Write a synthetic dataset to disk: images, ground truth and a manifest (the I/O edge).

The folder is exactly what a user would bring: ``manifest.csv`` (image manifest of
DESIGN.md plus ground-truth columns) next to ``images/``, ``fluorescence/``, ``masks/``,
``nuclei/`` and ``cells/``; for ``cho_m4r`` also the binding plate (``plate.csv``,
``truth.json``, ``plate/``).

Which fields carry artifacts follows paper §2.1. ``balanced=True`` (the training set the
paper sampled): pairs of fields, one with artifacts and one clean, each pair in one split;
for CHO-M4R the clean member is the artifact member with its annotated artifacts replaced
by synthesised background (:func:`artseg.background.synthesize_clean`), as in the paper.
``balanced=False``: every field independently has artifacts with the dataset's prevalence.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from artseg.background import synthesize_clean
from artseg.errors import ArtsegInputError
from artseg.preview import montage
from artseg.io import atomic_write_csv, atomic_write_text, write_image, write_labels, write_mask, write_tiff
from artseg.synth.field import Field, synthesize_field
from artseg.synth.plate import generate_plate
from artseg.synth.presets import Preset, get_preset, resolve_shape
from artseg.synth.seeding import check_seed, stream

__all__ = [
    "GENERATOR_VERSION",
    "MANIFEST_COLUMNS",
    "FieldPlan",
    "PlateOptions",
    "generate_dataset",
    "is_current_dataset",
    "plan_fields",
    "render_planned_field",
]

# Bumped whenever the same seed and settings give different images; recorded in
# synth.json so caches of generated data know to regenerate.
# 2: artifact areas in pixels at the paper's pixel size (a crop no longer shrinks them).
# 3: ligand-channel artifact glow recalibrated for those artifacts (20 -> 6).
GENERATOR_VERSION = 3

MANIFEST_COLUMNS = ["image", "label", "mask", "split", "fluorescence", "nuclei", "cells", "n_artifacts", "artifact_types"]

# Splits of a block of five units (pairs when balanced, fields otherwise): 60/20/20.
_SPLIT_BLOCK = ("train", "train", "train", "val", "test")
_PREVIEW_FIELDS = 12


def is_current_dataset(folder: str | Path) -> bool:
    """Whether ``folder`` holds a finished dataset made by this version of the generator.

    Caches of generated data call this before reusing a folder: its ``synth.json`` must
    record :data:`GENERATOR_VERSION` (folders from before the version was recorded are stale).
    """
    record = Path(folder) / "synth.json"
    if not (Path(folder) / "manifest.csv").is_file() or not record.is_file():
        return False
    try:
        return json.loads(record.read_text()).get("generator_version") == GENERATOR_VERSION
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class FieldPlan:
    """What to draw for manifest row ``index``.

    Attributes
    ----------
    index : int
        Row (and file number).
    with_artifacts : bool
        Image-level label.
    split : str
        ``train``, ``val`` or ``test``.
    source : int
        Index whose field generator draws the field.
    cleaned : bool
        The field is ``source``'s artifact field with its artifacts replaced by
        synthesised background (CHO-M4R clean images).
    """

    index: int
    with_artifacts: bool
    split: str
    source: int
    cleaned: bool = False


@dataclass(frozen=True)
class PlateOptions:
    """Layout of the binding plate written with ``cho_m4r`` (see :func:`generate_plate`)."""

    n_experiments: int = 10
    n_concentrations: int = 8
    wells_per_concentration: int = 2
    fields_per_well: int = 4


def _block_split(seed: int, unit: int) -> str:
    order = stream(seed, "split", unit // len(_SPLIT_BLOCK)).permutation(len(_SPLIT_BLOCK))
    return _SPLIT_BLOCK[order[unit % len(_SPLIT_BLOCK)]]


def plan_fields(preset: str | Preset, n_images: int, *, seed: int, balanced: bool = True) -> list[FieldPlan]:
    """Decide label, split and source of every field (pure, no rendering).

    Parameters
    ----------
    preset : str or Preset
        Dataset preset.
    n_images : int
        Number of manifest rows.
    seed : int
        Run seed.
    balanced : bool
        Pairs of one artifact and one clean field (paper's training sets), or fields
        drawn at the preset's prevalence (the population).

    Returns
    -------
    list of FieldPlan
        Row ``i``'s plan depends only on ``(seed, i)``, never on ``n_images``.

    Notes
    -----
    Balanced: row ``i`` belongs to pair ``i // 2``; a seeded coin decides which member has
    the artifacts, so labels do not alternate predictably. Splits are drawn per block of
    five pairs (three train, one val, one test) and a pair shares one split, so every
    split is balanced and a CHO-M4R image and its cleaned twin never straddle splits.
    """
    preset = get_preset(preset)
    seed = check_seed(seed)
    plans = []
    for index in range(int(n_images)):
        if balanced:
            pair = index // 2
            artifact_first = bool(stream(seed, "pair", pair).random() < 0.5)
            with_artifacts = (index % 2 == 0) == artifact_first
            split = _block_split(seed, pair)
            partner = index + 1 if index % 2 == 0 else index - 1
            cleaned = preset.name == "cho_m4r" and not with_artifacts
            source = partner if cleaned else index
        else:
            with_artifacts = bool(stream(seed, "label", index).random() < preset.prevalence)
            split = _block_split(seed, index)
            source, cleaned = index, False
        plans.append(FieldPlan(index=index, with_artifacts=with_artifacts, split=split, source=source, cleaned=cleaned))
    return plans


def _cleaned(source: Field, seed: int, index: int) -> Field:
    """``source`` with its annotated artifacts replaced by synthesised background (paper §2.1)."""
    clean = synthesize_clean(source.brightfield, source.artifact_mask, stream(seed, "clean", index))
    empty = np.zeros_like(source.cells)
    return replace(source, brightfield=clean, artifact_mask=empty.astype(bool), artifact_labels=empty, artifact_types=[])


def render_planned_field(
    preset: str | Preset,
    plan: FieldPlan,
    *,
    seed: int,
    shape: tuple[int, int],
    source_field: Field | None = None,
) -> Field:
    """Draw the field a :class:`FieldPlan` asks for (pure).

    A cleaned field keeps its source's cells, nuclei and fluorescence; only the
    brightfield artifacts are replaced and its mask is empty. ``source_field`` may pass
    the already drawn source of a cleaned field, to skip drawing it twice.
    """
    preset = get_preset(preset)
    if not plan.cleaned:
        return synthesize_field(stream(seed, "field", plan.source), preset, shape, plan.with_artifacts)
    if source_field is None:
        source_field = synthesize_field(stream(seed, "field", plan.source), preset, shape, True)
    return _cleaned(source_field, seed, plan.index)


def _file_names(index: int, width: int) -> dict[str, str]:
    stem = f"{index:0{width}d}"
    return {
        "image": f"images/{stem}.tif",
        "mask": f"masks/{stem}.png",
        "fluorescence": f"fluorescence/{stem}.tif",
        "nuclei": f"nuclei/{stem}.tif",
        "cells": f"cells/{stem}.tif",
    }


def _write_field(out_dir: Path, names: dict[str, str], field: Field) -> None:
    write_tiff(out_dir / names["image"], field.brightfield)
    write_tiff(out_dir / names["fluorescence"], field.fluorescence)
    write_mask(out_dir / names["mask"], field.artifact_mask)
    write_labels(out_dir / names["nuclei"], field.nuclei)
    write_labels(out_dir / names["cells"], field.cells)


def generate_dataset(
    preset: str | Preset,
    out_dir: str | Path,
    *,
    n_images: int | None = None,
    seed: int = 0,
    size: int | tuple[int, int] | None = None,
    balanced: bool = True,
    paper_size: bool = False,
    plate: PlateOptions | None = PlateOptions(),
    preview: bool = False,
    progress: bool = True,
) -> Path:
    """Generate a synthetic dataset standing in for one of the paper's, and write it.

    Parameters
    ----------
    preset : str or Preset
        ``seven_cell_lines``, ``lncap`` or ``cho_m4r``.
    out_dir : str or Path
        Output folder (created).
    n_images : int, optional
        Manifest rows; default the size of the paper's balanced training set.
    seed : int
        Run seed; the same seed writes byte-identical files.
    size : int or (H, W), optional
        Field size; default 256 x 256.
    balanced : bool
        Half artifact, half clean fields (default), or the preset's natural prevalence.
    paper_size : bool
        Use the paper's field size instead of ``size``.
    plate : PlateOptions or None
        ``cho_m4r`` only: layout of the binding plate; ``None`` skips it.
    preview : bool
        Also write ``preview.png``, a montage of the first fields with artifact outlines.
    progress : bool
        Show progress bars.

    Returns
    -------
    Path
        ``manifest.csv`` with columns ``image, label, mask, split, fluorescence, nuclei,
        cells, n_artifacts, artifact_types`` (paths relative to it; ``artifact_types``
        lists the field's artifact kinds, ``;``-separated).

    Raises
    ------
    ArtsegInputError
        Unknown preset, bad size, negative seed or ``n_images < 1``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     manifest = generate_dataset("lncap", folder, n_images=2, size=64, progress=False)
    ...     print(manifest.name)
    manifest.csv
    """
    preset = get_preset(preset)
    seed = check_seed(seed)
    shape = resolve_shape(size, preset, paper_size=paper_size)
    n_images = preset.default_n_images if n_images is None else int(n_images)
    if n_images < 1:
        raise ArtsegInputError(f"--n-images must be at least 1, got {n_images}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    plans = plan_fields(preset, n_images, seed=seed, balanced=balanced)
    width = max(4, len(str(n_images - 1)))
    rows, preview_fields = [], []
    drawn: dict[int, Field] = {}  # the last artifact field, reused by its cleaned twin
    for plan in tqdm(plans, desc=f"synth {preset.name}", unit="field", disable=not progress):
        if plan.cleaned:
            if plan.source not in drawn:
                drawn = {plan.source: synthesize_field(stream(seed, "field", plan.source), preset, shape, True)}
            field = render_planned_field(preset, plan, seed=seed, shape=shape, source_field=drawn[plan.source])
        elif plan.index in drawn:
            field = drawn[plan.index]
        else:
            field = render_planned_field(preset, plan, seed=seed, shape=shape)
            if plan.with_artifacts:
                drawn = {plan.index: field}
        names = _file_names(plan.index, width)
        _write_field(out_dir, names, field)
        rows.append(
            {
                **names,
                "label": int(plan.with_artifacts),
                "split": plan.split,
                "n_artifacts": field.n_artifacts,
                "artifact_types": ";".join(sorted(set(field.artifact_types))),
            }
        )
        if preview and len(preview_fields) < _PREVIEW_FIELDS:
            preview_fields.append((field.brightfield, field.artifact_mask, int(plan.with_artifacts)))

    manifest_path = out_dir / "manifest.csv"
    atomic_write_csv(pd.DataFrame(rows, columns=MANIFEST_COLUMNS), manifest_path)
    settings = {
        "generator_version": GENERATOR_VERSION,
        "preset": preset.name,
        "seed": seed,
        "n_images": n_images,
        "shape": list(shape),
        "balanced": balanced,
        "um_per_px": preset.um_per_px,
    }
    if preset.name == "cho_m4r" and plate is not None:
        generate_plate(out_dir, seed=seed, size=shape, progress=progress, **asdict(plate))
        settings["plate"] = asdict(plate)
    atomic_write_text(out_dir / "synth.json", json.dumps(settings, indent=2) + "\n")
    if preview:
        images, masks, labels = zip(*preview_fields)
        write_image(out_dir / "preview.png", montage(list(images), list(masks), labels=list(labels), columns=4))
    return manifest_path
