"""The join of matched images and plate maps into a plate manifest, and its writer."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path

import pandas as pd

from artseg.errors import ArtsegInputError
from artseg.io import CHANNEL_MARK, atomic_write_csv, split_channel, with_channel

from artseg.platemap.maps import and_more
from artseg.platemap.wells import CHANNEL_COLUMNS, REQUIRED_VARIABLES, VARIABLE_NAME, well_order

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
                               f"{and_more(without_images)}")
    summary.unmapped_wells = sorted(imaged - set(mapped), key=well_order)
    if strict and summary.unmapped_wells:
        wells = summary.unmapped_wells
        raise ArtsegInputError(f"well {wells[0]} has images but no plate map covers it{and_more(wells)} (--strict)")

    paths = {(r.well, r.field, r.channel): r.path for r in images.itertuples(index=False)}
    fields = sorted({(r.well, r.field) for r in images.itertuples(index=False) if r.well in plate_map.index},
                    key=lambda key: (well_order(key[0]), key[1]))
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
    return bool(VARIABLE_NAME.match(text))
