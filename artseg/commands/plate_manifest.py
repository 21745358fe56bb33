"""``artseg plate-manifest``: write the plate manifest from an imager's export folder and plate maps."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from artseg.errors import ArtsegInputError
from artseg.platemap import (
    CHANNEL_COLUMNS,
    LAYOUTS,
    build_plate_manifest,
    combine_plate_maps,
    compile_pattern,
    is_variable_name,
    list_files,
    match_images,
    parse_grid_map,
    parse_long_map,
    read_csv_cells,
    write_plate_manifest,
)

_UNITS = ("M", "mM", "uM", "nM", "pM")


def register(subparsers) -> None:
    """Add the ``plate-manifest`` subcommand."""
    layouts = "; ".join(f"{name}: {layout.example} (channel tokens: {layout.channel})"
                        for name, layout in LAYOUTS.items())
    parser = subparsers.add_parser(
        "plate-manifest",
        help="write a plate manifest from an imager's export folder and plate maps",
        description=(
            "Match the file names below --images with a regular expression with named groups "
            "well, field and channel (optional plate), map channel tokens to manifest columns, "
            "join with plate maps (grids as drawn, or a long table with a well column) and write "
            "the plate manifest read by 'python -m analysis.ligand_affinity', paths relative to it. "
            f"Layout presets: {layouts}."
        ),
    )
    parser.add_argument("--images", required=True, type=Path, help="export folder (searched recursively)")
    naming = parser.add_mutually_exclusive_group(required=True)
    naming.add_argument("--pattern", help="regular expression matched against whole file names, with "
                                          "named groups well, field, channel (optional plate)")
    naming.add_argument("--layout", choices=sorted(LAYOUTS), help="a preset pattern for an imager's export naming")
    parser.add_argument("--channel", action="append", required=True, metavar="COLUMN=TOKEN",
                        help="map a channel token of the file names to a manifest column "
                             f"({', '.join(CHANNEL_COLUMNS)}); "
                             "repeatable, brightfield and fluorescence required; TOKEN may contain spaces "
                             "(quote it) and may end in #channel=NAME|INDEX to pick one plane of a multi-channel file")
    parser.add_argument("--plate-map", action="append", required=True, metavar="[VARIABLE=]FILE",
                        help="VARIABLE=FILE: a grid CSV (first row the column numbers 1..12 or 1..24, first "
                             "column the row letters; empty cell = unused well); FILE alone: a long CSV with "
                             "a well column and one column per variable. experiment, ligand and concentration "
                             "are required, other variables become extra columns; repeatable")
    parser.add_argument("--concentration-unit", choices=_UNITS, default="M",
                        help="unit of the concentration map, converted to molar (default M)")
    parser.add_argument("--strict", action="store_true",
                        help="make images of wells that no plate map covers an error (default: left out, counted)")
    parser.add_argument("--plate", default=None, help="keep only this plate's files (pattern with a plate group)")
    parser.add_argument("--out", required=True, type=Path, help="plate manifest CSV to write")
    parser.set_defaults(func=run)


def _split_option(text: str, option: str) -> tuple[str, str]:
    name, mark, value = text.partition("=")
    if not mark or not name.strip() or not value:
        raise ArtsegInputError(f"{option} {text!r}: expected NAME=VALUE")
    return name.strip(), value


def read_plate_maps(specs: list[str]) -> dict[str, tuple[dict[str, str], str]]:
    """Read every ``--plate-map`` into ``{variable: ({well: value}, source)}``."""
    maps: dict[str, tuple[dict[str, str], str]] = {}

    def add(variable: str, values: dict[str, str], source: str) -> None:
        if variable in maps:
            raise ArtsegInputError(f"{source}: variable {variable!r} is also given by {maps[variable][1]}")
        maps[variable] = (values, source)

    for spec in specs:
        variable, mark, file_name = spec.partition("=")
        if mark and is_variable_name(variable) and not Path(spec).is_file():
            add(variable.strip(), parse_grid_map(read_csv_cells(file_name), file_name), file_name)
        else:
            for name, values in parse_long_map(read_csv_cells(spec), spec).items():
                add(name, values, spec)
    return maps


def run(args: argparse.Namespace) -> int:
    """Build the manifest, write it atomically and report what was left out; return the exit status."""
    channels: dict[str, str] = {}
    for spec in args.channel:
        column, token = _split_option(spec, "--channel")
        if column in channels:
            raise ArtsegInputError(f"--channel {column}=... given twice")
        channels[column] = token
    by_file = not any(token.partition("#channel=")[0] for token in channels.values())
    if args.layout is not None:
        pattern = compile_pattern(LAYOUTS[args.layout].pattern, ignore_case=True)
    else:
        pattern = compile_pattern(args.pattern, channel_group=not by_file)
    plate_map = combine_plate_maps(read_plate_maps(args.plate_map), concentration_unit=args.concentration_unit)
    files = list_files(args.images)
    images, n_unmatched = match_images(files, pattern)
    if images.empty:
        example = f"; e.g. {files[0].name!r}" if files else ""
        raise ArtsegInputError(f"{args.images}: no file name matched the pattern ({len(files)} file(s){example})")
    manifest, summary = build_plate_manifest(images, plate_map, channels, strict=args.strict, plate=args.plate)
    write_plate_manifest(manifest, args.out)
    plate = f" of plate {summary.plate}" if summary.plate else ""
    print(f"wrote {args.out} ({summary.n_fields} fields in {summary.n_wells} wells{plate}, "
          f"{summary.n_experiments} experiment(s))")
    if summary.unmapped_wells:
        wells = summary.unmapped_wells
        listed = ", ".join(wells[:6]) + (", ..." if len(wells) > 6 else "")
        print(f"warning: {len(wells)} well(s) with images are in no plate map and were left out ({listed}); "
              "--strict makes this an error", file=sys.stderr)
    if summary.ignored_channels:
        listed = ", ".join(f"{token!r} ({n} files)" for token, n in summary.ignored_channels.items())
        print(f"note: channels not mapped by --channel were left out: {listed}")
    if n_unmatched:
        print(f"note: {n_unmatched} file(s) below {args.images} did not match the pattern")
    return 0
