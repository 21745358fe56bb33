"""Bad inputs given to the CLIs the way a user would: exit status 2, one line naming the file, no output.

Three families: float images holding NaN/infinite pixels, an output folder that is an existing
file (or an output file that is an existing folder), and masks whose shape differs from their
image. No test trains a model: every error is raised before training would start.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import tifffile

from analysis import ligand_affinity, nuclei_impact
from artseg.cli import main
from artseg.errors import ArtsegInputError
from artseg.io import read_image_manifest, write_image, write_labels, write_mask

SIZE = 32


def tiff(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, array)
    return path


def plain_image(path, size=SIZE, seed=0):
    rng = np.random.default_rng(seed)
    return tiff(path, (1000 + 50 * rng.standard_normal((size, size))).astype(np.uint16))


def float_image(path, bad=np.nan, size=SIZE):
    values = np.full((size, size), 0.5, np.float32)
    values[3, 4] = bad
    return tiff(path, values)


def disc_mask(path, size=SIZE):
    yy, xx = np.mgrid[:size, :size]
    write_mask(path, (yy - size // 2) ** 2 + (xx - size // 2) ** 2 < (size // 4) ** 2)
    return path


def write_manifest(path, rows):
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


# a tqdm progress bar line ("make-clean:   0%|    | 0/2 ..."); make-clean and evaluate always draw one
PROGRESS_BAR = re.compile(r"\d+%\|")


def one_error_line(capsys, *needles):
    """Stderr, progress bars aside, is one ``error:`` line holding every needle; returns it."""
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.strip() and not PROGRESS_BAR.search(line)]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert str(needle) in lines[0], lines[0]
    return lines[0]


def files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """An untrained tiny strong-mode model folder: loadable, never fitted (the errors come first)."""
    from artseg.nets import build_network
    from artseg.calibration import Calibration
    from artseg.pixel_model import PixelSegmenter

    from .test_segmenter import tiny_config

    config = tiny_config(mode="strong")
    segmenter = PixelSegmenter(config)
    segmenter.unet = build_network(config.unet)
    segmenter.calibration = Calibration(cutoff=0.5, min_object_size=0, selected_on="config")
    return segmenter.save(tmp_path_factory.mktemp("model") / "model")


@pytest.fixture
def dataset(tmp_path):
    """Four 32² fields (two with a mask), a manifest, a plate manifest and a nuclei manifest."""
    data = tmp_path / "data"
    rows, plate, nuclei = [], [], []
    for index in range(4):
        image = plain_image(data / f"img{index}.tif", seed=index)
        row = {"image": image.name, "label": index % 2, "mask": "", "split": "train" if index < 3 else "val"}
        if index % 2:
            row["mask"] = disc_mask(data / f"mask{index}.png").name
        rows.append(row)
        fluorescence = plain_image(data / f"fluo{index}.tif", seed=10 + index)
        cells = disc_mask(data / f"cells{index}.png")
        plate.append({"experiment": "e1", "ligand": "L", "concentration": [0, 1e-9, 1e-8, 1e-7][index],
                      "well": f"A0{index + 1}", "field": 0, "brightfield": image.name,
                      "fluorescence": fluorescence.name, "cell_mask": cells.name})
        labels = data / f"nuclei{index}.png"
        write_labels(labels, np.where(np.asarray(tifffile.imread(image)) > 1000, 1, 0))
        nuclei.append({"image": image.name, "nuclei": labels.name, "nuclei_pred": labels.name})
    return {
        "root": data,
        "manifest": write_manifest(data / "manifest.csv", rows),
        "plate": write_manifest(data / "plate.csv", plate),
        "nuclei": write_manifest(data / "nuclei.csv", nuclei),
    }


# --------------------------------------------------------------------------- NaN / infinite pixels


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_predict_refuses_a_float_image_with_non_finite_pixels(model, tmp_path, capsys, bad):
    images = tmp_path / "images"
    bad_image = float_image(images / "bad.tif", bad)
    out = tmp_path / "pred"
    assert main(["predict", "--quiet", "--model", str(model), "--input", str(images), "--out", str(out)]) == 2
    one_error_line(capsys, bad_image, "NaN or infinite")
    assert files_under(out) == []


def test_predict_from_a_manifest_refuses_non_finite_pixels(model, tmp_path, capsys):
    bad_image = float_image(tmp_path / "bad.tif")
    manifest = write_manifest(tmp_path / "m.csv", [{"image": "bad.tif"}])
    out = tmp_path / "pred"
    assert main(["predict", "--quiet", "--model", str(model), "--input", str(manifest), "--out", str(out)]) == 2
    one_error_line(capsys, bad_image)
    assert files_under(out) == []


def _with_bad_image(dataset, column="image", row=1, **bad):
    table = pd.read_csv(dataset["manifest"], keep_default_na=False)
    bad_image = float_image(dataset["root"] / "bad.tif", **bad)
    table.loc[row, column] = bad_image.name
    return write_manifest(dataset["manifest"], table), bad_image


def test_train_refuses_non_finite_pixels_before_training(dataset, tmp_path, capsys):
    manifest, bad_image = _with_bad_image(dataset)
    out = tmp_path / "model"
    assert main(["train", "--quiet", "--config", "fast", "--manifest", str(manifest), "--out", str(out)]) == 2
    one_error_line(capsys, bad_image, "NaN or infinite")
    assert not out.exists()


def test_make_clean_refuses_non_finite_pixels(dataset, tmp_path, capsys):
    manifest, bad_image = _with_bad_image(dataset)  # row 1 has a mask: make-clean reads it
    out = tmp_path / "clean"
    assert main(["make-clean", "--manifest", str(manifest), "--out", str(out)]) == 2
    one_error_line(capsys, bad_image, "NaN or infinite")
    assert files_under(out) == []


def test_preview_refuses_non_finite_pixels(dataset, tmp_path, capsys):
    manifest, bad_image = _with_bad_image(dataset, row=0)
    out = tmp_path / "preview.png"
    assert main(["preview", "--manifest", str(manifest), "--out", str(out)]) == 2
    one_error_line(capsys, bad_image, "NaN or infinite")
    assert not out.exists()


def test_evaluate_refuses_a_predicted_mask_with_non_finite_pixels(dataset, tmp_path, capsys):
    pred = tmp_path / "pred"
    for index in range(4):
        write_mask(pred / f"img{index}.png", np.zeros((SIZE, SIZE), bool))
    (pred / "img1.png").unlink()
    bad_mask = float_image(pred / "img1.tif")
    bad_mask.rename(pred / "img1.png")  # a float TIFF under the expected name
    assert main(["evaluate", "--manifest", str(dataset["manifest"]), "--pred", str(pred)]) == 2
    one_error_line(capsys, pred / "img1.png", "NaN or infinite")
    assert not (pred / "metrics.csv").exists()


def test_ligand_affinity_refuses_a_brightfield_with_non_finite_pixels(dataset, tmp_path, capsys):
    table = pd.read_csv(dataset["plate"])
    table.loc[2, "brightfield"] = float_image(dataset["root"] / "bad_bf.tif").name
    plate = write_manifest(dataset["plate"], table)
    out = tmp_path / "affinity"
    status = ligand_affinity.main(["--manifest", str(plate), "--modes", "none", "--out", str(out), "--quiet"])
    assert status == 2
    one_error_line(capsys, dataset["root"] / "bad_bf.tif", "NaN or infinite")
    assert files_under(out) == []


def test_nuclei_impact_refuses_an_image_with_non_finite_pixels(dataset, model, tmp_path, capsys):
    table = pd.read_csv(dataset["nuclei"])
    table.loc[1, "image"] = float_image(dataset["root"] / "bad.tif").name
    manifest = write_manifest(dataset["nuclei"], table)
    out = tmp_path / "nuclei"
    status = nuclei_impact.main(["--manifest", str(manifest), "--model", str(model), "--out", str(out), "--quiet"])
    assert status == 2
    one_error_line(capsys, dataset["root"] / "bad.tif", "NaN or infinite")
    assert files_under(out) == []


def test_every_reader_refuses_non_finite_float_pixels(tmp_path):
    from artseg import io

    bad = float_image(tmp_path / "bad.tif", np.inf)
    for reader in (io.read_image, io.read_image_raw, io.read_mask, io.read_labels):
        with pytest.raises(ArtsegInputError, match=r"bad\.tif: 1 pixel\(s\) are NaN or infinite"):
            reader(bad)
    assert io.read_image(float_image(tmp_path / "fine.tif", 2.0)).max() == 2.0


# --------------------------------------------------------------------------- output paths


def _folder_commands(dataset, model, out):
    """Every command that takes an output folder, writing into ``out``."""
    manifest, plate, nuclei = (str(dataset[key]) for key in ("manifest", "plate", "nuclei"))
    return {
        "predict": lambda: main(["predict", "--quiet", "--model", str(model), "--input", manifest, "--out", out]),
        "train": lambda: main(["train", "--quiet", "--config", "fast", "--manifest", manifest, "--out", out]),
        "synth": lambda: main(["synth", "--quiet", "--preset", "cho_m4r", "--n-images", "2", "--size", "32",
                               "--plate-experiments", "0", "--out", out]),
        "make-clean": lambda: main(["make-clean", "--manifest", manifest, "--out", out]),
        "benchmark": lambda: main(["benchmark", "--quiet", "--manifest", manifest, "--config", "fast",
                                   "--out", out]),
        "evaluate": lambda: main(["evaluate", "--manifest", manifest, "--pred", str(dataset["root"]),
                                  "--out", out]),
        "ligand_affinity": lambda: ligand_affinity.main(["--manifest", plate, "--modes", "none", "--quiet",
                                                         "--out", out]),
        "nuclei_impact": lambda: nuclei_impact.main(["--manifest", nuclei, "--model", str(model), "--quiet",
                                                     "--out", out]),
    }


FOLDER_COMMANDS = ["predict", "train", "synth", "make-clean", "benchmark", "evaluate", "ligand_affinity",
                   "nuclei_impact"]


@pytest.mark.parametrize("command", FOLDER_COMMANDS)
def test_output_folder_that_is_an_existing_file(dataset, model, tmp_path, capsys, command):
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me\n")
    assert _folder_commands(dataset, model, str(taken))[command]() == 2
    one_error_line(capsys, taken, "exists and is not a folder")
    assert taken.read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "taken.txt"]


@pytest.mark.parametrize("command", ["predict", "synth", "make-clean", "ligand_affinity"])
def test_output_folder_below_an_existing_file(dataset, model, tmp_path, capsys, command):
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me\n")
    assert _folder_commands(dataset, model, str(taken / "sub"))[command]() == 2
    one_error_line(capsys, taken / "sub", f"{taken} exists and is not a folder")
    assert taken.read_text() == "keep me\n"


def test_preview_output_file_that_is_an_existing_folder(dataset, tmp_path, capsys):
    folder = tmp_path / "montage.png"
    folder.mkdir()
    assert main(["preview", "--manifest", str(dataset["manifest"]), "--out", str(folder)]) == 2
    one_error_line(capsys, folder, "is an existing folder, not a file")
    assert list(folder.iterdir()) == []


def test_import_cho_m4r_output_file_that_is_an_existing_folder(tmp_path, capsys):
    root = tmp_path / "layout"
    plain_image(root / "train" / "clean" / "1.tif")
    folder = tmp_path / "manifest.csv"
    folder.mkdir()
    assert main(["import-cho-m4r", str(root), "--out", str(folder)]) == 2
    one_error_line(capsys, folder, "is an existing folder, not a file")
    assert list(folder.iterdir()) == []


def test_train_overwrite_keeps_the_old_model_when_the_manifest_is_bad(tmp_path, capsys):
    out = tmp_path / "model"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"old": True}))
    missing = tmp_path / "missing.csv"
    assert main(["train", "--quiet", "--manifest", str(missing), "--out", str(out), "--overwrite"]) == 2
    one_error_line(capsys, missing)
    assert json.loads((out / "config.json").read_text()) == {"old": True}


def test_writers_refuse_a_folder_in_place_of_their_file(tmp_path):
    from artseg.io import atomic_write_text

    (tmp_path / "report.txt").mkdir()
    with pytest.raises(ArtsegInputError, match=r"report\.txt: output is an existing folder, not a file"):
        atomic_write_text(tmp_path / "report.txt", "x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArtsegInputError, match=r"file exists and is not a folder"):
        write_image(tmp_path / "file" / "image.tif", np.zeros((2, 2), np.uint8))


# --------------------------------------------------------------------------- mask shapes


def _small_mask(dataset):
    """A 16x32 mask next to the 32x32 images."""
    path = dataset["root"] / "small_mask.png"
    write_mask(path, np.ones((SIZE // 2, SIZE), bool))
    return path


def _shape_needles(mask, image, mask_shape=(SIZE // 2, SIZE), image_shape=(SIZE, SIZE)):
    return (mask, image, str(tuple(mask_shape)), str(tuple(image_shape)))


def _manifest_with_small_mask(dataset, row: int):
    """The dataset's manifest with row ``row``'s mask replaced by a too-small one; returns (csv, mask)."""
    small = _small_mask(dataset)
    table = pd.read_csv(dataset["manifest"], keep_default_na=False)
    table.loc[row, "mask"] = small.name
    return write_manifest(dataset["manifest"], table), small


def test_train_names_the_mask_and_the_image_of_a_shape_mismatch(dataset, tmp_path, capsys):
    manifest, small = _manifest_with_small_mask(dataset, 1)
    out = tmp_path / "model"
    assert main(["train", "--quiet", "--config", "fast", "--manifest", str(manifest), "--out", str(out)]) == 2
    line = one_error_line(capsys, *_shape_needles(small, dataset["root"] / "img1.tif"))
    assert "row 3" in line
    assert not out.exists()


def test_training_data_loader_names_the_mask_and_the_image(dataset):
    from artseg.segmenter import ArtifactSegmenter

    from .test_segmenter import tiny_config

    written, small = _manifest_with_small_mask(dataset, 3)
    manifest = read_image_manifest(written, check_shapes=False)
    with pytest.raises(ArtsegInputError) as caught:
        ArtifactSegmenter(tiny_config()).fit(manifest, progress=False)
    for needle in _shape_needles(small, dataset["root"] / "img3.tif"):
        assert str(needle) in str(caught.value)


def test_make_clean_names_the_mask_and_the_image(dataset, tmp_path, capsys):
    manifest, small = _manifest_with_small_mask(dataset, 3)
    out = tmp_path / "clean"
    assert main(["make-clean", "--manifest", str(manifest), "--out", str(out)]) == 2
    one_error_line(capsys, *_shape_needles(small, dataset["root"] / "img3.tif"))
    assert files_under(out) == []


@pytest.mark.parametrize(("row", "reference"), [(1, "mask1.png"), (0, "img0.tif")])
def test_evaluate_names_a_wrong_shaped_prediction_and_its_reference(dataset, tmp_path, capsys, row, reference):
    pred = tmp_path / "pred"
    for index in range(4):
        write_mask(pred / f"img{index}.png", np.zeros((SIZE, SIZE), bool))
    write_mask(pred / f"img{row}.png", np.zeros((SIZE // 2, SIZE), bool))
    assert main(["evaluate", "--manifest", str(dataset["manifest"]), "--pred", str(pred)]) == 2
    what = "mask" if reference.startswith("mask") else "image"
    line = one_error_line(capsys, *_shape_needles(pred / f"img{row}.png", dataset["root"] / reference))
    assert f"does not match {what} shape" in line
    assert not (pred / "metrics.csv").exists() and not (pred / "per_image.csv").exists()


def test_ligand_affinity_names_a_wrong_shaped_cell_mask_and_its_brightfield(dataset, tmp_path, capsys):
    small = _small_mask(dataset)
    table = pd.read_csv(dataset["plate"])
    table.loc[2, "cell_mask"] = small.name
    plate = write_manifest(dataset["plate"], table)
    out = tmp_path / "affinity"
    status = ligand_affinity.main(["--manifest", str(plate), "--modes", "none", "--out", str(out), "--quiet"])
    assert status == 2
    line = one_error_line(capsys, *_shape_needles(small, dataset["root"] / "img2.tif"))
    assert "does not match brightfield shape" in line
    assert files_under(out) == []


def test_nuclei_impact_names_a_wrong_shaped_artifact_mask_and_its_image(dataset, model, tmp_path, capsys):
    small = _small_mask(dataset)
    table = pd.read_csv(dataset["nuclei"])
    table["artifact_mask"] = ""
    table.loc[0, "artifact_mask"] = small.name
    manifest = write_manifest(dataset["nuclei"], table)
    out = tmp_path / "nuclei"
    status = nuclei_impact.main(["--manifest", str(manifest), "--model", str(model), "--out", str(out), "--quiet"])
    assert status == 2
    one_error_line(capsys, *_shape_needles(small, dataset["root"] / "img0.tif"))
    assert files_under(out) == []
