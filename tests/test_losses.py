"""Tests of artseg.losses (partial-label multiple-instance loss for weak supervision, issue 4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from artseg.errors import ArtsegInputError
from artseg.losses import NEGATIVE, POSITIVE, UNKNOWN, partial_mil_loss, top_fraction_pool
from artseg.train import TrainConfig, fit


class _Constant(nn.Module):
    """Returns fixed logits whatever the input: lets the loss be checked by hand."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits


def _bce(logit: float, target: float) -> float:
    probability = 1.0 / (1.0 + np.exp(-logit))
    return -(target * np.log(probability) + (1 - target) * np.log(1 - probability))


def test_top_fraction_pool_averages_the_largest_logits_inside_the_region():
    logits = torch.tensor([[5.0, 1.0, 3.0, 9.0], [0.0, -1.0, 2.0, 4.0]])
    region = torch.tensor([[True, True, True, False], [True, True, True, True]])
    pooled = top_fraction_pool(logits, region, top_fraction=0.5, min_pixels=1)
    # row 0: region {5, 1, 3}, k = ceil(1.5) = 2 -> (5 + 3) / 2; row 1: k = 2 -> (4 + 2) / 2
    assert pooled.tolist() == [4.0, 3.0]
    assert top_fraction_pool(logits[:1], region[:1], top_fraction=0.01, min_pixels=10).item() == pytest.approx(3.0)


def test_partial_mil_loss_matches_a_hand_computation():
    # sample 0 (artifact image): pixels neg, unknown, unknown, pos; sample 1 (clean): all negative
    logits = torch.tensor([[-2.0, 3.0, 1.0, 2.0], [-1.0, 0.5, -3.0, -2.0]]).reshape(2, 1, 2, 2)
    targets = torch.tensor([[NEGATIVE, UNKNOWN, UNKNOWN, POSITIVE], [NEGATIVE] * 4], dtype=torch.uint8)
    targets = targets.reshape(2, 1, 2, 2)
    loss = partial_mil_loss(_Constant(logits), torch.zeros(2, 1, 2, 2), targets, top_fraction=0.5, min_pixels=1)
    known = [(-2.0, 0), (2.0, 1), (-1.0, 0), (0.5, 0), (-3.0, 0), (-2.0, 0)]
    pixel_term = np.mean([_bce(logit, target) for logit, target in known])
    # sample 0 pools over {3, 1, 2} (k = 2) -> 2.5 towards 1; sample 1 over all 4 (k = 2) -> (0.5 - 1) / 2 towards 0
    mil_term = np.mean([_bce(2.5, 1), _bce(-0.25, 0)])
    assert float(loss) == pytest.approx(pixel_term + mil_term, rel=1e-5)


def test_partial_mil_loss_needs_matching_targets():
    logits = torch.zeros(1, 1, 2, 2)
    with pytest.raises(ArtsegInputError, match="targets"):
        partial_mil_loss(_Constant(logits), logits, None)
    with pytest.raises(ArtsegInputError, match="shape"):
        partial_mil_loss(_Constant(logits), logits, torch.zeros(1, 1, 2, 3))


def test_mil_training_localises_a_blob_seen_only_through_a_coarse_region():
    """A tiny conv net trained with the loss finds the blob inside a much larger unknown box.

    Clean images and the outside of the box are the only negatives and no pixel of the blob
    is ever labelled positive; the trivial baseline (mark the whole box) scores IoU < 0.1.
    """
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    size, n = 32, 48
    yy, xx = np.mgrid[:size, :size]
    images = 0.5 + 0.05 * rng.standard_normal((n, 1, size, size))
    targets = np.zeros((n, 1, size, size), np.uint8)
    blobs = np.zeros((n, size, size), bool)
    for index in range(0, n, 2):
        cy, cx = rng.integers(10, 22, 2)
        blob = (yy - cy) ** 2 + (xx - cx) ** 2 <= 4
        images[index, 0][blob] = 0.0
        blobs[index] = blob
        targets[index, 0][cy - 9 : cy + 10, cx - 9 : cx + 10] = UNKNOWN
    model = nn.Sequential(nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(), nn.Conv2d(8, 1, 1))
    x, y = torch.from_numpy(images.astype(np.float32)), torch.from_numpy(targets)
    fit(model, x[:32], y[:32], x[32:], y[32:], config=TrainConfig(epochs=60, batch_size=8, lr=0.01, augment=False,
                                                                  precision="fp32"),
        compute_loss=lambda m, a, b: partial_mil_loss(m, a, b, top_fraction=0.05, min_pixels=4), progress=False)
    with torch.no_grad():
        predicted = torch.sigmoid(model(x[32:])).numpy()[:, 0] > 0.5
    truth = blobs[32:]
    iou = (predicted & truth).sum() / (predicted | truth).sum()
    box = targets[32:, 0] == UNKNOWN
    box_iou = (box & truth).sum() / (box | truth).sum()
    assert box_iou < 0.1
    assert iou > 0.5
