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

``wells`` normalises wells, ``naming`` matches file names, ``maps`` reads plate maps and
``manifest`` joins them. The file system is touched only by :func:`list_files`, :func:`read_csv_cells` and
:func:`write_plate_manifest`. Wells are normalised to ``A01`` style whether a file
says ``B3``, ``B03`` or ``r02c03``.
"""


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


from artseg.platemap.manifest import PlateSummary, build_plate_manifest, is_variable_name, write_plate_manifest
from artseg.platemap.maps import combine_plate_maps, parse_grid_map, parse_long_map, read_csv_cells
from artseg.platemap.naming import LAYOUTS, Layout, compile_pattern, list_files, match_images
from artseg.platemap.wells import CHANNEL_COLUMNS, CONCENTRATION_UNITS, REQUIRED_VARIABLES, normalize_well
