"""Tests of artseg.postprocess (thresholds, small-object removal) and artseg.calibration (the two searches)."""

from __future__ import annotations

import numpy as np
import pytest

from artseg.errors import ArtsegInputError
from artseg.calibration import COARSE_CUTOFFS, calibrate, search_cutoff, search_min_size
from artseg.metrics import iou_after_size_filter, size_filter_counts
from artseg.postprocess import binarize, label_objects, remove_small


def test_binarize_is_strictly_above_cutoff_in_float64():
    prob = np.array([0.2, 0.5, 0.7], dtype=np.float32)
    assert binarize(prob, 0.5).tolist() == [False, False, True]
    # float32(0.001) is 0.0010000000475 > 0.001: compared in float64 like the PR curve does.
    assert binarize(np.array([0.001], dtype=np.float32), 0.001).tolist() == [True]
    with pytest.raises(ArtsegInputError):
        binarize(prob, float("nan"))


def test_label_objects_connectivity():
    diagonal = np.eye(3, dtype=bool)
    assert label_objects(diagonal).max() == 3
    assert label_objects(diagonal, connectivity=2).max() == 1
    assert label_objects(diagonal).dtype == np.int32
    with pytest.raises(ArtsegInputError):
        label_objects(diagonal, connectivity=3)


def test_remove_small_keeps_objects_of_exactly_min_size():
    mask = np.zeros((5, 16), dtype=bool)
    mask[0, 0:3] = True  # 3 pixels
    mask[2, 5:9] = True  # 4 pixels
    mask[4, 11:16] = True  # 5 pixels
    original = mask.copy()
    kept = remove_small(mask, 4)
    assert kept[0].sum() == 0 and kept[2].sum() == 4 and kept[4].sum() == 5
    assert np.array_equal(mask, original)  # input untouched
    assert np.array_equal(remove_small(mask, 0), mask)
    assert np.array_equal(remove_small(mask, 1), mask)
    assert not remove_small(mask, 6).any()


def test_remove_small_connectivity_and_non_bool_input():
    diagonal = np.eye(2, dtype=np.uint8) * 255
    assert not remove_small(diagonal, 2).any()  # two 1-pixel objects under 4-connectivity
    assert remove_small(diagonal, 2, connectivity=2).sum() == 2  # one 2-pixel object
    assert remove_small(diagonal, 2, connectivity=2).dtype == bool


@pytest.mark.parametrize("min_size", [-1, 2.5, True])
def test_remove_small_rejects_bad_min_size(min_size):
    with pytest.raises(ArtsegInputError):
        remove_small(np.ones((2, 2), bool), min_size)


def test_search_cutoff_finds_known_best_cutoff():
    # 10 positives at 0.8, 2 at 0.35; 20 negatives at 0.3, 1 at 0.85.
    prob = np.array([[0.8] * 10 + [0.35] * 2 + [0.3] * 20 + [0.85]])
    truth = np.array([[True] * 12 + [False] * 21])
    # IoU: 12/33 below 0.3, 12/13 on [0.3, 0.35), 10/13 on [0.35, 0.8), lower above.
    cutoff, iou = search_cutoff(prob, truth)
    assert cutoff == pytest.approx(0.3)
    assert iou == pytest.approx(12 / 13)
    assert search_cutoff(prob, truth, cutoffs=[0.1, 0.32, 0.5]) == (pytest.approx(0.32), pytest.approx(12 / 13))


def _objects_field() -> tuple[np.ndarray, np.ndarray]:
    """A true 5x5 object at 0.58, false 3x3 objects at 0.35, 0.45 and 0.52, false specks at 0.95."""
    prob = np.zeros((20, 20))
    truth = np.zeros((20, 20), dtype=bool)
    prob[1:6, 1:6], truth[1:6, 1:6] = 0.58, True
    prob[10:13, 1:4], prob[10:13, 8:11], prob[10:13, 15:18] = 0.35, 0.45, 0.52
    prob[17, 2], prob[17, 9], prob[17, 15] = 0.95, 0.95, 0.95
    return prob, truth


def test_search_cutoff_with_min_size_refines_between_coarse_cutoffs():
    prob, truth = _objects_field()
    # Only (0.52, 0.58) keeps the true object and drops the false ones, between coarse cutoffs.
    assert not np.any((COARSE_CUTOFFS >= 0.52) & (COARSE_CUTOFFS < 0.58))
    cutoff, iou = search_cutoff([prob, prob], [truth, truth], min_size=2, progress=False)
    assert 0.52 <= cutoff < 0.58
    assert iou == pytest.approx(1.0)
    # Without the size filter the specks stay at any cutoff below 0.95.
    assert search_cutoff(prob, truth, min_size=0)[1] == pytest.approx(25 / 28)


def test_search_cutoff_with_min_size_evaluates_given_cutoffs_exactly():
    prob, truth = _objects_field()
    cutoff, iou = search_cutoff(prob, truth, cutoffs=[0.1, 0.4, 0.5], min_size=2, progress=False)
    assert cutoff == 0.5
    assert iou == pytest.approx(25 / 34)


def test_search_min_size_hand_computed():
    mask = np.zeros((3, 15), dtype=bool)
    mask[0, 0], mask[0, 3:6], mask[0, 8:13] = True, True, True  # objects of 1, 3, 5 pixels
    truth = np.zeros_like(mask)
    truth[0, 8:13] = True
    assert search_min_size(mask, truth, sizes=(0, 3, 4, 5, 6)) == (4, pytest.approx(1.0))
    prob = np.where(mask, 0.9, 0.0)
    assert search_min_size(prob, truth, cutoff=0.5, sizes=(0, 3)) == (3, pytest.approx(5 / 8))


def _random_maps(rng, n, shape=(24, 20)):
    from scipy import ndimage

    maps = [np.clip(ndimage.gaussian_filter(rng.random(shape), 1.5) * 3 - 1, 0, 1) for _ in range(n)]
    truth = [ndimage.gaussian_filter(rng.random(shape), 1.5) > 0.52 for _ in range(n)]
    return maps, truth


def test_size_filter_counts_sum_to_the_size_filter_table():
    maps, truth = _random_maps(np.random.default_rng(1), 5)
    cutoffs, sizes = [0.1, 0.3, 0.6], [0, 3, 10, 40]
    predicted, tp, n_true = size_filter_counts(maps, truth, cutoffs, sizes)
    assert predicted.shape == tp.shape == (5, 3, 4) and n_true.tolist() == [int(t.sum()) for t in truth]
    for position, cutoff in enumerate(cutoffs):
        table = iou_after_size_filter(maps, truth, cutoff, sizes=sizes)
        assert tp[:, position].sum(axis=0).tolist() == table["tp"].tolist()
        assert (predicted - tp)[:, position].sum(axis=0).tolist() == table["fp"].tolist()
    with pytest.raises(ArtsegInputError, match=r"prob_maps\[0\]: contains NaN"):
        size_filter_counts([np.full((2, 2), np.nan)], [np.zeros((2, 2), bool)], [0.5], [0])


def _brute_force_calibration(maps, truth, cutoffs, sizes, probabilities, gates):
    """Every gate, size and cut-off scored by masking and labelling afresh: the definition."""
    best = None
    for gate in sorted(gates):
        gated = [m if p >= gate else np.zeros_like(m) for m, p in zip(maps, probabilities)]
        for size in sizes:
            for cutoff in sorted(cutoffs):
                iou = float(iou_after_size_filter(gated, truth, cutoff, sizes=(size,))["iou"].iloc[0])
                if best is None or iou > best[2]:
                    best = (cutoff, size, iou, gate)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_calibrate_chooses_what_scoring_every_combination_chooses(seed):
    rng = np.random.default_rng(seed)
    maps, truth = _random_maps(rng, int(rng.integers(2, 8)))
    if seed % 2:
        maps = [np.round(m, 1) for m in maps]  # ties between cut-offs
    cutoffs = sorted(set(np.round(rng.uniform(-0.1 if seed == 4 else 0.0, 1.0, 6), 2).tolist()))
    sizes, gates = [0, 3, 10, 40], [0.0, 0.3, 0.6]
    probabilities = rng.random(len(maps)).tolist()
    chosen = calibrate(maps, truth, cutoffs=cutoffs, min_object_sizes=sizes, image_probabilities=probabilities,
                       gates=gates, choose_gate=True)
    expected = _brute_force_calibration(maps, truth, cutoffs, sizes, probabilities, gates)
    assert (chosen.cutoff, chosen.min_object_size, chosen.gate) == (expected[0], expected[1], expected[3])
    assert chosen.val_iou == pytest.approx(expected[2], rel=0, abs=1e-15)


def test_calibrate_refuses_probabilities_that_do_not_pair_with_the_maps():
    maps, truth = _random_maps(np.random.default_rng(0), 3)
    with pytest.raises(ArtsegInputError, match="2 image probabilities for 3 maps"):
        calibrate(maps, truth, cutoffs=[0.5], min_object_sizes=[0], image_probabilities=[0.1, 0.9])
