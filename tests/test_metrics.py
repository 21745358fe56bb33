"""Tests of artseg.metrics against hand-computed cases and independent references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from artseg.errors import ArtsegInputError
from artseg.metrics import (
    area_under_pr_curve,
    confusion_scores,
    image_f1,
    image_scores,
    iou_after_size_filter,
    mean_object_f1,
    object_scores,
    object_scores_table,
    pixel_scores,
    pixel_scores_per_image,
    pr_auc,
    pr_curve,
)
from artseg.postprocess import binarize, remove_small


def block(shape, rows, cols):
    image = np.zeros(shape, dtype=bool)
    image[rows, cols] = True
    return image


# --------------------------------------------------------------------------- pixel-wise


def test_pixel_scores_empty_vs_empty_is_perfect():
    empty = np.zeros((4, 4), dtype=bool)
    scores = pixel_scores(empty, empty)
    assert {key: scores[key] for key in ("precision", "recall", "f1", "iou")} == dict.fromkeys(
        ("precision", "recall", "f1", "iou"), 1.0
    )
    assert (scores["tp"], scores["fp"], scores["fn"]) == (0, 0, 0)


def test_pixel_scores_no_prediction_scores_zero():
    truth = block((4, 4), slice(0, 2), slice(0, 2))
    scores = pixel_scores(truth, np.zeros_like(truth))
    assert (scores["tp"], scores["fp"], scores["fn"]) == (0, 0, 4)
    assert scores["precision"] == scores["recall"] == scores["f1"] == scores["iou"] == 0.0


def test_pixel_scores_prediction_without_truth_scores_zero():
    pred = block((4, 4), slice(0, 1), slice(0, 3))
    scores = pixel_scores(np.zeros_like(pred), pred)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (0, 3, 0)
    assert scores["precision"] == scores["recall"] == scores["f1"] == scores["iou"] == 0.0


def test_pixel_scores_perfect_prediction():
    truth = block((5, 5), slice(1, 4), slice(2, 5))
    scores = pixel_scores(truth, truth.astype(np.uint8) * 255)
    assert scores["iou"] == scores["f1"] == 1.0
    assert scores["tp"] == 9


def test_pixel_scores_half_overlap():
    # Two 4x4 squares shifted by half their width: 8 shared, 8 + 8 not.
    truth = block((8, 8), slice(0, 4), slice(0, 4))
    pred = block((8, 8), slice(0, 4), slice(2, 6))
    scores = pixel_scores(truth, pred)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (8, 8, 8)
    assert scores["precision"] == scores["recall"] == scores["f1"] == pytest.approx(0.5)
    assert scores["iou"] == pytest.approx(1 / 3)


def test_pixel_scores_pools_images_of_different_shapes():
    truth = [block((2, 2), 0, slice(None)), block((3, 5), slice(None), 0)]  # 2 + 3 true pixels
    pred = [block((2, 2), slice(None), 0), np.zeros((3, 5), bool)]  # overlap 1 pixel in the first
    scores = pixel_scores(truth, pred)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (1, 1, 4)
    assert scores["iou"] == pytest.approx(1 / 6)
    stacked = pixel_scores(np.stack([truth[0]] * 2), np.stack([pred[0]] * 2))
    assert (stacked["tp"], stacked["fp"], stacked["fn"]) == (2, 2, 2)


@pytest.mark.parametrize(
    ("truth", "pred"),
    [
        (np.zeros((3, 3)), np.zeros((3, 4))),
        ([np.zeros((3, 3))], [np.zeros((3, 3)), np.zeros((3, 3))]),
    ],
)
def test_pixel_scores_rejects_mismatched_inputs(truth, pred):
    with pytest.raises(ArtsegInputError):
        pixel_scores(truth, pred)


def test_pixel_scores_per_image_differs_from_pooled():
    perfect = block((4, 4), slice(0, 2), slice(0, 2))
    truth_half = block((8, 8), slice(0, 4), slice(0, 4))
    pred_half = block((8, 8), slice(0, 4), slice(2, 6))
    table, mean = pixel_scores_per_image([perfect, truth_half], [perfect, pred_half], names=["a", "b"])
    assert table["image"].tolist() == ["a", "b"]
    assert table["iou"].tolist() == pytest.approx([1.0, 1 / 3])
    assert mean["iou"] == pytest.approx(2 / 3)
    assert pixel_scores([perfect, truth_half], [perfect, pred_half])["iou"] == pytest.approx(12 / 28)


def test_confusion_scores_f1_is_harmonic_mean_of_precision_and_recall():
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 4, size=(3, 200))
    scores = confusion_scores(*counts)
    p, r = scores["precision"], scores["recall"]
    harmonic = np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=(p + r) > 0)
    nothing = counts.sum(axis=0) == 0
    assert np.allclose(scores["f1"][~nothing], harmonic[~nothing])
    assert np.all(scores["f1"][nothing] == 1.0)


# --------------------------------------------------------------------------- object-wise


def test_object_scores_perfect_with_non_consecutive_labels():
    truth = np.zeros((6, 9), dtype=np.int32)
    truth[0:2, 0:2], truth[3:5, 3:6], truth[0:3, 7:9] = 3, 17, 1000
    pred = np.zeros_like(truth)
    pred[truth == 3], pred[truth == 17], pred[truth == 1000] = 2, 1, 3
    assert object_scores(truth, pred) == {"tp": 3, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    huge = truth.astype(np.uint64) * 2**40  # ids far beyond the pixel count
    assert object_scores(huge, pred)["tp"] == 3


def test_object_scores_touching_objects_with_different_labels():
    truth = np.zeros((2, 4), dtype=np.int64)
    truth[:, 0:2], truth[:, 2:4] = 1, 2  # two touching 2x2 objects
    split = np.where(truth == 1, 9, np.where(truth == 2, 4, 0))
    assert object_scores(truth, split)["tp"] == 2
    # One merged prediction overlaps each with IoU 4/8 = 0.5, not above the threshold.
    merged = (truth > 0).astype(np.int64)
    assert object_scores(truth, merged) == {"tp": 0, "fp": 1, "fn": 2, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    # A bool mask has no instance identity: it is split into connected components (one here).
    assert object_scores(truth, truth > 0)["fp"] == 1


def test_object_scores_no_predictions_and_empty_images():
    truth = np.zeros((5, 5), dtype=np.int32)
    truth[0, 0], truth[4, 4] = 1, 2
    empty = np.zeros_like(truth)
    assert object_scores(truth, empty) == {"tp": 0, "fp": 0, "fn": 2, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert object_scores(empty, empty)["f1"] == 1.0
    assert object_scores(empty, truth)["fp"] == 2


def test_object_match_exactly_at_threshold_is_not_a_match():
    truth = np.zeros((1, 6), dtype=np.int32)
    truth[0, 0:4] = 1
    pred = np.zeros_like(truth)
    pred[0, 0:2] = 1  # IoU = 2 / 4 = 0.5
    assert object_scores(truth, pred, iou_threshold=0.5)["tp"] == 0
    assert object_scores(truth, pred, iou_threshold=0.49)["tp"] == 1


def test_mean_object_f1_over_default_thresholds():
    truth = np.zeros((1, 8), dtype=np.int32)
    truth[0, 0:5] = 1
    pred = np.zeros_like(truth)
    pred[0, 0:3] = 1  # IoU = 3 / 5 = 0.6: matched at 0.50 and 0.55 only
    table = object_scores_table(truth, pred)
    assert table["threshold"].tolist() == pytest.approx(np.arange(0.5, 0.95, 0.05))
    assert table["f1"].tolist() == [1.0, 1.0] + [0.0] * 7
    assert mean_object_f1(truth, pred) == pytest.approx(2 / 9)
    assert mean_object_f1(truth, pred, np.arange(0.5, 0.95, 0.05)) == pytest.approx(2 / 9)


def test_low_threshold_uses_optimal_assignment():
    truth = np.zeros((1, 24), dtype=np.int32)
    truth[0, 0:10], truth[0, 10:20] = 1, 2
    pred = np.zeros_like(truth)
    pred[0, 3:15] = 1  # IoU 7/15 with object 1, 5/17 with object 2
    pred[0, 0:3] = 2
    pred[0, 20:23] = 2  # IoU 3/13 with object 1
    # Greedy (best IoU first) would match 1-1 and leave two objects unmatched.
    assert object_scores(truth, pred, iou_threshold=0.2)["tp"] == 2
    assert object_scores(truth, pred, iou_threshold=0.3) == {
        "tp": 1, "fp": 1, "fn": 1, "precision": 0.5, "recall": 0.5, "f1": 0.5,
    }
    assert object_scores(truth, pred, iou_threshold=0.5)["tp"] == 0


def _reference_matches(truth: np.ndarray, pred: np.ndarray, threshold: float) -> int:
    """Maximum matching on object pairs with IoU above threshold, IoUs by explicit loops."""
    true_ids = [i for i in np.unique(truth) if i != 0]
    pred_ids = [j for j in np.unique(pred) if j != 0]
    adjacency = np.zeros((len(true_ids), len(pred_ids)))
    for a, i in enumerate(true_ids):
        for b, j in enumerate(pred_ids):
            inter = np.sum((truth == i) & (pred == j))
            union = np.sum((truth == i) | (pred == j))
            adjacency[a, b] = inter / union > threshold
    if adjacency.size == 0:
        return 0
    return int(np.sum(maximum_bipartite_matching(csr_matrix(adjacency), perm_type="column") >= 0))


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.5, 0.7])
def test_object_matching_agrees_with_reference_on_random_labels(threshold):
    rng = np.random.default_rng(int(threshold * 10))
    for _ in range(5):
        truth = rng.integers(0, 12, size=(12, 12)) * rng.integers(0, 2, size=(12, 12))
        pred = np.where(rng.random((12, 12)) < 0.7, truth, rng.integers(0, 12, size=(12, 12))) * 3
        expected = _reference_matches(truth, pred, threshold)
        scores = object_scores(truth, pred, iou_threshold=threshold)
        assert scores["tp"] == expected
        assert scores["tp"] + scores["fn"] == len(np.unique(truth[truth > 0]))
        assert scores["tp"] + scores["fp"] == len(np.unique(pred[pred > 0]))


def test_object_scores_pool_over_a_stack_and_a_list():
    truth = np.zeros((2, 4, 4), dtype=np.int32)
    truth[0, 0:2, 0:2], truth[1, 2:4, 2:4] = 1, 1  # same label id in two images: two objects
    pred = truth.copy()
    pred[1] = 0
    expected = {"tp": 1, "fp": 0, "fn": 1}
    for scores in (object_scores(truth, pred), object_scores(list(truth), list(pred))):
        assert {key: scores[key] for key in expected} == expected


@pytest.mark.parametrize(
    ("truth", "pred"),
    [
        (np.zeros((3, 3), np.float32), np.zeros((3, 3), np.int32)),
        (np.full((3, 3), -1), np.zeros((3, 3), np.int32)),
        (np.zeros((3, 3), np.int32), np.zeros((3, 2), np.int32)),
    ],
)
def test_object_scores_rejects_bad_labels(truth, pred):
    with pytest.raises(ArtsegInputError):
        object_scores(truth, pred)


def test_object_scores_rejects_threshold_outside_unit_interval():
    labels = np.ones((2, 2), dtype=np.int32)
    with pytest.raises(ArtsegInputError):
        object_scores(labels, labels, iou_threshold=1.0)


# --------------------------------------------------------------------------- image-level


def test_image_scores_hand_computed():
    assert image_f1([1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx(0.5)
    scores = image_scores(np.array([True, True, False]), np.array([1, 1, 1]))
    assert (scores["tp"], scores["fp"], scores["fn"], scores["tn"]) == (2, 1, 0, 0)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["accuracy"] == pytest.approx(2 / 3)
    assert image_f1([0, 0], [0, 0]) == 1.0


def test_image_scores_reject_mismatched_or_missing_labels():
    with pytest.raises(ArtsegInputError):
        image_f1([1, 0], [1])
    with pytest.raises(ArtsegInputError):
        image_f1([1.0, np.nan], [1, 0])


# --------------------------------------------------------------------------- curves and size filters


def test_pr_curve_counts_match_binarize_and_recall_is_monotonic():
    rng = np.random.default_rng(3)
    probs = [rng.random((20, 30)).astype(np.float32), rng.random((7, 9)).astype(np.float32)]
    probs[0][0, :4] = np.float32(0.3)  # pixels exactly at a cutoff (in float32)
    probs[1][0, :3] = 0.5
    truth = [rng.random(p.shape) < 0.3 for p in probs]
    cutoffs = [0.9, 0.0, 0.3, 0.5, 0.001, 0.3]
    curve = pr_curve(probs, truth, cutoffs)
    assert curve["cutoff"].tolist() == [0.0, 0.001, 0.3, 0.5, 0.9]
    for row in curve.itertuples():
        direct = pixel_scores(truth, [binarize(p, row.cutoff) for p in probs])
        assert (row.tp, row.fp, row.fn) == (direct["tp"], direct["fp"], direct["fn"])
        assert row.iou == pytest.approx(direct["iou"])
    assert np.all(np.diff(pr_curve(probs, truth)["recall"].to_numpy()) <= 0)


def test_pr_curve_rejects_non_finite_probabilities():
    prob = np.array([[0.5, np.nan]])
    with pytest.raises(ArtsegInputError):
        pr_curve(prob, prob > 0)


def test_pr_auc_hand_computed():
    prob = np.array([[0.9, 0.6, 0.3]])
    truth = np.array([[True, False, True]])
    # Cutoff 0.8: P 1, R 1/2; 0.5: P 1/2, R 1/2; 0.0: P 2/3, R 1.
    assert pr_auc(prob, truth, cutoffs=[0.0, 0.5, 0.8]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert pr_auc(prob, prob > 0.5, cutoffs=[0.5, 0.7]) == pytest.approx(1.0)
    assert np.isnan(area_under_pr_curve(pr_curve(prob, np.zeros_like(truth), [0.5])))


def test_iou_after_size_filter_hand_computed():
    mask = np.zeros((3, 15), dtype=bool)
    mask[0, 0] = True  # 1 pixel
    mask[0, 3:6] = True  # 3 pixels
    mask[0, 8:13] = True  # 5 pixels, the only true object
    truth = np.zeros_like(mask)
    truth[0, 8:13] = True
    table = iou_after_size_filter(mask, truth, None, sizes=(6, 0, 3, 4))
    assert table["min_size"].tolist() == [0, 3, 4, 6]
    assert table["iou"].tolist() == pytest.approx([5 / 9, 5 / 8, 1.0, 0.0])
    prob = np.where(mask, 0.9, 0.2)
    assert table.equals(iou_after_size_filter(prob, truth, 0.5, sizes=(6, 0, 3, 4)))


def test_iou_after_size_filter_matches_remove_small():
    rng = np.random.default_rng(5)
    masks = [rng.random((25, 25)) < 0.45, rng.random((10, 40)) < 0.5]
    truth = [rng.random(m.shape) < 0.3 for m in masks]
    sizes = (0, 2, 3, 5, 12)
    for connectivity in (1, 2):
        table = iou_after_size_filter(masks, truth, sizes=sizes, connectivity=connectivity)
        for row in table.itertuples():
            filtered = [remove_small(m, int(row.min_size), connectivity=connectivity) for m in masks]
            direct = pixel_scores(truth, filtered)
            assert (row.tp, row.fp, row.fn) == (direct["tp"], direct["fp"], direct["fn"])


def test_iou_after_size_filter_rejects_bad_sizes():
    mask = np.ones((2, 2), dtype=bool)
    with pytest.raises(ArtsegInputError):
        iou_after_size_filter(mask, mask, sizes=(-1, 5))
