"""`python -m analysis.ligand_affinity` on a small synthetic plate, and its bad inputs."""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from analysis import ligand_affinity
from analysis.affinity import FIT_COLUMNS, SUMMARY_COLUMNS
from artseg.io import read_image_manifest
from artseg.pixel_model import PixelSegmenter
from artseg.segmenter import ArtifactSegmenter
from artseg.synth import PlateOptions, generate_dataset

from .test_segmenter import tiny_config


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    """A 128² cho_m4r dataset with a 2-experiment plate, a tiny artifact model and a tiny cell model."""
    root = tmp_path_factory.mktemp("plate")
    generate_dataset("cho_m4r", root / "data", n_images=12, seed=3, size=128, progress=False,
                     plate=PlateOptions(n_experiments=2, n_concentrations=4, wells_per_concentration=2,
                                        fields_per_well=1))
    manifest = read_image_manifest(root / "data" / "manifest.csv", require_label=True)
    ArtifactSegmenter(tiny_config()).fit(manifest, progress=False).save(root / "model")
    cells = manifest.assign(mask=manifest["cells"])
    PixelSegmenter(tiny_config(mode="strong")).fit(cells, progress=False).save(root / "cells")
    return root


def _run(plate, tmp_path, manifest=None, extra=()):
    argv = ["--manifest", str(manifest or plate / "data" / "plate.csv"), "--model", str(plate / "model"),
            "--cell-model", str(plate / "cells"), "--out", str(tmp_path / "out"), "--quiet", *extra]
    return ligand_affinity.main(argv)


def test_runs_all_three_modes_and_writes_every_output(plate, tmp_path, capsys):
    status = _run(plate, tmp_path, extra=["--truth", str(plate / "data" / "truth.json")])
    assert status == 0
    out = tmp_path / "out"
    wells = pd.read_csv(out / "wells.csv")
    assert {"experiment", "ligand", "concentration", "well", "mode", "n_fields", "cell_mean",
            "background_mean", "specific"} <= set(wells.columns)
    assert set(wells["mode"]) == {"manual", "model", "none"}
    np.testing.assert_allclose(wells["specific"], wells["cell_mean"] - wells["background_mean"])
    fits = pd.read_csv(out / "fits.csv")
    assert list(fits.columns) == FIT_COLUMNS
    assert len(fits) == 2 * 3
    assert fits.loc[fits["success"], "abs_error_vs_truth"].notna().all()
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert (out / "displacement_curves.png").stat().st_size > 10_000
    assert "mean_r_squared" in capsys.readouterr().out


def _edited_plate(plate, tmp_path, edit):
    table = pd.read_csv(plate / "data" / "plate.csv")
    for column in ("brightfield", "fluorescence", "artifact_mask", "cell_truth"):
        table[column] = [str(plate / "data" / p) for p in table[column]]
    table["cell_mask"] = table["cell_truth"]  # ground-truth cells: the edits below are about other columns
    table = edit(table)
    path = tmp_path / "plate.csv"
    table.to_csv(path, index=False)
    return path


def _expect_one_line_error(plate, tmp_path, capsys, edit, needle):
    path = _edited_plate(plate, tmp_path, edit)
    assert _run(plate, tmp_path, manifest=path) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "out" / "fits.csv").exists()


def test_missing_fluorescence_file(plate, tmp_path, capsys):
    def edit(table):
        table.loc[0, "fluorescence"] = str(tmp_path / "gone.tif")
        return table
    _expect_one_line_error(plate, tmp_path, capsys, edit, "gone.tif")


def test_unreadable_fluorescence_file(plate, tmp_path, capsys):
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"not a tiff at all")

    def edit(table):
        table.loc[0, "fluorescence"] = str(broken)
        return table
    _expect_one_line_error(plate, tmp_path, capsys, edit, "broken.tif")


def test_shape_mismatch(plate, tmp_path, capsys):
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.zeros((32, 32), np.uint16))

    def edit(table):
        table.loc[0, "fluorescence"] = str(small)
        return table
    _expect_one_line_error(plate, tmp_path, capsys, edit, "small.tif")


def test_nan_pixels(plate, tmp_path, capsys):
    nan_image = tmp_path / "nan.tif"
    values = np.ones((128, 128), np.float32)
    values[3, 3] = np.nan
    tifffile.imwrite(nan_image, values)

    def edit(table):
        table.loc[0, "fluorescence"] = str(nan_image)
        return table
    _expect_one_line_error(plate, tmp_path, capsys, edit, "nan.tif")


@pytest.mark.parametrize("value", ["-1e-9", "ten"])
def test_bad_concentration(plate, tmp_path, capsys, value):
    def edit(table):
        table["concentration"] = table["concentration"].astype(str)
        table.loc[1, "concentration"] = value
        return table
    _expect_one_line_error(plate, tmp_path, capsys, edit, "concentration")


def test_experiment_with_too_few_concentrations_gets_a_failed_row(plate, tmp_path):
    def edit(table):
        first = table["experiment"].iloc[0]
        concentrations = sorted(table.loc[table["experiment"] == first, "concentration"].unique())
        drop = (table["experiment"] == first) & table["concentration"].isin(concentrations[3:])
        return table[~drop]
    assert _run(plate, tmp_path, manifest=_edited_plate(plate, tmp_path, edit)) == 0
    fits = pd.read_csv(tmp_path / "out" / "fits.csv")
    failed = fits[~fits["success"]]
    assert len(failed) == 3 and failed["message"].str.len().gt(0).all()


def test_well_with_all_fields_excluded_is_reported_and_left_out(plate, tmp_path, capsys):
    full = tmp_path / "full.png"
    import imageio.v3 as iio
    iio.imwrite(full, np.full((128, 128), 255, np.uint8))

    def edit(table):
        table.loc[0, "artifact_mask"] = str(full)
        return table
    assert _run(plate, tmp_path, manifest=_edited_plate(plate, tmp_path, edit),
                extra=["--modes", "manual,none"]) == 0
    assert "no usable field" in capsys.readouterr().out
    wells = pd.read_csv(tmp_path / "out" / "wells.csv")
    manual = wells[wells["mode"] == "manual"].set_index(["experiment", "well"])
    none = wells[wells["mode"] == "none"].set_index(["experiment", "well"])
    newly_empty = (manual["n_fields"] == 0) & (none["n_fields"] > 0)
    assert newly_empty.sum() == 1  # the fully masked field's well, and only it
    assert manual.loc[newly_empty, "specific"].isna().all()


def test_bad_truth_file(plate, tmp_path, capsys):
    bad = tmp_path / "truth.json"
    bad.write_text(json.dumps(["not", "a", "mapping"]))
    assert _run(plate, tmp_path, extra=["--truth", str(bad)]) == 2
    assert "truth.json" in capsys.readouterr().err


def test_exclusion_margin_grows_the_manual_masks_but_leaves_no_removal_alone(plate, tmp_path):
    with_cells = _edited_plate(plate, tmp_path, lambda table: table)
    assert _run(plate, tmp_path, manifest=with_cells, extra=["--exclusion-margin", "0"]) == 0
    tight = pd.read_csv(tmp_path / "out" / "wells.csv")
    assert _run(plate, tmp_path, manifest=with_cells, extra=["--exclusion-margin", "3"]) == 0
    ringed = pd.read_csv(tmp_path / "out" / "wells.csv")
    none_tight, none_ringed = (t[t["mode"] == "none"].reset_index(drop=True) for t in (tight, ringed))
    pd.testing.assert_frame_equal(none_tight, none_ringed)
    # the same margin applies to the model's masks (one code path); the tiny model here predicts none
    means = [t.loc[t["mode"] == "manual", ["cell_mean", "background_mean"]].to_numpy() for t in (tight, ringed)]
    assert np.isfinite(means[0]).any() and not np.allclose(*means, equal_nan=True)


def test_negative_exclusion_margin_is_one_clear_line(plate, tmp_path, capsys):
    assert _run(plate, tmp_path, extra=["--exclusion-margin", "-2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--exclusion-margin" in err, err
    assert not (tmp_path / "out").exists()
