"""The six comparison models behind one protocol (artseg.comparison), on a tiny dataset."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch

from artseg.comparison import DETECTOR_NAMES, Detector, baseline_settings, build_detectors, detector_slug
from artseg.comparison.baselines import PaDiM, PaDiMSettings
from artseg.config import config_from_dict, config_to_dict, load_config, merge_overrides
from artseg.errors import ArtsegInputError
from artseg.io import normalize_percentile, read_image, read_image_manifest, write_mask

# One-epoch, few-filter settings: the plumbing is under test here, not the learning.
TINY_OVERRIDES = {
    "classifier": {"depth": 18, "base_width": 4},
    "unet": {"width": 4, "levels": 2, "convs_per_block": 1},
    # fp32: bf16 kernels are compiled per shape on first use, which costs more than tiny networks run.
    "classifier_train": {"epochs": 1, "batch_size": 8, "precision": "fp32"},
    "unet_train": {"epochs": 1, "batch_size": 8, "precision": "fp32"},
    "input": {"classifier_size": 64, "unet_patch": 64},
    "cam": {"batch_size": 32, "precision": "fp32"},
    "postprocess": {"cutoff": 0.5, "min_object_size": 0},
    "tiling": {"tile_size": 64, "overlap": 8, "batch_size": 4},
}
TINY_BASELINES = {
    "AE": {"image_size": 64, "patch_size": 32, "latent_dim": 4, "base_width": 4, "training_patches": 16,
           "epochs": 1, "batch_size": 8, "inference_stride": 16, "precision": "fp32"},
    "PatchSVDD": {"image_size": 64, "small_patch_size": 8, "width_scale": 0.25, "embedding_dim": 8,
                  "small_stride": 4, "big_stride": 8, "epochs": 1, "batch_size": 4, "precision": "fp32"},
    "PaDiM": {"image_size": 64, "num_features": 8},
}


def tiny_config():
    """The fast configuration shrunk to a few seconds of training."""
    return config_from_dict(merge_overrides(config_to_dict(load_config("fast")), TINY_OVERRIDES, source="test"),
                            source="test")


def make_tiny_dataset(folder: Path, n_images: int = 16, size: int = 64, seed: int = 0) -> Path:
    """Noisy fields, every other one with a dark disc artifact; half train, a quarter val, a quarter test."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n_train, n_val = n_images // 2, n_images // 4
    splits = ["train"] * n_train + ["val"] * n_val + ["test"] * (n_images - n_train - n_val)
    rows_grid, cols_grid = np.mgrid[:size, :size]
    rows = []
    for index, split in enumerate(splits):
        label = index % 2
        image = 1000 + 50 * rng.standard_normal((size, size))
        mask = np.zeros((size, size), bool)
        if label:
            centre_row, centre_col = rng.integers(12, size - 12, 2)
            radius = int(rng.integers(5, 10))
            mask = (rows_grid - centre_row) ** 2 + (cols_grid - centre_col) ** 2 <= radius**2
            image[mask] -= 400
        tifffile.imwrite(folder / f"field{index:02d}.tif", image.astype(np.uint16))
        write_mask(folder / f"mask{index:02d}.png", mask)
        rows.append({"image": f"field{index:02d}.tif", "label": label,
                     "mask": f"mask{index:02d}.png" if label else "", "split": split})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny networks run ~10x faster on one thread, and far faster still on a shared, busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_manifest(tmp_path_factory):
    return read_image_manifest(make_tiny_dataset(tmp_path_factory.mktemp("tiny")), require_label=True)


@pytest.fixture(scope="module")
def fitted(tiny_manifest):
    detectors = build_detectors(tiny_config(), DETECTOR_NAMES, baseline_settings=TINY_BASELINES)
    for detector in detectors:
        detector.fit(tiny_manifest, seed=0, progress=False)
    return {detector.name: detector for detector in detectors}


@pytest.mark.parametrize("name", DETECTOR_NAMES)
@pytest.mark.parametrize("shape", [(64, 64), (64, 80)])
def test_maps_are_unit_range_float32_of_the_image_shape(fitted, name, shape):
    image = 1000 + 50 * np.random.default_rng(1).standard_normal(shape)
    image[20:30, 20:30] -= 400
    output = fitted[name].predict(image)
    assert output.probability_map.shape == shape
    assert output.probability_map.dtype == np.float32
    assert 0.0 <= output.probability_map.min() and output.probability_map.max() <= 1.0
    assert 0.0 <= output.image_score <= 1.0
    np.testing.assert_array_equal(fitted[name].probability_map(image), output.probability_map)
    assert fitted[name].image_score(image) == output.image_score


def test_scorecam_models_and_padim_share_one_trained_classifier(fitted):
    shared = fitted["ScoreCAM-U-Net"].shared
    assert fitted["ScoreCAM"].shared is shared
    classifier_state = shared.segmenter.classifier.state_dict()
    backbone_state = fitted["PaDiM"].backbone.state_dict()
    for key, value in classifier_state.items():
        torch.testing.assert_close(backbone_state[key], value)


def test_classifier_models_score_images_with_the_classifier(fitted, tiny_manifest):
    segmenter = fitted["ScoreCAM-U-Net"].shared.segmenter
    image = read_image(tiny_manifest["image"].iloc[-1])
    probability = segmenter.classifier_probability(normalize_percentile(image, 1.0, 99.8))
    assert fitted["ScoreCAM-U-Net"].image_score(image) == pytest.approx(probability, abs=1e-6)
    assert fitted["ScoreCAM"].image_score(image) == pytest.approx(probability, abs=1e-6)


def test_gate_zeroes_the_maps_of_images_called_clean(fitted, tiny_manifest, monkeypatch):
    shared = fitted["ScoreCAM-U-Net"].shared
    image = read_image(tiny_manifest["image"].iloc[-1])
    calibration = shared.segmenter.calibration
    monkeypatch.setattr(shared.segmenter, "calibration", dataclasses.replace(calibration, gate=0.0))
    assert fitted["ScoreCAM"].probability_map(image).max() > 0.0
    monkeypatch.setattr(shared.segmenter, "calibration", dataclasses.replace(calibration, gate=1.0))
    for name in ("ScoreCAM", "ScoreCAM-U-Net"):
        assert not fitted[name].probability_map(image).any()


def test_anomaly_baselines_fit_on_clean_training_images_only(tiny_manifest, monkeypatch):
    seen = {}
    (detector,) = build_detectors(tiny_config(), ["AE"], baseline_settings=TINY_BASELINES)
    monkeypatch.setattr(detector, "fit_clean", lambda clean_images, *, seed, progress: seen.update(images=clean_images))
    detector.fit(tiny_manifest, seed=0, progress=False)
    expected = tiny_manifest[(tiny_manifest["split"] == "train") & (tiny_manifest["label"] == 0)]
    assert len(seen["images"]) == len(expected) > 0
    for image, path in zip(seen["images"], expected["image"]):
        np.testing.assert_allclose(image, normalize_percentile(read_image(path), 1.0, 99.8))


def test_segmenters_never_see_test_rows(tiny_manifest, monkeypatch):
    from artseg import ArtifactSegmenter, PixelSegmenter

    seen = []
    for segmenter_class in (ArtifactSegmenter, PixelSegmenter):
        monkeypatch.setattr(segmenter_class, "fit", lambda self, manifest, progress=True: seen.append(manifest))
    for detector in build_detectors(tiny_config(), ["U-Net", "ScoreCAM-U-Net"]):
        detector.fit(tiny_manifest, seed=0, progress=False)
    assert len(seen) == 2
    for manifest in seen:
        assert "test" not in set(manifest["split"])
        assert len(manifest) == int((tiny_manifest["split"] != "test").sum())


def test_saved_detectors_reload_to_identical_maps(fitted, tiny_manifest, tmp_path):
    image = read_image(tiny_manifest["image"].iloc[-1])
    for name in DETECTOR_NAMES:  # ScoreCAM-U-Net is saved before ScoreCAM, which then refers to it
        fitted[name].save(tmp_path / name)
    for name in DETECTOR_NAMES:
        (fresh,) = build_detectors(tiny_config(), [name], baseline_settings=TINY_BASELINES)
        assert Detector.is_saved(tmp_path / name)
        fresh.load(tmp_path / name)
        np.testing.assert_allclose(fresh.probability_map(image), fitted[name].probability_map(image), atol=1e-6)
        assert fresh.fit_seconds == pytest.approx(fitted[name].fit_seconds)


def test_saved_models_are_sha256_checked_model_folders(fitted, tmp_path):
    for name in ("AE", "U-Net"):
        fitted[name].save(tmp_path / name)
    document = json.loads((tmp_path / "AE" / "config.json").read_text())
    assert document["format"] == "artseg-model"
    assert document["metadata"]["comparison"]["model"] == "AE"
    assert document["metadata"]["comparison"]["settings"] == fitted["AE"].settings.to_dict()
    segmenter = json.loads((tmp_path / "U-Net" / "segmenter" / "config.json").read_text())
    assert segmenter["format"] == "artseg-model" and set(segmenter["networks"]) == {"unet"}
    weights = tmp_path / "AE" / document["tensors"]["state"]["file"]
    weights.write_bytes(weights.read_bytes() + b"\0")
    (fresh,) = build_detectors(tiny_config(), ["AE"], baseline_settings=TINY_BASELINES)
    with pytest.raises(ArtsegInputError, match="SHA-256"):
        fresh.load(tmp_path / "AE")


def test_loading_a_folder_of_another_model_is_refused(fitted, tmp_path):
    fitted["AE"].save(tmp_path / "ae")
    (padim,) = build_detectors(tiny_config(), ["PaDiM"], baseline_settings=TINY_BASELINES)
    with pytest.raises(ArtsegInputError, match="holds model 'AE'"):
        padim.load(tmp_path / "ae")
    with pytest.raises(ArtsegInputError, match="no saved comparison model"):
        padim.load(tmp_path / "nothing-here")
    segmenter_folder = tmp_path / "segmenter"
    fitted["U-Net"].segmenter.save(segmenter_folder)
    with pytest.raises(ArtsegInputError, match="not a saved comparison model"):
        padim.load(segmenter_folder)


@pytest.mark.parametrize("old_files", [
    {"detector.json": {"format": "artseg-benchmark-detector", "version": 1, "model": "AE"}},
    {"config.json": {"format": "artseg-anomaly-detector", "version": 1, "detector": "ssim_ae"}, "weights.pt": None},
])
def test_folders_of_the_old_formats_ask_to_refit(tmp_path, old_files):
    for name, content in old_files.items():
        (tmp_path / name).write_text("" if content is None else json.dumps(content))
    (detector,) = build_detectors(tiny_config(), ["AE"])
    assert Detector.is_saved(tmp_path)
    with pytest.raises(ArtsegInputError, match="saved by an older artseg .*delete the folder to refit") as error:
        detector.load(tmp_path)
    assert "\n" not in str(error.value)


def test_baseline_preset_is_an_argument_not_the_config_name():
    paper_named = dataclasses.replace(tiny_config(), name="paper")
    (fast_ae,) = build_detectors(paper_named, ["AE"])
    assert fast_ae.settings == baseline_settings("AE", "fast")
    (paper_ae,) = build_detectors(tiny_config(), ["AE"], baseline_preset="paper")
    assert paper_ae.settings == baseline_settings("AE", "paper") != fast_ae.settings
    assert baseline_settings("PaDiM", "fast") == PaDiMSettings(image_size=256, backbone_width=32)
    with pytest.raises(ArtsegInputError, match="unknown baseline preset 'medium'"):
        build_detectors(tiny_config(), ["AE"], baseline_preset="medium")


def test_every_model_has_its_folder_name():
    assert [detector_slug(name) for name in DETECTOR_NAMES] == [
        "unet", "scorecam_unet", "scorecam", "ae", "padim", "patchsvdd"]


def test_bad_names_settings_and_images_are_input_errors(fitted):
    with pytest.raises(ArtsegInputError, match="unknown model 'SAM'"):
        build_detectors(tiny_config(), ["U-Net", "SAM"])
    with pytest.raises(ArtsegInputError, match="more than once"):
        build_detectors(tiny_config(), ["AE", "AE"])
    with pytest.raises(ArtsegInputError, match="non-baseline"):
        build_detectors(tiny_config(), ["U-Net"], baseline_settings={"U-Net": {}})
    with pytest.raises(ArtsegInputError, match="2-D numeric image"):
        fitted["AE"].predict(np.zeros((2, 64, 64)))


def test_unfitted_detectors_say_so():
    for detector in build_detectors(tiny_config(), DETECTOR_NAMES):
        with pytest.raises(ArtsegInputError, match="not trained|fit\\(\\)"):
            detector.predict(np.zeros((64, 64), np.float32))


def test_padim_keeps_all_channels_of_a_narrow_classifier(fitted, tiny_manifest):
    settings = {**TINY_BASELINES["PaDiM"], "num_features": 1000}
    padim = PaDiM(settings, shared=fitted["PaDiM"].shared)
    padim.fit(tiny_manifest, seed=0, progress=False)
    # ResNet-18 of base width 4: stages 1-3 have 4 + 8 + 16 channels.
    assert padim.channel_index.numel() == 28
