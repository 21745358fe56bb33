"""Plate maps drawn as a grid or listed long, joined into one table per well."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pandas as pd

from artseg.errors import ArtsegInputError

from artseg.platemap.wells import (
    CONCENTRATION_UNITS,
    MANIFEST_COLUMNS,
    PLATE_FORMATS,
    REQUIRED_VARIABLES,
    normalize_well,
    row_letters,
    well_order,
)

# --------------------------------------------------------------------------- plate maps


def read_csv_cells(path: str | os.PathLike) -> list[list[str]]:
    """The cells of a CSV file as stripped strings (comma, semicolon or tab separated).

    Raises
    ------
    ArtsegInputError
        The file is missing, empty or not text.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtsegInputError(f"{path}: plate map not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ArtsegInputError(f"{path}: plate map is not UTF-8 text (save it from the spreadsheet as CSV)") from None
    first_line = text.splitlines()[0] if text.strip() else ""
    if not first_line:
        raise ArtsegInputError(f"{path}: plate map is empty")
    # Spreadsheets in many locales write ';' separated CSV; pick the separator the header uses most.
    delimiter = max(",;\t", key=first_line.count)
    return [[cell.strip() for cell in row] for row in csv.reader(text.splitlines(), delimiter=delimiter)]


def _trim(cells: list[list[str]]) -> list[list[str]]:
    """Drop empty trailing rows and columns (spreadsheets export them)."""
    rows = [list(row) for row in cells]
    while rows and not any(rows[-1]):
        rows.pop()
    width = max((len(row) for row in rows), default=0)
    rows = [row + [""] * (width - len(row)) for row in rows]
    while width and not any(row[width - 1] for row in rows):
        width -= 1
    return [row[:width] for row in rows]


def parse_grid_map(cells: list[list[str]], source: str) -> dict[str, str]:
    """Read a plate drawn as a grid: first row the column numbers, first column the row letters.

    Parameters
    ----------
    cells : list of list of str
        The CSV's cells (:func:`read_csv_cells`); the top-left cell is ignored.
    source : str
        Names the map in messages (its file).

    Returns
    -------
    dict
        ``{well: value}`` for the non-empty cells (an empty cell is an unused well).

    Raises
    ------
    ArtsegInputError
        Headers that are not 1..N and A.., or a shape that is no plate format
        (8 × 12, 16 × 24, ...).

    Examples
    --------
    >>> grid = [[""] + [str(c) for c in range(1, 13)]] + [[r] + [""] * 12 for r in "ABCDEFGH"]
    >>> grid[2][3] = "10"
    >>> parse_grid_map(grid, "map.csv")
    {'B03': '10'}
    """
    rows = _trim(cells)
    n_rows, n_columns = len(rows) - 1, (len(rows[0]) - 1 if rows else 0)
    formats = ", ".join(f"{r} × {c}" for r, c in PLATE_FORMATS)
    if (n_rows, n_columns) not in PLATE_FORMATS:
        raise ArtsegInputError(
            f"{source}: a grid plate map has {n_rows} row(s) × {n_columns} column(s) of wells; "
            f"expected one of {formats} (first row the column numbers, first column the row letters)"
        )
    header = rows[0][1:]
    if not all(h.isdigit() for h in header) or [int(h) for h in header] != list(range(1, n_columns + 1)):
        raise ArtsegInputError(f"{source}: the first row must hold the column numbers 1..{n_columns}, "
                               f"got {', '.join(header)}")
    letters = [row[0].upper() for row in rows[1:]]
    expected = [row_letters(r) for r in range(1, n_rows + 1)]
    if letters != expected:
        raise ArtsegInputError(f"{source}: the first column must hold the row letters "
                               f"{expected[0]}..{expected[-1]}, got {', '.join(row[0] for row in rows[1:])}")
    return {
        f"{letter}{column:02d}": value
        for letter, row in zip(letters, rows[1:])
        for column, value in enumerate(row[1:], start=1)
        if value != ""
    }


def parse_long_map(cells: list[list[str]], source: str) -> dict[str, dict[str, str]]:
    """Read a plate map listed as a table with a ``well`` column and one column per variable.

    Returns
    -------
    dict
        ``{variable: {well: value}}`` for the non-empty cells.

    Raises
    ------
    ArtsegInputError
        No ``well`` column, a malformed or repeated well, or an empty column name.
    """
    rows = _trim(cells)
    if not rows:
        raise ArtsegInputError(f"{source}: plate map is empty")
    header = rows[0]
    if "well" not in header:
        raise ArtsegInputError(f"{source}: a long plate map needs a 'well' column (found: {', '.join(header)})")
    if "" in header or len(set(header)) != len(header):
        raise ArtsegInputError(f"{source}: every column needs a name of its own (found: {', '.join(header)})")
    well_column = header.index("well")
    variables: dict[str, dict[str, str]] = {name: {} for name in header if name != "well"}
    seen: set[str] = set()
    for line, row in enumerate(rows[1:], start=2):
        if not any(row):
            continue
        well = normalize_well(row[well_column])
        if well is None:
            raise ArtsegInputError(f"{source}: row {line}: well {row[well_column]!r} is not like A01, B3 or r02c03")
        if well in seen:
            raise ArtsegInputError(f"{source}: row {line}: well {well} is listed twice")
        seen.add(well)
        for name, value in zip(header, row):
            if name != "well" and value != "":
                variables[name][well] = value
    return variables


def _molar(text: str, unit: str, where: str) -> float:
    """``text`` in ``unit`` as molar, decimal-exact (10 nM is 1e-08, not 1.0000000000000001e-08)."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = None
    molar = float(value.scaleb(CONCENTRATION_UNITS[unit])) if value is not None and value.is_finite() else None
    if molar is None or not math.isfinite(molar) or molar < 0:
        raise ArtsegInputError(f"{where}: concentration {text!r} is not a number >= 0 ({unit})")
    return molar + 0.0  # "-0" is the vehicle too, written 0.0


def combine_plate_maps(
    maps: Mapping[str, tuple[Mapping[str, str], str]],
    *,
    concentration_unit: str = "M",
) -> pd.DataFrame:
    """Join per-variable maps into one row per used well.

    Parameters
    ----------
    maps : mapping
        ``{variable: ({well: value}, source)}``, ``source`` naming the file in messages.
        ``experiment``, ``ligand`` and ``concentration`` are required; other variables
        become extra columns.
    concentration_unit : {"M", "mM", "uM", "nM", "pM"}
        Unit of the concentration map; converted to molar.

    Returns
    -------
    pandas.DataFrame
        Index ``well`` (plate order); columns the variables (required ones first),
        ``concentration`` float molar, extras as text ("" where a map leaves the well empty).
        A well is used when any required map names it.

    Raises
    ------
    ArtsegInputError
        A required variable without a map, a used well that a required map leaves empty,
        or a concentration that is not a number >= 0.
    """
    if concentration_unit not in CONCENTRATION_UNITS:
        raise ArtsegInputError(f"--concentration-unit {concentration_unit!r} is not one of "
                               f"{', '.join(u for u in CONCENTRATION_UNITS if u != 'µM')}")
    reserved = [name for name in maps if name in MANIFEST_COLUMNS]
    if reserved:
        raise ArtsegInputError(f"{maps[reserved[0]][1]}: a plate-map variable cannot be called {reserved[0]!r} "
                               "(a plate manifest column of its own)")
    absent = [name for name in REQUIRED_VARIABLES if name not in maps]
    if absent:
        raise ArtsegInputError(f"--plate-map: no map gives {', '.join(absent)} "
                               f"(required: {', '.join(REQUIRED_VARIABLES)})")
    used = sorted({well for name in REQUIRED_VARIABLES for well in maps[name][0]}, key=well_order)
    if not used:
        raise ArtsegInputError(f"{maps['experiment'][1]}: the plate map names no well")
    for name in REQUIRED_VARIABLES:
        values, source = maps[name]
        empty = [well for well in used if values.get(well, "") == ""]
        if empty:
            others = [n for n in REQUIRED_VARIABLES if n != name and empty[0] in maps[n][0]]
            raise ArtsegInputError(f"{source}: well {empty[0]} has no {name} but has {' and '.join(others)} "
                                   f"in the plate map{and_more(empty)}")
    names = [*REQUIRED_VARIABLES, *(n for n in maps if n not in REQUIRED_VARIABLES)]
    table = pd.DataFrame({name: [maps[name][0].get(well, "") for well in used] for name in names},
                         index=pd.Index(used, name="well"))
    values, source = maps["concentration"]
    table["concentration"] = [_molar(values[well], concentration_unit, f"{source}: well {well}") for well in used]
    return table


def and_more(items: Sequence) -> str:
    return f" (and {len(items) - 1} more)" if len(items) > 1 else ""


