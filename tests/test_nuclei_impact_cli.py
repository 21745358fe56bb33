"""`python -m analysis.nuclei_impact` on a small synthetic dataset, and its bad inputs."""

import imageio.v3 as imageio
import numpy as np
import pandas as pd
import pytest
import tifffile

from analysis import nuclei_impact
from analysis.nuclei_impact import (
    SUMMARY_COLUMNS,
    TRAINING_FIELDS,
    summarize_regions,
    training_rows,
    write_stain_labels,
)
from artseg.io import read_image_manifest
from artseg.pixel_model import PixelSegmenter
from artseg.segmenter import ArtifactSegmenter
from artseg.synth import generate_dataset

from .test_segmenter import tiny_config


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """128² seven_cell_lines fields, a tiny artifact model and a tiny stain-trained nuclei model."""
    root = tmp_path_factory.mktemp("nuclei")
    data = root / "data"
    generate_dataset("seven_cell_lines", data, n_images=12, seed=5, size=128, progress=False)
    manifest = read_image_manifest(data / "manifest.csv", require_label=True)
    ArtifactSegmenter(tiny_config()).fit(manifest, progress=False).save(root / "model")
    stain_manifest = read_image_manifest(write_stain_labels(data))
    PixelSegmenter(tiny_config(mode="strong")).fit(stain_manifest, progress=False).save(root / "nuclei_model")
    table = pd.read_csv(data / "manifest.csv")
    nuclei_csv = data / "nuclei.csv"
    pd.DataFrame({"image": table["image"], "nuclei": table["nuclei"], "artifact_mask": table["mask"],
                  "nuclei_pred": table["nuclei"]}).to_csv(nuclei_csv, index=False)
    return root


def _run(dataset, tmp_path, manifest, extra=()):
    return nuclei_impact.main(["--manifest", str(manifest), "--model", str(dataset / "model"),
                               "--out", str(tmp_path / "out"), "--quiet", *extra])


def test_stain_labels_follow_the_true_nuclei(dataset):
    from artseg.io import read_labels
    from artseg.metrics import pixel_scores

    table = pd.read_csv(dataset / "data" / "nuclei_from_stain.csv")
    truth = pd.read_csv(dataset / "data" / "manifest.csv").set_index("image")["nuclei"]
    row = table.iloc[0]
    derived = read_labels(dataset / "data" / row["mask"]) > 0
    true = read_labels(dataset / "data" / truth[row["image"]]) > 0
    assert pixel_scores(true, derived)["f1"] > 0.6


def test_external_predictions_equal_to_truth_score_perfectly(dataset, tmp_path, capsys):
    assert _run(dataset, tmp_path, dataset / "data" / "nuclei.csv") == 0
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert set(summary["region"]) == {"artifact", "artifact_free_manual", "artifact_free_model", "whole_image"}
    whole = summary.set_index("region").loc["whole_image"]
    assert whole["pixel_f1"] == pytest.approx(1.0) and whole["object_f1"] == pytest.approx(1.0)
    nuclei = pd.read_csv(tmp_path / "out" / "nuclei.csv")
    assert {"image", "region", "area", "solidity", "matched"} <= set(nuclei.columns)
    assert nuclei["matched"].all()
    per_image = pd.read_csv(tmp_path / "out" / "per_image.csv")
    clean = per_image[(per_image["region"] == "artifact") & (per_image["n_pixels"] == 0)]
    assert len(clean) > 0 and clean["pixel_f1"].isna().all()  # images without artifacts: NaN, n=0
    assert (tmp_path / "out" / "nuclei_f1_density.png").exists()
    assert "whole_image" in capsys.readouterr().out


def test_own_nuclei_model_path(dataset, tmp_path):
    table = pd.read_csv(dataset / "data" / "nuclei.csv").drop(columns=["nuclei_pred"])
    manifest = dataset / "data" / "nuclei_own.csv"
    table.to_csv(manifest, index=False)
    assert _run(dataset, tmp_path, manifest, extra=["--nuclei-model", str(dataset / "nuclei_model")]) == 0
    per_image = pd.read_csv(tmp_path / "out" / "per_image.csv")
    assert per_image["pixel_f1"].dropna().between(0, 1).all()


def _bad(dataset, tmp_path, capsys, edit, needle):
    table = pd.read_csv(dataset / "data" / "nuclei.csv")
    for column in ("image", "nuclei", "artifact_mask", "nuclei_pred"):
        table[column] = [str(dataset / "data" / p) for p in table[column]]
    path = tmp_path / "bad.csv"
    edit(table).to_csv(path, index=False)
    assert _run(dataset, tmp_path, path) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "out" / "summary.csv").exists()


def test_missing_label_file(dataset, tmp_path, capsys):
    def edit(table):
        table.loc[0, "nuclei"] = str(tmp_path / "missing_labels.tif")
        return table
    _bad(dataset, tmp_path, capsys, edit, "missing_labels.tif")


def test_label_image_shape_mismatch(dataset, tmp_path, capsys):
    small = tmp_path / "small_labels.tif"
    tifffile.imwrite(small, np.zeros((16, 16), np.uint16))

    def edit(table):
        table.loc[0, "nuclei_pred"] = str(small)
        return table
    _bad(dataset, tmp_path, capsys, edit, "small_labels.tif")


def test_images_without_nuclei_give_nan_scores(dataset, tmp_path):
    empty = tmp_path / "empty_labels.tif"
    tifffile.imwrite(empty, np.zeros((128, 128), np.uint16))
    table = pd.read_csv(dataset / "data" / "nuclei.csv").head(2)
    for column in ("image", "artifact_mask"):
        table[column] = [str(dataset / "data" / p) for p in table[column]]
    table["nuclei"] = str(empty)
    table["nuclei_pred"] = str(empty)
    path = tmp_path / "no_nuclei.csv"
    table.to_csv(path, index=False)
    assert _run(dataset, tmp_path, path) == 0
    per_image = pd.read_csv(tmp_path / "out" / "per_image.csv")
    assert per_image["object_f1"].isna().all() and per_image["pixel_f1"].isna().all()
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert (summary["n_images"] == 0).all() and (summary["n_nuclei"] == 0).all()
    assert summary["pixel_f1"].isna().all() and summary["mean_area"].isna().all()


def test_artifact_mask_shape_mismatch(dataset, tmp_path, capsys):
    small = tmp_path / "small_mask.png"
    imageio.imwrite(small, np.zeros((16, 16), np.uint8))

    def edit(table):
        table.loc[1, "artifact_mask"] = str(small)
        return table
    _bad(dataset, tmp_path, capsys, edit, "small_mask.png")


def test_missing_image_file(dataset, tmp_path, capsys):
    def edit(table):
        table.loc[0, "image"] = str(tmp_path / "missing_field.tif")
        return table
    _bad(dataset, tmp_path, capsys, edit, "missing_field.tif")


def test_missing_nuclei_column(dataset, tmp_path, capsys):
    _bad(dataset, tmp_path, capsys, lambda table: table.drop(columns=["nuclei"]), "column(s) nuclei")


def test_manifest_without_model_is_refused(dataset, tmp_path, capsys):
    code = nuclei_impact.main(["--manifest", str(dataset / "data" / "nuclei.csv"),
                               "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 2 and "--model" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_summary_of_regions_without_anything_is_nan_with_zero_counts():
    per_image = pd.DataFrame({
        "image": ["a", "a", "b", "b"],
        "region": ["artifact", "whole_image", "artifact", "whole_image"],
        "pixel_f1": [np.nan, 0.8, np.nan, 0.6],
        "object_f1": [np.nan, 0.5, np.nan, np.nan],
    })
    nuclei = pd.DataFrame({"image": ["a"], "label": [1], "region": ["whole_image"], "area": [300],
                           "solidity": [0.9], "matched": [True]})
    summary = summarize_regions(per_image, nuclei).set_index("region")
    assert list(summary.index) == ["artifact", "whole_image"]
    artifact = summary.loc["artifact"]
    assert np.isnan(artifact["pixel_f1"]) and np.isnan(artifact["mean_area"])
    assert artifact["n_images"] == 0 and artifact["n_nuclei"] == 0
    whole = summary.loc["whole_image"]
    assert whole["pixel_f1"] == pytest.approx(0.7) and whole["object_f1"] == pytest.approx(0.5)
    assert whole["n_images"] == 2 and whole["mean_area"] == 300


def test_training_rows_take_the_first_fields_of_train_and_val_only():
    table = pd.DataFrame({"image": [f"{i}.tif" for i in range(100)],
                          "split": ["train", "train", "train", "val", "test"] * 20})
    rows = training_rows(table)
    assert rows["split"].value_counts().to_dict() == TRAINING_FIELDS
    assert "test" not in set(rows["split"])
    assert rows["image"].iloc[0] == "0.tif"
