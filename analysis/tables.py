"""Tidy tables for other tools: ``fields.csv`` (CellProfiler style) and Prism-ready XY tables.

``fields.csv`` has one row per field of view, named the way CellProfiler names its per-image
table: ``Metadata_Plate``, ``Metadata_Well``, ``Metadata_Site`` (the field), the plate map's
``Metadata_Experiment``, ``Metadata_Ligand``, ``Metadata_Concentration`` (molar), then the
measurements: ``artifact_coverage_manual`` / ``artifact_coverage_model`` (the fraction of the
field's pixels inside the manual / predicted artifact mask, before any exclusion margin) and
``cell_mean_<mode>``, ``background_mean_<mode>`` for each removal mode that was run.

A Prism XY table (``prism/<experiment>_<mode>.csv``) has X = log10 molar concentration and
one Y column per replicate well, ready for "log(inhibitor) vs. response" in GraphPad Prism.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from artseg.errors import ArtsegInputError

__all__ = [
    "DEFAULT_VEHICLE_OFFSET",
    "METADATA_COLUMNS",
    "field_table",
    "plate_names",
    "prism_file_name",
    "prism_tables",
]

METADATA_COLUMNS = [
    "Metadata_Plate", "Metadata_Well", "Metadata_Site", "Metadata_Experiment", "Metadata_Ligand",
    "Metadata_Concentration",
]
COVERAGE_MODES = ("manual", "model")
DEFAULT_VEHICLE_OFFSET = 3.0
"""Log units below the lowest tested concentration at which a Prism table puts the vehicle wells."""
_FIELD_KEYS = ["experiment", "well", "field"]


def plate_names(plate: pd.DataFrame, default: str) -> pd.Series:
    """The plate of each manifest row: its ``plate`` column, else one name for the whole manifest.

    Parameters
    ----------
    plate : DataFrame
        A plate manifest (``experiment, well, field`` and optionally ``plate``).
    default : str
        The name used when there is no ``plate`` column (e.g. the manifest's file stem).

    Returns
    -------
    Series
        One name per row. Without a ``plate`` column, a manifest in which one well name
        belongs to several experiments holds one plate per experiment (each experiment laid
        out on its own plate), and the experiment names the plate.

    Examples
    --------
    >>> manifest = pd.DataFrame({"experiment": ["a", "a", "b"], "well": ["A01", "A02", "A01"],
    ...                          "field": [0, 0, 0]})
    >>> plate_names(manifest, "plate").tolist()
    ['a', 'a', 'b']
    >>> plate_names(manifest.iloc[:2], "plate").tolist()
    ['plate', 'plate']
    """
    if "plate" in plate.columns and plate["plate"].notna().all():
        return plate["plate"].astype(str)
    shared_wells = plate.groupby("well")["experiment"].nunique().gt(1).any()
    if shared_wells:
        return plate["experiment"].astype(str)
    return pd.Series(default, index=plate.index, dtype=object)


def field_table(field_rows: pd.DataFrame, plates: pd.DataFrame | None = None) -> pd.DataFrame:
    """``fields.csv``: one row per field, metadata first, coverage and intensities per mode.

    Parameters
    ----------
    field_rows : DataFrame
        One row per field and removal mode: ``experiment, ligand, concentration, well, field,
        mode, cell_mean, background_mean`` and, for the coverage, ``n_pixels`` and
        ``n_artifact_px`` (:func:`analysis.quantify.field_intensities`).
    plates : DataFrame, optional
        ``experiment, well, field, Metadata_Plate`` (see :func:`plate_names`); without it
        ``Metadata_Plate`` is empty.

    Returns
    -------
    DataFrame
        ``METADATA_COLUMNS``, then ``artifact_coverage_manual`` / ``_model`` for the modes
        present, then ``cell_mean_<mode>``, ``background_mean_<mode>`` per mode, in the order
        the fields and modes first appear.

    Raises
    ------
    ArtsegInputError
        If a required column is missing.

    Examples
    --------
    >>> rows = pd.DataFrame({"experiment": "e1", "ligand": "atropine", "concentration": 1e-9,
    ...     "well": "B03", "field": 1, "mode": ["manual", "none"], "cell_mean": [10.0, 12.0],
    ...     "background_mean": [2.0, 2.5], "n_pixels": 100, "n_artifact_px": [7, 0]})
    >>> table = field_table(rows)
    >>> table[["Metadata_Well", "Metadata_Site", "artifact_coverage_manual", "cell_mean_none"]].values.tolist()
    [['B03', 1, 0.07, 12.0]]
    """
    required = ["experiment", "ligand", "concentration", "well", "field", "mode", "cell_mean", "background_mean"]
    missing = [c for c in required if c not in field_rows.columns]
    if missing:
        raise ArtsegInputError(f"field table: missing column(s) {', '.join(missing)}")
    modes = list(dict.fromkeys(field_rows["mode"]))
    keys = field_rows[_FIELD_KEYS + ["ligand", "concentration"]].drop_duplicates(_FIELD_KEYS)
    table = keys.rename(columns={"well": "Metadata_Well", "field": "Metadata_Site",
                                 "experiment": "Metadata_Experiment", "ligand": "Metadata_Ligand",
                                 "concentration": "Metadata_Concentration"}).reset_index(drop=True)
    index = pd.MultiIndex.from_frame(keys[_FIELD_KEYS])
    if plates is not None:
        plate_of = plates.drop_duplicates(_FIELD_KEYS).set_index(_FIELD_KEYS)["Metadata_Plate"]
        table.insert(0, "Metadata_Plate", plate_of.reindex(index).to_numpy())
    else:
        table.insert(0, "Metadata_Plate", "")
    by_mode = {mode: rows.set_index(_FIELD_KEYS).reindex(index) for mode, rows in field_rows.groupby("mode", sort=False)}
    for mode in (m for m in COVERAGE_MODES if m in by_mode):
        rows = by_mode[mode]
        if {"n_pixels", "n_artifact_px"} <= set(rows.columns):
            table[f"artifact_coverage_{mode}"] = (rows["n_artifact_px"] / rows["n_pixels"]).to_numpy(dtype=float)
        else:
            table[f"artifact_coverage_{mode}"] = np.nan
    for mode in modes:
        table[f"cell_mean_{mode}"] = by_mode[mode]["cell_mean"].to_numpy(dtype=float)
        table[f"background_mean_{mode}"] = by_mode[mode]["background_mean"].to_numpy(dtype=float)
    return table[METADATA_COLUMNS + [c for c in table.columns if c not in METADATA_COLUMNS]]


def prism_file_name(experiment: str, mode: str) -> str:
    """A safe file name ``<experiment>_<mode>.csv`` (other characters become ``_``).

    Examples
    --------
    >>> prism_file_name("atropine 1/2", "model+rout")
    'atropine_1_2_model+rout.csv'
    """
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", f"{experiment}_{mode}") + ".csv"


def prism_tables(wells: pd.DataFrame, *, vehicle_offset: float = DEFAULT_VEHICLE_OFFSET) -> dict[str, pd.DataFrame]:
    """One Prism XY table per experiment and mode: X = log10 concentration, Y = replicate wells.

    Parameters
    ----------
    wells : DataFrame
        ``wells.csv`` rows (``experiment, concentration, well, mode, specific``). A NaN
        ``specific`` (a well without usable fields, or a ROUT outlier) is left blank.
    vehicle_offset : float
        Vehicle wells (concentration 0, log −∞) are placed this many log units below the lowest
        tested concentration, as Prism's documentation suggests for zero-dose controls.

    Returns
    -------
    dict
        File name (:func:`prism_file_name`) -> table with columns ``log_concentration``,
        ``replicate_1`` … ``replicate_k``, one row per concentration (ascending), replicates
        in well order.

    Examples
    --------
    >>> wells = pd.DataFrame({"experiment": "e1", "mode": "manual", "concentration": [0, 0, 1e-8, 1e-8],
    ...                       "well": ["A01", "B01", "A02", "B02"], "specific": [900.0, 880.0, 450.0, 470.0]})
    >>> prism_tables(wells)["e1_manual.csv"].values.tolist()
    [[-11.0, 900.0, 880.0], [-8.0, 450.0, 470.0]]
    """
    if not np.isfinite(vehicle_offset) or vehicle_offset <= 0:
        raise ArtsegInputError(f"prism_tables: vehicle_offset must be a positive number, got {vehicle_offset}")
    tables: dict[str, pd.DataFrame] = {}
    for (experiment, mode), data in wells.groupby(["experiment", "mode"], sort=True):
        concentration = data["concentration"].to_numpy(dtype=float)
        tested = np.log10(concentration[concentration > 0])
        vehicle_x = (tested.min() if tested.size else 0.0) - vehicle_offset
        ordered = data.assign(_x=np.where(concentration > 0, np.log10(np.where(concentration > 0, concentration, 1.0)),
                                          vehicle_x)).sort_values(["_x", "well"], kind="stable")
        replicate = ordered.groupby("_x").cumcount() + 1
        table = (ordered.assign(_replicate=replicate.to_numpy())
                 .pivot(index="_x", columns="_replicate", values="specific"))
        table.columns = [f"replicate_{i}" for i in table.columns]
        table = table.rename_axis("log_concentration").reset_index()
        name = prism_file_name(str(experiment), str(mode))
        stem, suffix, n = name[:-4], 1, name
        while n in tables:  # two experiments whose names differ only in replaced characters
            suffix += 1
            n = f"{stem}_{suffix}.csv"
        tables[n] = table
    return tables
