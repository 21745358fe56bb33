"""Tiled inference agrees with whole-image inference and covers large fields with bounded batches."""

import numpy as np
import pytest
import torch

from artseg.errors import ArtsegInputError
from artseg.nets import UNet
from artseg.tiling import edge_window, extract_patches, predict_tiled, tile_origins


def unet_probability_fn(net):
    def predict(batch):
        with torch.no_grad():
            return torch.sigmoid(net(torch.from_numpy(batch))).numpy()
    return predict


@pytest.fixture(scope="module")
def small_unet():
    # Receptive field radius 12 px (levels 2, one conv per block): fits overlap // 4 = 16.
    torch.manual_seed(0)
    return UNet(width=4, levels=2, convs_per_block=1).eval()


def test_tiled_matches_whole_image_when_overlap_covers_receptive_field(small_unet):
    image = np.random.default_rng(0).random((300, 250)).astype(np.float32)
    predict = unet_probability_fn(small_unet)
    padded = np.pad(image, ((0, 20), (0, 6)), mode="reflect")  # to multiples of 32
    whole = predict(padded[None, None])[0, :, :300, :250]
    tiled = predict_tiled(predict, image, tile_size=96, overlap=64, batch_size=3)
    assert tiled.shape == (1, 300, 250)
    assert np.abs(tiled - whole).max() < 1e-5


def test_tiles_blend_without_seams_when_overlap_is_short(small_unet):
    image = np.random.default_rng(1).random((200, 200)).astype(np.float32)
    predict = unet_probability_fn(small_unet)
    whole = predict_tiled(predict, image, tile_size=256)
    tiled = predict_tiled(predict, image, tile_size=64, overlap=32)
    assert np.abs(tiled - whole).max() < 0.05


@pytest.mark.parametrize("shape", [(5, 7), (33, 64), (130, 97), (3, 70, 41)])
def test_blending_preserves_any_pixelwise_function(shape):
    image = np.random.default_rng(2).random(shape).astype(np.float32)
    out = predict_tiled(lambda batch: batch * 3.0, image, tile_size=64, overlap=32, batch_size=2)
    expected = image[None] if image.ndim == 2 else image
    np.testing.assert_allclose(out, 3.0 * expected, rtol=1e-6)


def test_full_lncap_field_runs_in_bounded_batches():
    image = np.random.default_rng(3).random((2556, 2156)).astype(np.float32)
    batch_shapes = []

    def predict(batch):
        batch_shapes.append(batch.shape)
        return batch[:, :1]

    out = predict_tiled(predict, image, tile_size=512, overlap=64, batch_size=4)
    np.testing.assert_array_equal(out[0], image)
    assert all(shape[0] <= 4 and shape[2:] == (512, 512) for shape in batch_shapes)
    assert sum(shape[0] for shape in batch_shapes) == 6 * 5


def test_tile_origins_cover_with_aligned_overlapping_tiles():
    for length, tile, overlap in [(2560, 512, 64), (2176, 512, 64), (96, 64, 32), (64, 64, 16), (1024, 128, 96)]:
        starts = tile_origins(length, tile, overlap, 32)
        assert starts[0] == 0 and starts[-1] == max(0, length - tile)
        assert all(start % 32 == 0 for start in starts)
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_edge_window_zero_at_shared_edges_and_one_at_borders():
    window = edge_window(64, True, False, overlap=32)
    assert window[:8].max() == 0.0 and window[-1] == 1.0 and window[24:].min() == 1.0
    assert np.all(np.diff(window) >= 0)


def test_predict_fn_with_wrong_output_shape_is_reported():
    with pytest.raises(ArtsegInputError, match="predict_fn returned shape"):
        predict_tiled(lambda batch: batch[:, :, :10], np.zeros((64, 64), np.float32), tile_size=64, overlap=16)


@pytest.mark.parametrize("kwargs", [dict(overlap=64, tile_size=64), dict(batch_size=0), dict(multiple=0)])
def test_bad_tiling_settings_are_rejected(kwargs):
    with pytest.raises(ArtsegInputError):
        predict_tiled(lambda batch: batch, np.zeros((64, 64), np.float32), **kwargs)


def test_bad_image_shape_is_rejected():
    with pytest.raises(ArtsegInputError, match="image"):
        predict_tiled(lambda batch: batch, np.zeros((2, 3, 8, 8), np.float32))


def test_extract_patches_keeps_targets_aligned():
    image = np.random.default_rng(4).random((100, 70)).astype(np.float32)
    patches, targets = extract_patches(image, image > 0.5, 64)
    assert patches.shape == (2 * 2, 64, 64) and targets.dtype == bool
    np.testing.assert_array_equal(targets, patches > 0.5)
    small, _ = extract_patches(image[:20, :30], None, 64)
    assert small.shape == (1, 64, 64)
    np.testing.assert_array_equal(small[0, :20, :30], image[:20, :30])
