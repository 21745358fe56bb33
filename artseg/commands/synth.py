"""``artseg synth``: write a synthetic dataset that stands in for one of the paper's."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from artseg.io import check_output_folder
from artseg.synth.dataset import PlateOptions, generate_dataset
from artseg.synth.presets import PRESETS


def register(subparsers) -> None:
    """Add the ``synth`` subcommand."""
    parser = subparsers.add_parser(
        "synth",
        help="generate a synthetic brightfield + fluorescence dataset with artifacts",
        description=(
            "Write 16-bit brightfield and fluorescence TIFFs, artifact masks, nuclei and cell "
            "labels and manifest.csv (image,label,mask,split,fluorescence,nuclei,cells,"
            "n_artifacts,artifact_types) mimicking one of the paper's datasets. cho_m4r also "
            "writes a ligand-binding plate (plate.csv, truth.json, plate/). The same seed "
            "writes identical files; each field depends only on (seed, its index)."
        ),
    )
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS), help="dataset to mimic")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--n-images", type=int, default=None, help="fields in the manifest (default: the paper's training-set size)")
    parser.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--size", type=int, nargs="+", metavar="N", help="field size: N (square) or H W (default 256)")
    size.add_argument("--paper-size", action="store_true", help="the paper's field size (1080x1080, 2156x2556 or 904x1224)")
    labels = parser.add_mutually_exclusive_group()
    labels.add_argument("--balanced", dest="balanced", action="store_true", default=True, help="half artifact, half clean fields (default)")
    labels.add_argument("--population", dest="balanced", action="store_false", help="artifacts at the dataset's natural prevalence")
    parser.add_argument("--plate-experiments", type=int, default=10, help="cho_m4r: concentration-response experiments on the plate (0 = no plate; default 10)")
    parser.add_argument("--plate-concentrations", type=int, default=8, help="cho_m4r: competitor concentrations per experiment (default 8, plus vehicle)")
    parser.add_argument("--plate-fields-per-well", type=int, default=4, help="cho_m4r: fields per well (default 4)")
    parser.add_argument("--preview", action="store_true", help="also write preview.png (fields with artifact outlines)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate the dataset and print a one-line summary; return the exit status."""
    check_output_folder(args.out)
    plate = None
    if args.plate_experiments > 0:
        plate = PlateOptions(
            n_experiments=args.plate_experiments,
            n_concentrations=args.plate_concentrations,
            fields_per_well=args.plate_fields_per_well,
        )
    manifest_path = generate_dataset(
        args.preset,
        args.out,
        n_images=args.n_images,
        seed=args.seed,
        size=args.size,
        balanced=args.balanced,
        paper_size=args.paper_size,
        plate=plate,
        preview=args.preview,
        progress=not args.quiet,
    )
    manifest = pd.read_csv(manifest_path)
    n_artifact = int(manifest["label"].sum())
    extra = " + plate.csv, truth.json" if args.preset == "cho_m4r" and plate is not None else ""
    print(f"wrote {manifest_path} ({len(manifest)} fields, {n_artifact} with artifacts){extra}")
    return 0
