"""Imager file naming: the presets, the regular expressions and matching file names."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from artseg.errors import ArtsegInputError

from artseg.platemap.wells import normalize_well

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


