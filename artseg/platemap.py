"""From an imager's export folder and a pharmacologist's plate maps to a plate manifest.

An imager writes one file per well, site and channel under its own naming; a plate map
says what is in each well, drawn as a grid (rows A.., columns 1..) or listed as a long
table with a ``well`` column. This module turns both into the plate manifest that
:func:`artseg.io.read_plate_manifest` reads (one row per field of view), in pure steps:

1. :func:`match_images` reads well, field and channel out of file names with a regular
   expression with named groups (the idea of CellProfiler's Metadata module);
2. :func:`parse_grid_map` / :func:`parse_long_map` read plate maps, and
   :func:`combine_plate_maps` joins them into one table per well, concentrations in molar;
3. :func:`build_plate_manifest` joins images and map and checks that every mapped well
   has every mapped channel for every field.

The file system is touched only by :func:`list_files`, :func:`read_csv_cells` and
:func:`write_plate_manifest`. Wells are normalised to ``A01`` style whether a file
says ``B3``, ``B03`` or ``r02c03``.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pandas as pd

from artseg.errors import ArtsegInputError
from artseg.io import _normalize_well as _normalize_letter_well
from artseg.io import CHANNEL_MARK, atomic_write_csv, split_channel, with_channel

__all__ = [
    "CHANNEL_COLUMNS",
    "CONCENTRATION_UNITS",
    "LAYOUTS",
    "REQUIRED_VARIABLES",
    "Layout",
    "PlateSummary",
    "build_plate_manifest",
    "combine_plate_maps",
    "compile_pattern",
    "is_variable_name",
    "list_files",
    "match_images",
    "normalize_well",
    "parse_grid_map",
    "parse_long_map",
    "read_csv_cells",
    "write_plate_manifest",
]

# Manifest columns a channel can fill, in manifest order (first two required).
CHANNEL_COLUMNS = ("brightfield", "fluorescence", "artifact_mask", "cell_mask")
REQUIRED_VARIABLES = ("experiment", "ligand", "concentration")
# Unit -> power of ten of one unit in molar.
CONCENTRATION_UNITS = {"M": 0, "mM": -3, "uM": -6, "µM": -6, "nM": -9, "pM": -12}
# (rows, columns) of the plate formats a grid map may have: 6 to 1536 wells.
PLATE_FORMATS = ((2, 3), (3, 4), (4, 6), (6, 8), (8, 12), (16, 24), (32, 48))

# Columns build_plate_manifest fills itself: no plate-map variable may take their names.
_MANIFEST_COLUMNS = ("well", "field", "plate", "cell_truth", *CHANNEL_COLUMNS)

_RC_WELL = re.compile(r"^[Rr]0*(\d{1,3})[Cc]0*(\d{1,3})$")
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_ ]*$")


# --------------------------------------------------------------------------- wells


def _row_letters(number: int) -> str:
    """1 -> A, 26 -> Z, 27 -> AA (1536-well plates have rows A..AF)."""
    letters = ""
    while number > 0:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _row_number(letters: str) -> int:
    number = 0
    for letter in letters.upper():
        number = number * 26 + ord(letter) - ord("A") + 1
    return number


def normalize_well(text: str) -> str | None:
    """Return a well in ``A01`` style, or ``None`` if ``text`` is not a well.

    Parameters
    ----------
    text : str
        ``B3``, ``B03``, ``b003`` (row letters and a column number) or ``r02c03``
        (Harmony's row and column numbers).

    Examples
    --------
    >>> [normalize_well(w) for w in ("B3", "B03", "r02c03", "AA1", "X")]
    ['B03', 'B03', 'B03', 'AA01', None]
    """
    text = str(text).strip()
    match = _RC_WELL.match(text)
    if match is not None:
        row, column = int(match.group(1)), int(match.group(2))
        return f"{_row_letters(row)}{column:02d}" if row >= 1 and column >= 1 else None
    well = _normalize_letter_well(text)
    if well is None or int(well.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")) < 1:
        return None
    return well


def _well_order(well: str) -> tuple[int, int]:
    letters = well.rstrip("0123456789")
    return _row_number(letters), int(well[len(letters):])


# --------------------------------------------------------------------------- imager naming


@dataclass(frozen=True)
class Layout:
    """One imager's file naming: a regular expression and what its groups mean."""

    pattern: str
    example: str
    channel: str


# fullmatch against file names, case-insensitive. Each pattern was written from the naming
# the instrument's software documents or writes; other named groups than well, field,
# channel and plate are ignored.
LAYOUTS: dict[str, Layout] = {
    # Agilent BioTek Gen5 (Cytation, Lionheart) image export:
    # <well>_<objective>_<read step>_<site>_<channel name>_<image number>.tif, wells unpadded
    # (B3), channel names as typed in the protocol (spaces allowed). The image number counts
    # repeated reads (kinetics); a kinetic export therefore gives duplicate-image errors.
    "gen5": Layout(
        r"(?P<well>[A-Z]{1,2}\d{1,2})_\d+_\d+_(?P<field>\d+)_(?P<channel>.+?)_\d{3}\.tiff?",
        "B3_04_1_2_Bright Field_001.tif",
        "the channel names of the protocol, e.g. 'Bright Field', 'Texas Red'",
    ),
    # Revvity (PerkinElmer) Harmony, Opera Phenix / Operetta CLS "Images" folder:
    # r<row>c<column>f<field>p<plane>-ch<channel>sk<time>fk<1>fl<1>.tiff, e.g. r02c03 = B03.
    "harmony": Layout(
        r"(?P<well>r\d{2}c\d{2})f(?P<field>\d+)p\d+-(?P<channel>ch\d+)sk\d+fk\d+fl\d+\.tiff?",
        "r02c03f01p01-ch1sk1fk1fl1.tiff",
        "ch1, ch2, ...: the protocol's channel numbers",
    ),
    # Molecular Devices MetaXpress (ImageXpress): [<plate>_]<well>_s<site>_w<wavelength>[<GUID>].tif;
    # one-site plates omit _s<site> (read as field 1); _thumb thumbnails do not match.
    "metaxpress": Layout(
        r"(?:(?P<plate>.+)_)?(?P<well>[A-Z]{1,2}\d{2})(?:_s(?P<field>\d+))?_(?P<channel>w\d+)"
        r"(?:[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12})?\.tiff?",
        "Plate1_B03_s2_w1.tif",
        "w1, w2, ...: the wavelength numbers",
    ),
    # Yokogawa CellVoyager (CV7000/CV8000, CQ1):
    # <plate>_<well>_T<time>F<field>L<timeline>A<action>Z<plane>C<channel>.tif
    "cellvoyager": Layout(
        r"(?P<plate>.+)_(?P<well>[A-Z]{1,2}\d{2})_T\d{4}F(?P<field>\d{3})L\d{2}A\d{2}Z\d{2}"
        r"(?P<channel>C\d{2})\.tiff?",
        "Assay_B03_T0001F002L01A01Z01C01.tif",
        "C01, C02, ...: the channel numbers",
    ),
}


def compile_pattern(pattern: str, *, ignore_case: bool = False, channel_group: bool = True) -> re.Pattern:
    """Compile a file-name pattern and check it has the named groups ``well``, ``field``, ``channel``.

    Parameters
    ----------
    pattern : str
        Regular expression matched against whole file names.
    ignore_case : bool
        Match case-insensitively.
    channel_group : bool
        Require the ``channel`` group (``False`` where each file holds every channel
        and the channels are chosen with ``#channel=``).

    Raises
    ------
    ArtsegInputError
        Not a regular expression, or a required group is missing.
    """
    try:
        compiled = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as err:
        raise ArtsegInputError(f"--pattern {pattern!r} is not a valid regular expression: {err}") from None
    required = ("well", "field", "channel") if channel_group else ("well", "field")
    missing = [name for name in required if name not in compiled.groupindex]
    if missing:
        groups = ", ".join(f"(?P<{name}>...)" for name in missing)
        raise ArtsegInputError(f"--pattern {pattern!r} lacks the named group(s) {groups}")
    return compiled


def list_files(root: str | os.PathLike) -> list[Path]:
    """Every file below ``root`` (recursively, absolute paths), hidden files and folders left out, sorted."""
    root = Path(os.path.abspath(Path(root).expanduser()))
    if not root.is_dir():
        raise ArtsegInputError(f"{root}: --images folder not found")
    files = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        files.extend(Path(folder) / name for name in sorted(names) if not name.startswith("."))
    return files


def match_images(paths: Iterable[str | os.PathLike], pattern: re.Pattern) -> tuple[pd.DataFrame, int]:
    """Read well, field, channel (and plate) out of file names.

    Parameters
    ----------
    paths : iterable of path
        Image files; only their names are matched.
    pattern : re.Pattern
        From :func:`compile_pattern`; matched against the whole file name. A ``field``
        group that takes no part in the match means field 1 (one-site exports).

    Returns
    -------
    (pandas.DataFrame, int)
        Columns ``well`` (``A01`` style), ``field`` (int), ``channel`` (the token as
        written), ``plate`` ("" without that group) and ``path``, one row per matched
        file; and the number of files whose name did not match.

    Raises
    ------
    ArtsegInputError
        A matched name whose well is not a well or whose field is not a whole number.
    """
    rows, unmatched = [], 0
    for path in paths:
        path = Path(path)
        match = pattern.fullmatch(path.name)
        if match is None:
            unmatched += 1
            continue
        groups = match.groupdict()
        well = normalize_well(groups["well"] or "")
        if well is None:
            raise ArtsegInputError(f"{path}: well {groups['well']!r} is not like A01, B3 or r02c03")
        site = groups["field"]
        if site is not None and not site.strip().isdigit():
            raise ArtsegInputError(f"{path}: field {site!r} is not a whole number")
        rows.append({
            "well": well,
            "field": 1 if site is None else int(site),
            "channel": groups.get("channel") or "",
            "plate": groups.get("plate") or "",
            "path": str(path),
        })
    table = pd.DataFrame(rows, columns=["well", "field", "channel", "plate", "path"])
    return table.astype({"field": "int64"}), unmatched


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
    expected = [_row_letters(r) for r in range(1, n_rows + 1)]
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
    reserved = [name for name in maps if name in _MANIFEST_COLUMNS]
    if reserved:
        raise ArtsegInputError(f"{maps[reserved[0]][1]}: a plate-map variable cannot be called {reserved[0]!r} "
                               "(a plate manifest column of its own)")
    absent = [name for name in REQUIRED_VARIABLES if name not in maps]
    if absent:
        raise ArtsegInputError(f"--plate-map: no map gives {', '.join(absent)} "
                               f"(required: {', '.join(REQUIRED_VARIABLES)})")
    used = sorted({well for name in REQUIRED_VARIABLES for well in maps[name][0]}, key=_well_order)
    if not used:
        raise ArtsegInputError(f"{maps['experiment'][1]}: the plate map names no well")
    for name in REQUIRED_VARIABLES:
        values, source = maps[name]
        empty = [well for well in used if values.get(well, "") == ""]
        if empty:
            others = [n for n in REQUIRED_VARIABLES if n != name and empty[0] in maps[n][0]]
            raise ArtsegInputError(f"{source}: well {empty[0]} has no {name} but has {' and '.join(others)} "
                                   f"in the plate map{_more(empty)}")
    names = [*REQUIRED_VARIABLES, *(n for n in maps if n not in REQUIRED_VARIABLES)]
    table = pd.DataFrame({name: [maps[name][0].get(well, "") for well in used] for name in names},
                         index=pd.Index(used, name="well"))
    values, source = maps["concentration"]
    table["concentration"] = [_molar(values[well], concentration_unit, f"{source}: well {well}") for well in used]
    return table


def _more(items: Sequence) -> str:
    return f" (and {len(items) - 1} more)" if len(items) > 1 else ""


# --------------------------------------------------------------------------- the join


@dataclass
class PlateSummary:
    """What :func:`build_plate_manifest` used and left out, for the command's report."""

    n_fields: int = 0
    n_wells: int = 0
    n_experiments: int = 0
    plate: str = ""
    unmapped_wells: list[str] = dataclass_field(default_factory=list)
    ignored_channels: dict[str, int] = dataclass_field(default_factory=dict)


def build_plate_manifest(
    images: pd.DataFrame,
    plate_map: pd.DataFrame,
    channels: Mapping[str, str],
    *,
    strict: bool = False,
    plate: str | None = None,
) -> tuple[pd.DataFrame, PlateSummary]:
    """Join matched images and a plate map into a plate manifest (one row per field).

    Parameters
    ----------
    images : pandas.DataFrame
        From :func:`match_images`.
    plate_map : pandas.DataFrame
        From :func:`combine_plate_maps`.
    channels : mapping
        ``{manifest column: channel token}``; columns among ``brightfield``,
        ``fluorescence`` (both required), ``artifact_mask``, ``cell_mask``. A token may
        end in ``#channel=NAME|INDEX`` to pick one plane of a multi-channel file.
    strict : bool
        Make images of wells no map covers an error (otherwise they are left out and counted).
    plate : str, optional
        Keep only this plate's files (for a pattern with a ``plate`` group).

    Returns
    -------
    (pandas.DataFrame, PlateSummary)
        Columns ``experiment, ligand, concentration, well, field``, the channel columns
        (absolute paths) in manifest order, ``plate`` when the names hold one, then the
        extra plate-map variables; rows in plate order (A01, A02, ..., then field).

    Raises
    ------
    ArtsegInputError
        One line each: an unknown or missing channel column, a channel token no file
        has, files of several plates, two files for one (well, field, channel), a mapped
        well with no images, a field lacking a mapped channel, or (``strict``) images of
        an unmapped well.
    """
    unknown = [c for c in channels if c not in CHANNEL_COLUMNS]
    if unknown:
        raise ArtsegInputError(f"--channel {unknown[0]}=...: column must be one of {', '.join(CHANNEL_COLUMNS)}")
    for column in CHANNEL_COLUMNS[:2]:
        if column not in channels:
            raise ArtsegInputError(f"--channel {column}=TOKEN is required (the token of its channel in the file names)")
    summary = PlateSummary()
    if plate is not None:
        images = images[images["plate"] == plate]
        if images.empty:
            raise ArtsegInputError(f"--plate {plate!r}: no file name has this plate")
    plates = sorted(set(images["plate"]))
    if len(plates) > 1:
        raise ArtsegInputError(f"--images: files of {len(plates)} plates ({', '.join(plates[:4])}"
                               f"{', ...' if len(plates) > 4 else ''}); pick one with --plate")
    summary.plate = plates[0] if plates else ""

    file_tokens = {column: _split_token(token) for column, token in channels.items()}
    by_token: dict[str, list[str]] = {}
    for column, (token, _) in file_tokens.items():
        by_token.setdefault(token, []).append(column)
    found = images["channel"].value_counts()
    for token in by_token:
        if token not in found.index:
            listed = ", ".join(repr(t) for t in found.index[:8]) or "none"
            raise ArtsegInputError(f"--channel {by_token[token][0]}={token}: no file name has channel {token!r} "
                                   f"(channels found: {listed})")
    summary.ignored_channels = {str(t): int(n) for t, n in found.items() if t not in by_token}
    images = images[images["channel"].isin(list(by_token))]
    repeated = images[images.duplicated(["well", "field", "channel"], keep=False)]
    if len(repeated):
        first = repeated.iloc[0]
        twin = repeated[(repeated[["well", "field", "channel"]] == first[["well", "field", "channel"]]).all(axis=1)]
        raise ArtsegInputError(f"well {first['well']} field {first['field']} channel {first['channel']!r}: "
                               f"two files ({twin['path'].iloc[0]} and {twin['path'].iloc[1]})")

    mapped = list(plate_map.index)
    imaged = set(images["well"])
    without_images = [well for well in mapped if well not in imaged]
    if without_images:
        raise ArtsegInputError(f"well {without_images[0]} is in the plate map but no image file matched it"
                               f"{_more(without_images)}")
    summary.unmapped_wells = sorted(imaged - set(mapped), key=_well_order)
    if strict and summary.unmapped_wells:
        wells = summary.unmapped_wells
        raise ArtsegInputError(f"well {wells[0]} has images but no plate map covers it{_more(wells)} (--strict)")

    paths = {(r.well, r.field, r.channel): r.path for r in images.itertuples(index=False)}
    fields = sorted({(r.well, r.field) for r in images.itertuples(index=False) if r.well in plate_map.index},
                    key=lambda key: (_well_order(key[0]), key[1]))
    columns = [c for c in CHANNEL_COLUMNS if c in channels]
    extras = [c for c in plate_map.columns if c not in REQUIRED_VARIABLES]
    rows = []
    for well, site in fields:
        row = {name: plate_map.at[well, name] for name in REQUIRED_VARIABLES}
        row.update(well=well, field=site)
        for column in columns:
            token, plane = file_tokens[column]
            path = paths.get((well, site, token))
            if path is None:
                raise ArtsegInputError(f"well {well} field {site}: no {column} image (channel {token!r})")
            row[column] = with_channel(path, plane)
        if summary.plate:
            row["plate"] = summary.plate
        row.update({name: plate_map.at[well, name] for name in extras if name not in row})
        rows.append(row)
    manifest = pd.DataFrame(rows)
    manifest["concentration"] = manifest["concentration"].astype("float64")
    manifest["field"] = manifest["field"].astype("int64")
    summary.n_fields = len(manifest)
    summary.n_wells = manifest["well"].nunique()
    summary.n_experiments = manifest["experiment"].nunique()
    return manifest, summary


def _split_token(token: str) -> tuple[str, str | None]:
    """``"w1"`` -> ("w1", None); ``"#channel=RFP"`` -> ("", "RFP"): a file's token and the plane in it."""
    file_token, mark, plane = token.partition(CHANNEL_MARK)
    if mark and not plane.strip():
        raise ArtsegInputError(f"--channel ...={token}: {CHANNEL_MARK} names no channel")
    return file_token, (plane.strip() if mark else None)


def write_plate_manifest(manifest: pd.DataFrame, out_csv: str | os.PathLike) -> None:
    """Write a manifest from :func:`build_plate_manifest` atomically, paths relative to ``out_csv``."""
    out_csv = Path(os.path.abspath(Path(out_csv).expanduser()))
    relative = manifest.copy()
    for column in CHANNEL_COLUMNS:
        if column in relative.columns:
            relative[column] = [_relative_path(value, out_csv.parent) for value in relative[column]]
    atomic_write_csv(relative, out_csv)


def _relative_path(value: str, folder: Path) -> str:
    file_part, channel = split_channel(value)
    # abspath, not resolve: a manifest next to a linked export folder keeps pointing through the link
    return with_channel(Path(os.path.relpath(os.path.abspath(file_part), folder)).as_posix(), channel)


def is_variable_name(text: str) -> bool:
    """Whether ``text`` can name a plate-map variable (the ``VARIABLE`` of ``VARIABLE=FILE``)."""
    return bool(_VARIABLE_NAME.match(text))
