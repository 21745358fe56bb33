"""analysis.defaults: shipped and cached default models are reused only while their settings are unchanged."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis import defaults
from artseg.datasets import generation_settings
from artseg.synth import GENERATOR_VERSION
from artseg.errors import ArtsegInputError
from artseg.io import write_image, write_mask

TINY = {
    "base": "fast",
    "unet": {"width": 4, "levels": 2, "convs_per_block": 1},
    "unet_train": {"epochs": 1, "batch_size": 4},
    "input": {"unet_patch": 32},
    "tiling": {"tile_size": 32, "overlap": 8},
    "postprocess": {"cutoff_grid": [0.5], "min_object_size_grid": [0]},
}


def _manifest(tmp_path) -> str:
    rng = np.random.default_rng(0)
    rows = []
    for index in range(6):
        image = (1000 + 50 * rng.standard_normal((32, 32))).astype(np.float32)
        mask = np.zeros((32, 32), bool)
        mask[8:16, 8:16] = index % 2 == 1
        write_image(tmp_path / f"img{index}.tif", image)
        write_mask(tmp_path / f"img{index}_mask.png", mask)
        rows.append({"image": f"img{index}.tif", "mask": f"img{index}_mask.png",
                     "split": "val" if index >= 4 else "train"})
    path = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_train_or_load_reuses_the_cache_and_retrains_when_settings_change(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    manifest, model_dir = _manifest(tmp_path), tmp_path / "models" / "pixels"
    first = defaults.train_or_load(manifest, model_dir, config=str(config), strong=True, what="pixel model")
    weights_time = {path.name: path.stat().st_mtime_ns for path in model_dir.iterdir()}
    assert "training the pixel model" in capsys.readouterr().out

    again = defaults.train_or_load(manifest, model_dir, config=str(config), strong=True, what="pixel model")
    assert "training" not in capsys.readouterr().out
    assert {path.name: path.stat().st_mtime_ns for path in model_dir.iterdir()} == weights_time
    assert again.config == first.config

    # Score-CAM settings do not touch a strongly supervised model: the cache stays valid
    unchanged = defaults.train_or_load(manifest, model_dir, config=str(config), strong=True, what="pixel model",
                                       overrides={"cam": {"flips": "all"}})
    assert "training" not in capsys.readouterr().out and unchanged.config == first.config

    changed = defaults.train_or_load(manifest, model_dir, config=str(config), strong=True, what="pixel model",
                                     overrides={"unet_train": {"epochs": 2}})
    assert "other settings or data; not used" in capsys.readouterr().out
    assert changed.config.unet_train.epochs == 2
    assert defaults.train_or_load(manifest, model_dir, config=str(config), strong=True, what="pixel model",
                                  overrides={"unet_train": {"epochs": 2}}).config.unet_train.epochs == 2
    assert not model_dir.with_name("pixels.partial").exists()


def test_train_or_load_retrains_when_its_dataset_was_regenerated(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    manifest, model_dir = _manifest(tmp_path), tmp_path / "models" / "pixels"
    record = tmp_path / "generation.json"
    record.write_text(json.dumps({"preset": "cho_m4r", "generator_version": 1}))
    defaults.train_or_load(manifest, model_dir, config=str(config), strong=True, what="pixel model")
    defaults.train_or_load(manifest, model_dir, config=str(config), strong=True, what="pixel model")
    assert capsys.readouterr().out.count("training the pixel model") == 1

    record.write_text(json.dumps({"preset": "cho_m4r", "generator_version": 2}))
    defaults.train_or_load(manifest, model_dir, config=str(config), strong=True, what="pixel model")
    assert "other settings or data; not used" in capsys.readouterr().out
    assert json.loads((model_dir / "training_data.json").read_text())["generator_version"] == 2


def test_train_or_load_prefers_the_shipped_model_and_retrain_trains_anew(tmp_path, capsys, monkeypatch):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    manifest, model_dir = _manifest(tmp_path), tmp_path / "models" / "pixels"
    defaults.train_or_load(manifest, model_dir, config=str(config), strong=True, what="pixel model")
    shipped = tmp_path / "weights"
    shipped.mkdir()
    model_dir.rename(shipped / "pixels")  # now only the shipped folder exists
    monkeypatch.setattr(defaults, "SHIPPED_MODELS", shipped)
    capsys.readouterr()

    used = defaults.train_or_load(manifest, model_dir, config=str(config), strong=True, what="pixel model")
    assert f"using the shipped pixel model ({shipped / 'pixels'})" in capsys.readouterr().out
    assert not model_dir.exists() and used.config.unet_train.precision == "fp32"

    retrained = defaults.train_or_load(manifest, model_dir, config=str(config), strong=True, what="pixel model",
                                       retrain=True)
    assert "training the pixel model" in capsys.readouterr().out and (model_dir / "config.json").exists()
    assert retrained.config == used.config

    # a shipped model trained with other settings is passed over for a fitting cached one
    other = defaults.train_or_load(manifest, model_dir, config=str(config), strong=True, what="pixel model",
                                   overrides={"unet_train": {"epochs": 2}})
    out = capsys.readouterr().out
    assert "pixels was trained with other settings or data; not used" in out and other.config.unet_train.epochs == 2


def test_ensure_dataset_regenerates_a_cache_made_with_other_settings(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ARTSEG_CACHE", str(tmp_path))
    root = defaults.ensure_dataset("cho_m4r", 3, n_images=4, size=64)
    assert root.name == "cho_m4r-n4-seed3-64px-plate" and len(pd.read_csv(root / "manifest.csv")) == 4
    assert (root / "plate.csv").is_file() and "generating" in capsys.readouterr().out
    assert defaults.ensure_dataset("cho_m4r", 3, n_images=4, size=64) == root
    assert "generating" not in capsys.readouterr().out
    assert json.loads((root / "generation.json").read_text())["generator_version"] == GENERATOR_VERSION
    (root / "generation.json").unlink()  # a folder from before the record existed is stale
    defaults.ensure_dataset("cho_m4r", 3, n_images=4, size=64)
    assert "generating" in capsys.readouterr().out and (root / "generation.json").exists()
    assert [p.name for p in root.parent.iterdir()] == [root.name]  # no staging folder left


class _ThresholdModel:
    """Stands in for a pixel U-Net: foreground = pixels above a level."""

    def __init__(self, level: float):
        self.level = level

    def predict_mask(self, image):
        return image > self.level


def test_held_out_scores_pool_the_test_rows_only(tmp_path):
    rows = []
    for index, split in enumerate(["train", "test", "test"]):
        image = np.zeros((8, 8), np.float32)
        image[:4] = 10.0           # true foreground, found
        image[4, :2 + index] = 10.0  # false positives (train row: never counted)
        mask = np.zeros((8, 8), bool)
        mask[:4] = True
        mask[7, :4] = True         # missed foreground
        write_image(tmp_path / f"i{index}.tif", image)
        write_mask(tmp_path / f"m{index}.png", mask)
        rows.append({"image": f"i{index}.tif", "mask": f"m{index}.png", "split": split})
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    scores = defaults.held_out_scores(_ThresholdModel(5.0), manifest)
    assert scores["n_fields"] == 2
    assert (scores["tp"], scores["fp"], scores["fn"]) == (64, 3 + 4, 8)
    assert scores["f1"] == pytest.approx(2 * 64 / (2 * 64 + 7 + 8))
    with pytest.raises(ArtsegInputError, match="no 'val' rows"):
        defaults.held_out_scores(_ThresholdModel(5.0), manifest, split="val")


def test_analyses_artifact_model_is_fast_with_plain_score_cam_maps():
    from analysis import nuclei_impact
    from artseg.config import config_from_dict, config_to_dict, load_config, merge_overrides

    fast = config_to_dict(load_config("fast"))
    pinned = config_to_dict(config_from_dict(merge_overrides(fast, defaults.ANALYSIS_ARTIFACT_OVERRIDES,
                                                             source="test")))
    assert pinned["cam"]["flips"] == "none" and pinned["cam"]["stage_candidates"] == ["last_stage", "layer3"]
    assert fast["cam"]["flips"] == "horizontal"  # fast itself keeps the session-7 recipe
    # everything else is fast's
    assert {k: v for k, v in pinned.items() if k != "cam"} == {k: v for k, v in fast.items() if k != "cam"}
    assert {k: v for k, v in pinned["cam"].items() if k not in ("flips", "stage_candidates")} == {
        k: v for k, v in fast["cam"].items() if k not in ("flips", "stage_candidates")}
    assert nuclei_impact.ARTIFACT_MODEL_OVERRIDES["cam"] == defaults.ANALYSIS_ARTIFACT_OVERRIDES["cam"]


def _shipped_recipes(seed: int = 0) -> dict:
    """Each shipped model folder: the configuration and the generated data it must have been made with."""
    from analysis import nuclei_impact

    size, images = nuclei_impact.DEFAULT_FIELD_SIZE, nuclei_impact.DEFAULT_IMAGES
    plate = generation_settings("cho_m4r", seed, defaults.DEFAULT_TRAINING_IMAGES)
    nuclei = generation_settings("seven_cell_lines", seed, images, size)
    return {
        f"artseg_cho_m4r_fast_seed{seed}": (
            defaults.default_model_config(seed=seed, overrides=defaults.ANALYSIS_ARTIFACT_OVERRIDES), plate),
        f"cells_cho_m4r_seed{seed}": (
            defaults.default_model_config(strong=True, seed=seed, overrides=defaults.PIXEL_MODEL_OVERRIDES), plate),
        f"artseg_seven_cell_lines_{size}px_fast_seed{seed}": (
            defaults.default_model_config(seed=seed, overrides=nuclei_impact.ARTIFACT_MODEL_OVERRIDES), nuclei),
        f"nuclei_seven_cell_lines_{size}px_seed{seed}": (
            defaults.default_model_config(strong=True, seed=seed, overrides=nuclei_impact.NUCLEI_MODEL_OVERRIDES),
            nuclei),
    }


@pytest.mark.parametrize("name", sorted(_shipped_recipes()))
def test_shipped_models_match_the_current_recipe_and_data(name):
    """A change to `fast`, the analyses' overrides or the generator makes the shipped weights stale:
    then `python -m analysis.ship_models` must be run again (and its result committed)."""
    from artseg.segmenter import load_segmenter

    folder = defaults.SHIPPED_MODELS / name
    config, data = _shipped_recipes()[name]
    shipped = load_segmenter(folder)  # checks every weight file's SHA-256
    assert defaults._training_settings(shipped.config) == defaults._training_settings(config), \
        f"{folder} is stale: rerun python -m analysis.ship_models"
    assert json.loads((folder / "training_data.json").read_text()) == data
    recipe = json.loads((folder / "recipe.json").read_text())
    assert recipe["command"].startswith("python -m analysis.ship_models") and recipe["seed"] == 0
    assert recipe["held_out_scores"]["n_fields"] > 0
    assert sum(path.stat().st_size for path in folder.iterdir()) < 2_000_000


def test_remembered_masks_are_keyed_by_model_and_image(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    manifest = _manifest(tmp_path)
    model = defaults.train_or_load(manifest, tmp_path / "models" / "pixels", config=str(config), strong=True,
                                   what="pixel model")
    images = [np.random.default_rng(seed).normal(1000, 50, (32, 32)).astype(np.float32) for seed in range(3)]
    first = defaults.RememberedMasks(model, tmp_path / "masks")
    masks = [first.predict_mask(image) for image in images]
    assert first.n_computed == 3 and all(np.array_equal(m, model.predict_mask(i)) for m, i in zip(masks, images))
    first.save()
    again = defaults.RememberedMasks(model, tmp_path / "masks")
    assert all(np.array_equal(again.predict_mask(i), m) for i, m in zip(images, masks)) and again.n_computed == 0
    again.predict_mask(images[0] + 1)  # other pixels: predicted anew
    assert again.n_computed == 1
    model.calibration.cutoff = 0.9  # another calibration is another model
    assert defaults.RememberedMasks(model, tmp_path / "masks").path != first.path
