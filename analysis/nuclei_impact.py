"""``python -m analysis.nuclei_impact``: nuclei segmentation quality inside vs outside artifacts.

Paper §2.3.4 "Nuclei segmentation", §3.3.1, Fig. 4, Fig. 5, Supp. Fig. 4. Nuclei are
segmented from brightfield (the project's U-Net trained on labels derived from the nuclear
stain, instances split by a distance-transform watershed, or labels from any external
segmenter via ``nuclei_pred``) and scored per region: inside the manual artifact mask,
outside it, outside the ArtSeg model's mask, and over the whole image.

With no arguments it runs on the embedded default: a synthetic ``seven_cell_lines`` dataset
of 512 x 512 fields, with the nuclei U-Net and a fast-config ArtSeg model trained on the
first fields of its train/val split (cached) and every field of its test split scored.
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from analysis import defaults
from analysis.figures import region_densities
from analysis.instances import nuclei_from_stain, split_instances
from analysis.regions import REGIONS, nuclei_morphometry, region_masks, score_region
from analysis.reporting import run_cli, save_figure
from artseg.errors import ArtsegInputError
from artseg.io import (
    atomic_write_csv,
    check_output_folder,
    check_same_shape,
    read_image,
    read_labels,
    read_mask,
    read_nuclei_manifest,
    write_labels,
)
from artseg.distributed import add_engine_arguments, engine_from_args, map_fields
from artseg.model_io import model_digest
from artseg.pixel_model import PixelSegmenter
from artseg.segmenter import load_segmenter
from artseg.shards import add_shard_arguments, fingerprint, read_parts, shard_option, write_part

DEFAULT_OUT = Path("artseg-out") / "nuclei_impact"
# Synthetic artifact areas are a share of the field (the paper's 0.38 %), nuclei keep the paper's
# pixel size: in 256 x 256 fields an artifact is about one nucleus large and almost never holds
# one (5 predicted nuclei inside artifacts in 16 test fields). In 512 x 512 fields artifacts are
# several nuclei large (paper: ~11); 240 of them give 48 test fields, 24 with artifacts, ~1
# nucleus inside an artifact per artifact field (benchmarks/RESULTS.md, "Nuclei impact").
DEFAULT_FIELD_SIZE = 512
DEFAULT_IMAGES = 240
# Both models train on these first fields of the train / val split; the rest of it is unused,
# so the scored test split can be large while training stays cheap.
TRAINING_FIELDS = {"train": 24, "val": 8}
# The nuclei U-Net needs more epochs than the shared pixel-model default (8): nuclei are barely
# visible in synthetic brightfield and must be inferred from the cell around them. Held-out pixel
# F1 on 256 x 256 fields was 0.71 after 8 epochs and 0.88 after 25, still improving.
NUCLEI_MODEL_OVERRIDES = {**defaults.PIXEL_MODEL_OVERRIDES, "unet_train": {"epochs": 25, "plateau_patience": 5}}
# The artifact model sees only the 32 training fields above: its classifier keeps the 40 epochs
# that the `fast` config had before it moved to more fields and fewer epochs. Its Score-CAM is
# the analyses' (defaults.ANALYSIS_ARTIFACT_OVERRIDES).
ARTIFACT_MODEL_OVERRIDES = {**defaults.ANALYSIS_ARTIFACT_OVERRIDES, "classifier_train": {"epochs": 40}}
SUMMARY_COLUMNS = ["region", "pixel_f1", "object_f1", "mean_area", "mean_solidity", "n_images", "n_nuclei"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.nuclei_impact",
        description="Nuclei segmentation F1 and morphometry inside vs outside artifacts. "
        "No arguments: the embedded synthetic seven-cell-lines dataset.",
    )
    parser.add_argument("--manifest", type=Path,
                        help="nuclei manifest CSV: image, nuclei, [artifact_mask], [nuclei_pred]")
    parser.add_argument("--model", type=Path, help="ArtSeg model folder (artifact_free_model region)")
    parser.add_argument("--nuclei-model", type=Path,
                        help="brightfield nuclei U-Net folder, used when the manifest has no nuclei_pred "
                        "(default: the cached synthetic-trained one)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder ({DEFAULT_OUT})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the embedded default data/models")
    parser.add_argument("--retrain", action="store_true",
                        help="train the default artifact and nuclei models from scratch instead of using the "
                        "shipped ones (data/weights; seed 0) or cached ones")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_engine_arguments(parser)
    add_shard_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the analysis; returns the exit status (2 on bad input, with one line on stderr)."""
    return run_cli(build_parser(), run, "per_image.csv, nuclei.csv, summary.csv and the density figures", argv)


def run(args: argparse.Namespace) -> pd.DataFrame:
    """Score the manifest (or the embedded default), write the outputs, return the summary.

    Prints the seconds spent per stage and what the summary's columns mean; :func:`main`
    prints the summary table itself.
    """
    check_output_folder(args.out)
    timings: dict[str, float] = {}
    if args.manifest is None:
        manifest, segmenter, nuclei_model = default_inputs(args.seed, args.model, args.nuclei_model, timings,
                                                           progress=not args.quiet, retrain=args.retrain)
    else:
        manifest = read_nuclei_manifest(args.manifest)
        if args.model is None:
            raise ArtsegInputError("--model MODEL_DIR is required with --manifest "
                                   "(the ArtSeg model that defines the artifact_free_model region)")
        segmenter = load_segmenter(args.model)
        nuclei_model = None
        if "nuclei_pred" not in manifest.columns:
            with _timed(timings, "nuclei model"):
                nuclei_model = load_nuclei_model(args.nuclei_model, args.seed, progress=not args.quiet,
                                                 retrain=args.retrain)
    if args.manifest is None:  # the embedded default: a second run reads the masks back
        segmenter, nuclei_model = (defaults.RememberedMasks(model, defaults.masks_dir())
                                   for model in (segmenter, nuclei_model))
    engine, shard = engine_from_args(args), shard_option(args)
    field_options = dict(progress=not args.quiet, engine=engine,
                         model_folders={"segmenter": args.model, "nuclei_model": args.nuclei_model})
    if shard is not None or args.merge_shards:
        run_fingerprint = fingerprint(manifest=manifest.to_csv(index=False),
                                      models=[model_digest(segmenter), model_digest(nuclei_model)])
    if shard is not None:
        def shard_tables(positions):
            per_image, nuclei = score_images(manifest.iloc[positions], segmenter, nuclei_model, positions=positions,
                                             **field_options)
            return {"per_image": per_image, "nuclei": nuclei}
        return write_part(args.out, shard, len(manifest), run_fingerprint, shard_tables)
    with _timed(timings, "scoring"):
        if args.merge_shards:
            parts = read_parts(args.out, ("per_image", "nuclei"), len(manifest), run_fingerprint)
            per_image, nuclei = parts["per_image"], parts["nuclei"]
        else:
            per_image, nuclei = score_images(manifest, segmenter, nuclei_model, **field_options)
    for model in (segmenter, nuclei_model):
        if isinstance(model, defaults.RememberedMasks):
            model.save()
        summary = summarize_regions(per_image, nuclei)
    with _timed(timings, "writing"):
        write_outputs(args.out, per_image, nuclei, summary)
    print(f"\n{len(manifest)} images scored; stage seconds: "
          + ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in timings.items()))
    print("pixel_f1, object_f1 (IoU 0.5): mean over images of the F1 within the region (NaN images "
          "left out);\nmean_area (px), mean_solidity: over predicted nuclei with most of their pixels "
          "in the region\n")
    return summary


@contextmanager
def _timed(timings: dict[str, float], stage: str):
    """Add the seconds spent in the ``with`` block to ``timings[stage]``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - started


def score_images(manifest: pd.DataFrame, segmenter, nuclei_model, *, progress=True, engine=None,
                 model_folders: dict | None = None, positions=None):
    """Score every image of the manifest; returns (per_image, nuclei) tables.

    With an ``engine`` (:class:`artseg.distributed.Engine`) the images are tasks on a Dask
    cluster; ``model_folders`` names the folders the models were loaded from (``segmenter``,
    ``nuclei_model``; None: saved to the cache for the workers); the tables are the same.
    ``positions`` (one per row, for ``--shard`` parts) adds a ``position`` column to both.
    """
    has_manual = "artifact_mask" in manifest.columns
    per_field = map_fields(score_image, manifest.to_dict("records"),
                           models={"segmenter": segmenter, "nuclei_model": nuclei_model},
                           model_folders=model_folders, options={"has_manual": has_manual},
                           engine=engine, desc="images", unit="image", progress=progress)
    if positions is not None:
        per_field = [([{**row, "position": position} for row in rows], table.assign(position=position))
                     for (rows, table), position in zip(per_field, positions)]
    per_image = [row for rows, _ in per_field for row in rows]
    nuclei = [table for _, table in per_field]
    nuclei_table = pd.concat(nuclei, ignore_index=True) if nuclei else pd.DataFrame(
        columns=["image", "label", "region", "area", "solidity", "matched"])
    return pd.DataFrame(per_image), nuclei_table


def score_image(row: dict, *, segmenter, nuclei_model, has_manual: bool):
    """One nuclei-manifest row (a dict of its columns) -> (per-region score rows, its nuclei table)."""
    image = read_image(row["image"])
    true_labels = read_labels(row["nuclei"])
    check_same_shape(image, true_labels, "nuclei", row["nuclei"])
    if nuclei_model is None:
        pred_labels = read_labels(row["nuclei_pred"])
        check_same_shape(image, pred_labels, "nuclei_pred", row["nuclei_pred"])
    else:
        pred_labels = segment_nuclei(nuclei_model, image)
    model_mask = segmenter.predict_mask(image)
    if has_manual and row["artifact_mask"] is not None:  # an empty cell = no artifact annotated
        manual_mask = read_mask(row["artifact_mask"])
        check_same_shape(image, manual_mask, "artifact_mask", row["artifact_mask"])
    else:
        manual_mask = np.zeros(image.shape, dtype=bool)
    regions = region_masks(manual_mask, model_mask)
    if not has_manual:
        regions = {k: v for k, v in regions.items() if k not in ("artifact", "artifact_free_manual")}
    name = str(row["image"])
    scores = [{"image": name, "region": region, **score_region(true_labels, pred_labels, mask)}
              for region, mask in regions.items()]
    table = nuclei_morphometry(pred_labels, true_labels, regions)
    table.insert(0, "image", name)
    return scores, table


def summarize_regions(per_image: pd.DataFrame, nuclei: pd.DataFrame) -> pd.DataFrame:
    """One row per region: mean per-image pixel and object F1, mean nucleus area and solidity.

    Images whose region is empty (or holds no nuclei, for object F1) contribute NaN and are
    left out of the means; ``n_images`` counts the images with a pixel F1 in the region.
    """
    rows = []
    for region in REGIONS:
        scores = per_image[per_image["region"] == region] if len(per_image) else per_image
        cells = nuclei[nuclei["region"] == region] if len(nuclei) else nuclei
        if len(scores) == 0:
            continue
        rows.append({
            "region": region,
            "pixel_f1": float(scores["pixel_f1"].mean()),
            "object_f1": float(scores["object_f1"].mean()),
            "mean_area": float(cells["area"].mean()) if len(cells) else np.nan,
            "mean_solidity": float(cells["solidity"].mean()) if len(cells) else np.nan,
            "n_images": int(scores["pixel_f1"].notna().sum()),
            "n_nuclei": int(len(cells)),
        })
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def segment_nuclei(nuclei_model: PixelSegmenter, image: np.ndarray) -> np.ndarray:
    """Brightfield nuclei instances: the U-Net's foreground split by a watershed."""
    return split_instances(nuclei_model.predict_mask(image))


def default_inputs(seed: int, model_dir: Path | None, nuclei_model_dir: Path | None,
                   timings: dict[str, float] | None = None, *, progress: bool = True, retrain: bool = False):
    """The embedded default: test split of the synthetic seven-cell-lines dataset, cached models."""
    timings = {} if timings is None else timings
    with _timed(timings, "dataset"):
        root = defaults.ensure_dataset("seven_cell_lines", seed, n_images=DEFAULT_IMAGES, size=DEFAULT_FIELD_SIZE,
                                       progress=progress)
    table = pd.read_csv(root / "manifest.csv")
    test = table[table["split"] == "test"]
    manifest = pd.DataFrame({
        "image": [str(root / p) for p in test["image"]],
        "nuclei": [str(root / p) for p in test["nuclei"]],
        "artifact_mask": [str(root / p) for p in test["mask"]],
    })
    with _timed(timings, "artifact model"):
        if model_dir is None:
            training_csv = root / "artifact_training.csv"
            if not training_csv.exists():
                atomic_write_csv(training_rows(table), training_csv)
            model_name = f"artseg_seven_cell_lines_{DEFAULT_FIELD_SIZE}px_fast_seed{seed}"
            segmenter = defaults.train_or_load(training_csv, defaults.models_dir() / model_name, seed=seed,
                                               overrides=ARTIFACT_MODEL_OVERRIDES, progress=progress,
                                               retrain=retrain)
        else:
            segmenter = load_segmenter(model_dir)
    with _timed(timings, "nuclei model"):
        nuclei_model = load_nuclei_model(nuclei_model_dir, seed, progress=progress, retrain=retrain)
    return manifest, segmenter, nuclei_model


def training_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The first ``TRAINING_FIELDS`` rows of each training split of a dataset manifest."""
    return pd.concat([table[table["split"] == split].head(count) for split, count in TRAINING_FIELDS.items()])


def load_nuclei_model(nuclei_model_dir: Path | None, seed: int, *, progress: bool = True,
                      retrain: bool = False) -> PixelSegmenter:
    """A user's nuclei U-Net folder, or the cached default trained on stain-derived labels."""
    if nuclei_model_dir is not None:
        return load_segmenter(nuclei_model_dir)
    root = defaults.ensure_dataset("seven_cell_lines", seed, n_images=DEFAULT_IMAGES, size=DEFAULT_FIELD_SIZE,
                                   progress=progress)
    manifest_csv = root / "nuclei_from_stain.csv"
    if not manifest_csv.exists():
        manifest_csv = write_stain_labels(root)
    model_name = f"nuclei_seven_cell_lines_{DEFAULT_FIELD_SIZE}px_seed{seed}"
    return defaults.train_or_load(manifest_csv, defaults.models_dir() / model_name, strong=True, seed=seed,
                                  what="brightfield nuclei U-Net", overrides=NUCLEI_MODEL_OVERRIDES,
                                  progress=progress, retrain=retrain)


def write_stain_labels(root: Path) -> Path:
    """Derive nuclei labels from the nuclear stain of the training fields (ref. [4]).

    The fields are :func:`training_rows` of ``root/manifest.csv``; writes the label images
    to ``root/nuclei_from_stain/`` and returns the image manifest ``nuclei_from_stain.csv``
    (written last, so it marks a finished set).
    """
    table = training_rows(pd.read_csv(root / "manifest.csv"))
    out_dir = root / "nuclei_from_stain"
    paths = []
    for fluorescence in tqdm(table["fluorescence"], desc="stain labels", unit="image"):
        target = out_dir / Path(fluorescence).name
        write_labels(target, nuclei_from_stain(read_image(root / fluorescence)))
        paths.append(str(target.relative_to(root)))
    manifest = pd.DataFrame({"image": table["image"].to_numpy(), "mask": paths,
                             "split": table["split"].to_numpy()})
    csv = root / "nuclei_from_stain.csv"
    atomic_write_csv(manifest, csv)
    return csv


def write_outputs(out: Path, per_image, nuclei, summary) -> None:
    """Render the figures first, then write every table atomically."""
    out.mkdir(parents=True, exist_ok=True)
    save_figure(region_densities(per_image, ("pixel_f1", "object_f1"),
                                 ("nuclei pixel-wise F1 per image", "nuclei object-wise F1 per image")),
                out / "nuclei_f1_density.png")
    if len(nuclei):
        save_figure(region_densities(nuclei, ("area", "solidity"),
                                     ("nucleus area (px)", "nucleus solidity")),
                    out / "nuclei_morphometry_density.png")
    atomic_write_csv(per_image, out / "per_image.csv")
    atomic_write_csv(nuclei, out / "nuclei.csv")
    atomic_write_csv(summary, out / "summary.csv")


if __name__ == "__main__":
    raise SystemExit(main())
