"""Tests of artseg.weak's pseudo-label cut-offs and their configuration fields."""

from __future__ import annotations

import json

import numpy as np
import pytest

from artseg.config import config_from_dict, config_to_dict, load_config
from artseg.errors import ArtsegInputError
from artseg.metrics import pixel_scores
from artseg.segmenter import ArtifactSegmenter
from artseg.weak import adaptive_cutoff, make_pseudo_masks


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


def test_fixed_and_floor():
    cam = np.linspace(0, 1, 101).reshape(1, 101)
    assert adaptive_cutoff(cam, "fixed", fixed=0.05) == pytest.approx(0.05)
    assert adaptive_cutoff(np.full((4, 4), 0.01), "otsu", floor=0.05) == pytest.approx(0.05)


@pytest.mark.parametrize("bad", [{"method": "median"}, {"method": "percentile"}])
def test_adaptive_cutoff_rejects_bad_arguments(bad):
    with pytest.raises(ArtsegInputError):
        adaptive_cutoff(np.zeros((4, 4)), **bad)


def test_adaptive_cutoff_rejects_non_2d_map():
    with pytest.raises(ArtsegInputError, match="2-D"):
        adaptive_cutoff(np.zeros(5))


def test_make_pseudo_masks_uses_the_per_map_otsu_cutoff():
    shape = (64, 64)
    truth = _disk(shape, (32, 32), 10)
    cam = np.clip(1.0 - np.hypot(*(np.mgrid[:64, :64] - 32)) / 24.0, 0, 1)  # coarse blob, wider than the disk
    paper = make_pseudo_masks([cam, cam], [1, 0], config_from_dict({}))
    otsu = make_pseudo_masks([cam, cam], [1, 0], config_from_dict({"cam": {"pseudo_method": "otsu"}}))
    assert not otsu[1].any() and not paper[1].any()
    assert np.array_equal(otsu[0], cam > adaptive_cutoff(cam, "otsu", floor=0.05))
    assert pixel_scores(truth, otsu[0])["iou"] > pixel_scores(truth, paper[0])["iou"] + 0.1


def test_weak_config_fields_round_trip(tmp_path):
    overrides = {"base": "fast", "cam": {"pseudo_method": "fixed", "pseudo_cutoff": 0.1, "flips": "all"},
                 "postprocess": {"calibrate_on": "pseudo"}}
    path = tmp_path / "weak.json"
    path.write_text(json.dumps(overrides))
    config = load_config(path)
    assert (config.cam.pseudo_method, config.cam.pseudo_cutoff, config.cam.flips) == ("fixed", 0.1, "all")
    assert config.postprocess.calibrate_on == "pseudo"
    assert config_from_dict(config_to_dict(config)) == config


@pytest.mark.parametrize("bad", [{"cam": {"pseudo_method": "kmeans"}}, {"cam": {"pseudo_method": "percentile"}},
                                 {"postprocess": {"calibrate_on": "truth"}}, {"cam": {"flips": "diagonal"}},
                                 {"cam": {"refine": "crf"}}, {"cam": {"self_training_rounds": 1}}])
def test_bad_weak_config_values_are_rejected(bad):
    with pytest.raises(ArtsegInputError):
        config_from_dict(bad)


def test_paper_config_keeps_the_paper_recipe():
    cam = load_config("paper").cam
    assert (cam.pseudo_method, cam.pseudo_cutoff, cam.target_stage, cam.flips) == ("fixed", 0.05, "last_stage", "none")
    assert load_config("paper").postprocess.calibrate_on == "masks"


def test_the_segmenter_runs_the_otsu_recipe_without_pixel_labels():
    images, labels, masks = _toy_fields(3)
    config = _tiny_weak_config(
        {"top_k": 4, "pseudo_method": "otsu"},
        {"cutoff_grid": [0.3, 0.5], "min_object_size_grid": [0], "calibrate_on": "pseudo"},
    )
    splits = ["train"] * 8 + ["val"] * 4
    segmenter = ArtifactSegmenter(config).fit_arrays(images, labels, masks=[np.ones((64, 64), bool)] * 12,
                                                     splits=splits, progress=False)
    assert segmenter.calibration.selected_on == "pseudo_masks"
    assert set(segmenter.histories) == {"classifier", "unet"}
    assert 0.0 < segmenter.summary["pseudo_mask_fraction"] < 1.0
