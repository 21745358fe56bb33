"""ScoreCAM-U-Net pipeline: pseudo-labels, splits, fit/predict/save/load, gate and strong mode."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from artseg.config import config_from_dict, load_config
from artseg.errors import ArtsegInputError
from artseg.io import read_image_manifest, write_image, write_mask
from artseg.pipeline import (
    ArtifactSegmenter,
    Prediction,
    assign_splits,
    make_pseudo_masks,
    normalize,
)
from artseg.postprocess import binarize, remove_small

TINY = {
    "classifier": {"depth": 18, "base_width": 4},
    "unet": {"width": 4, "levels": 2, "convs_per_block": 1},
    "classifier_train": {"epochs": 2, "batch_size": 8},
    "unet_train": {"epochs": 2, "batch_size": 8},
    "input": {"classifier_size": 64, "unet_patch": 64},
    "tiling": {"tile_size": 64, "overlap": 16},
    "postprocess": {"cutoff_grid": [0.1, 0.3, 0.5, 0.7], "min_object_size_grid": [0, 10]},
    # the paper's pseudo-labels (fixed 0.05, no self-training): these tests pin that behaviour
    "cam": {"pseudo_method": "fixed", "refine": "none", "self_training_rounds": 0, "unet_loss": "bce"},
}


def tiny_config(**overrides):
    from artseg.config import config_to_dict, merge_overrides

    base = config_to_dict(load_config("fast"))
    return config_from_dict(merge_overrides(merge_overrides(base, TINY, source="tiny"), overrides, source="test"))


def toy_images(n=16, size=64, seed=0):
    """Noisy 16-bit-like fields; odd rows carry a dark disc (the artifact) and its mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, labels, masks = [], [], []
    for index in range(n):
        image = 1000 + 80 * rng.standard_normal((size, size))
        mask = np.zeros((size, size), bool)
        if index % 2:
            cy, cx = rng.integers(14, size - 14, 2)
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < rng.integers(6, 11) ** 2
            image[mask] -= 600
        images.append(image.astype(np.float32))
        labels.append(index % 2)
        masks.append(mask)
    return images, np.array(labels), masks


class ConstantLogit(nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, x):
        return torch.full((x.shape[0], 1), self.value)


@pytest.fixture(scope="module")
def manifest_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    images, labels, masks = toy_images()
    rows = []
    for index, (image, label, mask) in enumerate(zip(images, labels, masks)):
        write_image(root / "images" / f"f{index:02d}.tif", image.astype(np.uint16))
        mask_name = ""
        if label:
            mask_name = f"masks/f{index:02d}.png"
            write_mask(root / mask_name, mask)
        split = "val" if index in (0, 1, 2, 3) else "train"
        rows.append({"image": f"images/f{index:02d}.tif", "label": label, "mask": mask_name, "split": split})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


@pytest.fixture(scope="module")
def weak_segmenter(manifest_path):
    manifest = read_image_manifest(manifest_path, require_label=True)
    return ArtifactSegmenter(tiny_config()).fit(manifest, progress=False)


@pytest.fixture(scope="module")
def strong_segmenter():
    images, labels, masks = toy_images(seed=1)
    config = tiny_config(mode="strong", input={"unet_scale": 0.5, "unet_patch": 32})
    normalized = [normalize(image, config) for image in images]
    return ArtifactSegmenter(config).fit_arrays(normalized, labels, masks=masks, progress=False)


def test_make_pseudo_masks_thresholds_artifact_maps_and_empties_clean_ones():
    maps = [np.array([[0.0, 0.04, 0.06, 1.0]]), np.full((2, 3), 0.9)]
    masks = make_pseudo_masks(maps, [1, 0], tiny_config())
    assert masks[0].tolist() == [[False, False, True, True]]
    assert masks[1].shape == (2, 3) and not masks[1].any()
    stricter = make_pseudo_masks(maps, [1, 0], tiny_config(cam={"pseudo_cutoff": 0.5}))
    assert stricter[0].tolist() == [[False, False, False, True]]
    with pytest.raises(ArtsegInputError, match="labels"):
        make_pseudo_masks(maps, [1], tiny_config())


def test_assign_splits_is_seeded_stratified_and_respects_given_splits():
    labels = np.array([0] * 10 + [1] * 10)
    splits, source = assign_splits(labels, None, val_fraction=0.2, seed=0)
    assert source == "seeded"
    assert [(splits[labels == k] == "val").sum() for k in (0, 1)] == [2, 2]
    assert np.array_equal(splits, assign_splits(labels, None, val_fraction=0.2, seed=0)[0])
    assert not np.array_equal(splits, assign_splits(labels, None, val_fraction=0.2, seed=1)[0])
    given = ["test"] * 4 + ["train"] * 16
    completed, source = assign_splits(labels, given, val_fraction=0.25, seed=0)
    assert source == "manifest+seeded"
    assert list(completed[:4]) == ["test"] * 4 and (completed == "val").sum() >= 2
    full = ["val"] * 5 + ["train"] * 15
    kept, source = assign_splits(labels, full, val_fraction=0.2, seed=0)
    assert list(kept) == full and source == "manifest"


def test_weak_fit_records_training_and_calibration(weak_segmenter):
    summary = weak_segmenter.summary
    assert summary["split_source"] == "manifest"
    assert (summary["n_train"], summary["n_val"]) == (12, 4)
    assert summary["classifier"]["epochs_run"] == 2 and summary["unet"]["epochs_run"] == 2
    assert 0.0 <= summary["pseudo_mask_fraction"] <= 1.0
    calibration = weak_segmenter.calibration
    assert calibration.selected_on == "pixel_masks"
    assert calibration.cutoff in TINY["postprocess"]["cutoff_grid"]
    assert calibration.min_object_size in TINY["postprocess"]["min_object_size_grid"]


def test_predict_returns_maps_at_the_image_size(weak_segmenter):
    image = toy_images(n=2, seed=5)[0][1][:50, :41]
    prediction = weak_segmenter.predict(image)
    assert isinstance(prediction, Prediction)
    assert prediction.probability.shape == prediction.mask.shape == (50, 41)
    assert prediction.mask.dtype == bool and 0.0 <= prediction.p_artifact <= 1.0
    assert prediction.probability.min() >= 0.0 and prediction.probability.max() <= 1.0
    assert weak_segmenter.predict_probability_map(image).shape == (50, 41)
    cam = weak_segmenter.cam_map(image)
    assert cam.shape == (50, 41) and cam.min() >= 0.0 and cam.max() <= 1.0


def test_gate_decides_whether_the_unet_runs(weak_segmenter, monkeypatch):
    image = toy_images(n=2, seed=6)[0][1]
    monkeypatch.setattr(weak_segmenter, "classifier", ConstantLogit(-8.0))
    clean = weak_segmenter.predict(image)
    assert clean.p_artifact < 0.5 and not clean.contains_artifact
    assert not clean.mask.any() and not clean.probability.any()
    monkeypatch.setattr(weak_segmenter, "classifier", ConstantLogit(8.0))
    gated_in = weak_segmenter.predict(image)
    probability = weak_segmenter.predict_probability_map(image)
    calibration = weak_segmenter.calibration
    assert gated_in.contains_artifact and gated_in.p_artifact > 0.5
    np.testing.assert_array_equal(gated_in.probability, probability)
    expected = remove_small(binarize(probability, calibration.cutoff), calibration.min_object_size)
    np.testing.assert_array_equal(gated_in.mask, expected)


def test_save_load_round_trip_gives_identical_predictions(weak_segmenter, tmp_path):
    folder = weak_segmenter.save(tmp_path / "model")
    assert {"config.json", "classifier.pt", "unet.pt", "classifier_log.csv", "unet_log.csv"} <= {
        p.name for p in folder.iterdir()}
    loaded = ArtifactSegmenter.load(folder)
    assert loaded.config == weak_segmenter.config and loaded.calibration == weak_segmenter.calibration
    for image in toy_images(n=4, seed=7)[0]:
        before, after = weak_segmenter.predict(image), loaded.predict(image)
        assert before.p_artifact == after.p_artifact
        np.testing.assert_array_equal(before.probability, after.probability)
        np.testing.assert_array_equal(before.mask, after.mask)


def test_without_pixel_masks_cutoffs_are_chosen_on_pseudo_masks():
    images, labels, _ = toy_images(n=12, seed=2)
    config = tiny_config(classifier_train={"epochs": 1}, unet_train={"epochs": 1})
    normalized = [normalize(image, config) for image in images]
    segmenter = ArtifactSegmenter(config).fit_arrays(normalized, labels, progress=False)
    assert segmenter.calibration.selected_on == "pseudo_masks"
    assert segmenter.summary["split_source"] == "seeded"


def test_strong_mode_has_no_classifier_and_calls_images_by_mask(strong_segmenter, tmp_path):
    assert strong_segmenter.classifier is None
    assert strong_segmenter.calibration.selected_on == "pixel_masks"
    image = toy_images(n=2, seed=8)[0][1]
    prediction = strong_segmenter.predict(image)
    assert prediction.probability.shape == image.shape
    assert prediction.contains_artifact == bool(prediction.mask.any())
    assert prediction.p_artifact == pytest.approx(float(prediction.probability.max()))
    loaded = ArtifactSegmenter.load(strong_segmenter.save(tmp_path / "strong"))
    np.testing.assert_array_equal(loaded.predict(image).probability, prediction.probability)


def test_same_seed_gives_the_same_model():
    images, labels, masks = toy_images(n=8, seed=3)
    config = tiny_config(mode="strong", unet_train={"epochs": 1})
    normalized = [normalize(image, config) for image in images]
    runs = [ArtifactSegmenter(config).fit_arrays(normalized, labels, masks=masks, progress=False) for _ in range(2)]
    first, second = (run.unet.state_dict() for run in runs)
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_bad_training_inputs_are_reported(manifest_path):
    manifest = read_image_manifest(manifest_path, require_label=True)
    with pytest.raises(ArtsegInputError, match="label"):
        ArtifactSegmenter(tiny_config()).fit(manifest.drop(columns=["label"]), progress=False)
    unmasked = manifest.assign(mask=None)
    with pytest.raises(ArtsegInputError, match="strong mode needs a 'mask'"):
        ArtifactSegmenter(tiny_config(mode="strong")).fit(unmasked, progress=False)
    one_class = manifest[manifest["label"] == 1]
    with pytest.raises(ArtsegInputError, match="both artifact and clean"):
        ArtifactSegmenter(tiny_config()).fit(one_class, progress=False)


def test_unfitted_or_missing_models_and_bad_images_are_reported(weak_segmenter, tmp_path):
    with pytest.raises(ArtsegInputError, match="not fitted"):
        ArtifactSegmenter(tiny_config()).predict(np.zeros((64, 64), np.float32))
    with pytest.raises(ArtsegInputError, match="does not exist"):
        ArtifactSegmenter.load(tmp_path / "missing")
    with pytest.raises(ArtsegInputError, match="2-D"):
        weak_segmenter.predict(np.zeros((3, 64, 64), np.float32))


def test_builtin_configs_carry_the_paper_numbers_and_the_fast_ones():
    paper, fast = load_config("paper"), load_config("fast")
    assert paper.classifier["depth"] == 50 and paper.unet["width"] == 64 and paper.unet["levels"] == 5
    assert paper.unet["convs_per_block"] == 3 and paper.classifier_train.epochs == paper.unet_train.epochs == 150
    assert paper.classifier_train.lr == 0.002 and paper.classifier_train.plateau_patience == 10
    assert paper.cam.pseudo_cutoff == 0.05 and paper.postprocess.gate_threshold == 0.5
    assert fast.classifier["depth"] == 18 and fast.unet["width"] == 16 and fast.unet["levels"] == 4
    assert fast.cam.pseudo_cutoff == paper.cam.pseudo_cutoff and fast.mode == "weak"


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_config_file_overrides_any_field_of_its_base(tmp_path, suffix):
    path = tmp_path / f"mine{suffix}"
    if suffix == ".json":
        path.write_text('{"base": "fast", "unet": {"width": 32}, "cam": {"top_k": 16}, "seed": 7}')
    else:
        path.write_text('base = "fast"\nseed = 7\n[unet]\nwidth = 32\n[cam]\ntop_k = 16\n')
    config = load_config(path)
    fast = load_config("fast")
    assert config.unet == {**fast.unet, "width": 32}
    assert config.cam.top_k == 16 and config.seed == 7
    assert config.classifier == fast.classifier and config.classifier_train == fast.classifier_train
    child = tmp_path / "child.json"
    child.write_text(f'{{"base": "{path.name}", "unet_train": {{"epochs": 3}}}}')
    assert load_config(child).unet["width"] == 32 and load_config(child).unet_train.epochs == 3


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"unet": {"widht": 32}}', "no argument"),
        ('{"colour": 1}', "unknown configuration field 'colour'"),
        ('{"cam": {"top_k": "all"}}', "cam.top_k must be"),
        ('{"mode": "semi"}', "mode must be one of"),
        ('{"input": {"unet_patch": 100}}', "multiple of 2\\*\\*levels"),
        ('{"base": "mine.json"}', "loops"),
        ("{not json", "cannot parse"),
    ],
)
def test_bad_config_files_are_reported(tmp_path, text, message):
    path = tmp_path / "mine.json"
    path.write_text(text)
    with pytest.raises(ArtsegInputError, match=message):
        load_config(path)


def test_missing_config_file_is_reported(tmp_path):
    with pytest.raises(ArtsegInputError, match="no such configuration file"):
        load_config(tmp_path / "absent.toml")
