"""Tests of artseg.weak (pseudo-label improvement, issue 4) and its configuration fields."""

from __future__ import annotations

import json

import numpy as np
import pytest

from artseg.config import config_from_dict, config_to_dict, load_config
from artseg.errors import ArtsegInputError
from artseg.metrics import pixel_scores
from artseg.pipeline import make_pseudo_masks
from artseg.weak import (
    adaptive_cutoff,
    clean_image_confidence,
    local_deviation,
    partial_targets,
    refine_to_superpixels,
    self_training_labels,
)


def _disk(shape, center, radius) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2


def _toy_fields(seed: int) -> tuple[list[np.ndarray], list[int], list[np.ndarray]]:
    """Twelve 64² noisy fields; odd ones carry a dark disc (the artifact) and its mask."""
    rng = np.random.default_rng(seed)
    images, labels, masks = [], [], []
    for index in range(12):
        image = 0.6 + 0.05 * rng.standard_normal((64, 64))
        mask = np.zeros((64, 64), bool)
        if index % 2:
            mask = _disk((64, 64), tuple(rng.integers(16, 48, 2)), 8)
            image[mask] = 0.1
        images.append(image.astype(np.float32))
        labels.append(index % 2)
        masks.append(mask)
    return images, labels, masks


def _tiny_weak_config(cam: dict, postprocess: dict):
    """A one-epoch, few-filter weak config over 64² inputs with the given cam/postprocess fields."""
    return config_from_dict({
        "classifier": {"depth": 18, "base_width": 4}, "unet": {"width": 4, "levels": 2, "convs_per_block": 1},
        "classifier_train": {"epochs": 1, "batch_size": 8}, "unet_train": {"epochs": 1, "batch_size": 8},
        "input": {"classifier_size": 64, "unet_patch": 64}, "tiling": {"tile_size": 64, "overlap": 16},
        "cam": cam, "postprocess": postprocess,
    })


def test_otsu_cutoff_falls_in_the_gap_of_a_bimodal_map():
    rng = np.random.default_rng(0)
    low = rng.uniform(0.0, 0.2, size=(40, 40))
    high = rng.uniform(0.6, 0.9, size=(40, 40))
    cam = np.where(_disk((40, 40), (20, 20), 10), high, low)
    cutoff = adaptive_cutoff(cam, "otsu")
    inside = _disk((40, 40), (20, 20), 10)
    assert cam[~inside].max() < cutoff < cam[inside].min()
    assert np.array_equal(cam > cutoff, _disk((40, 40), (20, 20), 10))


def test_percentile_fixed_and_floor():
    cam = np.linspace(0, 1, 101).reshape(1, 101)
    assert adaptive_cutoff(cam, "percentile", percentile=90.0) == pytest.approx(0.9)
    assert adaptive_cutoff(cam, "fixed", fixed=0.05) == pytest.approx(0.05)
    assert adaptive_cutoff(np.full((4, 4), 0.01), "otsu", floor=0.05) == pytest.approx(0.05)


@pytest.mark.parametrize("bad", [{"method": "median"}, {"method": "percentile", "percentile": 120.0}])
def test_adaptive_cutoff_rejects_bad_arguments(bad):
    with pytest.raises(ArtsegInputError):
        adaptive_cutoff(np.zeros((4, 4)), **bad)


def test_adaptive_cutoff_rejects_non_2d_map():
    with pytest.raises(ArtsegInputError, match="2-D"):
        adaptive_cutoff(np.zeros(5))


def test_superpixel_refinement_snaps_a_coarse_mask_to_the_object_edges():
    shape = (64, 64)
    rng = np.random.default_rng(1)
    truth = _disk(shape, (30, 34), 12)
    image = np.where(truth, 0.2, 0.8) + rng.normal(0, 0.01, shape)
    coarse = np.zeros(shape, bool)
    coarse[14:50, 18:52] = True  # a blocky, over-inclusive CAM region around the disk
    refined = refine_to_superpixels(image, coarse, n_segments=150, min_fraction=0.5)
    assert pixel_scores(truth, refined)["iou"] > 0.75
    assert pixel_scores(truth, refined)["iou"] > pixel_scores(truth, coarse)["iou"] + 0.3


def test_superpixel_refinement_keeps_an_empty_mask_empty_and_checks_shapes():
    image = np.random.default_rng(2).random((16, 16))
    assert not refine_to_superpixels(image, np.zeros((16, 16), bool)).any()
    with pytest.raises(ArtsegInputError, match="shape"):
        refine_to_superpixels(image, np.zeros((8, 8), bool))


def test_self_training_labels_stay_inside_the_dilated_cam_region():
    shape = (60, 60)
    probability = np.zeros(shape)
    probability[_disk(shape, (15, 15), 6)] = 0.9   # confident, where the CAM pointed
    probability[_disk(shape, (45, 45), 6)] = 0.9   # confident, but the CAM never pointed here
    probability[_disk(shape, (15, 40), 4)] = 0.3   # near the CAM region, not confident
    cam_region = _disk(shape, (15, 15), 3) | _disk(shape, (15, 36), 3)
    labels = self_training_labels(probability, cam_region, confidence=0.5, dilation=4)
    grown = _disk(shape, (15, 15), 7)
    assert labels.any()
    assert not labels[~grown].any()
    assert np.array_equal(labels, (probability >= 0.5) & grown & _disk(shape, (15, 15), 6))
    without_growth = self_training_labels(probability, cam_region, confidence=0.5, dilation=0)
    assert without_growth.sum() < labels.sum()
    assert not (without_growth & ~cam_region).any()


def test_self_training_labels_reject_mismatched_shapes():
    with pytest.raises(ArtsegInputError, match="shape"):
        self_training_labels(np.zeros((4, 4)), np.zeros((5, 5), bool))


def test_local_deviation_peaks_on_a_dark_spot():
    image = np.full((64, 64), 0.6, np.float32)
    image[30:34, 30:34] = 0.1
    deviation = local_deviation(image, background_sigma=8.0)
    assert deviation.shape == image.shape
    assert np.unravel_index(np.argmax(deviation), image.shape) in {(y, x) for y in range(30, 34) for x in range(30, 34)}
    assert deviation[0, 0] < 0.01


def test_make_pseudo_masks_uses_adaptive_cutoff_and_refinement():
    shape = (64, 64)
    truth = _disk(shape, (32, 32), 10)
    image = np.where(truth, 0.1, 0.7).astype(np.float32)
    cam = np.clip(1.0 - np.hypot(*(np.mgrid[:64, :64] - 32)) / 24.0, 0, 1)  # coarse blob, wider than the disk
    config = config_from_dict({"cam": {"pseudo_method": "otsu", "refine": "superpixels", "superpixel_segments": 100}})
    paper = make_pseudo_masks([cam, cam], [1, 0], config_from_dict({}))
    improved = make_pseudo_masks([cam, cam], [1, 0], config, images=[image, image])
    assert not improved[1].any()
    assert pixel_scores(truth, improved[0])["iou"] > pixel_scores(truth, paper[0])["iou"] + 0.2
    with pytest.raises(ArtsegInputError, match="images"):
        make_pseudo_masks([cam], [1], config)


def test_new_config_fields_round_trip(tmp_path):
    overrides = {"base": "fast", "cam": {"baseline": "background", "pseudo_method": "percentile",
                                         "pseudo_percentile": 80.0, "refine": "superpixels", "self_training_rounds": 2,
                                         "self_training_confidence": 0.6, "self_training_dilation": 5},
                 "postprocess": {"calibrate_on": "pseudo"}}
    path = tmp_path / "weak.json"
    path.write_text(json.dumps(overrides))
    config = load_config(path)
    assert config.cam.baseline == "background" and config.cam.self_training_rounds == 2
    assert config.postprocess.calibrate_on == "pseudo"
    assert config_from_dict(config_to_dict(config)) == config


@pytest.mark.parametrize("bad", [{"cam": {"baseline": "zeros"}}, {"cam": {"pseudo_method": "kmeans"}},
                                 {"cam": {"refine": "crf"}}, {"postprocess": {"calibrate_on": "truth"}},
                                 {"cam": {"self_training_rounds": -1}}, {"cam": {"unet_loss": "dice"}},
                                 {"cam": {"mil_top_fraction": 0.0}}, {"cam": {"mil_weight": -1.0}}])
def test_bad_weak_config_values_are_rejected(bad):
    with pytest.raises(ArtsegInputError):
        config_from_dict(bad)


def test_paper_config_keeps_the_paper_recipe():
    cam = load_config("paper").cam
    assert (cam.baseline, cam.pseudo_method, cam.refine, cam.self_training_rounds) == (None, "fixed", "none", 0)
    assert load_config("paper").postprocess.calibrate_on == "masks"


def test_pipeline_runs_the_improved_recipe_without_pixel_labels():
    from artseg.pipeline import ArtifactSegmenter

    images, labels, masks = _toy_fields(3)
    config = _tiny_weak_config(
        {"top_k": 4, "baseline": "background", "pseudo_method": "otsu", "refine": "superpixels",
         "superpixel_segments": 50, "self_training_rounds": 1},
        {"cutoff_grid": [0.3, 0.5], "min_object_size_grid": [0], "calibrate_on": "pseudo"},
    )
    splits = ["train"] * 8 + ["val"] * 4
    segmenter = ArtifactSegmenter(config).fit_arrays(images, labels, masks=[np.ones((64, 64), bool)] * 12,
                                                     splits=splits, progress=False)
    assert segmenter.calibration.selected_on == "pseudo_masks"
    assert "unet_self_training_1" in segmenter.histories
    assert 0.0 < segmenter.summary["pseudo_mask_fraction"] < 1.0


def test_partial_targets_mark_the_cam_region_unknown_and_the_core_positive():
    cam = np.array([[0.0, 0.04, 0.06], [0.5, 0.9, 1.0]], np.float32)
    core = np.array([[True, False, False], [False, True, True]])
    assert partial_targets(cam).tolist() == [[0, 0, 2], [2, 2, 2]]
    # the core only counts inside the region: the (0, 0) pixel stays negative
    assert partial_targets(cam, core=core).tolist() == [[0, 0, 2], [2, 1, 1]]
    assert partial_targets(cam, region_cutoff=0.6).tolist() == [[0, 0, 0], [0, 2, 2]]
    with pytest.raises(ArtsegInputError, match="core shape"):
        partial_targets(cam, core=np.zeros((3, 3), bool))


def test_pipeline_trains_the_unet_with_the_mil_loss():
    from artseg.pipeline import ArtifactSegmenter, make_partial_targets

    config = config_from_dict({"cam": {"unet_loss": "mil", "mil_positive_core": True}})
    cam = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    core = cam > 0.8
    targets = make_partial_targets([cam, cam], [1, 0], [core, core], config)
    assert set(np.unique(targets[0])) == {0, 1, 2} and not targets[1].any()
    assert (targets[0] == 1).sum() == core.sum()

    images, labels, masks = _toy_fields(5)
    config = _tiny_weak_config({"top_k": 4, "unet_loss": "mil"},
                               {"cutoff_grid": [0.3, 0.5], "min_object_size_grid": [0], "calibrate_on": "pseudo"})
    splits = ["train"] * 8 + ["val"] * 4
    first = ArtifactSegmenter(config).fit_arrays(images, labels, splits=splits, progress=False)
    assert 0.0 < first.summary["pseudo_mask_fraction"] <= 1.0
    assert np.isfinite(first.summary["unet"]["best_val_loss"])
    # a trained classifier can be reused: only the U-Net is trained again
    second = ArtifactSegmenter(config).fit_arrays(images, labels, splits=splits, progress=False,
                                                  classifier=first.classifier)
    assert second.summary["classifier"] == {"reused": True} and "classifier" not in second.histories
    assert second.classifier is first.classifier


def test_self_training_confidence_none_uses_the_calibrated_cutoff():
    from artseg.pipeline import ArtifactSegmenter

    images, labels, masks = _toy_fields(7)
    config = _tiny_weak_config({"top_k": 4, "self_training_rounds": 1, "self_training_confidence": None},
                               {"cutoff_grid": [0.2, 0.4, 0.6], "min_object_size_grid": [0]})
    segmenter = ArtifactSegmenter(config).fit_arrays(images, labels, masks=masks, splits=["train"] * 8 + ["val"] * 4,
                                                     progress=False)
    assert segmenter.summary["self_training_confidence"] in (0.2, 0.4, 0.6)
    assert "unet_self_training_1" in segmenter.histories
    assert config_from_dict(config_to_dict(config)).cam.self_training_confidence is None


def test_clean_image_confidence_is_the_quantile_of_clean_probabilities():
    rng = np.random.default_rng(0)
    clean = [rng.uniform(0.0, 0.3, (20, 20)).astype(np.float32) for _ in range(3)]
    pooled = np.concatenate([c.ravel() for c in clean])
    assert clean_image_confidence(clean, quantile=0.99) == pytest.approx(np.quantile(pooled, 0.99), rel=1e-6)
    assert clean_image_confidence(clean, quantile=1.0) == pytest.approx(pooled.max())
    # a U-Net that is shy everywhere gets a lower cut-off than a bold one: scale-free
    assert clean_image_confidence([c * 0.1 for c in clean]) < clean_image_confidence(clean)
    with pytest.raises(ArtsegInputError, match="needs clean training images"):
        clean_image_confidence([])
    with pytest.raises(ArtsegInputError, match="quantile"):
        clean_image_confidence(clean, quantile=0.0)


def test_self_training_at_the_clean_image_quantile():
    from artseg.pipeline import ArtifactSegmenter

    images, labels, masks = _toy_fields(7)
    config = _tiny_weak_config({"top_k": 4, "self_training_rounds": 1, "self_training_confidence": "clean",
                                "self_training_clean_quantile": 0.99},
                               {"cutoff_grid": [0.2, 0.4, 0.6], "min_object_size_grid": [0]})
    splits = ["train"] * 8 + ["val"] * 4
    segmenter = ArtifactSegmenter(config).fit_arrays(images, labels, masks=masks, splits=splits, progress=False)
    assert 0.0 <= segmenter.summary["self_training_confidence"] <= 1.0
    assert "unet_self_training_1" in segmenter.histories
    assert config_from_dict(config_to_dict(config)).cam.self_training_confidence == "clean"
    for bad in ("otsu", 1.5):
        with pytest.raises(ArtsegInputError, match="self_training_confidence"):
            config_from_dict({"cam": {"self_training_confidence": bad}})


@pytest.mark.parametrize("fallback", [False, True])
def test_self_training_fallback_keeps_the_labels_of_images_without_confident_pixels(fallback):
    from artseg.pipeline import ArtifactSegmenter

    images, labels, masks = _toy_fields(7)
    # confidence 1.0: no pixel of a sigmoid output is confident, every artifact image is empty
    config = _tiny_weak_config({"top_k": 4, "self_training_rounds": 1, "self_training_confidence": 1.0,
                                "self_training_fallback": fallback},
                               {"cutoff_grid": [0.2, 0.4], "min_object_size_grid": [0]})
    splits = ["train"] * 8 + ["val"] * 4
    segmenter = ArtifactSegmenter(config).fit_arrays(images, labels, masks=masks, splits=splits, progress=False)
    summary = segmenter.summary
    n_artifact = int(np.sum(np.asarray(labels) == 1))
    assert summary["self_training_fallback_images"] == (n_artifact if fallback else 0)
    if fallback:  # the CAM pseudo-masks are kept, so the label coverage is unchanged
        assert summary["self_training_mask_fraction"] == pytest.approx(summary["pseudo_mask_fraction"])
    else:
        assert summary["self_training_mask_fraction"] == 0.0
