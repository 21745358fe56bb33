"""Tests for artseg.cam: Score-CAM against the plain reference loop, conventions, options."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from artseg.cam import combine_channel_maps, resolve_target_layer, score_cam, score_cam_reference
from artseg.errors import ArtsegInputError

SQUARE = (slice(10, 22), slice(30, 42))  # where the bright "artifact" sits in 48x48 images


class TinyClassifier(nn.Module):
    """Two conv stages, global average pooling, linear head (like ArtSeg's ResNet)."""

    def __init__(self, num_logits: int = 2, channels: int = 8, in_channels: int = 1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU())
        self.last_stage = nn.Sequential(nn.Conv2d(4, channels, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(channels, num_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.last_stage(self.stem(x)).mean(dim=(2, 3)))


def bright_square_detector(num_logits: int = 2, channels: int = 8, seed: int = 0) -> TinyClassifier:
    """A classifier whose channel 0 fires on bright pixels and drives the artifact logit.

    Random weights elsewhere, so the channels' Score-CAM weights differ strongly: the
    mask of channel 0 keeps the square (high artifact probability), other masks do not.
    """
    torch.manual_seed(seed)
    net = TinyClassifier(num_logits, channels)
    with torch.no_grad():
        stem_conv, stage_conv = net.stem[0], net.last_stage[0]
        stem_conv.weight[0] = 0.0
        stem_conv.weight[0, 0, 1, 1] = 1.0
        stem_conv.bias[0] = 0.0
        stage_conv.weight[0] = 0.0
        stage_conv.weight[0, 0] = 1.0 / 9.0
        stage_conv.bias[0] = -0.5
        net.head.weight.mul_(0.2)
        net.head.bias.zero_()
        net.head.weight[-1, 0] = 200.0
        net.head.bias[-1] = -2.0
    return net.eval()


def square_images(n_images: int = 3, size: int = 48, seed: int = 1) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    images = 0.2 + 0.05 * rng.standard_normal((n_images, 1, size, size))
    images[:, :, SQUARE[0], SQUARE[1]] += 0.7
    return torch.from_numpy(images.astype(np.float32))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def channel_probabilities(net: nn.Module, image: torch.Tensor) -> np.ndarray:
    """Artifact probability of the input masked by each normalised last-stage map."""
    with torch.no_grad():
        maps = net.last_stage(net.stem(image[None]))[0]
        upsampled = nn.functional.interpolate(
            maps[:, None], size=image.shape[-2:], mode="bilinear", align_corners=False
        )
        low = upsampled.amin(dim=(2, 3), keepdim=True)
        high = upsampled.amax(dim=(2, 3), keepdim=True)
        masks = (upsampled - low) / (high - low).clamp_min(1e-12)
        return torch.softmax(net(masks * image), dim=1)[:, -1].numpy()


@pytest.fixture(scope="module")
def detector() -> TinyClassifier:
    return bright_square_detector()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return square_images()


@pytest.fixture(scope="module")
def reference_maps(detector, images) -> np.ndarray:
    return score_cam_reference(detector, images)


def test_detector_has_strongly_unequal_channel_weights(detector, images):
    weights = channel_probabilities(detector, images[0])
    assert weights.max() - weights.min() > 0.3
    assert weights.max() > 3 * weights.min()


def test_output_is_one_float_map_per_image_in_unit_range(detector, images):
    maps = score_cam(detector, images, precision="fp32")
    assert maps.shape == (3, 48, 48)
    assert maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    assert np.allclose(maps.max(axis=(1, 2)), 1.0)


def test_reference_map_highlights_the_square(reference_maps):
    inside = reference_maps[:, SQUARE[0], SQUARE[1]].mean()
    assert inside > 3 * reference_maps.mean()


def test_fp32_matches_reference_loop(detector, images, reference_maps):
    maps = score_cam(detector, images, precision="fp32")
    np.testing.assert_allclose(maps, reference_maps, atol=1e-4)


@pytest.mark.parametrize("precision", ["auto", "bf16"])
def test_reduced_precision_correlates_with_reference(detector, images, reference_maps, precision):
    maps = score_cam(detector, images, precision=precision)
    for fast, exact in zip(maps, reference_maps):
        assert pearson(fast, exact) >= 0.99


def test_random_wider_model_matches_reference():
    torch.manual_seed(3)
    net = TinyClassifier(num_logits=3, channels=12, in_channels=2).eval()
    images = torch.rand(2, 2, 32, 28)
    for class_idx in (0, 2):
        maps = score_cam(net, images, class_idx=class_idx, precision="fp32", batch_size=5)
        expected = score_cam_reference(net, images, class_idx=class_idx)
        np.testing.assert_allclose(maps, expected, atol=1e-4)


class LogitsFromDetector(nn.Module):
    """Wraps the detector's artifact-minus-clean logit z as [z], [-z] or [0, z]."""

    def __init__(self, detector: TinyClassifier, layout: str):
        super().__init__()
        self.detector, self.layout = detector, layout
        self.last_stage = detector.last_stage

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.detector(x)
        z = (logits[:, 1] - logits[:, 0])[:, None]
        return {"single": z, "negated": -z, "pair": torch.cat([torch.zeros_like(z), z], 1)}[self.layout]


@pytest.mark.parametrize("class_idx", [0, 1])
def test_single_logit_sigmoid_equals_two_logit_softmax(detector, images, class_idx):
    single = score_cam(LogitsFromDetector(detector, "single"), images, class_idx=class_idx, precision="fp32")
    pair = score_cam(LogitsFromDetector(detector, "pair"), images, class_idx=class_idx, precision="fp32")
    np.testing.assert_allclose(single, pair, atol=1e-5)


def test_single_logit_class_zero_is_the_complement(detector, images):
    complement = score_cam(LogitsFromDetector(detector, "single"), images, class_idx=0, precision="fp32")
    negated = score_cam(LogitsFromDetector(detector, "negated"), images, class_idx=1, precision="fp32")
    artifact = score_cam(LogitsFromDetector(detector, "single"), images, class_idx=1, precision="fp32")
    np.testing.assert_allclose(complement, negated, atol=1e-5)
    assert not np.allclose(complement, artifact, atol=1e-2)


def test_class_none_explains_the_predicted_class(detector, images):
    clean = square_images(1, seed=5)
    clean[:, :, SQUARE[0], SQUARE[1]] -= 0.7
    mixed = torch.cat([images[:1], clean])
    with torch.no_grad():
        predicted = detector(mixed).argmax(dim=1).tolist()
    assert predicted == [1, 0]
    maps = score_cam(detector, mixed, class_idx=None, precision="fp32")
    np.testing.assert_allclose(maps[0], score_cam(detector, mixed[:1], class_idx=1, precision="fp32")[0], atol=1e-6)
    np.testing.assert_allclose(maps[1], score_cam(detector, mixed[1:], class_idx=0, precision="fp32")[0], atol=1e-6)


WIDE_CHANNELS = 192  # more than the default 128 scored channels


@pytest.fixture(scope="module")
def wide_detector() -> TinyClassifier:
    """The square detector widened to 192 channels, one stem channel firing on dark pixels.

    Its images also hold a dark square: many channels highlight the dark square, but only
    masks keeping the bright one raise the artifact probability, so the channel weights,
    not the activations alone, decide the map.
    """
    net = bright_square_detector(channels=WIDE_CHANNELS)
    with torch.no_grad():
        dark = net.stem[0]
        dark.weight[1] = 0.0
        dark.weight[1, 0, 1, 1] = -2.0
        dark.bias[1] = 0.6
    return net


@pytest.fixture(scope="module")
def dark_and_bright_images() -> torch.Tensor:
    """One image with the bright square and a dark square elsewhere (one image: the
    reference loop runs 192 masked forward passes per image)."""
    images = square_images(1)
    images[:, :, 30:42, 4:16] -= 0.6
    return images


@pytest.fixture(scope="module")
def wide_reference_maps(wide_detector, dark_and_bright_images) -> np.ndarray:
    return score_cam_reference(wide_detector, dark_and_bright_images)


def test_wide_detector_needs_its_channel_weights(wide_detector, dark_and_bright_images, wide_reference_maps):
    with torch.no_grad():
        activations = wide_detector.last_stage(wide_detector.stem(dark_and_bright_images))
    for channel_maps, exact in zip(activations, wide_reference_maps):
        unweighted = combine_channel_maps(channel_maps, torch.ones(WIDE_CHANNELS), exact.shape)
        assert pearson(unweighted, exact) < 0.9


def test_default_scores_128_channels(wide_detector, dark_and_bright_images):
    batch_sizes: list[int] = []
    handle = wide_detector.register_forward_pre_hook(lambda module, args: batch_sizes.append(len(args[0])))
    try:
        score_cam(wide_detector, dark_and_bright_images, precision="fp32", batch_size=50)
    finally:
        handle.remove()
    assert batch_sizes == [1, 50, 50, 28]  # activations, then 128 masked inputs


def test_default_channel_selection_matches_exact(wide_detector, dark_and_bright_images, wide_reference_maps):
    maps = score_cam(wide_detector, dark_and_bright_images, precision="fp32")
    for fast, exact in zip(maps, wide_reference_maps):
        assert pearson(fast, exact) >= 0.99
    assert not np.allclose(maps, wide_reference_maps, atol=1e-6)  # an approximation, not exact


def test_top_k_none_is_exact(wide_detector, dark_and_bright_images, wide_reference_maps):
    maps = score_cam(wide_detector, dark_and_bright_images, precision="fp32", top_k=None)
    np.testing.assert_allclose(maps, wide_reference_maps, atol=1e-4)


def test_default_is_exact_for_up_to_128_channels(detector, images):
    np.testing.assert_array_equal(
        score_cam(detector, images, precision="fp32"), score_cam(detector, images, precision="fp32", top_k=None)
    )


def test_auto_channels_spread_over_the_peak_ranking():
    from artseg.cam._score_cam import _ranked_channels

    peaks = 1.0 + torch.randperm(300, generator=torch.Generator().manual_seed(0)).double()
    activations = torch.zeros(400, 2, 2)  # channels 300-399 constant: never scored
    activations[:300, 0, 0] = -peaks  # the sign is irrelevant: ranked by |activation|
    chosen = _ranked_channels(activations, "auto")
    assert len(chosen) == 128 and len(set(chosen.tolist())) == 128 and chosen.max() < 300
    ranks = (300 - peaks[chosen]).long()  # 0 = highest peak
    assert ranks[0] == 0 and ranks[-1] == 299
    assert set(torch.diff(ranks).tolist()) <= {2, 3}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_masked_inputs_take_the_layout_of_the_precision(precision):
    from artseg.hardware import inference_memory_format

    torch.manual_seed(0)
    net = TinyClassifier(num_logits=2, channels=4, in_channels=3).eval()
    layouts: list[tuple[bool, bool]] = []

    def record_layout(module: nn.Module, args: tuple) -> None:
        layouts.append(tuple(args[0].is_contiguous(memory_format=f)
                             for f in (torch.contiguous_format, torch.channels_last)))

    handle = net.register_forward_pre_hook(record_layout)
    try:
        score_cam(net, torch.rand(1, 3, 16, 16), precision=precision, batch_size=4)
    finally:
        handle.remove()
    expected = inference_memory_format(precision)
    assert layouts[1] == (expected == torch.contiguous_format, expected == torch.channels_last)


@pytest.mark.parametrize("top_k", [8, 100])
def test_top_k_of_all_channels_is_exact(detector, images, top_k):
    exact = score_cam(detector, images, precision="fp32")
    np.testing.assert_array_equal(score_cam(detector, images, precision="fp32", top_k=top_k), exact)


def test_top_k_scores_only_k_masked_inputs(detector, images):
    batch_sizes: list[int] = []
    handle = detector.register_forward_pre_hook(lambda module, args: batch_sizes.append(len(args[0])))
    try:
        score_cam(detector, images[:1], precision="fp32", top_k=3, batch_size=1)
    finally:
        handle.remove()
    assert batch_sizes == [1, 1, 1, 1]  # one pass to read activations, then three masks


def test_top_k_keeps_the_dominant_channel(detector, images, reference_maps):
    maps = score_cam(detector, images, precision="fp32", top_k=4)
    for fast, exact in zip(maps, reference_maps):
        assert pearson(fast, exact) >= 0.95


def test_unscored_channels_take_the_weight_of_the_closest_mask(images):
    net = bright_square_detector()
    with torch.no_grad():  # channels 4-7 become half-strength copies of 0-3: same masks, less energy
        conv = net.last_stage[0]
        conv.weight[4:] = 0.5 * conv.weight[:4]
        conv.bias[4:] = 0.5 * conv.bias[:4]
    exact = score_cam(net, images, precision="fp32")
    np.testing.assert_allclose(score_cam(net, images, precision="fp32", top_k=4), exact, atol=1e-4)
    assert not np.allclose(score_cam(net, images, precision="fp32", top_k=2), exact, atol=1e-3)


def test_top_k_ranks_channels_by_peak_activation():
    net = TinyClassifier(num_logits=2, channels=2)
    with torch.no_grad():
        for conv in (net.stem[0], net.last_stage[0]):
            conv.weight.zero_()
            conv.bias.zero_()
        net.stem[0].weight[0, 0, 1, 1] = 1.0  # stem channel 0 passes the image through
        net.last_stage[0].weight[0, 0, 1, 1] = 0.1  # channel 0: diffuse, high mean, low peak
        net.last_stage[0].bias[0] = 1.0
        net.last_stage[0].weight[1, 0, 1, 1] = 10.0  # channel 1: a spike at the bright pixel
        net.last_stage[0].bias[1] = -5.0
    image = torch.rand(1, 1, 32, 32) * 0.2
    image[0, 0, 8, 24] = 1.0
    scored_inputs: list[torch.Tensor] = []
    handle = net.register_forward_pre_hook(lambda module, args: scored_inputs.append(args[0].clone()))
    try:
        score_cam(net, image, precision="fp32", top_k=1, batch_size=1)
    finally:
        handle.remove()
    mask = (scored_inputs[1] / image)[0, 0]  # the only masked input scored
    assert mask[8, 24] == pytest.approx(1.0, abs=1e-4)
    assert float(mask[24, 8]) < 1e-4


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_batch_size_does_not_change_the_maps(detector, images, batch_size):
    expected = score_cam(detector, images, precision="fp32", batch_size=8)
    maps = score_cam(detector, images, precision="fp32", batch_size=batch_size)
    np.testing.assert_allclose(maps, expected, atol=1e-5)


def test_each_image_gets_the_map_it_would_get_alone(detector, images):
    together = score_cam(detector, images, precision="fp32")
    for i in range(len(images)):
        alone = score_cam(detector, images[i:i + 1], precision="fp32")
        np.testing.assert_allclose(together[i], alone[0], atol=1e-5)
    assert not np.allclose(together[0], together[1], atol=1e-3)


def test_numpy_images_are_accepted(detector, images):
    np.testing.assert_array_equal(
        score_cam(detector, images.numpy(), precision="fp32"), score_cam(detector, images, precision="fp32")
    )


class NoLastStage(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.refine = nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.refine(self.features(x))).flatten(1))


def test_default_target_layer_is_last_stage_attribute(detector):
    assert resolve_target_layer(detector) is detector.last_stage


def test_default_target_layer_without_last_stage_is_last_conv_child():
    torch.manual_seed(0)
    net = NoLastStage()
    assert resolve_target_layer(net) is net.refine


def test_explicit_target_layer_is_used(images):
    torch.manual_seed(0)
    net = NoLastStage().eval()
    default = score_cam(net, images, precision="fp32")
    early = score_cam(net, images, target_layer=net.features, precision="fp32")
    np.testing.assert_allclose(early, score_cam_reference(net, images, target_layer=net.features), atol=1e-4)
    np.testing.assert_allclose(default, score_cam_reference(net, images), atol=1e-4)
    assert not np.allclose(early, default, atol=1e-2)


def test_constant_channels_are_skipped_like_the_reference(images):
    torch.manual_seed(0)
    net = NoLastStage().eval()
    signed_conv = net.refine[0]  # before the ReLU: signed maps, so a constant shift survives
    with torch.no_grad():
        signed_conv.weight[0] = 0.0
        signed_conv.bias[0] = 5.0
    maps = score_cam(net, images, target_layer=signed_conv, precision="fp32")
    np.testing.assert_allclose(maps, score_cam_reference(net, images, target_layer=signed_conv), atol=1e-4)


def test_target_layer_outside_the_model_is_rejected(detector, images):
    with pytest.raises(ArtsegInputError, match="not a submodule"):
        score_cam(detector, images, target_layer=nn.Conv2d(1, 1, 1))


def test_model_without_convolutions_needs_a_target_layer(images):
    net = nn.Sequential(nn.Flatten(), nn.Linear(48 * 48, 2))
    with pytest.raises(ArtsegInputError, match="target layer"):
        score_cam(net, images)


def test_baseline_zero_is_the_original(detector, images):
    np.testing.assert_array_equal(
        score_cam(detector, images, precision="fp32", baseline=0.0),
        score_cam(detector, images, precision="fp32"),
    )


@pytest.mark.parametrize("baseline", [0.2, "mean", "background"])
def test_baselines_match_reference(detector, images, baseline):
    maps = score_cam(detector, images, precision="fp32", baseline=baseline)
    np.testing.assert_allclose(maps, score_cam_reference(detector, images, baseline=baseline), atol=1e-4)


def test_background_baseline_changes_the_masked_inputs(detector, images):
    original = score_cam(detector, images, precision="fp32")
    background = score_cam(detector, images, precision="fp32", baseline="background")
    assert not np.allclose(original, background, atol=1e-3)


@pytest.mark.parametrize("baseline", ["mean", "background"])
def test_named_baselines_are_per_image_levels(detector, images, baseline):
    pixels = np.sort(images.numpy().reshape(len(images), -1), axis=1)
    levels = pixels.mean(axis=1) if baseline == "mean" else pixels[:, (pixels.shape[1] - 1) // 2]
    for image, level in zip(images, levels):
        named = score_cam(detector, image[None], precision="fp32", baseline=baseline)
        constant = score_cam(detector, image[None], precision="fp32", baseline=float(level))
        np.testing.assert_allclose(named, constant, atol=1e-5)


def test_tensor_baseline_equals_constant(detector, images):
    as_tensor = score_cam(detector, images, precision="fp32", baseline=torch.full((1, 48, 48), 0.3))
    np.testing.assert_allclose(as_tensor, score_cam(detector, images, precision="fp32", baseline=0.3), atol=1e-6)


def test_training_flags_are_restored(images):
    net = bright_square_detector().train()
    net.stem.eval()
    score_cam(net, images[:1], precision="fp32")
    assert net.training and net.last_stage.training and not net.stem.training


def test_constant_activations_give_zero_map():
    net = TinyClassifier(num_logits=2)
    with torch.no_grad():
        net.last_stage[0].weight.zero_()
        net.last_stage[0].bias.fill_(1.0)
    maps = score_cam(net, torch.rand(2, 1, 32, 32), precision="fp32")
    np.testing.assert_array_equal(maps, np.zeros((2, 32, 32), dtype=np.float32))


def test_combine_channel_maps_is_relu_then_minmax():
    activations = torch.tensor([[[1.0, -3.0], [2.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])
    combined = combine_channel_maps(activations, torch.tensor([2.0, 1.0]), (2, 2))
    np.testing.assert_allclose(combined, [[0.5, 0.0], [1.0, 0.25]])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(class_idx=2), "class_idx"),
        (dict(top_k=0), "top_k"),
        (dict(top_k="all"), "top_k must be 'auto'"),
        (dict(batch_size=0), "batch_size"),
        (dict(baseline="dark"), "baseline"),
        (dict(baseline=torch.zeros(3, 5, 5)), "broadcast"),
        (dict(precision="fp16"), "precision"),
        (dict(activation="softplus"), "activation"),
    ],
)
def test_bad_options_raise_input_error(detector, images, kwargs, message):
    with pytest.raises(ArtsegInputError, match=message):
        score_cam(detector, images, **kwargs)


@pytest.mark.parametrize(
    "bad_images, message",
    [
        (torch.rand(1, 48, 48), "shape"),
        (torch.full((1, 1, 8, 8), float("nan")), "NaN"),
        ([[1.0]], "tensor"),
    ],
)
def test_bad_images_raise_input_error(detector, bad_images, message):
    with pytest.raises(ArtsegInputError, match=message):
        score_cam(detector, bad_images)
