"""``--shard I/N`` parts for schedulers without Dask (array jobs), and ``--merge-shards``.

Shard ``I`` of ``N`` takes the fields at positions ``I-1, I-1+N, I-1+2N, ...`` of the input
(interleaved, so every shard gets a similar mix of plates and wells), and writes its part of
the per-field tables to ``<out>/shards/<table>.shard-I-of-N.csv``; the same command with
``--merge-shards`` in place of ``--shard I/N`` checks that all N parts are there, made from
the same inputs and settings, and writes the usual outputs from them, equal to a single run's.

Each part's tables carry the field's ``position`` in the input; a JSON record written after
them (``part.shard-I-of-N.json``) marks the part complete and holds the run's fingerprint,
the number of fields and every column's dtype, so the merged tables have the dtypes and
(read back with round-trip float parsing) the exact values of a single run's.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from artseg.errors import ArtsegInputError
from artseg.io import atomic_write_csv, atomic_write_text

__all__ = [
    "POSITION",
    "Shard",
    "add_shard_arguments",
    "fingerprint",
    "find_parts",
    "parse_shard",
    "read_parts",
    "read_table",
    "shard_option",
    "write_part",
]

POSITION = "position"
"""Column of a part's tables: the field's position in the whole input."""
SHARDS_FOLDER = "shards"
_RECORD = "part"
# pandas 3 parses floats exactly by default and deprecates the option that pandas 2 needs for it
_EXACT_FLOATS = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
_PART_NAME = re.compile(r"^(?P<name>.+)\.shard-(?P<index>\d+)-of-(?P<count>\d+)\.(?P<suffix>csv|json)$")


@dataclass(frozen=True)
class Shard:
    """Part ``index`` (1-based) of ``count`` of the fields.

    Examples
    --------
    >>> Shard(2, 3).positions(8).tolist()
    [1, 4, 7]
    >>> Shard(2, 3).file_name("fields")
    'fields.shard-2-of-3.csv'
    """

    index: int
    count: int

    def positions(self, n_fields: int) -> np.ndarray:
        """Positions of this shard's fields among ``n_fields``."""
        return np.arange(self.index - 1, n_fields, self.count)

    def file_name(self, table: str, suffix: str = "csv") -> str:
        """File name of this shard's part of ``table``."""
        return f"{table}.shard-{self.index}-of-{self.count}.{suffix}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def add_shard_arguments(parser) -> None:
    """Add ``--shard I/N`` and ``--merge-shards`` to a command's parser."""
    group = parser.add_argument_group("array jobs without Dask")
    group.add_argument("--shard", metavar="I/N",
                       help="do only part I of N of the fields (every N-th field from the I-th) and write it "
                       "to OUT/shards/; then run the same command with --merge-shards")
    group.add_argument("--merge-shards", action="store_true",
                       help="combine the N parts in OUT/shards/ written by --shard runs into the usual outputs")


def parse_shard(text: str | None) -> Shard | None:
    """``"I/N"`` -> :class:`Shard`; None -> None.

    Raises
    ------
    ArtsegInputError
        Not two integers with 1 <= I <= N.

    Examples
    --------
    >>> parse_shard("3/8")
    Shard(index=3, count=8)
    """
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ArtsegInputError(f"--shard: expected I/N with 1 <= I <= N (e.g. 3/8), got {text!r}")
    return Shard(int(match.group(1)), int(match.group(2)))


def shard_option(args) -> Shard | None:
    """The :class:`Shard` of ``--shard``, checked against ``--merge-shards``."""
    shard = parse_shard(getattr(args, "shard", None))
    if shard is not None and getattr(args, "merge_shards", False):
        raise ArtsegInputError("--shard and --merge-shards: a run either does one part or merges them all")
    return shard


def fingerprint(**settings: Any) -> str:
    """SHA-256 of the JSON of ``settings``: parts merge only with parts of the same fingerprint.

    Examples
    --------
    >>> fingerprint(modes=["none"], margin=3) == fingerprint(margin=3, modes=["none"])
    True
    """
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def find_parts(out: str | Path, table: str) -> tuple[int, dict[int, Path]]:
    """The parts of ``table`` in ``<out>/shards/``: ``(N, {I: csv path})``.

    Raises
    ------
    ArtsegInputError
        No parts, parts of different splits (N), or a part missing (the message names the
        ``--shard`` run to do).
    """
    folder = Path(out) / SHARDS_FOLDER
    found: dict[int, dict[int, Path]] = {}
    for path in sorted(folder.glob(f"{table}.shard-*-of-*.csv")) if folder.is_dir() else []:
        match = _PART_NAME.match(path.name)
        if match and match.group("name") == table:
            found.setdefault(int(match.group("count")), {})[int(match.group("index"))] = path
    if not found:
        raise ArtsegInputError(f"{folder}: no {table}.shard-I-of-N.csv parts to merge; run the --shard I/N jobs first")
    if len(found) > 1:
        raise ArtsegInputError(f"{folder}: parts of different splits (N = {', '.join(map(str, sorted(found)))}); "
                               "delete the stale ones")
    count, parts = next(iter(found.items()))
    missing = [index for index in range(1, count + 1) if index not in parts]
    if missing:
        listed = ", ".join(f"{index}/{count}" for index in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ArtsegInputError(f"{folder}: {len(missing)} of {count} {table} part(s) missing; run --shard {listed}")
    return count, parts


def read_table(path: Path, dtypes: Mapping[str, str] | None = None) -> pd.DataFrame:
    """A part's CSV with its recorded dtypes and exact (round-trip) floats."""
    dtypes = dict(dtypes or {})
    readers = {column: (object if dtype == "object" else dtype) for column, dtype in dtypes.items()
               if dtype != "bool"}
    try:
        table = pd.read_csv(path, dtype=readers, **_EXACT_FLOATS)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise ArtsegInputError(f"{path}: unreadable shard part ({str(err).splitlines()[0]})") from None
    for column, dtype in dtypes.items():
        if dtype == "bool" and column in table:
            table[column] = table[column].astype(bool)
    return table


def write_part(out: str | Path, shard: Shard, n_fields: int, run_fingerprint: str,
               compute: Callable[[np.ndarray], Mapping[str, pd.DataFrame]]) -> pd.DataFrame:
    """Compute and write one shard's part, unless a complete part of the same run is there.

    Parameters
    ----------
    out : path
        The command's output folder.
    shard : Shard
    n_fields : int
        Number of fields in the whole input.
    run_fingerprint : str
        :func:`fingerprint` of the inputs and settings.
    compute : callable
        ``compute(positions) -> {table name: DataFrame}``; each table has a ``position``
        column (the field's position in the whole input).

    Returns
    -------
    pandas.DataFrame
        One row per table written (``shard, table, fields, rows, file``), to print.
    """
    folder = Path(out) / SHARDS_FOLDER
    record_path = folder / shard.file_name(_RECORD, "json")
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if record.get("fingerprint") == run_fingerprint and record.get("n_fields") == n_fields and all(
                (folder / shard.file_name(name)).is_file() for name in record.get("dtypes", {})):
            print(f"shard {shard}: part already complete in {folder}; skipped")
            return pd.DataFrame([{"shard": str(shard), "table": name, "fields": record["n_shard_fields"],
                                  "rows": record["rows"][name], "file": shard.file_name(name)}
                                 for name in record["dtypes"]])
        record_path.unlink()
    positions = shard.positions(n_fields)
    tables = compute(positions)
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        if POSITION not in table.columns:
            raise ValueError(f"table {name!r} of shard {shard} lacks the {POSITION!r} column")
        atomic_write_csv(table, folder / shard.file_name(name))
    record = {
        "shard": str(shard), "fingerprint": run_fingerprint, "n_fields": n_fields,
        "n_shard_fields": int(len(positions)),
        "rows": {name: int(len(table)) for name, table in tables.items()},
        "dtypes": {name: {column: str(dtype) for column, dtype in table.dtypes.items()}
                   for name, table in tables.items()},
    }
    atomic_write_text(record_path, json.dumps(record, indent=1))
    return pd.DataFrame([{"shard": str(shard), "table": name, "fields": len(positions), "rows": len(table),
                          "file": shard.file_name(name)} for name, table in tables.items()])


def read_parts(out: str | Path, tables: tuple[str, ...], n_fields: int,
               run_fingerprint: str) -> dict[str, pd.DataFrame]:
    """Merge all N parts of each table, in input order, without the ``position`` column.

    Raises
    ------
    ArtsegInputError
        A part missing or incomplete, or made from other inputs or settings (another
        fingerprint or number of fields) than this run's.
    """
    folder = Path(out) / SHARDS_FOLDER
    count, _ = find_parts(out, tables[0])
    pieces: dict[str, list[pd.DataFrame]] = {name: [] for name in tables}
    for index in range(1, count + 1):
        shard = Shard(index, count)
        record_path = folder / shard.file_name(_RECORD, "json")
        if not record_path.is_file():
            raise ArtsegInputError(f"{record_path}: missing; shard {shard} did not finish, run --shard {shard} again")
        record = json.loads(record_path.read_text())
        if record.get("fingerprint") != run_fingerprint or record.get("n_fields") != n_fields:
            raise ArtsegInputError(f"{record_path}: shard {shard} was made from other inputs or settings than "
                                   "this run; give the same arguments, or run --shard again")
        for name in tables:
            path = folder / shard.file_name(name)
            if not path.is_file() or name not in record.get("dtypes", {}):
                raise ArtsegInputError(f"{path}: missing; run --shard {shard} again")
            pieces[name].append(read_table(path, record["dtypes"][name]))
    merged = {}
    for name, parts in pieces.items():
        # empty parts (a shard whose fields have no nuclei) would turn the dtypes into object
        table = pd.concat([part for part in parts if len(part)] or parts[:1], ignore_index=True)
        table = table.sort_values(POSITION, kind="stable").drop(columns=POSITION).reset_index(drop=True)
        merged[name] = table
    return merged
