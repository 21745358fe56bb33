"""``python -m analysis.ship_models``: train the embedded defaults' models and write them to ``data/weights``.

The committed recipe of the shipped default models (seed 0): each of the four models of
``python -m analysis.ligand_affinity`` and ``python -m analysis.nuclei_impact`` is trained from
scratch exactly as ``--retrain`` trains it (fp32 on every CPU, see
:data:`analysis.defaults.CPU_INDEPENDENT_OVERRIDES`), its weights are stored as float16 (half
the size; the analyses load them into float32 networks), and the shipped copy is scored on the
held-out test fields of its dataset. Each folder gets a ``recipe.json``: the command, seed,
machine, training seconds and those scores.

    python -m analysis.ship_models                 # all four, into data/weights
    python -m analysis.ship_models --only ligand   # the plate's artifact and cell models
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from analysis import defaults, ligand_affinity, nuclei_impact
from analysis.reporting import run_cli
from artseg.io import atomic_folder
from artseg.hardware import describe
from artseg.io import atomic_write_text
from artseg.segmenter import load_segmenter

GROUPS = ("ligand", "nuclei")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis.ship_models", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=defaults.SHIPPED_MODELS, help="folder of the shipped models")
    parser.add_argument("--seed", type=int, default=0, help="seed of the default data and models (default 0)")
    parser.add_argument("--only", choices=GROUPS, help="only the models of one analysis")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Train, copy and score the default models; returns the exit status."""
    return run_cli(build_parser(), run, "the shipped model folders", argv)


def run(args: argparse.Namespace) -> pd.DataFrame:
    """Train each model, write its shipped copy and ``recipe.json``; return one row per model."""
    progress = not args.quiet
    records = {}
    for group in (args.only,) if args.only else GROUPS:
        for name, (seconds, model, scores_of) in _train_group(group, args.seed, progress).items():
            target = args.out / name
            ship_copy(model, defaults.models_dir() / name, target)
            shipped = load_segmenter(target)
            record = {
                "command": "python -m analysis.ship_models" + (f" --only {group}" if args.only else "")
                + (f" --seed {args.seed}" if args.seed else ""),
                "seed": args.seed,
                "machine": describe("fp32"),
                "train_seconds": round(seconds, 1),
                "weights": "float16 copies of the float32-trained weights; scores below are of these copies",
                "held_out_scores": scores_of(shipped),
            }
            atomic_write_text(target / "recipe.json", json.dumps(record, indent=1) + "\n")
            records[name] = record
            print(f"{target}: trained in {seconds:.0f} s; held-out {record['held_out_scores']}", flush=True)
    return pd.DataFrame([{"model": name, "train_seconds": record["train_seconds"],
                          **{key: record["held_out_scores"][key] for key in ("precision", "recall", "f1", "iou")}}
                         for name, record in records.items()])


def _train_group(group: str, seed: int, progress: bool) -> dict:
    """``{model folder name: (train seconds, segmenter, scorer)}`` for one analysis, trained now."""
    models = {}
    started = time.perf_counter()
    if group == "ligand":
        artifact = ligand_affinity.default_artifact_model(seed, progress=progress, retrain=True)
        models[f"artseg_cho_m4r_fast_seed{seed}"] = (time.perf_counter() - started, artifact,
                                                     _scorer(defaults.default_root("cho_m4r", seed) / "manifest.csv"))
        started = time.perf_counter()
        cells = ligand_affinity.load_cell_segmenter(None, seed, progress=progress, retrain=True)
        models[f"cells_cho_m4r_seed{seed}"] = (time.perf_counter() - started, cells,
                                               _scorer(defaults.default_root("cho_m4r", seed) / "cells_manifest.csv"))
        return models
    timings: dict[str, float] = {}
    _, artifact, nuclei = nuclei_impact.default_inputs(seed, None, None, timings, progress=progress, retrain=True)
    root = defaults.default_root("seven_cell_lines", seed, nuclei_impact.DEFAULT_FIELD_SIZE)
    nuclei_csv = defaults.mask_manifest(root / "manifest.csv", "nuclei", root / "nuclei_manifest.csv")
    size = nuclei_impact.DEFAULT_FIELD_SIZE
    models[f"artseg_seven_cell_lines_{size}px_fast_seed{seed}"] = (timings["artifact model"], artifact,
                                                                    _scorer(root / "manifest.csv"))
    models[f"nuclei_seven_cell_lines_{size}px_seed{seed}"] = (timings["nuclei model"], nuclei, _scorer(nuclei_csv))
    return models


def _scorer(manifest_csv: Path):
    def scores(segmenter) -> dict:
        return {key: round(value, 4) if isinstance(value, float) else value
                for key, value in defaults.held_out_scores(segmenter, manifest_csv).items()}
    return scores


def ship_copy(segmenter, trained_folder: Path, target: Path) -> Path:
    """Write ``segmenter`` to ``target`` with float16 weights, beside its training record and logs.

    The folder is staged and renamed, so ``target`` is either the old or the new copy.
    """
    with atomic_folder(target, replace=True) as staging:
        for network in (segmenter.unet, segmenter.classifier):
            if network is not None:
                network.to(torch.float16)
        try:
            segmenter.save(staging)
        finally:
            for network in (segmenter.unet, segmenter.classifier):
                if network is not None:
                    network.to(torch.float32)
        for extra in ["training_data.json", *(p.name for p in trained_folder.glob("*_log.csv"))]:
            shutil.copy2(trained_folder / extra, staging / extra)
    return target


if __name__ == "__main__":
    sys.exit(main())
