"""``python -m analysis.ligand_affinity``: artifact-aware ligand binding dose-response.

Paper §2.3.4 "Ligand affinity estimation", §3.3.2, Fig. 6: per field, mean fluorescence of
cell pixels and of background pixels outside an exclusion mask; per well, the mean over its
fields; specific signal = cell − background; a Hill fit per experiment and removal mode
(manual masks, an ArtSeg model's masks, no removal); LogIC50, R², |ΔLogIC50| and the
Pearson r of well intensities against manual removal.

With no arguments it runs on the embedded default: a synthetic ``cho_m4r`` plate with a
fast-config ArtSeg model trained on separate synthetic fields (both cached).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import defaults
from analysis.figures import displacement_curves
from analysis.reporting import run_cli, save_figure
from analysis.affinity import fit_experiments, read_truth, summarize
from analysis.binding import validate_tracer
from analysis.replicates import DEFAULT_EQUIVALENCE_MARGIN, summarize_by_ligand
from analysis.quantify import aggregate_wells, field_intensities
from analysis.outliers import rout_wells
from analysis.report import gallery_fields, most_different_fields, write_report
from analysis.tables import field_table, plate_names, prism_tables
from artseg.errors import ArtsegInputError
from artseg.io import (
    atomic_write_csv,
    atomic_write_text,
    check_output_folder,
    check_same_shape,
    read_image,
    read_mask,
    read_plate_manifest,
)
from artseg.distributed import add_engine_arguments, engine_from_args, map_fields
from artseg.model_io import model_digest
from artseg.pixel_model import PixelSegmenter
from artseg.segmenter import ArtifactSegmenter, load_segmenter
from artseg.shards import POSITION, add_shard_arguments, fingerprint, read_parts, shard_option, write_part

MODES = ("manual", "model", "none")
DEFAULT_OUT = Path("artseg-out") / "ligand_affinity"
# A ring around every excluded region, manual and model alike: autofluorescent glow spreads past
# an artifact's brightfield outline and predicted outlines are least certain at their edges
# (benchmarks/RESULTS.md, "Ligand affinity").
DEFAULT_EXCLUSION_MARGIN = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.ligand_affinity",
        description="LogIC50 from well-average cell-minus-background fluorescence with manual, "
        "model and no artifact removal. No arguments: the embedded synthetic CHO-M4R plate.",
    )
    parser.add_argument("--manifest", type=Path, help="plate manifest CSV (DESIGN.md columns)")
    parser.add_argument("--model", type=Path, help="ArtSeg model folder for the 'model' mode")
    parser.add_argument("--cell-model", type=Path,
                        help="cell segmentation model folder, used when the plate has no cell_mask "
                        "column (default: the cached synthetic-trained cell U-Net)")
    parser.add_argument("--truth", type=Path, help="JSON: experiment -> true LogIC50")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder ({DEFAULT_OUT})")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="comma-separated removal modes among manual,model,none")
    parser.add_argument("--hill-slope", default="-1",
                        help="Hill slope: a number to hold it fixed (default −1) or 'free'")
    parser.add_argument("--ci", default="profile", metavar="{profile,wald}",
                        help="95%% LogIC50 interval: profile likelihood (default, Prism's asymmetric "
                        "interval) or wald (estimate ± t·SE)")
    parser.add_argument("--tracer-concentration", metavar="M",
                        help="tracer concentration, molar: with --tracer-kd adds Cheng–Prusoff Ki "
                        "(competitive displacement at equilibrium)")
    parser.add_argument("--tracer-kd", metavar="M", help="the tracer's Kd, molar (with --tracer-concentration)")
    parser.add_argument("--fdr-q", metavar="Q",
                        help="false discovery rate in percent, (0, 10]: call a compound displacing only "
                        "when its Benjamini–Hochberg adjusted displacement p is <= Q/100 (default: p < 0.05)")
    parser.add_argument("--global-fit", action="store_true",
                        help="summary_by_ligand.csv also gets a global fit of each ligand's replicate "
                        "experiments (shared Top/Bottom) and the F test / AIC of one LogIC50 for all")
    parser.add_argument("--equivalence-margin", default=str(DEFAULT_EQUIVALENCE_MARGIN), metavar="LOG",
                        help="TOST margin (log10 units) of each mode's LogIC50 against manual removal "
                        f"(default {DEFAULT_EQUIVALENCE_MARGIN})")
    parser.add_argument("--outliers", default="none", metavar="{none,rout}",
                        help="rout: also fit every experiment and mode without its outlier wells (ROUT, "
                        "Motulsky & Brown 2006), as mode '<mode>+rout', and write outliers.csv (default none)")
    parser.add_argument("--rout-q", metavar="Q",
                        help="ROUT's false discovery rate Q in percent, (0, 10] (default 1, as in Prism)")
    parser.add_argument("--exclusion-margin", type=int, default=DEFAULT_EXCLUSION_MARGIN, metavar="PX",
                        help="also exclude a ring of this many pixels around every excluded region, "
                        f"manual and model alike (default {DEFAULT_EXCLUSION_MARGIN})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the embedded default data/models")
    parser.add_argument("--retrain", action="store_true",
                        help="train the default artifact and cell models from scratch instead of using the "
                        "shipped ones (data/weights; seed 0) or cached ones")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_engine_arguments(parser)
    add_shard_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the analysis; returns the exit status (2 on bad input, with one line on stderr)."""
    return run_cli(build_parser(), run, "wells.csv, fits.csv, summary.csv, summary_by_ligand.csv, "
                   "fields.csv, prism/, displacement_curves.png, report.html", argv)


def run(args: argparse.Namespace) -> pd.DataFrame:
    check_output_folder(args.out)
    modes = parse_modes(args.modes)
    hill_slope = parse_hill_slope(args.hill_slope)
    fit_options = parse_fit_options(args)
    equivalence_margin = parse_positive(args.equivalence_margin, "--equivalence-margin", "log10 units")
    rout_q = parse_outlier_options(args)
    if args.exclusion_margin < 0:
        raise ArtsegInputError(f"--exclusion-margin: expected a non-negative number of pixels, "
                               f"got {args.exclusion_margin}")
    manifest_path, model_dir, truth_path = args.manifest, args.model, args.truth
    default_root = None
    if manifest_path is None:
        default_root = defaults.ensure_dataset("cho_m4r", args.seed, progress=not args.quiet)
        manifest_path = default_root / "plate.csv"
        truth_path = truth_path or default_root / "truth.json"
    plate = read_plate_manifest(manifest_path)
    if "manual" in modes and "artifact_mask" not in plate.columns:
        print("note: the plate has no artifact_mask column; skipping the 'manual' mode")
        modes = tuple(m for m in modes if m != "manual")
    truth = load_truth(truth_path) if truth_path else None

    segmenter = None
    if "model" in modes:
        if model_dir is None and default_root is None:
            raise ArtsegInputError("--model MODEL_DIR is required for the 'model' mode on your own plate "
                                   "(or pass --modes manual,none)")
        if model_dir is None:
            segmenter = default_artifact_model(args.seed, progress=not args.quiet, retrain=args.retrain)
        else:
            segmenter = load_segmenter(model_dir)
    cell_segmenter, cell_scores = None, None
    if "cell_mask" not in plate.columns:
        cell_segmenter = load_cell_segmenter(args.cell_model, args.seed, progress=not args.quiet,
                                             retrain=args.retrain)
    if default_root is not None:  # the embedded plate: a second run reads the masks back
        segmenter, cell_segmenter = (None if model is None else defaults.RememberedMasks(model, defaults.masks_dir())
                                     for model in (segmenter, cell_segmenter))
    if cell_segmenter is not None and args.cell_model is None:
        cell_scores = default_cell_model_scores(cell_segmenter, args.seed)

    engine, shard = engine_from_args(args), shard_option(args)
    field_options = dict(progress=not args.quiet, exclusion_margin=args.exclusion_margin, engine=engine,
                         model_folders={"segmenter": model_dir, "cell_segmenter": args.cell_model})
    if shard is not None or args.merge_shards:
        run_fingerprint = fingerprint(plate=plate.to_csv(index=False), modes=modes, margin=args.exclusion_margin,
                                      models=[model_digest(segmenter), model_digest(cell_segmenter)])
    if shard is not None:
        def shard_rows(positions):
            rows = quantify_plate(plate.iloc[positions], modes, segmenter, cell_segmenter, **field_options)
            return {"fields": rows.assign(**{POSITION: np.repeat(positions, len(modes))})}
        return write_part(args.out, shard, len(plate), run_fingerprint, shard_rows)
    if args.merge_shards:
        field_rows = read_parts(args.out, ("fields",), len(plate), run_fingerprint)["fields"]
    else:
        field_rows = quantify_plate(plate, modes, segmenter, cell_segmenter, **field_options)
    for model in (segmenter, cell_segmenter):
        if isinstance(model, defaults.RememberedMasks):
            model.save()
    wells = aggregate_wells(field_rows)
    empty = wells[wells["n_fields"] == 0]
    if len(empty):
        listed = ", ".join(f"{r.experiment}/{r.well} ({r.mode})" for r in empty.head(5).itertuples())
        more = f" and {len(empty) - 5} more" if len(empty) > 5 else ""
        print(f"note: {len(empty)} well(s) have no usable field and are left out of the fits: {listed}{more}")
    fit_wells, outliers = wells, None
    if rout_q is not None:  # each mode's wells once more, without their ROUT outliers, as mode '<mode>+rout'
        without_outliers, outliers = rout_wells(wells, q=rout_q, hill_slope=hill_slope)
        fit_wells = pd.concat([wells, without_outliers], ignore_index=True)
    fits = fit_experiments(fit_wells, truth, hill_slope=hill_slope, **fit_options)
    summary = summarize(wells, fits[fits["mode"].isin(modes)])
    if outliers is not None:
        with_rout = summarize(fit_wells, fits)
        summary = pd.concat([summary, with_rout[~with_rout["mode"].isin(modes)]], ignore_index=True)
    by_ligand = summarize_by_ligand(fits, fit_wells if args.global_fit else None, hill_slope=hill_slope,
                                    equivalence_margin=equivalence_margin)
    plates = plate[["experiment", "well", "field"]].assign(Metadata_Plate=plate_names(plate, Path(manifest_path).stem))
    fields = field_table(field_rows, plates)
    write_outputs(args.out, wells, fits, summary, cell_scores, by_ligand=by_ligand, fields=fields,
                  prism_wells=fit_wells, outliers=outliers)
    gallery = []
    if segmenter is not None and "manual" in modes:
        gallery = gallery_fields(most_different_fields(fields), plate, segmenter.predict_mask)
    settings = {**vars(args), "manifest": manifest_path, "truth": truth_path,
                "rout_q": None if rout_q is None else f"{100 * rout_q:g} %"}
    write_report(args.out, settings=settings, gallery=gallery)
    return summary


def quantify_plate(plate: pd.DataFrame, modes, segmenter, cell_segmenter, *, progress=True,
                   exclusion_margin: int = DEFAULT_EXCLUSION_MARGIN, engine=None,
                   model_folders: dict | None = None) -> pd.DataFrame:
    """Stream the plate one field at a time; return one row per field and mode.

    With an ``engine`` (:class:`artseg.distributed.Engine`) the fields are tasks on a Dask
    cluster; ``model_folders`` names the folders the models were loaded from
    (``segmenter``, ``cell_segmenter``; None: saved to the cache for the workers). The rows
    are the same, in the same order.
    """
    per_field = map_fields(quantify_field, plate.to_dict("records"),
                           models={"segmenter": segmenter, "cell_segmenter": cell_segmenter},
                           model_folders=model_folders,
                           options={"modes": tuple(modes), "exclusion_margin": exclusion_margin},
                           engine=engine, desc="fields", unit="field", progress=progress)
    return pd.DataFrame([row for rows in per_field for row in rows])


def quantify_field(field: dict, *, modes, segmenter, cell_segmenter,
                   exclusion_margin: int = DEFAULT_EXCLUSION_MARGIN) -> list[dict]:
    """One plate-manifest row (a dict of its columns) -> one row per removal mode."""
    brightfield = read_image(field["brightfield"])
    fluorescence = read_image(field["fluorescence"])
    check_same_shape(brightfield, fluorescence, "fluorescence", field["fluorescence"])
    if cell_segmenter is None:
        cell_mask = read_mask(field["cell_mask"])
        check_same_shape(brightfield, cell_mask, "cell_mask", field["cell_mask"])
    else:
        cell_mask = cell_segmenter.predict_mask(brightfield)
    exclusions = {"none": np.zeros(brightfield.shape, dtype=bool)}
    if "manual" in modes:
        exclusions["manual"] = exclusions["none"]  # an empty cell = no artifact annotated
        if field["artifact_mask"] is not None:
            exclusions["manual"] = read_mask(field["artifact_mask"])
            check_same_shape(brightfield, exclusions["manual"], "artifact_mask", field["artifact_mask"])
    if "model" in modes:
        exclusions["model"] = segmenter.predict_mask(brightfield)
    rows = []
    for mode in modes:
        values = field_intensities(fluorescence, cell_mask, exclusions[mode],
                                   exclusion_margin=exclusion_margin, source=str(field["fluorescence"]))
        rows.append({
            "experiment": field["experiment"], "ligand": field["ligand"],
            "concentration": field["concentration"], "well": field["well"], "field": field["field"],
            "mode": mode, **values,
        })
    return rows


def default_artifact_model(seed: int, *, progress: bool = True, retrain: bool = False) -> ArtifactSegmenter:
    """The default ArtSeg model of the embedded plate: shipped (seed 0), cached, or trained now."""
    root = defaults.ensure_dataset("cho_m4r", seed, progress=progress)
    return defaults.train_or_load(root / "manifest.csv", defaults.models_dir() / f"artseg_cho_m4r_fast_seed{seed}",
                                  seed=seed, overrides=defaults.ANALYSIS_ARTIFACT_OVERRIDES, progress=progress,
                                  retrain=retrain)


def load_cell_segmenter(cell_model: Path | None, seed: int, *, progress: bool = True,
                        retrain: bool = False) -> PixelSegmenter:
    """The cell U-Net: a user's folder, or the cached default trained on synthetic cell masks."""
    if cell_model is not None:
        return load_segmenter(cell_model)
    root = defaults.ensure_dataset("cho_m4r", seed, progress=progress)
    manifest = defaults.mask_manifest(root / "manifest.csv", "cells", root / "cells_manifest.csv")
    return defaults.train_or_load(manifest, defaults.models_dir() / f"cells_cho_m4r_seed{seed}",
                                  strong=True, seed=seed, what="cell segmentation U-Net",
                                  overrides=defaults.PIXEL_MODEL_OVERRIDES, progress=progress, retrain=retrain)


def default_cell_model_scores(cell_segmenter: PixelSegmenter, seed: int) -> dict:
    """Held-out pixel scores of the default cell U-Net on its dataset's test fields (printed)."""
    manifest = defaults.default_root("cho_m4r", seed) / "cells_manifest.csv"
    scores = defaults.held_out_scores(cell_segmenter, manifest)
    print(f"cell U-Net on {scores['n_fields']} held-out fields: pixel F1 {scores['f1']:.3f} "
          f"(precision {scores['precision']:.3f}, recall {scores['recall']:.3f}; paper's cell U-Net F1 0.89)")
    return scores


def write_outputs(out: Path, wells, fits, summary, cell_scores: dict | None = None, *,
                  by_ligand: pd.DataFrame | None = None, fields: pd.DataFrame | None = None,
                  prism_wells: pd.DataFrame | None = None, outliers: pd.DataFrame | None = None) -> None:
    """Render the figure first, then write every table atomically.

    ``fields`` becomes ``fields.csv``; ``prism_wells`` (default `wells`) the Prism XY tables in
    ``prism/``; ``outliers`` (ROUT) ``outliers.csv``.
    """
    out.mkdir(parents=True, exist_ok=True)
    save_figure(displacement_curves(wells, fits), out / "displacement_curves.png")
    atomic_write_csv(wells, out / "wells.csv")
    atomic_write_csv(fits, out / "fits.csv")
    atomic_write_csv(summary, out / "summary.csv")
    if by_ligand is not None:
        atomic_write_csv(by_ligand, out / "summary_by_ligand.csv")
    if cell_scores is not None:
        atomic_write_text(out / "cell_segmentation.json", json.dumps(cell_scores, indent=1))
    if fields is not None:
        atomic_write_csv(fields, out / "fields.csv")
    for name, table in prism_tables(wells if prism_wells is None else prism_wells).items():
        atomic_write_csv(table, out / "prism" / name)
    if outliers is not None:
        atomic_write_csv(outliers, out / "outliers.csv")


def parse_modes(text: str) -> tuple[str, ...]:
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ArtsegInputError(f"--modes: unknown mode(s) {unknown}; choose among {', '.join(MODES)}")
    return modes


def parse_hill_slope(text: str) -> float | None:
    if text.strip().lower() == "free":
        return None
    try:
        return float(text)
    except ValueError:
        raise ArtsegInputError(f"--hill-slope: expected a number or 'free', got {text!r}") from None


def parse_positive(text: str, flag: str, unit: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ArtsegInputError(f"{flag}: expected a number ({unit}), got {text!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise ArtsegInputError(f"{flag}: expected a positive number ({unit}), got {text}")
    return value


def parse_fit_options(args: argparse.Namespace) -> dict:
    """--ci, --tracer-concentration/--tracer-kd and --fdr-q as keyword arguments of fit_experiments."""
    ci = args.ci.strip().lower()
    if ci not in ("profile", "wald"):
        raise ArtsegInputError(f"--ci: expected 'profile' or 'wald', got {args.ci!r}")
    tracer = {}
    for name in ("tracer_concentration", "tracer_kd"):
        text = getattr(args, name)
        flag = "--" + name.replace("_", "-")
        try:
            tracer[name] = None if text is None else float(text)
        except ValueError:
            raise ArtsegInputError(f"{flag}: expected a molar concentration, got {text!r}") from None
    validate_tracer(tracer["tracer_concentration"], tracer["tracer_kd"])
    fdr_q = None
    if args.fdr_q is not None:
        try:
            fdr_q = float(args.fdr_q)
        except ValueError:
            raise ArtsegInputError(f"--fdr-q: expected a percentage in (0, 10], got {args.fdr_q!r}") from None
        if not 0 < fdr_q <= 10:
            raise ArtsegInputError(f"--fdr-q: expected a percentage in (0, 10], got {args.fdr_q}")
        fdr_q /= 100.0
    return {"ci": ci, "fdr_q": fdr_q, **tracer}


def parse_outlier_options(args: argparse.Namespace) -> float | None:
    """--outliers and --rout-q: ROUT's Q as a fraction, or None when outliers are kept."""
    method = args.outliers.strip().lower()
    if method not in ("none", "rout"):
        raise ArtsegInputError(f"--outliers: expected 'none' or 'rout', got {args.outliers!r}")
    if method == "none":
        if args.rout_q is not None:
            raise ArtsegInputError("--rout-q: needs --outliers rout")
        return None
    text = "1" if args.rout_q is None else args.rout_q
    try:
        q = float(text)
    except ValueError:
        raise ArtsegInputError(f"--rout-q: expected a percentage in (0, 10], got {text!r}") from None
    if not 0 < q <= 10:
        raise ArtsegInputError(f"--rout-q: expected a percentage in (0, 10], got {text}")
    return q / 100.0


def load_truth(path: Path) -> dict[str, float]:
    try:
        return read_truth(json.loads(Path(path).read_text()))
    except FileNotFoundError:
        raise ArtsegInputError(f"{path}: truth file not found") from None
    except (ValueError, TypeError, AttributeError) as err:
        raise ArtsegInputError(f"{path}: not a JSON mapping experiment -> LogIC50 ({err})") from None


if __name__ == "__main__":
    raise SystemExit(main())
