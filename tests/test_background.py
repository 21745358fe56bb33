"""Tests for artseg.background and the ``artseg make-clean`` command."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from artseg import io
from artseg.background import (
    background_residual_std,
    fit_background,
    fit_background_model,
    polynomial_terms,
    synthesize_clean,
)
from artseg.cli import main
from artseg.errors import ArtsegInputError

NOISE_STD = 20.0
SHAPE = (192, 256)


def _unit_grid(shape):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return 2 * yy / (shape[0] - 1) - 1, 2 * xx / (shape[1] - 1) - 1


def _polynomial_surface(shape=SHAPE):
    y, x = _unit_grid(shape)
    return 1000 + 200 * x - 150 * y + 300 * x**2 - 100 * x * y + 250 * y**2


def _disc(shape, center, radius):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 < radius**2


def _noisy_image_with_blobs(seed=0, n_blobs=12):
    """Polynomial background + Gaussian noise + bright and dark blobs (cells, debris) covering ~15 %."""
    rng = np.random.default_rng(seed)
    image = _polynomial_surface() + rng.normal(0.0, NOISE_STD, SHAPE)
    blobs = np.zeros(SHAPE, bool)
    for index in range(n_blobs):
        center = (rng.integers(0, SHAPE[0]), rng.integers(0, SHAPE[1]))
        disc = _disc(SHAPE, center, rng.integers(8, 20))
        image[disc] += (1 if index % 2 else -1) * rng.uniform(300, 800)
        blobs |= disc
    return image, blobs


def test_polynomial_terms_count_and_order():
    assert polynomial_terms(0) == [(0, 0)]
    assert len(polynomial_terms(2)) == 6
    assert set(polynomial_terms(2)) == {(i, j) for i in range(3) for j in range(3) if i + j <= 2}


def test_fit_recovers_polynomial_despite_outlier_blobs():
    image, blobs = _noisy_image_with_blobs()
    assert 0.08 < blobs.mean() < 0.3
    truth = _polynomial_surface()
    background = fit_background(image)
    assert background.shape == SHAPE and background.dtype == np.float64
    assert np.abs(background - truth).max() < 0.25 * NOISE_STD
    # Plain least squares (no clipping rounds) is pulled by the blobs: robustness is what passes above.
    plain = fit_background(image, n_iter=0)
    assert np.abs(plain - truth).max() > NOISE_STD


def test_exclude_mask_keeps_structures_out_of_the_fit():
    truth = _polynomial_surface()
    image = truth + np.random.default_rng(1).normal(0.0, NOISE_STD, SHAPE)
    # A bright structure over 60 % of the field defeats clipping unless it is excluded.
    cover = np.zeros(SHAPE, bool)
    cover[:, : int(SHAPE[1] * 0.6)] = True
    image[cover] += 500.0
    excluded = fit_background(image, exclude_mask=cover)
    assert np.abs(excluded - truth).max() < 0.5 * NOISE_STD
    assert np.abs(fit_background(image) - truth).max() > NOISE_STD


def test_fit_model_reports_noise_level():
    image, blobs = _noisy_image_with_blobs(seed=3)
    fit = fit_background_model(image, max_samples=5_000)
    assert fit.n_samples < image.size and fit.n_inliers <= fit.n_samples
    assert fit.residual_std == pytest.approx(NOISE_STD, rel=0.1)
    std = background_residual_std(image, fit.evaluate(), exclude_mask=blobs)
    assert std == pytest.approx(NOISE_STD, rel=0.05)
    assert background_residual_std(image, exclude_mask=blobs) == pytest.approx(std, rel=0.02)


def test_fit_errors():
    with pytest.raises(ArtsegInputError, match="2-D"):
        fit_background(np.zeros((3, 4, 5)))
    with pytest.raises(ArtsegInputError, match="exclude_mask shape"):
        fit_background(np.zeros((30, 30)), exclude_mask=np.zeros((30, 31), bool))
    with pytest.raises(ArtsegInputError, match="too few background pixels"):
        fit_background(np.zeros((30, 30)), exclude_mask=np.ones((30, 30), bool))


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_synthesized_region_matches_background_statistics(dtype):
    truth = _polynomial_surface()
    rng = np.random.default_rng(5)
    image = (truth + rng.normal(0.0, NOISE_STD, SHAPE)).astype(dtype)
    artifact = _disc(SHAPE, (80, 140), 35) | _disc(SHAPE, (150, 40), 15)
    image[artifact] = 40  # a dark artifact
    clean = synthesize_clean(image, artifact, np.random.default_rng(0))
    assert clean.dtype == image.dtype and clean.shape == image.shape
    assert np.array_equal(clean[~artifact], image[~artifact])
    replaced_residual = clean[artifact].astype(np.float64) - truth[artifact]
    surrounding = _disc(SHAPE, (80, 140), 60) & ~artifact
    surrounding_residual = image[surrounding].astype(np.float64) - truth[surrounding]
    surrounding_std = surrounding_residual.std()
    # Tolerances: mean within 0.5 residual-std, std within 20 %.
    assert abs(replaced_residual.mean() - surrounding_residual.mean()) < 0.5 * surrounding_std
    assert replaced_residual.std() == pytest.approx(surrounding_std, rel=0.2)


def test_synthesis_outside_mask_is_bit_identical_and_seeded():
    image, blobs = _noisy_image_with_blobs(seed=2)
    image = np.clip(image, 0, 65535).astype(np.uint16)
    artifact = _disc(SHAPE, (100, 100), 25)
    first = synthesize_clean(image, artifact, 11, exclude_mask=blobs & ~artifact)
    again = synthesize_clean(image, artifact, np.random.default_rng(11), exclude_mask=blobs & ~artifact)
    other = synthesize_clean(image, artifact, 12, exclude_mask=blobs & ~artifact)
    assert first.tobytes() == again.tobytes()
    assert not np.array_equal(first[artifact], other[artifact])
    assert np.array_equal(first[~artifact], image[~artifact])
    assert np.array_equal(synthesize_clean(image, np.zeros(SHAPE, bool), 0), image)


def test_synthesis_clips_to_dtype_range():
    image = np.full(SHAPE, 250, np.uint8)
    image += np.random.default_rng(0).integers(0, 6, SHAPE).astype(np.uint8)
    artifact = _disc(SHAPE, (90, 120), 30)
    image[artifact] = 0
    clean = synthesize_clean(image, artifact, 0)
    assert clean.dtype == np.uint8
    assert clean[artifact].min() >= 240


def test_synthesis_input_errors():
    image = np.zeros((40, 40), np.uint16)
    with pytest.raises(ArtsegInputError, match="artifact mask shape"):
        synthesize_clean(image, np.zeros((40, 41), bool), 0)
    with pytest.raises(ArtsegInputError, match="too few background pixels"):
        synthesize_clean(image, np.ones((40, 40), bool), 0)
    with pytest.raises(ArtsegInputError, match="numeric"):
        synthesize_clean(np.zeros((40, 40), bool), np.zeros((40, 40), bool), 0)


# --------------------------------------------------------------------------- make-clean command


def _make_clean_inputs(folder, n=3):
    """Images in a subfolder plus masks; one row without a mask."""
    (folder / "images").mkdir(parents=True)
    rows = []
    for index in range(n):
        image, _ = _noisy_image_with_blobs(seed=10 + index, n_blobs=3)
        artifact = _disc(SHAPE, (60 + 20 * index, 90), 18)
        image[artifact] = 100
        tifffile.imwrite(folder / "images" / f"f{index}.tif", np.clip(image, 0, 65535).astype(np.uint16))
        io.write_mask(folder / "images" / f"f{index}_mask.png", artifact)
        rows.append({"image": f"images/f{index}.tif", "label": 1, "mask": f"images/f{index}_mask.png", "split": "train"})
    tifffile.imwrite(folder / "images" / "plain.tif", np.zeros(SHAPE, np.uint16))
    rows.append({"image": "images/plain.tif", "label": 0, "mask": "", "split": "val"})
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def test_make_clean_command_writes_images_manifest_and_resumes(tmp_path, capsys):
    manifest = _make_clean_inputs(tmp_path / "data")
    out = tmp_path / "clean"
    assert main(["make-clean", "--manifest", str(manifest), "--out", str(out), "--seed", "4"]) == 0
    written = io.read_image_manifest(out / "manifest.csv", require_label=True)
    assert len(written) == 3 and written["label"].tolist() == [0, 0, 0]
    assert written["split"].tolist() == ["train"] * 3
    assert sorted(p.name for p in (out / "images").iterdir()) == ["f0.tif", "f1.tif", "f2.tif"]
    first = tifffile.imread(out / "images" / "f1.tif")
    original = tifffile.imread(tmp_path / "data" / "images" / "f1.tif")
    artifact = io.read_mask(tmp_path / "data" / "images" / "f1_mask.png")
    assert first.dtype == np.uint16
    assert np.array_equal(first[~artifact], original[~artifact])
    assert first[artifact].mean() > 500  # the dark artifact (100) was filled with background (~1000+)

    # Resume: an existing output is kept; a deleted one is rebuilt identically.
    sentinel = np.full(SHAPE, 7, np.uint16)
    tifffile.imwrite(out / "images" / "f0.tif", sentinel)
    (out / "images" / "f1.tif").unlink()
    assert main(["make-clean", "--manifest", str(manifest), "--out", str(out), "--seed", "4"]) == 0
    assert np.array_equal(tifffile.imread(out / "images" / "f0.tif"), sentinel)
    assert np.array_equal(tifffile.imread(out / "images" / "f1.tif"), first)
    assert main(["make-clean", "--manifest", str(manifest), "--out", str(out), "--seed", "4", "--overwrite"]) == 0
    assert not np.array_equal(tifffile.imread(out / "images" / "f0.tif"), sentinel)
    assert not any(p.name.startswith(".") for p in out.rglob("*"))
    capsys.readouterr()


def test_make_clean_command_errors(tmp_path, capsys):
    manifest = _make_clean_inputs(tmp_path / "data", n=1)
    io.write_mask(tmp_path / "data" / "images" / "f0_mask.png", np.zeros((SHAPE[0], SHAPE[1] - 1), bool))
    status = main(["make-clean", "--manifest", str(manifest), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "f0_mask.png: mask shape" in err[0]
    assert not (tmp_path / "out").exists()

    no_masks = tmp_path / "no_masks.csv"
    pd.DataFrame({"image": ["data/images/plain.tif"], "label": [0]}).to_csv(no_masks, index=False)
    assert main(["make-clean", "--manifest", str(no_masks), "--out", str(tmp_path / "out")]) == 2
    assert "no mask column" in capsys.readouterr().err

    in_place = _make_clean_inputs(tmp_path / "inplace", n=1)
    assert main(["make-clean", "--manifest", str(in_place), "--out", str(tmp_path / "inplace")]) == 2
    assert "would overwrite the original image" in capsys.readouterr().err
