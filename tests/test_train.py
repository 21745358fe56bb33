"""The one training loop: learning, best-validation checkpoint, schedules, seeding, logs."""

import csv

import numpy as np
import pytest
import torch
from torch import nn

from artseg.augment import augment_batch, jitter_intensity, random_dihedral
from artseg.errors import ArtsegInputError
from artseg.nets import UNet
from artseg.train import TrainConfig, autocast_context, evaluate_loss, fit, resolve_precision


def square_task(n=32, size=16, seed=0, invert=False):
    """Images with a bright square (label 1) or without (label 0)."""
    rng = np.random.default_rng(seed)
    images = rng.random((n, 1, size, size)).astype(np.float32) * 0.3
    labels = np.zeros((n, 1), np.float32)
    for i in range(0, n, 2):
        y, x = rng.integers(0, size - 6, 2)
        images[i, 0, y : y + 6, x : x + 6] += 0.7
        labels[i] = 1.0
    if invert:
        labels = 1.0 - labels
    return torch.from_numpy(images), torch.from_numpy(labels)


def tiny_classifier(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(4, 1))


def config(**overrides):
    values = dict(epochs=12, batch_size=8, lr=0.03, augment=False, precision="fp32", seed=0)
    values.update(overrides)
    return TrainConfig(**values)


def test_fit_reduces_loss_on_learnable_task():
    x, y = square_task()
    result = fit(tiny_classifier(), x, y, x[:8], y[:8], config=config(), progress=False)
    losses = [row["train_loss"] for row in result.history]
    assert len(losses) == 12
    assert losses[-1] < 0.5 * losses[0]


def test_fit_learns_pixel_targets_with_joint_augmentation():
    x, _ = square_task(n=16)
    targets = (x > 0.5).float()
    torch.manual_seed(0)
    net = UNet(width=4, levels=1, convs_per_block=1)
    result = fit(net, x, targets, x[:4], targets[:4], config=config(epochs=15, augment=True), progress=False)
    assert result.history[-1]["train_loss"] < 0.6 * result.history[0]["train_loss"]


def test_model_ends_with_best_validation_weights():
    x, y = square_task()
    val_x, val_y = square_task(n=16, seed=1, invert=True)  # learning the task makes validation worse
    model = tiny_classifier()
    result = fit(model, x, y, val_x, val_y, config=config(), progress=False)
    val_losses = [row["val_loss"] for row in result.history]
    assert result.best_epoch == int(np.argmin(val_losses)) + 1
    assert result.best_epoch < len(val_losses)
    assert result.best_val_loss == pytest.approx(min(val_losses))
    assert evaluate_loss(model, val_x, val_y, batch_size=8) == pytest.approx(result.best_val_loss, rel=1e-5)


def test_early_stop_and_plateau_schedule():
    x, y = square_task()
    val_x, val_y = square_task(n=16, seed=1, invert=True)
    result = fit(
        tiny_classifier(), x, y, val_x, val_y,
        config=config(epochs=40, early_stop_patience=3, plateau_patience=0), progress=False,
    )
    assert result.stopped_early
    assert len(result.history) == result.best_epoch + 3 < 40
    learning_rates = [row["lr"] for row in result.history]
    assert learning_rates[0] == pytest.approx(0.03)
    assert min(learning_rates) == pytest.approx(0.03 * 0.1 ** round(np.log10(0.03 / min(learning_rates))))
    assert min(learning_rates) < 0.03


def test_fit_is_deterministic_per_seed():
    x, y = square_task()
    runs = []
    for seed in (3, 3, 4):
        model = tiny_classifier(seed=0)
        result = fit(model, x, y, x[:8], y[:8], config=config(epochs=3, augment=True, seed=seed), progress=False)
        runs.append(([row["train_loss"] for row in result.history], model.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])
    assert runs[0][0] != runs[2][0]


def test_csv_log_has_one_row_per_epoch(tmp_path):
    x, y = square_task()
    log = tmp_path / "logs" / "train.csv"
    fit(tiny_classifier(), x, y, x[:8], y[:8], config=config(epochs=3), log_csv=log, progress=False)
    with log.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    assert set(rows[0]) == {"epoch", "train_loss", "val_loss", "lr", "seconds"}
    assert all(float(row["seconds"]) > 0 for row in rows)


def test_custom_loss_without_targets_and_without_validation():
    x, _ = square_task(n=8)
    torch.manual_seed(0)
    autoencoder = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1))

    def reconstruction(model, images, targets):
        assert targets is None
        return ((model(images).float() - images) ** 2).mean()

    result = fit(autoencoder, x, None, None, None, config=config(epochs=5), compute_loss=reconstruction, progress=False)
    assert [row["val_loss"] for row in result.history] == [row["train_loss"] for row in result.history]
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_bf16_training_runs_and_reports_precision():
    x, y = square_task(n=8)
    result = fit(tiny_classifier(), x, y, x, y, config=config(epochs=2, precision="bf16"), progress=False)
    assert result.precision == "bf16"
    assert np.isfinite(result.best_val_loss)


@pytest.mark.parametrize(
    "train_x, train_y, message",
    [(torch.zeros(0, 1, 8, 8), None, "non-empty"), (torch.zeros(4, 1, 8, 8), torch.zeros(3, 1), "4 samples"),
     (torch.zeros(4, 8, 8), None, "non-empty")],
)
def test_fit_rejects_bad_inputs(train_x, train_y, message):
    with pytest.raises(ArtsegInputError, match=message):
        fit(tiny_classifier(), train_x, train_y, None, None, config=config(), progress=False)


def test_resolve_precision_and_autocast():
    assert resolve_precision("fp32") == "fp32"
    assert resolve_precision("bf16") == "bf16"
    assert resolve_precision("auto") in ("fp32", "bf16")
    with pytest.raises(ArtsegInputError, match="precision"):
        resolve_precision("fp16")
    layer = nn.Linear(4, 4)
    with autocast_context("bf16"):
        assert layer(torch.rand(2, 4)).dtype == torch.bfloat16
    with autocast_context("fp32"):
        assert layer(torch.rand(2, 4)).dtype == torch.float32


def test_random_dihedral_moves_images_and_pixel_targets_together():
    images = torch.rand(16, 2, 8, 8)
    out_images, out_targets = random_dihedral(images, images[:, :1].clone(), np.random.default_rng(0))
    assert torch.equal(out_images[:, :1], out_targets)
    assert not torch.equal(out_images, images)
    image_level = torch.ones(16, 1)
    assert random_dihedral(images, image_level, np.random.default_rng(0))[1] is image_level


def test_random_dihedral_keeps_shape_of_rectangular_images():
    images = torch.rand(8, 1, 6, 10)
    assert random_dihedral(images, None, np.random.default_rng(1))[0].shape == images.shape


def test_intensity_jitter_touches_images_only():
    images = torch.rand(4, 1, 8, 8)
    targets = (images > 0.5).float()
    out_images, out_targets = augment_batch(images, targets.clone(), np.random.default_rng(0), intensity_jitter=0.2)
    assert torch.equal(out_targets.sum(), targets.sum())
    assert torch.equal(jitter_intensity(images, np.random.default_rng(0), 0.0), images)
    jittered = jitter_intensity(images, np.random.default_rng(0), 0.2)
    assert not torch.equal(jittered, images)
    assert torch.all((jittered - images).abs() <= 0.2 * images.abs() + 0.1 + 1e-6)
