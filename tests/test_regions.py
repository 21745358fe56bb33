import numpy as np
import pytest

from analysis.regions import (
    majority_in_region,
    nuclei_morphometry,
    region_masks,
    restrict_labels,
    score_region,
)


def _square(labels, label, r0, c0, size):
    labels[r0:r0 + size, c0:c0 + size] = label


def test_majority_assignment_ties_go_outside():
    labels = np.zeros((10, 10), int)
    _square(labels, 1, 0, 0, 4)  # 16 px
    _square(labels, 2, 6, 6, 4)
    region = np.zeros((10, 10), bool)
    region[:, :2] = True  # object 1: 8 of 16 px inside -> tie -> outside
    region[6:, 6:9] = True  # object 2: 12 of 16 inside
    keep = majority_in_region(labels, region)
    assert keep.tolist() == [False, False, True]
    restricted = restrict_labels(labels, region)
    assert set(np.unique(restricted)) == {0, 2}
    # complementary regions never both hold an object
    keep_out = majority_in_region(labels, ~region)
    assert not np.any(keep & keep_out)


def test_score_region_inside_and_outside_artifact():
    true = np.zeros((20, 20), int)
    _square(true, 1, 1, 1, 4)    # outside the artifact, predicted exactly
    _square(true, 2, 12, 12, 4)  # inside the artifact, missed
    pred = np.zeros_like(true)
    _square(pred, 5, 1, 1, 4)
    artifact = np.zeros((20, 20), bool)
    artifact[10:, 10:] = True
    regions = region_masks(artifact, np.zeros_like(artifact))

    outside = score_region(true, pred, regions["artifact_free_manual"])
    assert outside["pixel_f1"] == pytest.approx(1.0)
    assert outside["object_f1"] == pytest.approx(1.0)
    inside = score_region(true, pred, regions["artifact"])
    assert inside["pixel_f1"] == pytest.approx(0.0)
    assert inside["object_f1"] == pytest.approx(0.0)
    assert inside["n_true"] == 1 and inside["n_pred"] == 0
    whole = score_region(true, pred, regions["whole_image"])
    # 16 TP, 16 FN pixels -> F1 = 2*16 / (2*16 + 16) = 2/3; objects 1 TP 1 FN -> 2/3
    assert whole["pixel_f1"] == pytest.approx(2 / 3)
    assert whole["object_f1"] == pytest.approx(2 / 3)


def test_empty_region_reports_nan_with_zero_counts():
    true = np.zeros((8, 8), int)
    _square(true, 1, 0, 0, 3)
    empty = np.zeros((8, 8), bool)
    scores = score_region(true, true, empty)
    assert np.isnan(scores["pixel_f1"]) and np.isnan(scores["object_f1"])
    assert scores["n_pixels"] == 0 and scores["n_true"] == 0


def test_region_without_nuclei_reports_nan_not_a_perfect_score():
    true = np.zeros((8, 8), int)
    _square(true, 1, 5, 5, 3)  # a nucleus, but outside the region
    region = np.zeros((8, 8), bool)
    region[:4] = True
    scores = score_region(true, true, region)
    assert np.isnan(scores["pixel_f1"]) and np.isnan(scores["object_f1"])
    assert scores["n_pixels"] == 32 and scores["n_true"] == 0 and scores["n_pred"] == 0


def test_region_with_only_false_detections_scores_zero():
    true = np.zeros((8, 8), int)
    pred = np.zeros_like(true)
    _square(pred, 3, 0, 0, 3)
    region = np.zeros((8, 8), bool)
    region[:4] = True
    scores = score_region(true, pred, region)
    assert scores["pixel_f1"] == pytest.approx(0.0) and scores["object_f1"] == pytest.approx(0.0)
    assert scores["n_true"] == 0 and scores["n_pred"] == 1


def test_nucleus_on_the_artifact_border_counts_where_most_of_it_lies():
    true = np.zeros((12, 12), int)
    true[2:6, 2:8] = 1       # 24 px, 16 of them inside the artifact (columns 4..)
    pred = np.zeros_like(true)
    pred[2:6, 0:5] = 1       # 20 px, 4 inside: the prediction lies mostly outside
    artifact = np.zeros((12, 12), bool)
    artifact[:, 4:] = True
    regions = region_masks(artifact, np.zeros_like(artifact))

    inside = score_region(true, pred, regions["artifact"])
    assert (inside["n_true"], inside["n_pred"]) == (1, 0)
    assert inside["object_f1"] == pytest.approx(0.0)  # one FN
    # pixel-wise only the region's pixels count: inside 16 true, 4 predicted, 4 both
    assert inside["pixel_f1"] == pytest.approx(2 * 4 / (16 + 4))
    outside = score_region(true, pred, regions["artifact_free_manual"])  # 8 true, 16 predicted, 8 both
    assert (outside["n_true"], outside["n_pred"]) == (0, 1)
    assert outside["object_f1"] == pytest.approx(0.0)  # one FP
    assert outside["pixel_f1"] == pytest.approx(2 * 8 / (8 + 16))
    whole = score_region(true, pred, regions["whole_image"])
    # IoU 12 / 32 < 0.5: not a match, so one FN and one FP
    assert whole["object_f1"] == pytest.approx(0.0)


def test_region_masks_reject_different_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        region_masks(np.zeros((4, 4), bool), np.zeros((4, 5), bool))


def test_morphometry_per_region_and_matching():
    true = np.zeros((30, 30), int)
    _square(true, 1, 2, 2, 6)
    pred = np.zeros_like(true)
    _square(pred, 1, 2, 2, 6)          # matched, outside artifact
    pred[20:23, 20:29] = 2             # unmatched bar inside artifact
    artifact = np.zeros((30, 30), bool)
    artifact[15:, 15:] = True
    regions = region_masks(artifact, artifact)
    table = nuclei_morphometry(pred, true, regions)
    inside = table[table.region == "artifact"]
    assert inside["label"].tolist() == [2]
    assert inside["area"].tolist() == [27]
    assert not inside["matched"].iloc[0]
    outside = table[table.region == "artifact_free_manual"]
    assert outside["matched"].tolist() == [True]
    assert outside["solidity"].iloc[0] == pytest.approx(1.0)
    assert len(table[table.region == "whole_image"]) == 2
