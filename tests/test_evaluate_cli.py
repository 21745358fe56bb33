"""Tests of ``artseg evaluate`` on a small hand-made dataset with hand-computed scores."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from artseg.cli import main, run_command
from artseg.commands import evaluate
from artseg.evaluation import evaluate_masks
from artseg.io import write_mask, write_tiff

OUTPUTS = ("metrics.csv", "metrics.json", "per_image.csv")


def square(shape, rows, cols) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[rows, cols] = True
    return mask


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, Path]:
    """Manifest of three images and a prediction folder nested like the images.

    a/img1: truth 4x4 square, prediction shifted by 2 columns (pixel IoU 1/3, no object match).
    a/img2: clean, no mask; empty prediction.
    b/img3: truth 2x2 and 3x3 squares; prediction the 3x3 square only.
    predictions.csv: img1 0.9, img2 0.7, img3 0.2 (image-level tp 1, fp 1, fn 1).
    """
    data, pred = tmp_path / "data", tmp_path / "pred"
    truths = {
        "a/img1": square((8, 8), slice(0, 4), slice(0, 4)),
        "a/img2": None,
        "b/img3": square((10, 10), slice(0, 2), slice(0, 2)) | square((10, 10), slice(5, 8), slice(5, 8)),
    }
    predictions = {
        "a/img1": square((8, 8), slice(0, 4), slice(2, 6)),
        "a/img2": np.zeros((6, 6), dtype=bool),
        "b/img3": square((10, 10), slice(5, 8), slice(5, 8)),
    }
    rows = []
    for name, truth in truths.items():
        shape = predictions[name].shape
        write_tiff(data / f"{name}.tif", np.full(shape, 1000, dtype=np.uint16))
        mask = ""
        if truth is not None:
            mask = f"{name}_mask.png"
            write_mask(data / mask, truth)
        write_mask(pred / f"{name}.png", predictions[name])
        rows.append({"image": f"{name}.tif", "label": int(truth is not None), "mask": mask, "split": "test"})
    rows[0]["split"] = "val"
    pd.DataFrame(rows).to_csv(data / "manifest.csv", index=False)
    pd.DataFrame({"image": ["a/img1.tif", "a/img2.tif", "b/img3.tif"], "p_artifact": [0.9, 0.7, 0.2]}).to_csv(
        pred / "predictions.csv", index=False
    )
    return data / "manifest.csv", pred


def run_evaluate(*argv: str) -> int:
    """Run only this subcommand (independent of the other commands' modules)."""
    parser = argparse.ArgumentParser()
    evaluate.register(parser.add_subparsers())
    args = parser.parse_args(["evaluate", *argv])
    return run_command(args.func, args)


def test_evaluate_writes_hand_computed_metrics(dataset, capsys):
    manifest, pred = dataset
    assert main(["evaluate", "--manifest", str(manifest), "--pred", str(pred)]) == 0
    metrics = json.loads((pred / "metrics.json").read_text())
    pooled = metrics["pixel"]["pooled"]
    assert (pooled["tp"], pooled["fp"], pooled["fn"]) == (17, 8, 12)
    assert pooled["iou"] == pytest.approx(17 / 37)
    assert metrics["pixel"]["mean_per_image"]["iou"] == pytest.approx((1 / 3 + 1 + 9 / 13) / 3)
    objects = metrics["object"]
    assert objects["at_threshold"] == {"tp": 1, "fp": 1, "fn": 2, "precision": 0.5, "recall": pytest.approx(1 / 3), "f1": 0.4}
    assert objects["mean_f1"] == pytest.approx(0.4)
    image = metrics["image"]
    assert (image["tp"], image["fp"], image["fn"], image["tn"]) == (1, 1, 1, 0)
    assert image["f1"] == pytest.approx(0.5)

    summary = pd.read_csv(pred / "metrics.csv")
    assert set(summary["level"]) == {"pixel", "object", "image"}
    iou_rows = summary[(summary["level"] == "pixel") & (summary["metric"] == "iou")]
    assert sorted(iou_rows["aggregation"]) == ["mean per image", "pooled over all pixels"]
    per_image = pd.read_csv(pred / "per_image.csv")
    assert per_image["image"].tolist() == ["a/img1.tif", "a/img2.tif", "b/img3.tif"]
    assert per_image["pred_label"].tolist() == [1, 1, 0]
    assert per_image["object_tp"].tolist() == [0, 0, 1]
    printed = capsys.readouterr().out
    assert "pooled over all pixels" in printed and "mean per image" in printed


def test_evaluate_without_predictions_csv_uses_masks_for_image_labels(dataset, tmp_path):
    manifest, pred = dataset
    (pred / "predictions.csv").unlink()
    out = tmp_path / "report"
    assert run_evaluate("--manifest", str(manifest), "--pred", str(pred), "--out", str(out)) == 0
    image = json.loads((out / "metrics.json").read_text())["image"]
    assert (image["tp"], image["fp"], image["fn"], image["tn"]) == (2, 0, 0, 1)
    assert "masks" in image["pred_labels"]
    assert not any((pred / name).exists() for name in OUTPUTS)


def test_evaluate_split(dataset, tmp_path):
    manifest, pred = dataset
    assert run_evaluate("--manifest", str(manifest), "--pred", str(pred), "--split", "val") == 0
    per_image = pd.read_csv(pred / "per_image.csv")
    assert per_image["image"].tolist() == ["a/img1.tif"]


def test_evaluate_missing_prediction_names_the_image(dataset, capsys):
    manifest, pred = dataset
    (pred / "b" / "img3.png").unlink()
    assert run_evaluate("--manifest", str(manifest), "--pred", str(pred)) == 2
    error = capsys.readouterr().err
    assert error.startswith("error:") and "b/img3" in error
    assert not any((pred / name).exists() for name in OUTPUTS)


def test_evaluate_predictions_csv_missing_an_image(dataset, capsys):
    manifest, pred = dataset
    pd.DataFrame({"image": ["a/img1.tif", "b/img3.tif"], "p_artifact": [0.9, 0.2]}).to_csv(
        pred / "predictions.csv", index=False
    )
    assert run_evaluate("--manifest", str(manifest), "--pred", str(pred)) == 2
    assert "a/img2" in capsys.readouterr().err


def test_evaluate_artifact_image_without_mask_is_an_error(dataset, capsys):
    manifest, pred = dataset
    table = pd.read_csv(manifest, keep_default_na=False)
    table.loc[2, "mask"] = ""
    table.to_csv(manifest, index=False)
    assert run_evaluate("--manifest", str(manifest), "--pred", str(pred)) == 2
    error = capsys.readouterr().err
    assert "row 4" in error and "b/img3" in error


def test_evaluate_shape_mismatch_names_the_file(dataset, capsys):
    manifest, pred = dataset
    write_mask(pred / "a" / "img1.png", np.zeros((5, 5), dtype=bool))
    assert run_evaluate("--manifest", str(manifest), "--pred", str(pred)) == 2
    assert "img1.png" in capsys.readouterr().err


def test_evaluate_masks_fills_missing_image_labels_from_masks():
    truth = [square((4, 4), 0, 0), np.zeros((4, 4), bool), np.zeros((3, 3), bool)]
    pred = [square((4, 4), 0, 0), square((4, 4), 1, 1), np.zeros((3, 3), bool)]
    evaluation = evaluate_masks(zip(truth, pred), ["x", "y", "z"], true_image_labels=[1, None, 1])
    image = evaluation.metrics["image"]
    assert evaluation.per_image["true_label"].tolist() == [1, 0, 1]
    assert (image["tp"], image["fp"], image["fn"], image["tn"]) == (1, 1, 1, 0)
    assert image["true_labels"] == "given, from masks where missing"
    assert evaluation.metrics["pixel"]["pooled"]["iou"] == pytest.approx(0.5)
    assert evaluation.metrics["pixel"]["mean_per_image"]["iou"] == pytest.approx((1 + 0 + 1) / 3)
