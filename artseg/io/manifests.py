"""Reading manifests: image, plate and nuclei tables, their paths resolved and their shapes checked.

A manifest row that cannot be used becomes an :class:`~artseg.errors.ArtsegInputError` naming the
manifest, the spreadsheet row and the problem.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from artseg.errors import ArtsegInputError

from artseg.io.images import _one_line, _require_file, check_same_shape, image_shape, split_channel, with_channel

_LABEL_VALUES = {"1": 1, "artifact": 1, "0": 0, "clean": 0, "1.0": 1, "0.0": 0}
_SPLIT_VALUES = {"train": "train", "val": "val", "validation": "val", "test": "test"}
_WELL_PATTERN = re.compile(r"^([A-Za-z]{1,2})0*(\d{1,3})$")

# Columns holding file paths; they are resolved against the manifest's folder.
_IMAGE_MANIFEST_PATHS = ("image", "mask", "nuclei", "cells", "fluorescence")
_PLATE_PATHS = ("brightfield", "fluorescence", "artifact_mask", "cell_mask", "cell_truth")
_NUCLEI_PATHS = ("image", "nuclei", "artifact_mask", "nuclei_pred")


# --------------------------------------------------------------------------- manifests


def _read_csv_table(csv_path: Path, required: Sequence[str]) -> pd.DataFrame:
    """Read a manifest as strings ("" for empty cells) and check it has rows and the required columns."""
    _require_file(csv_path, "manifest")
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ArtsegInputError(f"{csv_path}: manifest is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ArtsegInputError(f"{csv_path}: cannot parse manifest: {_one_line(err)}") from err
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ArtsegInputError(
            f"{csv_path}: missing required column(s) {', '.join(missing)} "
            f"(found: {', '.join(table.columns) or 'none'})"
        )
    if len(table) == 0:
        raise ArtsegInputError(f"{csv_path}: manifest has no rows")
    return table.apply(lambda column: column.str.strip())


def _row_name(csv_path: Path, index: int) -> str:
    # Row numbers as a spreadsheet shows them: the header is row 1.
    return f"{csv_path}: row {index + 2}"


def _resolve_paths(
    table: pd.DataFrame, csv_path: Path, columns: Iterable[str], *, must_exist: Iterable[str]
) -> None:
    """Make path columns absolute in place (empty cells become None); check ``must_exist`` files."""
    base = csv_path.parent.resolve()
    must_exist = set(must_exist)
    for column in columns:
        if column not in table.columns:
            continue
        resolved: list[str | None] = []
        for index, value in enumerate(table[column]):
            if value == "":
                resolved.append(None)
                continue
            try:
                file_part, channel = split_channel(value)  # a #channel= suffix stays on the path
            except ArtsegInputError as err:
                raise ArtsegInputError(f"{_row_name(csv_path, index)}: {column}: {err}") from None
            full = file_part.expanduser()
            full = Path(os.path.normpath(full if full.is_absolute() else base / full))
            if column in must_exist and not full.is_file():
                raise ArtsegInputError(f"{_row_name(csv_path, index)}: {column} file not found: {full}")
            resolved.append(with_channel(full, channel))
        table[column] = pd.Series(resolved, index=table.index, dtype=object)


def _require_values(table: pd.DataFrame, csv_path: Path, columns: Iterable[str]) -> None:
    for column in columns:
        for index in np.flatnonzero(table[column].isna() | (table[column] == "")):
            raise ArtsegInputError(f"{_row_name(csv_path, int(index))}: empty {column}")


def _has_path(value) -> bool:
    return isinstance(value, (str, os.PathLike)) and str(value) != ""


def _check_row_shapes(table: pd.DataFrame, reference: str, columns: Sequence[str], row_name) -> None:
    """Check each row's ``columns`` files against its ``reference`` file; ``row_name(i)`` labels errors."""
    present = [c for c in columns if c in table.columns]
    if not present:
        return
    for position, values in enumerate(table[[reference, *present]].to_dict("records")):
        paths = {c: values[c] for c in present if _has_path(values[c])}
        if not paths:
            continue
        try:
            reference_shape = image_shape(values[reference])
            for column, path in paths.items():
                check_same_shape(reference_shape, image_shape(path), column, path,
                                 reference=values[reference], reference_what=reference)
        except ArtsegInputError as err:
            raise ArtsegInputError(f"{row_name(position)}: {err}") from None


def validate_mask_shapes(
    manifest_df: pd.DataFrame, *, reference: str = "image", columns: Sequence[str] = ("mask",)
) -> None:
    """Check that every mask has its image's shape, reading file headers only.

    Parameters
    ----------
    manifest_df : pandas.DataFrame
        A manifest as returned by :func:`read_image_manifest` (absolute paths; ``None`` = no file).
    reference : str
        Column of the image the others must match.
    columns : sequence of str
        Columns to check; absent columns are skipped.

    Raises
    ------
    ArtsegInputError
        Naming the DataFrame index of the row and the mismatching file.
    """
    _check_row_shapes(manifest_df, reference, columns, lambda i: f"manifest row {manifest_df.index[i]}")


def read_image_manifest(
    csv_path: str | os.PathLike, *, require_label: bool = False, check_shapes: bool = True
) -> pd.DataFrame:
    """Read and validate an image manifest (columns ``image, label, mask, split``).

    Parameters
    ----------
    csv_path : str or path-like
        CSV file; paths inside are relative to its folder (absolute paths allowed).
    require_label : bool
        Require a ``label`` column with a value on every row (training).
    check_shapes : bool
        Check each mask's shape against its image (file headers only).

    Returns
    -------
    pandas.DataFrame
        One row per image, extra columns kept. Path columns (``image``, ``mask`` and
        the synthetic ground-truth columns ``nuclei``, ``cells``, ``fluorescence``)
        are absolute strings, ``None`` where empty. ``label`` is int 0/1 (nullable
        ``Int64`` if some rows are unlabelled and labels are not required);
        ``split`` is ``train``/``val``/``test`` (``validation`` accepted) or ``None``.

    Raises
    ------
    ArtsegInputError
        Missing/empty/unparsable CSV, missing column, empty image cell, label other
        than 1/0/artifact/clean (case-insensitive), unknown split, missing image or
        mask file, mask shape different from its image.
    """
    csv_path = Path(csv_path)
    required = ["image", "label"] if require_label else ["image"]
    table = _read_csv_table(csv_path, required)
    _require_values(table, csv_path, required)
    if "label" in table.columns:
        labels: list[int | None] = []
        for index, value in enumerate(table["label"]):
            key = value.lower()
            if key == "":
                labels.append(None)
            elif key in _LABEL_VALUES:
                labels.append(_LABEL_VALUES[key])
            else:
                raise ArtsegInputError(
                    f"{_row_name(csv_path, index)}: label {value!r} is not one of 1, 0, artifact, clean"
                )
        table["label"] = pd.array(labels, dtype="Int64")
        if not table["label"].isna().any():
            table["label"] = table["label"].astype(np.int64)
    if "split" in table.columns:
        splits: list[str | None] = []
        for index, value in enumerate(table["split"]):
            if value == "":
                splits.append(None)
            elif value.lower() in _SPLIT_VALUES:
                splits.append(_SPLIT_VALUES[value.lower()])
            else:
                raise ArtsegInputError(
                    f"{_row_name(csv_path, index)}: split {value!r} is not one of train, val, test"
                )
        table["split"] = pd.Series(splits, index=table.index, dtype=object)
    _resolve_paths(table, csv_path, _IMAGE_MANIFEST_PATHS, must_exist=("image", "mask"))
    if check_shapes:
        _check_row_shapes(table, "image", ["mask"], lambda i: _row_name(csv_path, i))
    return table


def normalize_letter_well(value: str) -> str | None:
    """``B3``/``b003`` style wells as ``B03``; ``None`` for anything else.

    Examples
    --------
    >>> normalize_letter_well("b3"), normalize_letter_well("r02c03")
    ('B03', None)
    """
    match = _WELL_PATTERN.match(value)
    if match is None:
        return None
    return f"{match.group(1).upper()}{int(match.group(2)):02d}"


def read_plate_manifest(csv_path: str | os.PathLike, *, check_shapes: bool = True) -> pd.DataFrame:
    """Read and validate a plate manifest (one row per field of view).

    Parameters
    ----------
    csv_path : str or path-like
        CSV with columns ``experiment, ligand, concentration, well, field,
        brightfield, fluorescence`` and optional ``artifact_mask, cell_mask``.
    check_shapes : bool
        Check that fluorescence and masks match the brightfield shape (headers only).

    Returns
    -------
    pandas.DataFrame
        ``concentration`` float (molar, >= 0; 0 = vehicle), ``field`` int, ``well``
        normalised to ``A01`` style, path columns absolute (``None`` where empty).

    Raises
    ------
    ArtsegInputError
        Missing column, empty required cell, non-numeric or negative concentration,
        malformed well or field, missing file, shape mismatch.
    """
    csv_path = Path(csv_path)
    required = ["experiment", "ligand", "concentration", "well", "field", "brightfield", "fluorescence"]
    table = _read_csv_table(csv_path, required)
    _require_values(table, csv_path, required)
    concentrations = pd.to_numeric(table["concentration"], errors="coerce")
    for index, (text, number) in enumerate(zip(table["concentration"], concentrations)):
        if not np.isfinite(number) or number < 0:
            raise ArtsegInputError(
                f"{_row_name(csv_path, index)}: concentration {text!r} is not a number >= 0 (molar)"
            )
    table["concentration"] = concentrations.astype(np.float64)
    wells = []
    for index, value in enumerate(table["well"]):
        well = normalize_letter_well(value)
        if well is None:
            raise ArtsegInputError(f"{_row_name(csv_path, index)}: well {value!r} is not like A01")
        wells.append(well)
    table["well"] = wells
    fields = pd.to_numeric(table["field"], errors="coerce")
    for index, (text, number) in enumerate(zip(table["field"], fields)):
        if not np.isfinite(number) or number < 0 or number != int(number):
            raise ArtsegInputError(f"{_row_name(csv_path, index)}: field {text!r} is not an integer >= 0")
    table["field"] = fields.astype(np.int64)
    _resolve_paths(table, csv_path, _PLATE_PATHS, must_exist=_PLATE_PATHS)
    if check_shapes:
        others = ["fluorescence", "artifact_mask", "cell_mask", "cell_truth"]
        _check_row_shapes(table, "brightfield", others, lambda i: _row_name(csv_path, i))
    return table


def read_nuclei_manifest(csv_path: str | os.PathLike, *, check_shapes: bool = True) -> pd.DataFrame:
    """Read and validate a nuclei manifest (``image, nuclei`` + optional ``artifact_mask, nuclei_pred``).

    Parameters
    ----------
    csv_path : str or path-like
        CSV file; paths relative to its folder.
    check_shapes : bool
        Check that label images and masks match the image shape (headers only).

    Returns
    -------
    pandas.DataFrame
        Path columns absolute (``None`` where empty); other columns kept as text.

    Raises
    ------
    ArtsegInputError
        Missing column, empty required cell, missing file, shape mismatch.
    """
    csv_path = Path(csv_path)
    table = _read_csv_table(csv_path, ["image", "nuclei"])
    _require_values(table, csv_path, ["image", "nuclei"])
    _resolve_paths(table, csv_path, _NUCLEI_PATHS, must_exist=_NUCLEI_PATHS)
    if check_shapes:
        _check_row_shapes(table, "image", _NUCLEI_PATHS[1:], lambda i: _row_name(csv_path, i))
    return table
