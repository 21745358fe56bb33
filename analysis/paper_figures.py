"""What the figure notebooks need beyond :mod:`analysis.figures` and :mod:`artseg.plots`.

The notebooks in ``notebooks/`` redraw the paper's figures and tables from the output
folders of the commands (``artseg benchmark``, ``artseg synth``, ``python -m
analysis.ligand_affinity``, ``python -m analysis.nuclei_impact``). This module holds the
few pieces they share: the message naming the command when outputs are missing, saving a
figure as PNG and SVG, the object sizes of a synthetic dataset (Supp. Fig. 2), the
displacement curves of every experiment (Supp. Fig. 5) and the example fields of several
benchmark runs in one figure (Supp. Fig. 3). Figures are built without pyplot.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.figures import displacement_curves
from analysis.reporting import save_figure_formats
from artseg.errors import ArtsegInputError
from artseg.io import read_labels, read_mask
from artseg.plots import outline_overlays
from artseg.postprocess import label_objects

__all__ = [
    "combined_overlays",
    "dataset_object_sizes",
    "displacement_curve_pages",
    "find_runs",
    "missing_outputs_message",
    "object_areas",
    "object_size_boxes",
    "read_overlays",
    "representative_experiments",
    "save_figure_formats",
]

KIND_COLOURS = {"nucleus": "#7570b3", "artifact": "#d95f02"}


def missing_outputs_message(folder: str | os.PathLike, files: Sequence[str], command: str) -> str | None:
    """The line a notebook stops with when ``folder`` lacks some of ``files``; ``None`` if all are there.

    Parameters
    ----------
    folder : str or path-like
        Output folder of a command.
    files : sequence of str
        File names the notebook reads, relative to ``folder``.
    command : str
        The command that writes them, shown to the user as is.

    Returns
    -------
    str or None

    Examples
    --------
    >>> print(missing_outputs_message("/nowhere", ["fits.csv"], "python -m analysis.ligand_affinity --out /nowhere"))
    ... # doctest: +NORMALIZE_WHITESPACE
    /nowhere has no fits.csv: make it with `python -m analysis.ligand_affinity --out /nowhere`
    (or set ARTSEG_OUT to the folder holding the outputs)
    """
    folder = Path(folder)
    missing = [name for name in files if not (folder / name).exists()]
    if not missing:
        return None
    return (f"{folder} has no {', '.join(missing)}: make {'it' if len(missing) == 1 else 'them'} with "
            f"`{command}` (or set ARTSEG_OUT to the folder holding the outputs)")


def find_runs(folders: Mapping[str, str | os.PathLike], files: Sequence[str],
              commands: Mapping[str, str]) -> tuple[dict[str, Path], list[str]]:
    """Split output folders (one per dataset) into those holding ``files`` and messages for the rest.

    Parameters
    ----------
    folders : mapping of str to path
        Dataset name to the output folder its command writes.
    files : sequence of str
        File names every folder must hold.
    commands : mapping of str to str
        Dataset name to the command that writes its folder.

    Returns
    -------
    present : dict of str to Path
        The complete folders, in the order of ``folders``.
    messages : list of str
        :func:`missing_outputs_message` of each incomplete folder.

    Examples
    --------
    >>> present, messages = find_runs({"lncap": "/nowhere"}, ["table.csv"], {"lncap": "artseg benchmark ..."})
    >>> present, len(messages)
    ({}, 1)
    """
    present, messages = {}, []
    for name, folder in folders.items():
        message = missing_outputs_message(folder, files, commands[name])
        if message is None:
            present[name] = Path(folder)
        else:
            messages.append(message)
    return present, messages


# --------------------------------------------------------------------------- Fig. 6 / Supp. Fig. 5


def representative_experiments(wells: pd.DataFrame, per_ligand: int = 1) -> list[str]:
    """The first ``per_ligand`` experiments (sorted by name) of each ligand, for a Fig. 6-sized panel set.

    Examples
    --------
    >>> wells = pd.DataFrame({"experiment": ["b_2", "a_1", "b_1"], "ligand": ["b", "a", "b"]})
    >>> representative_experiments(wells)
    ['a_1', 'b_1']
    """
    pairs = wells[["ligand", "experiment"]].drop_duplicates().sort_values(["ligand", "experiment"])
    return sorted(pairs.groupby("ligand", sort=True).head(per_ligand)["experiment"].astype(str))


def displacement_curve_pages(wells: pd.DataFrame, fits: pd.DataFrame, per_page: int = 12) -> list[Figure]:
    """Supp. Fig. 5: the displacement curves of every experiment, ``per_page`` panels a figure.

    Parameters
    ----------
    wells, fits : DataFrame
        ``wells.csv`` and ``fits.csv`` of ``python -m analysis.ligand_affinity``.
    per_page : int
        Experiments per figure (sorted by name).

    Returns
    -------
    list of matplotlib.figure.Figure
        :func:`analysis.figures.displacement_curves` of each page's experiments.
    """
    if per_page < 1:
        raise ArtsegInputError(f"per_page must be at least 1, got {per_page}")
    experiments = sorted(wells["experiment"].unique())
    pages = []
    for start in range(0, len(experiments), per_page):
        chosen = experiments[start:start + per_page]
        pages.append(displacement_curves(wells[wells["experiment"].isin(chosen)], fits, max_panels=per_page))
    return pages


# --------------------------------------------------------------------------- Supp. Fig. 2


def object_areas(labels: np.ndarray) -> np.ndarray:
    """Pixel count of every object of a label image (labels > 0), in label order.

    Examples
    --------
    >>> object_areas(np.array([[1, 1, 0], [0, 3, 3], [0, 0, 3]]))
    array([2, 3])
    """
    labels = np.asarray(labels)
    counts = np.bincount(labels[labels > 0].ravel().astype(np.int64))
    return counts[counts > 0]


def _dataset_settings(folder: Path, um_per_px: float | None) -> tuple[str, float]:
    record = folder / "synth.json"
    settings = json.loads(record.read_text()) if record.is_file() else {}
    if um_per_px is None:
        um_per_px = settings.get("um_per_px")
    if um_per_px is None:
        raise ArtsegInputError(f"{folder}: no synth.json with um_per_px; give the pixel size (um_per_px=...)")
    if not um_per_px > 0:
        raise ArtsegInputError(f"{folder}: pixel size must be positive, got {um_per_px}")
    return str(settings.get("preset") or folder.name), float(um_per_px)


def dataset_object_sizes(folder: str | os.PathLike, *, um_per_px: float | None = None,
                         connectivity: int = 1) -> pd.DataFrame:
    """Areas of every artifact and nucleus of a dataset written by ``artseg synth`` (Supp. Fig. 2).

    Artifacts are the connected components of each field's ``mask``
    (:func:`artseg.postprocess.label_objects`); nuclei the labels of its ``nuclei`` image.
    A nuclei image equal to an earlier row's (a CHO-M4R field's cleaned twin) is counted once.

    Parameters
    ----------
    folder : str or path-like
        Dataset folder with ``manifest.csv`` (columns ``mask`` and/or ``nuclei``, paths relative
        to it) and, from ``artseg synth``, ``synth.json`` (preset and pixel size).
    um_per_px : float, optional
        Pixel size in µm; default the one in ``synth.json``.
    connectivity : int
        Neighbours that connect artifact pixels (1: faces, 2: faces and corners).

    Returns
    -------
    DataFrame
        One row per object: ``dataset, image, kind`` (``artifact`` or ``nucleus``),
        ``area_px, area_mm2`` and ``field_area_mm2`` (the area of its whole field).

    Raises
    ------
    ArtsegInputError
        No manifest, neither a ``mask`` nor a ``nuclei`` column, no pixel size, or an
        unreadable mask or label file.
    """
    folder = Path(folder)
    manifest_path = folder / "manifest.csv"
    if not manifest_path.is_file():
        raise ArtsegInputError(f"{manifest_path}: no such manifest (write one with `artseg synth --out {folder}`)")
    manifest = pd.read_csv(manifest_path)
    columns = [column for column in ("mask", "nuclei") if column in manifest.columns]
    if not columns:
        raise ArtsegInputError(f"{manifest_path}: needs a 'mask' or 'nuclei' column")
    dataset, um_per_px = _dataset_settings(folder, um_per_px)
    mm2_per_px = (um_per_px * 1e-3) ** 2
    rows, seen_nuclei = [], set()
    for _, row in manifest.iterrows():
        for column, kind in (("mask", "artifact"), ("nuclei", "nucleus")):
            if column not in columns or pd.isna(row[column]):
                continue
            if kind == "artifact":
                pixels = read_mask(folder / row[column])
                areas = object_areas(label_objects(pixels, connectivity=connectivity))
            else:
                pixels = read_labels(folder / row[column])
                digest = hashlib.sha256(pixels.tobytes()).hexdigest()
                if digest in seen_nuclei:
                    continue
                seen_nuclei.add(digest)
                areas = object_areas(pixels)
            field_area = pixels.size * mm2_per_px
            rows.extend({"dataset": dataset, "image": row.get("image", row[column]), "kind": kind,
                         "area_px": int(area), "area_mm2": area * mm2_per_px, "field_area_mm2": field_area}
                        for area in areas)
    columns_out = ["dataset", "image", "kind", "area_px", "area_mm2", "field_area_mm2"]
    return pd.DataFrame(rows, columns=columns_out)


def object_size_boxes(sizes: pd.DataFrame, *, seed: int = 0, panel_width: float = 3.0) -> Figure:
    """Supp. Fig. 2: box plots of log10 object size (mm²) by kind, one panel per dataset.

    Parameters
    ----------
    sizes : DataFrame
        :func:`dataset_object_sizes` rows (``dataset, kind, area_mm2, field_area_mm2``),
        datasets in the order the panels should take.
    seed : int
        Seed of the horizontal jitter of the points.
    panel_width : float
        Width of one panel in inches.

    Returns
    -------
    matplotlib.figure.Figure
        Boxes at the 25th, 50th and 75th percentile, whiskers at 1.5 × IQR, every object as a
        circle, the size of the whole field as a dashed red line.

    Examples
    --------
    >>> sizes = pd.DataFrame({"dataset": "lncap", "kind": ["nucleus", "artifact"],
    ...                       "area_mm2": [1e-4, 1e-2], "field_area_mm2": 0.5})
    >>> object_size_boxes(sizes).axes[0].get_title()
    'lncap'
    """
    missing = [c for c in ("dataset", "kind", "area_mm2", "field_area_mm2") if c not in sizes.columns]
    if missing:
        raise ArtsegInputError(f"object sizes: missing column(s) {', '.join(missing)}")
    datasets = list(dict.fromkeys(sizes["dataset"]))
    if not datasets:
        raise ArtsegInputError("object sizes: no objects to draw")
    rng = np.random.default_rng(seed)
    fig = Figure(figsize=(panel_width * len(datasets), 3.8), layout="constrained")
    axes = fig.subplots(1, len(datasets), squeeze=False).ravel()
    for ax, dataset in zip(axes, datasets):
        rows = sizes[(sizes["dataset"] == dataset) & (sizes["area_mm2"] > 0)]
        kinds = [k for k in KIND_COLOURS if k in set(rows["kind"])] + \
            sorted(set(rows["kind"]) - set(KIND_COLOURS))
        for position, kind in enumerate(kinds, start=1):
            values = np.log10(rows.loc[rows["kind"] == kind, "area_mm2"].to_numpy(dtype=float))
            colour = KIND_COLOURS.get(kind, "#666666")
            ax.boxplot([values], positions=[position], widths=0.55, showfliers=False,
                       medianprops={"color": "black"}, boxprops={"color": colour}, whiskerprops={"color": colour},
                       capprops={"color": colour})
            ax.scatter(position + rng.uniform(-0.18, 0.18, len(values)), values, s=8, facecolors="none",
                       edgecolors=colour, alpha=0.6, linewidths=0.6)
        field = np.log10(float(sizes.loc[sizes["dataset"] == dataset, "field_area_mm2"].max()))
        ax.axhline(field, color="red", ls="--", lw=1, label="whole field")
        ax.set_xticks(range(1, len(kinds) + 1),
                      [f"{k}\n(n={int((rows['kind'] == k).sum())})" for k in kinds], fontsize=8)
        ax.set_xlim(0.4, len(kinds) + 0.6)
        ax.set_title(str(dataset), fontsize=10)
        ax.set_ylabel("log10 size (mm²)")
        ax.legend(fontsize=7, loc="lower right")
    return fig


# --------------------------------------------------------------------------- Fig. 3A / Supp. Fig. 3


def read_overlays(run: str | os.PathLike) -> dict:
    """The example fields of an ``artseg benchmark`` folder (``overlays.npz``).

    Returns
    -------
    dict
        ``models`` (list of str), ``names`` (file names), ``images`` and ``true_masks``
        (lists of 2-D arrays) and ``masks`` (model name to a list of masks).
    """
    from artseg.comparison import detector_slug

    path = Path(run) / "overlays.npz"
    if not path.is_file():
        raise ArtsegInputError(f"{path}: no such file (written by `artseg benchmark --out {run}`)")
    with np.load(path) as examples:
        models = [str(name) for name in examples["models"]]
        return {
            "models": models,
            "names": [str(name) for name in examples["names"]],
            "images": list(examples["images"]),
            "true_masks": list(examples["true_masks"]),
            "masks": {name: list(examples[f"mask_{detector_slug(name)}"]) for name in models},
        }


def combined_overlays(overlays_by_dataset: Mapping[str, dict], per_dataset: int = 2) -> Figure:
    """Supp. Fig. 3: example fields of several datasets, one row per field, one column per model.

    Parameters
    ----------
    overlays_by_dataset : mapping of str to dict
        Dataset name to :func:`read_overlays` of its benchmark run, in row order.
    per_dataset : int
        Example fields drawn per dataset (the first ones of each run).

    Returns
    -------
    matplotlib.figure.Figure
        :func:`artseg.plots.outline_overlays` of the models every run has; rows titled
        ``dataset: file``.

    Raises
    ------
    ArtsegInputError
        No example fields, or no model common to every run.
    """
    runs = list(overlays_by_dataset.items())
    models = [m for m in (runs[0][1]["models"] if runs else []) if all(m in run["models"] for _, run in runs)]
    if runs and not models:
        raise ArtsegInputError("combined_overlays: the benchmark runs share no model")
    images, truths, titles = [], [], []
    masks: dict[str, list] = {model: [] for model in models}
    for dataset, run in runs:
        for index in range(min(per_dataset, len(run["images"]))):
            images.append(run["images"][index])
            truths.append(run["true_masks"][index])
            titles.append(f"{dataset}: {run['names'][index]}")
            for model in models:
                masks[model].append(run["masks"][model][index])
    return outline_overlays(images, truths, masks, row_titles=titles)
