"""Tests for artseg.io: image readers, atomic writers, manifests and their errors."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import tifffile

from artseg import io
from artseg.cli import main
from artseg.errors import ArtsegInputError


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------- readers


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_read_image_tiff_keeps_raw_values(tmp_path, rng, dtype):
    if np.issubdtype(dtype, np.integer):
        pixels = rng.integers(0, np.iinfo(dtype).max, size=(12, 17)).astype(dtype)
    else:
        pixels = rng.normal(100.0, 30.0, size=(12, 17)).astype(dtype)
    path = tmp_path / "field.tif"
    tifffile.imwrite(path, pixels)
    image = io.read_image(path)
    assert image.dtype == np.float32 and image.shape == (12, 17)
    np.testing.assert_array_equal(image, pixels.astype(np.float32))
    raw = io.read_image_raw(path)
    assert raw.dtype == dtype
    np.testing.assert_array_equal(raw, pixels)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_read_image_png(tmp_path, rng, dtype):
    pixels = rng.integers(0, np.iinfo(dtype).max, size=(9, 11)).astype(dtype)
    path = tmp_path / "field.png"
    iio.imwrite(path, pixels)
    np.testing.assert_array_equal(io.read_image(path), pixels.astype(np.float32))
    assert io.read_image_raw(path).dtype == dtype


def test_read_image_jpeg_is_close_to_written(tmp_path):
    smooth = np.tile(np.linspace(40, 200, 32), (24, 1)).astype(np.uint8)
    path = tmp_path / "field.jpg"
    iio.imwrite(path, smooth, quality=95)
    image = io.read_image(path)
    assert image.shape == (24, 32)
    assert np.abs(image - smooth).max() <= 6


def test_rgb_and_rgba_are_converted_to_luminance(tmp_path, rng):
    rgb = rng.integers(0, 255, size=(10, 13, 3)).astype(np.uint8)
    expected = rgb.astype(np.float64) @ np.array([0.2125, 0.7154, 0.0721])
    iio.imwrite(tmp_path / "rgb.png", rgb)
    rgba = np.concatenate([rgb, np.full((10, 13, 1), 17, np.uint8)], axis=-1)
    iio.imwrite(tmp_path / "rgba.png", rgba)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    for name in ("rgb.png", "rgba.png", "planar.tif"):
        gray = io.read_image(tmp_path / name)
        assert gray.shape == (10, 13), name
        np.testing.assert_allclose(gray, expected, atol=1e-3, err_msg=name)
    raw = io.read_image_raw(tmp_path / "rgb.png")
    assert raw.dtype == np.uint8
    np.testing.assert_array_equal(raw, np.rint(expected).astype(np.uint8))


def test_singleton_axes_are_squeezed_but_stacks_rejected(tmp_path, rng):
    tifffile.imwrite(tmp_path / "one.tif", rng.integers(0, 9, size=(1, 6, 5)).astype(np.uint16))
    assert io.read_image(tmp_path / "one.tif").shape == (6, 5)
    tifffile.imwrite(
        tmp_path / "stack.tif", rng.integers(0, 9, size=(3, 6, 5)).astype(np.uint16), photometric="minisblack"
    )
    with pytest.raises(ArtsegInputError, match="expected one 2-D image"):
        io.read_image(tmp_path / "stack.tif")


def test_read_mask_and_labels(tmp_path):
    labels = np.zeros((8, 8), np.uint16)
    labels[1:3, 1:3] = 1
    labels[5:7, 4:8] = 300
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    read = io.read_labels(tmp_path / "labels.tif")
    assert read.dtype == np.int32
    np.testing.assert_array_equal(read, labels)
    mask = io.read_mask(tmp_path / "labels.tif")
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, labels > 0)
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[2, 3, 1] = 200
    iio.imwrite(tmp_path / "colour_mask.png", colour)
    assert np.flatnonzero(io.read_mask(tmp_path / "colour_mask.png")).tolist() == [2 * 8 + 3]
    with pytest.raises(ArtsegInputError, match="colour channels that differ"):
        io.read_labels(tmp_path / "colour_mask.png")


def test_read_labels_rejects_fractional_values(tmp_path):
    tifffile.imwrite(tmp_path / "labels.tif", np.full((4, 4), 1.5, np.float32))
    with pytest.raises(ArtsegInputError, match="non-integer"):
        io.read_labels(tmp_path / "labels.tif")


def test_missing_and_corrupt_images_name_the_file(tmp_path):
    with pytest.raises(ArtsegInputError, match="not found: .*absent.tif"):
        io.read_image(tmp_path / "absent.tif")
    with pytest.raises(ArtsegInputError, match="no image file given"):
        io.read_mask(None)
    for name in ("broken.tif", "broken.png", "broken.jpg"):
        path = tmp_path / name
        path.write_bytes(b"this is not an image" * 5)
        with pytest.raises(ArtsegInputError) as caught:
            io.read_image(path)
        message = str(caught.value)
        assert message.startswith(f"cannot read image: {path}: ") and "\n" not in message


def test_image_shape_reads_headers(tmp_path, rng):
    tifffile.imwrite(tmp_path / "a.tif", rng.integers(0, 9, size=(7, 9)).astype(np.uint16))
    iio.imwrite(tmp_path / "b.png", rng.integers(0, 9, size=(5, 4, 3)).astype(np.uint8))
    assert io.image_shape(tmp_path / "a.tif") == (7, 9)
    assert io.image_shape(tmp_path / "b.png") == (5, 4)


def test_check_same_shape():
    io.check_same_shape(np.zeros((3, 4)), (3, 4), "mask", "m.png")
    with pytest.raises(ArtsegInputError, match=r"m\.png: mask shape \(4, 3\) does not match image shape \(3, 4\)"):
        io.check_same_shape(np.zeros((3, 4)), np.zeros((4, 3)), "mask", "m.png")


# --------------------------------------------------------------------------- normalisation


def test_normalize_percentile_uses_whole_image(rng):
    image = rng.gamma(2.0, 500.0, size=(40, 50)).astype(np.uint16)
    out = io.normalize_percentile(image, 1.0, 99.0)
    lo, hi = np.percentile(image.astype(np.float32), [1.0, 99.0])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, (image - lo) / (hi - lo), rtol=1e-5, atol=1e-6)
    # A tile normalised on its own would differ: the scaling must come from the whole image.
    tile = io.normalize_percentile(image[:10, :10], 1.0, 99.0)
    assert not np.allclose(tile, out[:10, :10])


def test_normalize_percentile_flat_image_is_finite_zero():
    out = io.normalize_percentile(np.full((6, 6), 1234, np.uint16))
    assert out.dtype == np.float32 and np.all(out == 0.0)
    with pytest.raises(ValueError):
        io.normalize_percentile(np.zeros((2, 2)), 50.0, 10.0)


# --------------------------------------------------------------------------- writers


def test_writers_round_trip_and_leave_no_temp_files(tmp_path, rng):
    image = rng.integers(0, 60000, size=(6, 7)).astype(np.uint16)
    io.write_tiff(tmp_path / "sub" / "image.tif", image)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "sub" / "image.tif"), image)
    mask = rng.random((6, 7)) > 0.5
    for name in ("mask.png", "mask.tif"):
        io.write_mask(tmp_path / name, mask)
        stored = io.read_image_raw(tmp_path / name)
        assert stored.dtype == np.uint8 and set(np.unique(stored)) <= {0, 255}
        np.testing.assert_array_equal(io.read_mask(tmp_path / name), mask)
    labels = rng.integers(0, 500, size=(6, 7))
    for name in ("labels.png", "labels.tif"):
        io.write_labels(tmp_path / name, labels)
        assert io.read_image_raw(tmp_path / name).dtype == np.uint16
        np.testing.assert_array_equal(io.read_labels(tmp_path / name), labels)
    io.atomic_write_text(tmp_path / "note.txt", "hello\n")
    io.atomic_write_csv(pd.DataFrame({"a": [1, 2]}), tmp_path / "table.csv")
    assert (tmp_path / "note.txt").read_text() == "hello\n"
    assert pd.read_csv(tmp_path / "table.csv")["a"].tolist() == [1, 2]
    assert _leftovers(tmp_path) == [] and _leftovers(tmp_path / "sub") == []


def test_failed_write_keeps_old_file_and_no_partial(tmp_path, monkeypatch):
    target = tmp_path / "image.tif"
    io.write_tiff(target, np.ones((4, 4), np.uint8))
    before = target.read_bytes()

    def write_half_then_fail(path, *args, **kwargs):
        Path(path).write_bytes(b"II*\x00partial")
        raise OSError("disk full")

    monkeypatch.setattr(io.outputs.tifffile, "imwrite", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        io.write_tiff(target, np.zeros((4, 4), np.uint8))
    with pytest.raises(OSError, match="disk full"):
        io.write_tiff(tmp_path / "new.tif", np.zeros((4, 4), np.uint8))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.tif"]


def test_writer_input_errors(tmp_path):
    with pytest.raises(ArtsegInputError, match="do not fit a 16-bit PNG"):
        io.write_labels(tmp_path / "labels.png", np.array([[0, 70000]]))
    with pytest.raises(ArtsegInputError, match="masks are written as"):
        io.write_mask(tmp_path / "mask.jpg", np.zeros((2, 2), bool))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- image manifest


def _write_image_set(folder: Path, n: int = 3, shape=(16, 20)) -> list[tuple[str, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for index in range(n):
        image_name, mask_name = f"img{index}.tif", f"img{index}_mask.png"
        tifffile.imwrite(folder / image_name, np.full(shape, 100 + index, np.uint16))
        iio.imwrite(folder / mask_name, np.zeros(shape, np.uint8))
        pairs.append((image_name, mask_name))
    return pairs


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_read_image_manifest_normalises_and_resolves(tmp_path):
    data = tmp_path / "data"
    pairs = _write_image_set(data / "images")
    absolute_image = (data / "images" / pairs[2][0]).resolve()
    csv = _write_csv(
        data / "manifest.csv",
        "image,label,mask,split,notes\n"
        f"images/{pairs[0][0]},Artifact,images/{pairs[0][1]},train,a\n"
        f"images/{pairs[1][0]}, 0 ,,Validation,b\n"
        f"{absolute_image},CLEAN,,test,c\n",
    )
    manifest = io.read_image_manifest(csv, require_label=True)
    assert manifest["label"].tolist() == [1, 0, 0]
    assert manifest["label"].dtype == np.int64
    assert manifest["split"].tolist() == ["train", "val", "test"]
    assert manifest["image"].tolist()[0] == str((data / "images" / pairs[0][0]).resolve())
    assert manifest["image"].tolist()[2] == str(absolute_image)
    assert manifest["mask"].tolist()[1:] == [None, None]
    assert Path(manifest["mask"][0]).is_absolute()
    assert manifest["notes"].tolist() == ["a", "b", "c"]


def test_read_image_manifest_without_labels(tmp_path):
    pairs = _write_image_set(tmp_path)
    csv = _write_csv(tmp_path / "m.csv", f"image\n{pairs[0][0]}\n{pairs[1][0]}\n")
    manifest = io.read_image_manifest(csv)
    assert len(manifest) == 2 and "label" not in manifest.columns
    with pytest.raises(ArtsegInputError, match="missing required column.*label"):
        io.read_image_manifest(csv, require_label=True)


def test_blank_labels_are_missing_unless_required(tmp_path):
    pairs = _write_image_set(tmp_path, n=2)
    csv = _write_csv(tmp_path / "m.csv", f"image,label\n{pairs[0][0]},1\n{pairs[1][0]},\n")
    labels = io.read_image_manifest(csv)["label"]
    assert str(labels.dtype) == "Int64" and labels[0] == 1 and pd.isna(labels[1])
    with pytest.raises(ArtsegInputError, match=r"row 3: empty label"):
        io.read_image_manifest(csv, require_label=True)


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ("image,label\n{img},maybe\n", r"row 2: label 'maybe' is not one of 1, 0, artifact, clean"),
        ("image,label\n{img},2\n", r"row 2: label '2'"),
        ("image,label\n{img},1\nmissing.tif,0\n", r"row 3: image file not found: .*missing\.tif"),
        ("image,label,mask\n{img},1,nomask.png\n", r"row 2: mask file not found"),
        ("image,label\n,1\n", r"row 2: empty image"),
        ("picture,label\n{img},1\n", r"missing required column\(s\) image"),
        ("image,label,split\n{img},1,holdout\n", r"split 'holdout' is not one of"),
        ("image,label\n", r"manifest has no rows"),
        ("", r"manifest is empty"),
    ],
)
def test_read_image_manifest_rejects_bad_input(tmp_path, body, pattern):
    pairs = _write_image_set(tmp_path, n=1)
    csv = _write_csv(tmp_path / "bad.csv", body.format(img=pairs[0][0]))
    with pytest.raises(ArtsegInputError, match=pattern) as caught:
        io.read_image_manifest(csv, require_label=True)
    assert str(caught.value).startswith(str(csv)) and "\n" not in str(caught.value)


def test_read_image_manifest_missing_csv(tmp_path):
    with pytest.raises(ArtsegInputError, match="manifest file not found"):
        io.read_image_manifest(tmp_path / "nothing.csv")


def test_corrupt_image_in_manifest_fails_when_read(tmp_path):
    (tmp_path / "broken.tif").write_bytes(b"garbage" * 10)
    csv = _write_csv(tmp_path / "m.csv", "image,label\nbroken.tif,1\n")
    manifest = io.read_image_manifest(csv)
    with pytest.raises(ArtsegInputError, match=r"cannot read image: .*broken\.tif"):
        io.read_image(manifest["image"][0])


def test_mask_shape_mismatch_is_reported(tmp_path):
    pairs = _write_image_set(tmp_path, n=1, shape=(16, 20))
    iio.imwrite(tmp_path / "small_mask.png", np.zeros((16, 19), np.uint8))
    csv = _write_csv(tmp_path / "m.csv", f"image,label,mask\n{pairs[0][0]},1,{pairs[0][1]}\n{pairs[0][0]},1,small_mask.png\n")
    with pytest.raises(ArtsegInputError, match=r"row 3: .*small_mask\.png: mask shape \(16, 19\) does not match image shape \(16, 20\)"):
        io.read_image_manifest(csv)
    manifest = io.read_image_manifest(csv, check_shapes=False)
    io.validate_mask_shapes(manifest.iloc[:1])
    with pytest.raises(ArtsegInputError, match=r"manifest row 1: .*small_mask\.png"):
        io.validate_mask_shapes(manifest)


# --------------------------------------------------------------------------- plate / nuclei manifests


def _plate_files(folder: Path) -> None:
    tifffile.imwrite(folder / "bf.tif", np.zeros((8, 8), np.uint16))
    tifffile.imwrite(folder / "fl.tif", np.zeros((8, 8), np.uint16))
    tifffile.imwrite(folder / "fl_small.tif", np.zeros((8, 7), np.uint16))


_PLATE_HEADER = "experiment,ligand,concentration,well,field,brightfield,fluorescence,artifact_mask\n"


def test_read_plate_manifest(tmp_path):
    _plate_files(tmp_path)
    csv = _write_csv(
        tmp_path / "plate.csv",
        _PLATE_HEADER + "e1,atropine,0,a1,0,bf.tif,fl.tif,\ne1,atropine,1e-9,B12,1,bf.tif,fl.tif,bf.tif\n",
    )
    plate = io.read_plate_manifest(csv)
    assert plate["concentration"].tolist() == [0.0, 1e-9]
    assert plate["well"].tolist() == ["A01", "B12"]
    assert plate["field"].tolist() == [0, 1]
    assert plate["artifact_mask"].tolist()[0] is None
    assert Path(plate["fluorescence"][0]).is_absolute()


@pytest.mark.parametrize(
    ("row", "pattern"),
    [
        ("e1,atropine,-1e-9,A01,0,bf.tif,fl.tif,", r"row 2: concentration '-1e-9' is not a number >= 0"),
        ("e1,atropine,lots,A01,0,bf.tif,fl.tif,", r"row 2: concentration 'lots'"),
        ("e1,atropine,0,well7,0,bf.tif,fl.tif,", r"row 2: well 'well7'"),
        ("e1,atropine,0,A01,0.5,bf.tif,fl.tif,", r"row 2: field '0.5'"),
        ("e1,,0,A01,0,bf.tif,fl.tif,", r"row 2: empty ligand"),
        ("e1,atropine,0,A01,0,bf.tif,gone.tif,", r"row 2: fluorescence file not found: .*gone\.tif"),
        ("e1,atropine,0,A01,0,bf.tif,fl_small.tif,", r"row 2: .*fl_small\.tif: fluorescence shape \(8, 7\)"),
    ],
)
def test_read_plate_manifest_rejects_bad_rows(tmp_path, row, pattern):
    _plate_files(tmp_path)
    csv = _write_csv(tmp_path / "plate.csv", _PLATE_HEADER + row + "\n")
    with pytest.raises(ArtsegInputError, match=pattern):
        io.read_plate_manifest(csv)


def test_read_plate_manifest_missing_column(tmp_path):
    _plate_files(tmp_path)
    csv = _write_csv(tmp_path / "plate.csv", "experiment,ligand,well,field,brightfield,fluorescence\ne,l,A01,0,bf.tif,fl.tif\n")
    with pytest.raises(ArtsegInputError, match=r"missing required column\(s\) concentration"):
        io.read_plate_manifest(csv)


def test_read_nuclei_manifest(tmp_path):
    tifffile.imwrite(tmp_path / "bf.tif", np.zeros((8, 8), np.uint16))
    tifffile.imwrite(tmp_path / "nuc.tif", np.zeros((8, 8), np.uint16))
    csv = _write_csv(tmp_path / "nuclei.csv", "image,nuclei,artifact_mask\nbf.tif,nuc.tif,\n")
    nuclei = io.read_nuclei_manifest(csv)
    assert Path(nuclei["nuclei"][0]).name == "nuc.tif" and nuclei["artifact_mask"][0] is None
    bad = _write_csv(tmp_path / "bad.csv", "image\nbf.tif\n")
    with pytest.raises(ArtsegInputError, match=r"missing required column\(s\) nuclei"):
        io.read_nuclei_manifest(bad)


# --------------------------------------------------------------------------- CLI


def test_cli_reports_bad_manifest_on_one_line(tmp_path, capsys):
    pairs = _write_image_set(tmp_path, n=1)
    csv = _write_csv(tmp_path / "m.csv", f"image,label,mask\n{pairs[0][0]},sometimes,{pairs[0][1]}\n")
    status = main(["make-clean", "--manifest", str(csv), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert status == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "sometimes" in lines[0]
    assert not (tmp_path / "out").exists()
