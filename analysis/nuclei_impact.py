"""``python -m analysis.nuclei_impact``: nuclei segmentation quality inside vs outside artifacts.

Paper §2.3.4 "Nuclei segmentation", §3.3.1, Fig. 4, Fig. 5, Supp. Fig. 4. Nuclei are
segmented from brightfield (the project's U-Net trained on labels derived from the nuclear
stain, instances split by a distance-transform watershed, or labels from any external
segmenter via ``nuclei_pred``) and scored per region: inside the manual artifact mask,
outside it, outside the ArtSeg model's mask, and over the whole image.

With no arguments it runs on the embedded default: a synthetic ``seven_cell_lines`` dataset,
with the nuclei U-Net and a fast-config ArtSeg model trained on its training split (cached)
and evaluated on its test split.
"""

from __future__ import annotations

import argparse
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
    check_same_shape,
    read_image,
    read_labels,
    read_mask,
    read_nuclei_manifest,
    write_labels,
)
from artseg.pipeline import ArtifactSegmenter

DEFAULT_OUT = Path("artseg-out") / "nuclei_impact"
DEFAULT_IMAGES = 160
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
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the analysis; returns the exit status (2 on bad input, with one line on stderr)."""
    return run_cli(build_parser(), run, "per_image.csv, nuclei.csv, summary.csv and the density figures", argv)


def run(args: argparse.Namespace) -> pd.DataFrame:
    if args.manifest is None:
        manifest, segmenter, nuclei_model = default_inputs(args.seed, args.model, args.nuclei_model)
    else:
        manifest = read_nuclei_manifest(args.manifest)
        if args.model is None:
            raise ArtsegInputError("--model MODEL_DIR is required with --manifest "
                                   "(the ArtSeg model that defines the artifact_free_model region)")
        segmenter = ArtifactSegmenter.load(args.model)
        nuclei_model = None
        if "nuclei_pred" not in manifest.columns:
            nuclei_model = load_nuclei_model(args.nuclei_model, args.seed)
    per_image, nuclei = score_images(manifest, segmenter, nuclei_model, progress=not args.quiet)
    summary = summarize_regions(per_image, nuclei)
    write_outputs(args.out, per_image, nuclei, summary)
    return summary


def score_images(manifest: pd.DataFrame, segmenter, nuclei_model, *, progress=True):
    """Score every image of the manifest; returns (per_image, nuclei) tables."""
    per_image, nuclei = [], []
    has_manual = "artifact_mask" in manifest.columns
    for row in tqdm(manifest.itertuples(index=False), total=len(manifest), desc="images",
                    disable=not progress, unit="image"):
        image = read_image(row.image)
        true_labels = read_labels(row.nuclei)
        check_same_shape(image, true_labels, "nuclei", row.nuclei)
        if nuclei_model is None:
            pred_labels = read_labels(row.nuclei_pred)
            check_same_shape(image, pred_labels, "nuclei_pred", row.nuclei_pred)
        else:
            pred_labels = segment_nuclei(nuclei_model, image)
        model_mask = segmenter.predict_mask(image)
        if has_manual and row.artifact_mask is not None:  # an empty cell = no artifact annotated
            manual_mask = read_mask(row.artifact_mask)
            check_same_shape(image, manual_mask, "artifact_mask", row.artifact_mask)
        else:
            manual_mask = np.zeros(image.shape, dtype=bool)
        regions = region_masks(manual_mask, model_mask)
        if not has_manual:
            regions = {k: v for k, v in regions.items() if k not in ("artifact", "artifact_free_manual")}
        name = str(row.image)
        for region, mask in regions.items():
            per_image.append({"image": name, "region": region,
                              **score_region(true_labels, pred_labels, mask)})
        table = nuclei_morphometry(pred_labels, true_labels, regions)
        table.insert(0, "image", name)
        nuclei.append(table)
    nuclei_table = pd.concat(nuclei, ignore_index=True) if nuclei else pd.DataFrame(
        columns=["image", "label", "region", "area", "solidity", "matched"])
    return pd.DataFrame(per_image), nuclei_table


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


def segment_nuclei(nuclei_model: ArtifactSegmenter, image: np.ndarray) -> np.ndarray:
    """Brightfield nuclei instances: the U-Net's foreground split by a watershed."""
    return split_instances(nuclei_model.predict_mask(image))


def default_inputs(seed: int, model_dir: Path | None, nuclei_model_dir: Path | None):
    """The embedded default: test split of the synthetic seven-cell-lines dataset, cached models."""
    root = defaults.ensure_dataset("seven_cell_lines", seed, n_images=DEFAULT_IMAGES)
    table = pd.read_csv(root / "manifest.csv")
    test = table[table["split"] == "test"]
    manifest = pd.DataFrame({
        "image": [str(root / p) for p in test["image"]],
        "nuclei": [str(root / p) for p in test["nuclei"]],
        "artifact_mask": [str(root / p) for p in test["mask"]],
    })
    if model_dir is None:
        segmenter = defaults.train_or_load(
            root / "manifest.csv", defaults.models_dir() / f"artseg_seven_cell_lines_fast_seed{seed}",
            seed=seed)
    else:
        segmenter = ArtifactSegmenter.load(model_dir)
    return manifest, segmenter, load_nuclei_model(nuclei_model_dir, seed)


def load_nuclei_model(nuclei_model_dir: Path | None, seed: int) -> ArtifactSegmenter:
    """A user's nuclei U-Net folder, or the cached default trained on stain-derived labels."""
    if nuclei_model_dir is not None:
        return ArtifactSegmenter.load(nuclei_model_dir)
    root = defaults.ensure_dataset("seven_cell_lines", seed, n_images=DEFAULT_IMAGES)
    manifest_csv = root / "nuclei_from_stain.csv"
    if not manifest_csv.exists():
        manifest_csv = write_stain_labels(root)
    return defaults.train_or_load(manifest_csv, defaults.models_dir() / f"nuclei_seven_cell_lines_seed{seed}",
                                  strong=True, seed=seed, what="brightfield nuclei U-Net",
                                  overrides=defaults.PIXEL_MODEL_OVERRIDES)


def write_stain_labels(root: Path) -> Path:
    """Derive nuclei labels from the nuclear stain of the training/validation fields (ref. [4])."""
    table = pd.read_csv(root / "manifest.csv")
    table = table[table["split"] != "test"]
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
