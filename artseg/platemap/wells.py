"""Wells (``A01`` style), the plate formats and the manifest columns a channel can fill."""

from __future__ import annotations

import re


from artseg.io import normalize_letter_well

# Manifest columns a channel can fill, in manifest order (first two required).
CHANNEL_COLUMNS = ("brightfield", "fluorescence", "artifact_mask", "cell_mask")
REQUIRED_VARIABLES = ("experiment", "ligand", "concentration")
# Unit -> power of ten of one unit in molar.
CONCENTRATION_UNITS = {"M": 0, "mM": -3, "uM": -6, "µM": -6, "nM": -9, "pM": -12}
# (rows, columns) of the plate formats a grid map may have: 6 to 1536 wells.
PLATE_FORMATS = ((2, 3), (3, 4), (4, 6), (6, 8), (8, 12), (16, 24), (32, 48))

# Columns build_plate_manifest fills itself: no plate-map variable may take their names.
MANIFEST_COLUMNS = ("well", "field", "plate", "cell_truth", *CHANNEL_COLUMNS)

_RC_WELL = re.compile(r"^[Rr]0*(\d{1,3})[Cc]0*(\d{1,3})$")
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_ ]*$")


# --------------------------------------------------------------------------- wells


def row_letters(number: int) -> str:
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
        return f"{row_letters(row)}{column:02d}" if row >= 1 and column >= 1 else None
    well = normalize_letter_well(text)
    if well is None or int(well.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")) < 1:
        return None
    return well


def well_order(well: str) -> tuple[int, int]:
    letters = well.rstrip("0123456789")
    return _row_number(letters), int(well[len(letters):])


