"""Anomaly-detection baselines (artseg.comparison.baselines): pure pieces, then each on synthetic clean textures."""

import json

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from scipy.spatial.distance import mahalanobis
from scipy.stats import rankdata
from torch import nn

from artseg.comparison import baseline_settings
from artseg.comparison.baselines import (
    PaDiM,
    PaDiMSettings,
    PatchSVDD,
    PatchSVDDSettings,
    SSIMAESettings,
    SSIMAutoencoderDetector,
)
from artseg.comparison.baselines.base import ScoreCalibration, normalise_with, split_calibration
from artseg.comparison.baselines.gaussian import GaussianAccumulator, mahalanobis_map
from artseg.comparison.baselines.nearest import nearest_distances
from artseg.comparison.baselines.padim import stage_outputs
from artseg.comparison.baselines.patches import (
    NEIGHBOUR_DIRECTIONS,
    distribute_patch_scores,
    gather_patches,
    random_crops,
    sample_jitter_pairs,
    sample_neighbour_pairs,
)
from artseg.comparison.baselines.patchsvdd import patch_svdd_loss
from artseg.errors import ArtsegInputError
from artseg.nets import ResNet
from artseg.nets.autoencoder import SSIMAutoencoder
from artseg.nets.patch_encoder import HierarchicalPatchEncoder, PatchSVDDNetwork
from artseg.train import autocast_context

SIZE = 64


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    # The nets here are tiny: one thread is as fast, and immune to the pathological slowdown
    # of two OpenMP threads on a CPU shared with other jobs. Restored afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- synthetic data
def clean_texture(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """Smooth noise plus small bright cell-like blobs, around 0.5."""
    image = 0.5 + 0.15 * gaussian_filter(rng.standard_normal((size, size)), 1.5)
    rows, cols = np.mgrid[:size, :size]
    for _ in range(12):
        centre_row, centre_col = rng.uniform(0, size, 2)
        image += 0.15 * np.exp(-((rows - centre_row) ** 2 + (cols - centre_col) ** 2) / (2 * 1.5**2))
    return image.astype(np.float32)


def with_blob(image: np.ndarray, centre: tuple[int, int], radius: int, delta: float):
    rows, cols = np.mgrid[: image.shape[0], : image.shape[1]]
    mask = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2
    anomalous = image.copy()
    anomalous[mask] += delta
    return anomalous, mask


def pixel_auroc(scores: np.ndarray, mask: np.ndarray) -> float:
    """Probability that a random anomalous pixel outscores a random normal one."""
    ranks = rankdata(scores.ravel())
    inside = mask.ravel()
    n_in, n_out = inside.sum(), (~inside).sum()
    return float((ranks[inside].sum() - n_in * (n_in + 1) / 2) / (n_in * n_out))


@pytest.fixture(scope="module")
def clean_images():
    rng = np.random.default_rng(1)
    return np.stack([clean_texture(rng) for _ in range(12)])


@pytest.fixture(scope="module")
def held_out_anomalies():
    dark = with_blob(clean_texture(np.random.default_rng(99)), (30, 36), 7, -0.3)
    bright = with_blob(clean_texture(np.random.default_rng(98)), (20, 20), 6, 0.3)
    return [dark, bright]


BASELINES = {"padim": PaDiM, "patchsvdd": PatchSVDD, "ssim_ae": SSIMAutoencoderDetector}


def make_baseline(name, settings=None, **options):
    return BASELINES[name](settings, **options)


TINY_CONFIGS = {
    "padim": PaDiMSettings(image_size=SIZE, num_features=32, backbone_width=8),
    "patchsvdd": PatchSVDDSettings(
        image_size=SIZE, small_patch_size=8, width_scale=0.25, embedding_dim=16, small_stride=2, big_stride=4,
        epochs=3, batch_size=4, crops_per_image=2, crop_size=32, lr=1e-3,
    ),
    "ssim_ae": SSIMAESettings(
        image_size=SIZE, patch_size=32, latent_dim=16, base_width=8, training_patches=400, epochs=4,
        batch_size=16, lr=1e-3, inference_stride=8,
    ),
}


@pytest.fixture(scope="module")
def fitted(clean_images):
    return {name: make_baseline(name, config).fit_clean(clean_images, seed=0, progress=False)
            for name, config in TINY_CONFIGS.items()}


# ------------------------------------------------------------------ pure pieces
def test_nearest_distances_match_brute_force_across_chunks():
    generator = torch.Generator().manual_seed(0)
    queries = torch.randn(23, 5, generator=generator)
    bank = torch.randn(41, 5, generator=generator)
    expected = torch.cdist(queries, bank).min(dim=1).values
    found = nearest_distances(queries, bank, query_chunk=7, bank_chunk=5)
    torch.testing.assert_close(found, expected)


def test_nearest_distances_are_exact_for_near_duplicates():
    generator = torch.Generator().manual_seed(1)
    bank = torch.tanh(torch.randn(500, 64, generator=generator)) * 3
    offsets = 1e-4 * torch.randn(20, 64, generator=generator)
    queries = bank[:20] + offsets
    found = nearest_distances(queries, bank)
    torch.testing.assert_close(found, offsets.norm(dim=1), rtol=1e-2, atol=1e-7)


def test_nearest_distances_reject_mismatched_shapes():
    with pytest.raises(ArtsegInputError):
        nearest_distances(torch.zeros(3, 4), torch.zeros(5, 3))
    with pytest.raises(ArtsegInputError):
        nearest_distances(torch.zeros(3, 4), torch.zeros(0, 4))


@pytest.mark.parametrize("shape,size,stride", [((13, 17), 4, 2), ((20, 20), 8, 4), ((11, 9), 5, 3)])
def test_distribute_patch_scores_matches_loop(shape, size, stride):
    rng = np.random.default_rng(0)
    grid = ((shape[0] - size) // stride + 1, (shape[1] - size) // stride + 1)
    scores = rng.random(grid)
    total, count = np.zeros(shape), np.zeros(shape)
    for i in range(grid[0]):
        for j in range(grid[1]):
            total[i * stride : i * stride + size, j * stride : j * stride + size] += scores[i, j]
            count[i * stride : i * stride + size, j * stride : j * stride + size] += 1
    covered = count > 0
    result = distribute_patch_scores(torch.tensor(scores), shape, size, stride).numpy()
    assert result.shape == shape
    np.testing.assert_allclose(result[covered], (total / np.maximum(count, 1))[covered], rtol=1e-6)
    assert np.isfinite(result).all()


def test_gather_patches_matches_slicing():
    images = torch.arange(2 * 1 * 10 * 12, dtype=torch.float32).reshape(2, 1, 10, 12)
    batch_index, rows, cols = torch.tensor([1, 0, 1]), torch.tensor([0, 3, 6]), torch.tensor([2, 0, 8])
    patches = gather_patches(images, batch_index, rows, cols, 4)
    for k in range(3):
        expected = images[batch_index[k], :, rows[k] : rows[k] + 4, cols[k] : cols[k] + 4]
        torch.testing.assert_close(patches[k], expected)


def test_random_crops_are_pieces_of_their_image():
    rng = np.random.default_rng(0)
    images = [rng.random((20, 30)).astype(np.float32), rng.random((16, 16)).astype(np.float32)]
    crops = random_crops(images, 8, 3, np.random.default_rng(5))
    assert crops.shape == (6, 8, 8)
    for k, crop in enumerate(crops):
        source = images[k // 3]
        windows = np.lib.stride_tricks.sliding_window_view(source, (8, 8))
        assert (windows == crop).all(axis=(-1, -2)).any()
    with pytest.raises(ArtsegInputError, match="clean image 1"):
        random_crops(images, 17, 1, rng)


def test_jitter_pairs_are_close_distinct_and_inside():
    generator = torch.Generator().manual_seed(0)
    rows_1, cols_1, rows_2, cols_2 = sample_jitter_pairs(2000, 96, 64, generator)
    shift = torch.stack([rows_2 - rows_1, cols_2 - cols_1], dim=1)
    assert shift.abs().max() <= 2
    for corner in (rows_1, cols_1, rows_2, cols_2):
        assert corner.min() >= 0 and corner.max() <= 96 - 64
    interior = (rows_1 >= 2) & (rows_1 <= 30) & (cols_1 >= 2) & (cols_1 <= 30)
    assert (shift[interior].abs().sum(dim=1) > 0).all()


def test_neighbour_pairs_follow_their_label():
    generator = torch.Generator().manual_seed(0)
    size, extent = 16, 200
    rows_1, cols_1, rows_2, cols_2, labels = sample_neighbour_pairs(3000, extent, size, generator)
    assert set(labels.tolist()) == set(range(8))
    directions = torch.tensor(NEIGHBOUR_DIRECTIONS)[labels]
    interior = (rows_1 >= size) & (rows_1 <= extent - 2 * size) & (cols_1 >= size) & (cols_1 <= extent - 2 * size)
    for moved, direction in ((rows_2 - rows_1, directions[:, 0]), (cols_2 - cols_1, directions[:, 1])):
        moved, direction = moved[interior], direction[interior]
        assert (torch.sign(moved) == direction).all()
        steps = moved[direction != 0].abs()
        assert steps.min() >= 3 * size // 4 and steps.max() < size


def test_gaussian_accumulator_matches_numpy_covariance():
    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((9, 3, 2, 2))
    accumulator = GaussianAccumulator()
    accumulator.add(torch.tensor(embeddings[:4]))
    accumulator.add(torch.tensor(embeddings[4:]))
    gaussians = accumulator.finalize(regularization=0.01)
    vectors = embeddings[:, :, 1, 0]  # position (1, 0) is index 2 of the flattened grid
    covariance = np.cov(vectors, rowvar=False) + 0.01 * np.eye(3)
    np.testing.assert_allclose(gaussians.mean[2].numpy(), vectors.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(gaussians.precision[2].numpy(), np.linalg.inv(covariance), rtol=1e-4)


def test_mahalanobis_map_near_zero_on_training_data_and_high_on_anomaly():
    rng = np.random.default_rng(0)
    d, grid = 6, (5, 4)
    mixing = rng.standard_normal((d, d))
    train = rng.standard_normal((400, grid[0] * grid[1], d)) @ mixing.T
    accumulator = GaussianAccumulator()
    accumulator.add(torch.tensor(train.transpose(0, 2, 1).reshape(400, d, *grid)))
    gaussians = accumulator.finalize(regularization=0.01)

    typical = gaussians.mean.T.reshape(1, d, *grid).clone()
    typical[0, :, 3, 2] += torch.tensor(5.0 * mixing[:, 0], dtype=torch.float32)
    distances = mahalanobis_map(typical, gaussians, position_chunk=7)[0]
    others = np.ones(grid, dtype=bool)
    others[3, 2] = False
    assert distances[torch.from_numpy(others)].max() < 1e-3
    assert distances[3, 2] > 3.0
    flat = 3 * grid[1] + 2
    expected = mahalanobis(typical[0, :, 3, 2].numpy(), gaussians.mean[flat].numpy(), gaussians.precision[flat].numpy())
    assert abs(float(distances[3, 2]) - expected) < 1e-3 * expected


def test_mahalanobis_map_rejects_other_grid():
    accumulator = GaussianAccumulator()
    accumulator.add(torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0)))
    gaussians = accumulator.finalize()
    with pytest.raises(ArtsegInputError):
        mahalanobis_map(torch.zeros(1, 2, 5, 4), gaussians)


def test_normalise_with_is_monotone_and_bounded():
    calibration = ScoreCalibration(typical=2.0, extreme=4.0)
    scores = np.array([-5.0, 2.0, 3.0, 4.0, 10.0, 1e9])
    normalised = normalise_with(scores, calibration)
    assert normalised.dtype == np.float32
    assert (np.diff(normalised) >= 0).all()
    assert normalised[0] == 0 and normalised[1] == 0 and normalised[3] == pytest.approx(0.5)
    assert (normalised <= 1).all() and normalised[4] < 1


def test_split_calibration_is_seeded_and_disjoint():
    fit_a, calib_a = split_calibration(20, 0.1, np.random.default_rng(3))
    fit_b, calib_b = split_calibration(20, 0.1, np.random.default_rng(3))
    assert len(calib_a) == 2 and len(fit_a) == 18
    assert not set(fit_a) & set(calib_a)
    np.testing.assert_array_equal(calib_a, calib_b)
    _, single = split_calibration(2, 0.1, np.random.default_rng(0))
    assert len(single) == 1


# ------------------------------------------------------------------- networks
@pytest.mark.parametrize("patch_size", [16, 32, 64])
def test_autoencoder_shapes_and_bottleneck(patch_size):
    network = SSIMAutoencoder(patch_size=patch_size, latent_dim=7, base_width=4)
    patches = torch.rand(2, 1, patch_size, patch_size)
    assert network.encode(patches).shape == (2, 7, 1, 1)
    assert network(patches).shape == patches.shape


def test_autoencoder_rejects_bad_patch_sizes():
    with pytest.raises(ArtsegInputError):
        SSIMAutoencoder(patch_size=40)
    with pytest.raises(ArtsegInputError):
        SSIMAutoencoder(patch_size=32, base_width=4)(torch.rand(1, 1, 64, 64))


@pytest.mark.parametrize("small_patch_size,small_stride,big_stride", [(8, 2, 4), (16, 4, 8)])
def test_dense_embeddings_equal_patchwise_encoding(small_patch_size, small_stride, big_stride):
    torch.manual_seed(0)
    encoder = HierarchicalPatchEncoder(small_patch_size, embedding_dim=6, width_scale=0.25).eval()
    image = torch.rand(1, 1, 52, 44)
    with torch.no_grad():
        small, big = encoder.dense_embeddings(image, small_stride, big_stride)
        k, big_k = small_patch_size, 2 * small_patch_size
        assert small.shape[-2:] == ((52 - k) // small_stride + 1, (44 - k) // small_stride + 1)
        assert big.shape[-2:] == ((52 - big_k) // big_stride + 1, (44 - big_k) // big_stride + 1)
        for i, j in [(0, 0), (1, 2), (small.shape[2] - 1, small.shape[3] - 1)]:
            r, c = i * small_stride, j * small_stride
            torch.testing.assert_close(small[0, :, i, j], encoder.small(image[..., r : r + k, c : c + k])[0, :, 0, 0])
        for i, j in [(0, 0), (big.shape[2] - 1, big.shape[3] - 1), (1, 0)]:
            r, c = i * big_stride, j * big_stride
            torch.testing.assert_close(big[0, :, i, j], encoder(image[..., r : r + big_k, c : c + big_k])[0, :, 0, 0])


def test_patch_svdd_loss_is_a_trainable_scalar():
    torch.manual_seed(0)
    network = PatchSVDDNetwork(small_patch_size=8, embedding_dim=8, width_scale=0.25)
    crops = torch.rand(3, 1, 40, 40)
    loss = patch_svdd_loss(network, crops, pairs_per_image=4, svdd_weight=1.0, position_noise=0.02,
                           generator=torch.Generator().manual_seed(0))
    assert loss.dim() == 0 and loss > np.log(8)  # two untrained 8-way cross-entropies
    loss.backward()
    for module in (network.encoder.small, network.encoder.merge, network.position_big, network.position_small):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


class _ThreeStageNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Conv2d(1, 2, 3, padding=1)
        self.layer2 = nn.Conv2d(2, 3, 3, stride=2, padding=1)
        self.layer3 = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.layer4 = nn.Conv2d(4, 5, 3, stride=2, padding=1)
        self.layer4_calls = 0

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(x)))
        self.layer4_calls += 1
        return self.layer4(x)


def test_stage_outputs_stop_before_unneeded_stages():
    network = _ThreeStageNet()
    outputs = stage_outputs(network, torch.rand(2, 1, 16, 16), ("layer1", "layer2", "layer3"))
    assert [o.shape[1:] for o in outputs] == [(2, 16, 16), (3, 8, 8), (4, 4, 4)]
    assert network.layer4_calls == 0
    with pytest.raises(ArtsegInputError, match="layer9"):
        stage_outputs(network, torch.rand(1, 1, 16, 16), ("layer1", "layer9"))


# ------------------------------------------------------------------ detectors
@pytest.mark.parametrize("name", list(TINY_CONFIGS))
def test_detector_finds_blobs_on_held_out_images(name, fitted, held_out_anomalies):
    detector = fitted[name]
    for image, mask in held_out_anomalies:
        scores = detector.predict_map(image)
        assert scores.shape == image.shape and scores.dtype == np.float32
        assert scores.min() >= 0 and scores.max() < 1
        assert scores[mask].mean() > scores[~mask].mean()
        assert pixel_auroc(scores, mask) > 0.75  # chance level is 0.5


@pytest.mark.parametrize("name", list(TINY_CONFIGS))
def test_clean_held_out_image_scores_low(name, fitted):
    clean = clean_texture(np.random.default_rng(5))
    scores = fitted[name].predict_map(clean)
    assert np.median(scores) < 0.25


@pytest.mark.parametrize("name", list(TINY_CONFIGS))
def test_maps_are_resized_back_to_any_input_shape(name, fitted):
    image = clean_texture(np.random.default_rng(6), size=80)[:, :72]
    raw = fitted[name].score_map(image)
    assert raw.shape == (80, 72) and np.isfinite(raw).all()


@pytest.mark.parametrize("name", list(TINY_CONFIGS))
def test_save_load_round_trip(name, fitted, held_out_anomalies, tmp_path):
    detector = fitted[name]
    detector.save(tmp_path / name)
    metadata = json.loads((tmp_path / name / "config.json").read_text())["metadata"]["comparison"]
    assert metadata["model"] == detector.name and metadata["settings"] == detector.settings.to_dict()
    restored = make_baseline(name, detector.settings).load(tmp_path / name)
    assert restored.settings == detector.settings and restored.calibration == detector.calibration
    image = held_out_anomalies[0][0]
    np.testing.assert_array_equal(restored.predict_map(image), detector.predict_map(image))
    state = detector.state_dict()
    fresh = make_baseline(name, detector.settings)
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.score_map(image), detector.score_map(image))


def test_autoencoder_reconstruction_is_tiled_over_any_size(fitted):
    detector = fitted["ssim_ae"]
    patch = clean_texture(np.random.default_rng(7), size=32)
    with torch.no_grad(), autocast_context(detector.settings.precision):
        direct = detector.network(torch.from_numpy(patch)[None, None])[0, 0].float().numpy()
    np.testing.assert_allclose(detector.reconstruct(patch), direct, atol=1e-5)
    larger = clean_texture(np.random.default_rng(8), size=90)[:, :77]
    rebuilt = detector.reconstruct(larger)
    assert rebuilt.shape == (90, 77) and np.isfinite(rebuilt).all()
    with pytest.raises(ArtsegInputError):
        detector.reconstruct(larger[:20])


def test_load_rejects_a_folder_that_is_not_a_detector(tmp_path):
    with pytest.raises(ArtsegInputError, match="no saved comparison model"):
        PaDiM().load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ArtsegInputError, match="not an ArtSeg model config"):
        PaDiM().load(tmp_path)


DETERMINISM_CONFIGS = {
    "padim": PaDiMSettings(image_size=32, num_features=8, backbone_width=4),
    "patchsvdd": PatchSVDDSettings(
        image_size=32, small_patch_size=8, width_scale=0.25, embedding_dim=8, small_stride=2, big_stride=4,
        epochs=1, batch_size=2, pairs_per_image=4,
    ),
    "ssim_ae": SSIMAESettings(image_size=32, patch_size=16, latent_dim=4, base_width=4, training_patches=16,
                            epochs=1, batch_size=8, inference_stride=8),
}


@pytest.mark.parametrize("name", list(DETERMINISM_CONFIGS))
def test_same_seed_same_detector(name, clean_images):
    images, unseen = clean_images[:4, :32, :32], clean_images[5, :32, :32]
    maps = [
        make_baseline(name, DETERMINISM_CONFIGS[name]).fit_clean(images, seed=seed, progress=False).score_map(unseen)
        for seed in (4, 4, 5)
    ]
    np.testing.assert_array_equal(maps[0], maps[1])
    assert not np.array_equal(maps[0], maps[2])


def test_padim_uses_a_given_backbone_without_changing_it(clean_images, held_out_anomalies, tmp_path):
    torch.manual_seed(0)
    backbone = ResNet(18, base_width=8).train()
    before = {key: value.clone() for key, value in backbone.state_dict().items()}
    config = PaDiMSettings(image_size=SIZE, num_features=24)
    detector = PaDiM(config, backbone=backbone).fit_clean(clean_images, progress=False)
    assert backbone.training
    for key, value in backbone.state_dict().items():
        torch.testing.assert_close(value, before[key])
    image = held_out_anomalies[0][0]
    detector.save(tmp_path)
    np.testing.assert_array_equal(PaDiM(config).load(tmp_path).predict_map(image), detector.predict_map(image))


def test_presets_settings_and_errors():
    assert PatchSVDD("fast").settings == PatchSVDDSettings.preset("fast") == baseline_settings("PatchSVDD", "fast")
    assert PatchSVDDSettings.preset("fast").epochs == 8 and PatchSVDDSettings.preset("paper").epochs == 1875
    assert SSIMAutoencoderDetector().settings == SSIMAESettings.preset("paper") == SSIMAESettings()
    assert PaDiM({"num_features": 50}).settings == PaDiMSettings(num_features=50)  # a dict overrides the paper's
    for bad_call in (
        lambda: baseline_settings("isolation_forest"),
        lambda: baseline_settings("U-Net"),
        lambda: PaDiM("medium"),
        lambda: PaDiM({"colour": 3}),
        lambda: PaDiM(SSIMAESettings()),
        lambda: PaDiM(backbone=ResNet(18, base_width=8), shared=object()),
        lambda: PaDiM(PaDiMSettings(image_size=None)),
        lambda: PatchSVDD(PatchSVDDSettings(scale_aggregation="max")),
        lambda: SSIMAutoencoderDetector(SSIMAESettings(patch_size=64, inference_stride=24)),
    ):
        with pytest.raises(ArtsegInputError):
            bad_call()


def test_fit_rejects_bad_clean_images():
    detector = make_baseline("padim", DETERMINISM_CONFIGS["padim"])
    with pytest.raises(ArtsegInputError, match="at least 2"):
        detector.fit_clean(np.zeros((1, 32, 32), np.float32), progress=False)
    broken = [np.zeros((32, 32), np.float32), np.full((32, 32), np.nan, np.float32)]
    with pytest.raises(ArtsegInputError, match="clean image 1"):
        detector.fit_clean(broken, progress=False)
    with pytest.raises(ArtsegInputError, match="clean image 0"):
        detector.fit_clean([np.zeros((32, 32, 3), np.float32), np.zeros((32, 32), np.float32)], progress=False)
    with pytest.raises(ArtsegInputError, match="not trained"):
        detector.predict_map(np.zeros((32, 32), np.float32))
