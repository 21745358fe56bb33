"""``artseg train`` and ``artseg predict`` end to end on tiny images: outputs, resume, bad inputs."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from artseg.cli import main
from artseg.io import read_image, read_mask, write_image, write_mask

TINY_TOML = """
base = "fast"
[classifier]
base_width = 4
[unet]
width = 4
levels = 2
convs_per_block = 1
[classifier_train]
epochs = 1
[unet_train]
epochs = 1
[input]
classifier_size = 64
unet_patch = 64
[tiling]
tile_size = 64
overlap = 16
[postprocess]
cutoff_grid = [0.1, 0.5]
min_object_size_grid = [0, 10]
"""


def write_toy_dataset(root, n=12, size=64, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    rows = []
    for index in range(n):
        image = 1000 + 80 * rng.standard_normal((size, size))
        label = index % 2
        row = {"image": f"images/{'artifact' if label else 'clean'}/f{index:02d}.tif", "label": label, "mask": ""}
        if label:
            mask = (yy - 32) ** 2 + (xx - 30) ** 2 < 81
            image[mask] -= 600
            row["mask"] = f"masks/f{index:02d}.png"
            write_mask(root / row["mask"], mask)
        write_image(root / row["image"], image.astype(np.uint16))
        rows.append(row)
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    manifest = write_toy_dataset(root / "data")
    (root / "tiny.toml").write_text(TINY_TOML)
    status = main(["train", "--manifest", str(manifest), "--out", str(root / "model"),
                   "--config", str(root / "tiny.toml"), "--seed", "3", "--quiet"])
    assert status == 0
    return root, manifest


def run_predict(capsys, *args):
    status = main(["predict", "--quiet", *map(str, args)])
    return status, capsys.readouterr()


def test_train_writes_a_complete_model_folder(trained):
    root, _ = trained
    config = json.loads((root / "model" / "config.json").read_text())
    assert config["metadata"]["config"]["seed"] == 3
    assert config["metadata"]["config"]["unet"]["width"] == 4
    assert config["metadata"]["calibration"]["selected_on"] == "pixel_masks"
    assert {"classifier", "unet"} == set(config["networks"])
    log = pd.read_csv(root / "model" / "unet_log.csv")
    assert list(log.columns) == ["epoch", "train_loss", "val_loss", "lr", "seconds"]


def test_predict_folder_writes_nested_masks_and_resumes(trained, tmp_path, capsys):
    root, _ = trained
    out = tmp_path / "pred"
    images = root / "data" / "images"
    status, captured = run_predict(capsys, "--model", root / "model", "--input", images, "--out", out, "--save-prob")
    assert status == 0 and "12 image(s) predicted, 0 already done" in captured.out
    table = pd.read_csv(out / "predictions.csv")
    assert list(table.columns) == ["image", "p_artifact", "artifact_fraction", "n_objects", "contains_artifact"]
    assert sorted(table["image"]) == sorted(f"{'artifact' if i % 2 else 'clean'}/f{i:02d}.tif" for i in range(12))
    assert (out / "artifact" / "f01.png").is_file() and (out / "clean" / "f00.png").is_file()
    mask = read_mask(out / "artifact" / "f01.png")
    assert mask.shape == (64, 64)
    row = table.set_index("image").loc["artifact/f01.tif"]
    assert row["artifact_fraction"] == pytest.approx(mask.mean())
    assert read_image(out / "artifact" / "f01_prob.tif").shape == (64, 64)

    status, captured = run_predict(capsys, "--model", root / "model", "--input", images, "--out", out, "--save-prob")
    assert status == 0 and "0 image(s) predicted, 12 already done" in captured.out
    pd.testing.assert_frame_equal(pd.read_csv(out / "predictions.csv"), table)

    (out / "clean" / "f00.png").unlink()
    status, captured = run_predict(capsys, "--model", root / "model", "--input", images, "--out", out)
    assert "1 image(s) predicted, 11 already done" in captured.out
    status, captured = run_predict(capsys, "--model", root / "model", "--input", images, "--out", out, "--overwrite")
    assert "12 image(s) predicted, 0 already done" in captured.out
    pd.testing.assert_frame_equal(pd.read_csv(out / "predictions.csv"), table)


def test_predict_manifest_with_only_image_column(trained, tmp_path, capsys):
    root, manifest = trained
    images_only = root / "data" / "images_only.csv"
    pd.read_csv(manifest)[["image"]].iloc[:3].to_csv(images_only, index=False)
    status, captured = run_predict(capsys, "--model", root / "model", "--input", images_only, "--out", tmp_path / "p")
    assert status == 0 and "3 image(s) predicted" in captured.out
    table = pd.read_csv(tmp_path / "p" / "predictions.csv")
    assert list(table["image"]) == ["images/artifact/f01.tif", "images/clean/f00.tif", "images/clean/f02.tif"]
    assert (tmp_path / "p" / "images" / "clean" / "f00.png").is_file()


def test_prediction_rows_merge_with_earlier_runs(trained, tmp_path, capsys):
    root, manifest = trained
    table = pd.read_csv(manifest)
    for name, rows in (("first.csv", table.iloc[:2]), ("second.csv", table.iloc[2:4])):
        rows[["image"]].to_csv(root / "data" / name, index=False)
        run_predict(capsys, "--model", root / "model", "--input", root / "data" / name, "--out", tmp_path / "p")
    assert len(pd.read_csv(tmp_path / "p" / "predictions.csv")) == 4


def test_missing_model_folder_is_one_line_error(trained, tmp_path, capsys):
    root, _ = trained
    status, captured = run_predict(capsys, "--model", tmp_path / "nope", "--input", root / "data" / "images",
                                   "--out", tmp_path / "p")
    assert status == 2
    assert captured.err.startswith("error: ") and "model folder does not exist" in captured.err
    assert captured.err.count("\n") == 1 and not (tmp_path / "p").exists()


def test_bad_manifest_and_empty_folder_are_reported(trained, tmp_path, capsys):
    root, _ = trained
    bad = tmp_path / "bad.csv"
    bad.write_text("picture\nx.tif\n")
    status, captured = run_predict(capsys, "--model", root / "model", "--input", bad, "--out", tmp_path / "p")
    assert status == 2 and "missing required column(s) image" in captured.err
    (tmp_path / "empty").mkdir()
    status, captured = run_predict(capsys, "--model", root / "model", "--input", tmp_path / "empty",
                                   "--out", tmp_path / "p")
    assert status == 2 and "no images" in captured.err


def test_colliding_output_names_are_reported(trained, tmp_path, capsys):
    root, _ = trained
    folder = tmp_path / "inputs"
    image = np.zeros((64, 64), np.uint16)
    write_image(folder / "a.tif", image)
    write_image(folder / "a.png", image.astype(np.uint8))
    status, captured = run_predict(capsys, "--model", root / "model", "--input", folder, "--out", tmp_path / "p")
    assert status == 2 and "would both write a.png" in captured.err


def test_train_refuses_bad_manifest_and_existing_model(trained, tmp_path, capsys):
    root, manifest = trained
    unlabelled = tmp_path / "unlabelled.csv"
    pd.read_csv(manifest)[["image"]].to_csv(unlabelled, index=False)
    status = main(["train", "--manifest", str(unlabelled), "--out", str(tmp_path / "m"), "--config", "fast"])
    assert status == 2 and "label" in capsys.readouterr().err
    status = main(["train", "--manifest", str(manifest), "--out", str(root / "model"), "--config", "fast"])
    assert status == 2 and "already holds a model" in capsys.readouterr().err
    status = main(["train", "--manifest", str(manifest), "--out", str(tmp_path / "m"), "--config", "nope.json"])
    assert status == 2 and "no such configuration file" in capsys.readouterr().err


def test_artseg_help_does_not_import_torch():
    code = "import sys; from artseg.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "False", run.stderr[-2000:]
