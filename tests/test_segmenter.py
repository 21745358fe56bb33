"""The segmenters: weak stages, pseudo-labels, splits, fit/predict/save/load, gate, calibration, pixel model."""

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from artseg.config import config_from_dict, load_config
from artseg.errors import ArtsegInputError
from artseg.io import read_image_manifest, write_image, write_mask
from artseg import weak
from artseg.pixel_model import PixelSegmenter, Prediction
from artseg.postprocess import binarize, remove_small
from artseg.preprocess import normalize_image
from artseg.segmenter import ArtifactSegmenter, load_segmenter, make_segmenter
from artseg.training_data import assign_splits
from artseg.weak import classifier_inputs, make_pseudo_masks, score_cam_maps, target_layers

TINY = {
    "classifier": {"depth": 18, "base_width": 4},
    "unet": {"width": 4, "levels": 2, "convs_per_block": 1},
    "classifier_train": {"epochs": 2, "batch_size": 8},
    "unet_train": {"epochs": 2, "batch_size": 8},
    "input": {"classifier_size": 64, "unet_patch": 64},
    "tiling": {"tile_size": 64, "overlap": 16},
    "postprocess": {"cutoff_grid": [0.1, 0.3, 0.5, 0.7], "min_object_size_grid": [0, 10], "gate_threshold": 0.5},
    # the paper's pseudo-labels (last stage, fixed 0.05, no self-training) and gate (0.5): these
    # tests pin that behaviour
    "cam": {"pseudo_method": "fixed", "target_stage": "last_stage"},
}


def tiny_config(**overrides):
    from artseg.config import config_to_dict, merge_overrides

    base = config_to_dict(load_config("fast"))
    return config_from_dict(merge_overrides(merge_overrides(base, TINY, source="tiny"), overrides, source="test"))


def normalize(image, config):
    return normalize_image(image, config.input.normalize_low, config.input.normalize_high)


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
    return PixelSegmenter(config).fit_arrays(normalized, labels, masks=masks, progress=False)


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


def test_gate_chosen_on_validation_lets_through_a_missed_artifact_and_drops_clean_fields(weak_segmenter):
    """gate_threshold=None: the gate of the grid with the best validation IoU is kept and used."""
    segmenter = copy.deepcopy(weak_segmenter)
    segmenter.config.postprocess.gate_threshold = None
    truth = [np.zeros((8, 8), bool) for _ in range(4)]
    truth[0][2:5, 2:5] = truth[1][4:7, 1:4] = True
    # artifact fields at p = 0.9 and 0.25 (a low-confidence hit), clean fields at 0.05 with false alarms
    probabilities = {0: 0.9, 1: 0.25, 2: 0.05, 3: 0.05}
    maps = {index: np.where(mask, 0.9, 0.0).astype(np.float32) for index, mask in enumerate(truth)}
    maps[2][0:4, 0:4] = maps[3][4:8, 4:8] = 0.9
    images = [np.full((8, 8), float(index), np.float32) for index in range(4)]
    segmenter.probability_map = lambda image: maps[int(image[0, 0])]
    segmenter.classifier_probability = lambda image: probabilities[int(image[0, 0])]
    calibration = segmenter.calibrate(images, truth, progress=False)
    assert calibration.gate == 0.1 and calibration.val_iou == pytest.approx(1.0)
    segmenter.calibration = calibration
    assert segmenter.gate_threshold == 0.1
    segmenter.config.postprocess.gate_threshold = 0.5  # a fixed gate is used as configured, never chosen
    fixed = segmenter.calibrate(images, truth, progress=False)
    assert fixed.gate is None and fixed.val_iou == pytest.approx(0.5)


def test_a_low_chosen_gate_segments_but_the_image_call_stays_the_classifiers(weak_segmenter, monkeypatch):
    segmenter = copy.deepcopy(weak_segmenter)
    segmenter.config.postprocess.gate_threshold = None
    segmenter.calibration = dataclasses.replace(segmenter.calibration, gate=0.1)
    image = toy_images(n=2, seed=6)[0][1]
    monkeypatch.setattr(segmenter, "classifier", ConstantLogit(-0.85))  # p = 0.30: through the 0.1 gate
    unsure = segmenter.predict(image)
    assert 0.1 <= unsure.p_artifact < 0.5 and unsure.probability.any() and not unsure.contains_artifact
    assert segmenter.image_call_threshold == 0.5 and segmenter.gate_threshold == 0.1
    monkeypatch.setattr(segmenter, "classifier", ConstantLogit(8.0))
    assert segmenter.predict(image).contains_artifact


def _maps(segmenter, inputs, stage=None, flips=None):
    cam = dataclasses.replace(segmenter.config.cam, flips=flips or segmenter.config.cam.flips)
    return score_cam_maps(segmenter.classifier, inputs, stage or segmenter.cam_stage, cam,
                          device=segmenter.device, progress=False)


def _inputs(segmenter, images):
    return classifier_inputs([normalize(image, segmenter.config) for image in images],
                             segmenter.config.input.classifier_size)


def test_score_cam_of_several_stages_is_their_mean(weak_segmenter):
    inputs = _inputs(weak_segmenter, [toy_images(n=2, seed=9)[0][1]])
    maps = {stage: _maps(weak_segmenter, inputs, stage)[0] for stage in ("layer3", "layer4", "layer3+last_stage")}
    assert maps["layer3"].shape == maps["layer4"].shape == inputs.shape[-2:]
    np.testing.assert_allclose(maps["layer3+last_stage"], (maps["layer3"] + maps["layer4"]) / 2, atol=1e-6)
    with pytest.raises(ArtsegInputError, match="'nope' is not a module"):
        _maps(weak_segmenter, inputs, "layer3+nope")


def test_score_cam_flips_average_the_maps_of_mirrored_inputs_mirrored_back(weak_segmenter):
    inputs = _inputs(weak_segmenter, [toy_images(n=2, seed=9)[0][1]])
    maps = {flip: _maps(weak_segmenter, inputs.flip(dims) if dims else inputs, flips="none")[0]
            for flip, dims in (("none", ()), ("h", (-1,)), ("v", (-2,)), ("hv", (-2, -1)))}
    unmirrored = [maps["none"], maps["h"][:, ::-1], maps["v"][::-1], maps["hv"][::-1, ::-1]]
    assert not np.allclose(unmirrored[0], unmirrored[1], atol=1e-3)  # the flip changes the map
    np.testing.assert_allclose(_maps(weak_segmenter, inputs, flips="horizontal")[0],
                               (unmirrored[0] + unmirrored[1]) / 2, atol=1e-6)
    np.testing.assert_allclose(_maps(weak_segmenter, inputs, flips="all")[0], np.mean(unmirrored, axis=0), atol=1e-6)
    # the average of a map and its mirror image is itself mirror-symmetric in the mirrored input
    flipped_input = _maps(weak_segmenter, inputs.flip(-1), flips="horizontal")[0]
    np.testing.assert_allclose(flipped_input[:, ::-1], _maps(weak_segmenter, inputs, flips="horizontal")[0],
                               atol=1e-6)
    with pytest.raises(ArtsegInputError, match="cam.flips"):
        tiny_config(cam={"flips": "diagonal"})


def _stage_dependent_score_cam(monkeypatch):
    """Fake Score-CAM: "layer3" finds the dark discs, any other stage a fixed corner blob."""

    def fake(classifier, inputs, stage, cam, *, device, progress):
        x = inputs[:, 0].numpy()
        if stage == "layer3":
            return (x < 0.35).astype(np.float32)
        corner = np.zeros(x.shape, np.float32)
        corner[:, :16, :16] = 1.0
        return corner

    monkeypatch.setattr(weak, "score_cam_maps", fake)
    monkeypatch.setattr("artseg.segmenter.score_cam_maps", fake)


def test_auto_cam_stage_is_chosen_on_validation_masks_and_saved(tmp_path, monkeypatch):
    images, labels, masks = toy_images(n=16, seed=3)
    config = tiny_config(cam={"target_stage": "auto", "stage_candidates": ["last_stage", "layer3"]},
                         classifier_train={"epochs": 1}, unet_train={"epochs": 1})
    normalized = [normalize(image, config) for image in images]
    segmenter = ArtifactSegmenter(config)
    _stage_dependent_score_cam(monkeypatch)
    segmenter.fit_arrays(normalized, labels, masks=masks, progress=False)
    chosen = segmenter.summary["cam_stage"]
    assert segmenter.cam_stage == chosen["chosen"] == "layer3" and chosen["selected_on"] == "pixel_masks"
    assert chosen["val_pseudo_iou"]["layer3"] > 0.5 > chosen["val_pseudo_iou"]["last_stage"]
    monkeypatch.undo()
    loaded = ArtifactSegmenter.load(segmenter.save(tmp_path / "auto"))
    assert loaded.cam_stage == "layer3" and loaded.config.cam.target_stage == "auto"
    # without pixel masks nothing can be scored: the first candidate is used
    unmasked = ArtifactSegmenter(config)
    _stage_dependent_score_cam(monkeypatch)
    unmasked.fit_arrays(normalized, labels, progress=False)
    assert unmasked.cam_stage == "last_stage" and unmasked.summary["cam_stage"]["selected_on"] == "default"
    with pytest.raises(ArtsegInputError, match="chosen at fit time"):
        target_layers(segmenter.classifier, config.cam.target_stage)


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


def test_the_pixel_segmenter_has_no_classifier_and_calls_images_by_mask(strong_segmenter, tmp_path):
    assert strong_segmenter.classifier is None
    assert strong_segmenter.calibration.selected_on == "pixel_masks"
    image = toy_images(n=2, seed=8)[0][1]
    prediction = strong_segmenter.predict(image)
    assert prediction.probability.shape == image.shape
    assert prediction.contains_artifact == bool(prediction.mask.any())
    assert prediction.p_artifact == pytest.approx(float(prediction.probability.max()))
    folder = strong_segmenter.save(tmp_path / "strong")
    loaded = load_segmenter(folder)
    assert isinstance(loaded, PixelSegmenter) and PixelSegmenter.load(folder).config == strong_segmenter.config
    np.testing.assert_array_equal(loaded.predict(image).probability, prediction.probability)
    with pytest.raises(ArtsegInputError, match="PixelSegmenter"):
        ArtifactSegmenter.load(folder)
    with pytest.raises(ArtsegInputError, match="PixelSegmenter"):
        ArtifactSegmenter(tiny_config(mode="strong"))
    assert isinstance(make_segmenter(tiny_config(mode="strong")), PixelSegmenter)


def test_same_seed_gives_the_same_model():
    images, labels, masks = toy_images(n=8, seed=3)
    config = tiny_config(mode="strong", unet_train={"epochs": 1})
    normalized = [normalize(image, config) for image in images]
    runs = [PixelSegmenter(config).fit_arrays(normalized, labels, masks=masks, progress=False) for _ in range(2)]
    first, second = (run.unet.state_dict() for run in runs)
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_bad_training_inputs_are_reported(manifest_path):
    manifest = read_image_manifest(manifest_path, require_label=True)
    with pytest.raises(ArtsegInputError, match="label"):
        ArtifactSegmenter(tiny_config()).fit(manifest.drop(columns=["label"]), progress=False)
    unmasked = manifest.assign(mask=None)
    with pytest.raises(ArtsegInputError, match="strong mode needs a 'mask'"):
        PixelSegmenter(tiny_config()).fit(unmasked, progress=False)
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
    # issue 4: the improved recipe (gate and Score-CAM stage chosen on validation data, maps
    # averaged with the mirrored field's) in fast and paper_plus; paper keeps its fixed 0.5 gate,
    # last stage and plain maps
    plus = load_config("paper_plus")
    assert paper.cam.target_stage == "last_stage" and paper.postprocess.gate_threshold == 0.5
    assert paper.cam.flips == "none"
    for improved in (fast, plus):
        assert improved.cam.target_stage == "auto" and improved.postprocess.gate_threshold is None
        assert improved.cam.flips == "horizontal" and "layer2" in improved.cam.stage_candidates
    assert plus.classifier == paper.classifier and plus.unet_train == paper.unet_train


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


def test_classifier_probabilities_of_a_batch_match_one_image_at_a_time(weak_segmenter):
    images = [normalize(image, weak_segmenter.config) for image in toy_images(n=5, seed=9)[0]]
    batched = weak_segmenter.classifier_probabilities(images, batch_size=2)
    single = [weak_segmenter.classifier_probability(image) for image in images]
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-6)
    assert batched.shape == (5,) and np.all((0.0 <= batched) & (batched <= 1.0))


def test_predict_overrides_the_calibrated_cutoff_and_gate(weak_segmenter, monkeypatch):
    image = toy_images(n=2, seed=6)[0][1]
    monkeypatch.setattr(weak_segmenter, "classifier", ConstantLogit(0.0))  # p = 0.5
    probability = weak_segmenter.predict_probability_map(image)
    assert weak_segmenter.predict(image, gate=0.9).probability.max() == 0.0  # gated out
    for cutoff in (0.0, 0.99):
        expected = remove_small(binarize(probability, cutoff), weak_segmenter.calibration.min_object_size)
        np.testing.assert_array_equal(weak_segmenter.predict(image, cutoff=cutoff, gate=0.0).mask, expected)


def test_a_retired_option_loads_when_off_and_is_refused_when_on(tmp_path):
    assert config_from_dict({"cam": {"refine": "none", "self_training_rounds": 0}}) == config_from_dict({})
    with pytest.raises(ArtsegInputError, match="cam.refine='superpixels' is an option measured and not kept"):
        config_from_dict({"cam": {"refine": "superpixels"}}, source="old.json")
    path = tmp_path / "old.json"
    path.write_text('{"base": "fast", "cam": {"unet_loss": "mil"}}')
    with pytest.raises(ArtsegInputError, match="unet_loss"):
        load_config(path)


def test_a_few_annotated_fields_are_enough_to_calibrate_on_pixel_masks(tmp_path):
    images, labels, masks = toy_images(n=16, seed=2)
    splits = np.array(["val"] * 6 + ["train"] * 10)
    partial = [mask if (label == 0 or row in (1, 3)) else None for row, (mask, label) in enumerate(zip(masks, labels))]
    config = tiny_config(classifier_train={"epochs": 1}, unet_train={"epochs": 1})
    normalized = [normalize(image, config) for image in images]
    segmenter = ArtifactSegmenter(config)
    seen = []
    segmenter.calibrate = lambda val_images, truth, **kw: seen.append((len(val_images), kw["selected_on"])) or \
        ArtifactSegmenter.calibrate(segmenter, val_images, truth, **kw)
    segmenter.fit_arrays(normalized, labels, masks=partial, splits=splits, progress=False)
    # val rows 0-5: clean 0, 2, 4 (truth known) and artifact 1, 3 annotated, 5 not
    assert seen == [(5, "pixel_masks")] and segmenter.calibration.selected_on == "pixel_masks"
    assert segmenter.summary["calibration_fields"] == {"pixel_masks": 5, "val": 6}
    # masks only on training fields: nothing known on validation, the pseudo-masks are used
    train_only = [mask if row >= 6 else (np.zeros_like(mask) if label == 0 else None)
                  for row, (mask, label) in enumerate(zip(masks, labels))]
    fallback = ArtifactSegmenter(config).fit_arrays(normalized, labels, masks=train_only, splits=splits, progress=False)
    assert fallback.calibration.selected_on == "pseudo_masks"


def test_the_manifest_reader_keeps_the_masks_it_has(manifest_path):
    from artseg.training_data import load_training_data

    manifest = read_image_manifest(manifest_path, require_label=True)
    some = manifest.copy()
    some.loc[some.index[some["label"] == 1][1:], "mask"] = None  # one annotated artifact field left
    data = load_training_data(some, tiny_config(), progress=False)
    known = [m is not None for m in data.masks]
    assert sum(k for k, label in zip(known, data.labels) if label == 1) == 1
    assert all(k for k, label in zip(known, data.labels) if label == 0)
    assert load_training_data(manifest.assign(mask=None), tiny_config(), progress=False).masks is None
