"""Differentiable SSIM against scikit-image's independent implementation."""

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from artseg.comparison.baselines.ssim import gaussian_window, ssim, ssim_map
from artseg.errors import ArtsegInputError


def _pair(rng, shape, noise, scale=1.0):
    clean = rng.random(shape) * scale
    noisy = np.clip(clean + noise * scale * rng.standard_normal(shape), 0, scale)
    return clean, noisy


def _tensor(array):
    return torch.tensor(array, dtype=torch.float32)[None, None]


def _skimage_ssim(a, b, data_range):
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=data_range, full=True
    )


@pytest.mark.parametrize("shape", [(40, 52), (11, 17), (530, 37)])
@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_full_map_matches_skimage(shape, data_range):
    rng = np.random.default_rng(sum(shape))
    a, b = _pair(rng, shape, noise=0.2, scale=data_range)
    _, expected = _skimage_ssim(a, b, data_range)
    ours = ssim_map(_tensor(a), _tensor(b), data_range=data_range)[0, 0].numpy()
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=1e-4)


def test_valid_mean_matches_skimage_mean():
    rng = np.random.default_rng(7)
    a, b = _pair(rng, (64, 48), noise=0.3)
    expected_mean, _ = _skimage_ssim(a, b, 1.0)
    ours = ssim(_tensor(a), _tensor(b), padding="valid")
    assert ours.shape == (1,)
    assert abs(float(ours[0]) - expected_mean) < 1e-4


def test_batch_and_channels_are_independent():
    rng = np.random.default_rng(3)
    pairs = [_pair(rng, (24, 24), noise=n) for n in (0.05, 0.3, 0.6)]
    x = torch.tensor(np.stack([[p[0]] for p in pairs]), dtype=torch.float32)
    y = torch.tensor(np.stack([[p[1]] for p in pairs]), dtype=torch.float32)
    batched = ssim(x, y)
    single = [float(ssim(x[i : i + 1], y[i : i + 1])[0]) for i in range(3)]
    np.testing.assert_allclose(batched.numpy(), single, atol=1e-6)
    assert batched[0] > batched[1] > batched[2]


def test_identical_images_score_one_and_gradients_flow():
    rng = np.random.default_rng(0)
    target = _tensor(rng.random((32, 32)))
    np.testing.assert_allclose(ssim_map(target, target).numpy(), 1.0, atol=1e-5)
    estimate = (target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(0))).requires_grad_()
    loss = 1 - ssim(estimate, target).mean()
    loss.backward()
    assert torch.isfinite(estimate.grad).all() and estimate.grad.abs().sum() > 0
    with torch.no_grad():
        improved = estimate - 0.05 * estimate.grad / estimate.grad.abs().max()
        assert float(ssim(improved, target)[0]) > float(ssim(estimate, target)[0])


def test_bf16_autocast_keeps_float32_statistics():
    rng = np.random.default_rng(1)
    a, b = _pair(rng, (32, 32), noise=0.1)
    reference = ssim_map(_tensor(a), _tensor(b))
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        under_autocast = ssim_map(_tensor(a), _tensor(b))
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, reference)


def test_gaussian_window_is_normalised_and_symmetric():
    window = gaussian_window(11, 1.5)
    assert window.shape == (11,)
    assert abs(float(window.sum()) - 1.0) < 1e-6
    torch.testing.assert_close(window, window.flip(0))
    assert int(window.argmax()) == 5


@pytest.mark.parametrize(
    "call",
    [
        lambda: ssim_map(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 9)),
        lambda: ssim_map(torch.zeros(8, 8), torch.zeros(8, 8)),
        lambda: ssim_map(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), padding="same"),
        lambda: ssim_map(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), padding="valid"),
        lambda: gaussian_window(10, 1.5),
        lambda: gaussian_window(11, 0.0),
    ],
)
def test_bad_input_raises(call):
    with pytest.raises(ArtsegInputError):
        call()
