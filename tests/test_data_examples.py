"""The small committed inputs of data/ are what they say they are."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from artseg import platemap
from artseg.cli import main
from artseg.config import load_config
from artseg.io import read_image_manifest

DATA = Path(__file__).resolve().parents[1] / "data"


def test_the_example_manifest_predicts_with_the_shipped_model(tmp_path):
    manifest = read_image_manifest(DATA / "examples" / "fields" / "manifest.csv", require_label=True)
    assert manifest["label"].tolist() == [0, 1, 0, 1]
    model = DATA / "weights" / "artseg_cho_m4r_fast_seed0"
    assert main(["predict", "--model", str(model), "--input", str(DATA / "examples" / "fields" / "manifest.csv"),
                 "--out", str(tmp_path), "--quiet"]) == 0
    assert len(pd.read_csv(tmp_path / "predictions.csv")) == 4


def test_the_example_plate_maps_make_one_table():
    maps = {}
    for variable, name in (("experiment", "experiment.csv"), ("ligand", "ligand.csv"),
                           ("concentration", "concentration_nM.csv")):
        path = DATA / "examples" / "plate_maps" / name
        maps[variable] = (platemap.parse_grid_map(platemap.read_csv_cells(path), name), name)
    table = platemap.combine_plate_maps(maps, concentration_unit="nM")
    assert len(table) == 20 and set(table["ligand"]) == {"atropine", "pirenzepine"}
    assert table["concentration"].max() == 3e-6


def test_the_example_configs_load():
    assert load_config(DATA / "configs" / "fast_fp32.json").classifier_train.precision == "fp32"
    cells = load_config(DATA / "configs" / "cells_unet.json")
    assert cells.mode == "strong" and cells.input.unet_patch == 256


def test_the_cells_config_is_the_ligand_analysis_recipe():
    import dataclasses

    from analysis import defaults

    recipe = defaults.default_model_config(strong=True, overrides=defaults.PIXEL_MODEL_OVERRIDES)
    file = load_config(DATA / "configs" / "cells_unet.json")
    precision = {name: dataclasses.replace(getattr(file, name), precision="fp32")
                 for name in ("classifier_train", "unet_train")}
    file = dataclasses.replace(file, name=recipe.name, **precision,
                               cam=dataclasses.replace(file.cam, precision="fp32"))
    assert file == recipe
