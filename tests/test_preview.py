"""Tests of artseg.preview (montages) and ``artseg preview``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from artseg.cli import main
from artseg.io import atomic_write_csv, read_image, write_mask, write_tiff
from artseg.preview import montage, outline

RED = (255, 40, 40)


def _square_mask(shape, top, left, side):
    mask = np.zeros(shape, bool)
    mask[top : top + side, left : left + side] = True
    return mask


def test_outline_is_the_inner_boundary():
    mask = _square_mask((12, 12), 2, 3, 6)
    ring = outline(mask)
    assert ring.sum() == 6 * 4 - 4
    assert not ring[4:6, 5:7].any() and ring[2, 3] and ring[7, 8]
    assert outline(mask, thickness=2).sum() == 36 - 4
    assert not outline(np.zeros((4, 4), bool)).any()


def test_montage_grid_shape_gray_tiles_and_coloured_outlines():
    rng = np.random.default_rng(0)
    images = [rng.integers(1000, 5000, (20, 30)).astype(np.uint16) for _ in range(5)]
    masks = [None, _square_mask((20, 30), 5, 5, 8), None, None, np.zeros((20, 30), bool)]
    grid = montage(images, masks, columns=3, gap=2)
    assert grid.dtype == np.uint8 and grid.shape == (2 * 22 + 2, 3 * 32 + 2, 3)
    first_tile = grid[2:22, 2:32]
    assert np.all(first_tile[..., 0] == first_tile[..., 1])  # gray where no outline
    second_tile = grid[2:22, 34:64]
    coloured = np.all(second_tile == RED, axis=-1)
    assert np.array_equal(coloured, outline(masks[1]))
    assert first_tile.min() == 0 and first_tile.max() == 255  # percentile stretch


def test_montage_resizes_to_tile_size_and_frames_labels():
    images = [np.arange(64 * 64, dtype=np.float32).reshape(64, 64), np.ones((32, 48))]
    masks = [_square_mask((64, 64), 10, 10, 20), None]
    grid = montage(images, masks, labels=[1, 0], columns=2, tile_size=32, gap=4)
    assert grid.shape == (32 + 8, 2 * 36 + 4, 3)
    assert tuple(grid[2, 10]) == (255, 190, 0)  # artifact frame (amber)
    assert tuple(grid[2, 36 + 10]) == (60, 200, 90)  # clean frame (green)
    assert np.all(grid[4:36, 4:36] == RED, axis=-1).any()  # resized outline still drawn


def test_montage_rejects_inconsistent_inputs():
    with pytest.raises(ValueError, match="at least one image"):
        montage([])
    with pytest.raises(ValueError, match="2 masks for 1 images"):
        montage([np.zeros((4, 4))], [None, None])
    with pytest.raises(ValueError, match="labels"):
        montage([np.zeros((4, 4))], labels=[1, 0])


def _tiny_manifest(folder):
    rng = np.random.default_rng(1)
    rows = []
    for index in range(4):
        write_tiff(folder / f"im{index}.tif", rng.integers(0, 4000, (24, 24)).astype(np.uint16))
        write_mask(folder / f"m{index}.png", _square_mask((24, 24), 4, 4, 10 if index % 2 else 0))
        rows.append({"image": f"im{index}.tif", "label": index % 2, "mask": f"m{index}.png"})
    atomic_write_csv(pd.DataFrame(rows), folder / "manifest.csv")
    return folder / "manifest.csv"


def test_cli_preview_writes_png(tmp_path, capsys):
    manifest = _tiny_manifest(tmp_path)
    out = tmp_path / "montage.png"
    assert main(["preview", "--manifest", str(manifest), "--out", str(out), "--n", "3", "--columns", "3"]) == 0
    assert "3 images" in capsys.readouterr().out
    assert read_image(out).shape == (24 + 8, 3 * 28 + 4)
    only = tmp_path / "artifacts.png"
    assert main(["preview", "--manifest", str(manifest), "--out", str(only), "--artifacts-only", "--columns", "4"]) == 0
    assert read_image(only).shape == (24 + 8, 2 * 28 + 4)


def test_cli_preview_bad_input(tmp_path, capsys):
    manifest = _tiny_manifest(tmp_path)
    assert main(["preview", "--manifest", str(manifest), "--out", str(tmp_path / "m.jpg")]) == 2
    assert "written as .png" in capsys.readouterr().err
    assert main(["preview", "--manifest", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "m.png")]) == 2
    assert "not found" in capsys.readouterr().err
