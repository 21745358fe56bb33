"""The model comparison (artseg.comparison, `artseg benchmark`, the Fig. 3 notebook) on a tiny dataset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import tifffile
import torch
from nbclient import NotebookClient

import artseg.comparison.runner as runner
from artseg.cli import main
from artseg.comparison import (
    DETECTOR_NAMES,
    TABLE_ROWS,
    Detector,
    ModelResult,
    choose_cutoff,
    comparison_table,
    detector_slug,
    load_split,
    markdown_table,
    object_size_settings,
    pick_examples,
    run_benchmark,
    scale_object_size,
    write_outputs,
)
from artseg.errors import ArtsegInputError
from artseg.io import read_image_manifest, write_mask
from artseg.metrics import pixel_scores
from artseg.postprocess import binarize, remove_small
from tests.test_detectors import TINY_BASELINES, TINY_OVERRIDES, make_tiny_dataset, tiny_config

ROW_LABELS = [label for _, label in TABLE_ROWS]
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny networks run ~10x faster on one thread, and far faster still on a shared, busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- pure parts


def test_object_sizes_scale_with_field_area():
    area_ratio = 256 * 256 / (904 * 1224)
    assert scale_object_size(500, (904, 1224), (256, 256)) == round(500 * area_ratio)
    assert scale_object_size(500, (904, 1224), (904, 1224)) == 500
    assert scale_object_size(20, (2156, 2556), (64, 64)) == 1  # a positive size never scales to no filter
    assert scale_object_size(0, (904, 1224), (256, 256)) == 0
    sizes = object_size_settings((256, 256), "seven_cell_lines")
    assert sizes["paper_min_object_size"] == 1000
    assert sizes["min_object_size"] == round(1000 * 256 * 256 / 1080**2)
    assert sizes["paper_sizes"] == [20, 50, 100, 500, 1000, 2000]
    assert sizes["sizes"] == [max(1, round(s * 256 * 256 / 1080**2)) for s in sizes["paper_sizes"]]
    assert object_size_settings((64, 64), None)["min_object_size"] == 0
    assert object_size_settings((64, 64), "lncap", min_object_size=7)["min_object_size"] == 7
    with pytest.raises(ArtsegInputError, match="unknown preset 'mvtec'"):
        object_size_settings((64, 64), "mvtec")


def _result(name: str, **scores) -> ModelResult:
    full = {"image_f1": 0.5, "f1": 0.25, "precision": 0.125, "recall": 1.0, "iou": 0.14285, **scores}
    return ModelResult(name, 0.5, 0.1, 0, full, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), [])


def test_comparison_table_has_the_paper_rows_and_one_column_per_model():
    table = comparison_table([_result("U-Net"), _result("AE", iou=0.06666)])
    assert table.index.tolist() == ROW_LABELS == ["image F1", "pixel F1", "precision", "recall", "IoU"]
    assert table.columns.tolist() == ["U-Net", "AE"]
    assert table.loc["IoU", "U-Net"] == 14.3 and table.loc["IoU", "AE"] == 6.7
    assert table.loc["recall", "AE"] == 100.0
    text = markdown_table(table)
    assert text.splitlines()[0] == "| metric | U-Net | AE |"
    assert "| IoU | 14.3 | 6.7 |" in text


def test_examples_are_artifact_images_ranked_by_true_area():
    masks = [np.zeros((8, 8), bool) for _ in range(6)]
    for index, area in zip(range(6), (0, 5, 30, 12, 0, 2)):
        masks[index].flat[:area] = True
    labels = [0, 1, 1, 1, 1, 1]
    assert pick_examples(masks, labels, count=2) == [2, 1]  # largest, then down to the lower quartile
    assert pick_examples(masks, labels, count=10) == [2, 3, 1, 5]
    assert pick_examples(masks, labels, count=0) == []


def test_cutoff_search_uses_the_size_filter():
    truth = np.zeros((1, 20, 20), bool)
    truth[0, 5:15, 5:15] = True
    probability = np.where(truth, 0.6, 0.0).astype(np.float32)
    probability[0, 0, 0] = 0.9  # a one-pixel false positive that only the size filter removes
    _, iou_without_filter = choose_cutoff(probability, truth, 0)
    cutoff, iou_with_filter = choose_cutoff(probability, truth, 2)
    assert iou_without_filter == pytest.approx(100 / 101)
    assert cutoff < 0.6 and iou_with_filter == 1.0


# --------------------------------------------------------------------------- cut-offs come from val


class _IntensityDetector(Detector):
    """The image itself, divided by 1000, is the probability map (no training)."""

    name = "PaDiM"
    slug = "padim"

    def _fit(self, manifest, *, seed, progress):
        pass

    def _predict(self, image):
        probability = image / 1000.0
        return probability, float(probability.max())

    def _save(self, folder):
        return {}, None

    def _load(self, folder, model):
        pass


def _probability_dataset(folder: Path) -> Path:
    """Val: background 0.1, artifact 0.3. Test: background 0.5, artifact 0.9."""
    folder.mkdir()
    levels = {"train": (100, 300), "val": (100, 300), "test": (500, 900)}
    rows = []
    for index, split in enumerate(["train", "train", "val", "val", "test", "test"]):
        background, artifact = levels[split]
        label = index % 2
        image = np.full((32, 32), background, np.uint16)
        mask = np.zeros((32, 32), bool)
        if label:
            mask[8:20, 8:20] = True
            image[mask] = artifact
        tifffile.imwrite(folder / f"{index}.tif", image)
        write_mask(folder / f"{index}.png", mask)
        rows.append({"image": f"{index}.tif", "label": label, "mask": f"{index}.png", "split": split})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


def test_test_scores_use_the_cutoff_chosen_on_val(tmp_path, monkeypatch):
    manifest = read_image_manifest(_probability_dataset(tmp_path / "data"), require_label=True)
    monkeypatch.setattr(runner, "build_detectors", lambda config, names, **settings: [_IntensityDetector()])
    result = run_benchmark(manifest, tmp_path / "out", config=tiny_config(), models=["PaDiM"],
                           min_object_size=0, progress=False)
    padim = result.results["PaDiM"]
    assert 0.1 <= padim.cutoff < 0.3 and padim.val_iou == 1.0
    # At the val cut-off every test pixel is foreground; a test-tuned cut-off (0.5-0.9) would score 1.0.
    test_truth = np.zeros((32, 32), bool)
    test_truth[8:20, 8:20] = True
    expected_iou = test_truth.sum() / (2 * test_truth.size)
    assert padim.scores["iou"] == pytest.approx(expected_iou)
    assert padim.scores["recall"] == 1.0
    assert padim.scores["image_f1"] == pytest.approx(2 / 3)  # the clean test field is called artifact too


# --------------------------------------------------------------------------- a real tiny run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("benchmark")
    manifest_path = make_tiny_dataset(root / "data")
    manifest = read_image_manifest(manifest_path, require_label=True)
    out = root / "out"
    result = run_benchmark(manifest, out, config=tiny_config(), preset="cho_m4r", seed=0,
                           baseline_settings=TINY_BASELINES, n_examples=2, progress=False)
    write_outputs(result, out)
    return {"manifest": manifest, "manifest_path": manifest_path, "out": out, "result": result}


def test_table_has_the_paper_shape_and_percentages(tiny_run):
    table = pd.read_csv(tiny_run["out"] / "table.csv", index_col="metric")
    assert table.index.tolist() == ROW_LABELS
    assert table.columns.tolist() == list(DETECTOR_NAMES)
    values = table.to_numpy()
    assert np.all((values >= 0) & (values <= 100))
    np.testing.assert_array_equal(values, np.round(values, 1))
    markdown = (tiny_run["out"] / "table.md").read_text()
    assert "| metric | U-Net | ScoreCAM-U-Net | ScoreCAM | AE | PaDiM | PatchSVDD |" in markdown
    assert "objects smaller than 2 px removed (the paper's 500 px at 904x1224" in markdown


def test_reported_scores_are_the_val_cutoff_applied_to_test_maps(tiny_run):
    out, result = tiny_run["out"], tiny_run["result"]
    val_masks = load_split(tiny_run["manifest"], "val", progress=False).masks
    test_masks = result.test.masks
    cutoffs = json.loads((out / "cutoffs.json").read_text())
    assert cutoffs["selected_on"] == "val"
    min_size = cutoffs["object_sizes"]["min_object_size"]
    assert min_size == scale_object_size(500, (904, 1224), (64, 64))
    for name in DETECTOR_NAMES:
        with np.load(out / "maps" / f"{detector_slug(name)}.npz") as maps:
            val_maps = [maps[f"val_{i:05d}"] for i in range(len(val_masks))]
            test_maps = [maps[f"test_{i:05d}"] for i in range(len(test_masks))]
        for probability in (*val_maps, *test_maps):
            assert probability.dtype == np.float32 and 0.0 <= probability.min() and probability.max() <= 1.0
        cutoff, val_iou = choose_cutoff(val_maps, val_masks, min_size)
        assert cutoffs["models"][name]["cutoff"] == cutoff
        assert cutoffs["models"][name]["val_iou"] == pytest.approx(val_iou)
        predicted = [remove_small(binarize(p, cutoff), min_size) for p in test_maps]
        assert result.results[name].scores["iou"] == pytest.approx(pixel_scores(test_masks, predicted)["iou"])
    # The two classifier-based models share the classifier, hence the image-level call.
    table = result.table
    assert table.loc["image F1", "ScoreCAM"] == table.loc["image F1", "ScoreCAM-U-Net"]


def test_size_cutoff_table_lists_paper_and_scaled_sizes(tiny_run):
    sizes = pd.read_csv(tiny_run["out"] / "size_cutoffs.csv")
    assert sizes["paper_size_px"].tolist() == [20, 50, 100, 500, 1000, 2000]
    assert sizes["min_size_px"].tolist() == [scale_object_size(s, (904, 1224), (64, 64)) for s in sizes["paper_size_px"]]
    assert sizes.columns.tolist()[2:] == list(DETECTOR_NAMES)
    values = sizes[list(DETECTOR_NAMES)].to_numpy()
    assert np.all((values >= 0) & (values <= 100))
    table = pd.read_csv(tiny_run["out"] / "table.csv", index_col="metric")
    used = sizes[sizes["paper_size_px"] == 500].iloc[0]  # the paper's CHO-M4R filter is the one applied
    for name in DETECTOR_NAMES:
        assert used[name] == table.loc["IoU", name]


def test_every_output_is_written(tiny_run):
    out = tiny_run["out"]
    for name in ("table.csv", "table.md", "size_cutoffs.csv", "size_cutoffs.md", "scores.csv", "timings.csv",
                 "per_image.csv", "pr_curves.csv", "cutoffs.json", "summary.json", "overlays.npz"):
        assert (out / name).stat().st_size > 0, name
    for name in ("pr_curves.png", "iou_bars.png", "overlays.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = pd.read_csv(out / "pr_curves.csv")
    assert curves["model"].unique().tolist() == list(DETECTOR_NAMES)
    assert curves.groupby("model")["recall"].apply(lambda r: r.is_monotonic_decreasing).all()
    timings = pd.read_csv(out / "timings.csv")
    assert timings["model"].tolist() == list(DETECTOR_NAMES)
    assert (timings["fit_seconds"] >= 0).all() and (timings["predict_seconds_per_image"] > 0).all()
    per_image = pd.read_csv(out / "per_image.csv")
    assert len(per_image) == 6 * 4 and set(per_image["called_artifact"]) <= {0, 1}
    with np.load(out / "overlays.npz") as overlays:
        assert overlays["images"].shape == (2, 64, 64)
        assert overlays["true_masks"].any(axis=(1, 2)).all()  # examples are artifact images


def test_rerun_reuses_models_and_maps_and_refuses_another_run(tiny_run, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(tiny_run["out"], out)
    again = run_benchmark(tiny_run["manifest"], out, config=tiny_config(), preset="cho_m4r", seed=0,
                          baseline_settings=TINY_BASELINES, n_examples=2, progress=False)
    pd.testing.assert_frame_equal(again.table, tiny_run["result"].table)
    assert all(model.timings["from_cache"] for model in again.results.values())
    with pytest.raises(ArtsegInputError, match="another dataset, configuration or seed"):
        run_benchmark(tiny_run["manifest"], out, config=tiny_config(), preset="cho_m4r", seed=1, progress=False)
    with pytest.raises(ArtsegInputError, match="trained with other settings"):
        run_benchmark(tiny_run["manifest"], out, config=tiny_config(), preset="cho_m4r", seed=0,
                      models=["AE"], progress=False)


def test_a_run_folder_with_models_of_the_old_format_asks_to_refit(tiny_run, tmp_path):
    out = tmp_path / "old"
    shutil.copytree(tiny_run["out"], out)
    shutil.rmtree(out / "models" / "ae")
    (out / "models" / "ae").mkdir()
    (out / "models" / "ae" / "detector.json").write_text(json.dumps({"format": "artseg-benchmark-detector"}))
    with pytest.raises(ArtsegInputError, match="models/ae: a model saved by an older artseg"):
        run_benchmark(tiny_run["manifest"], out, config=tiny_config(), preset="cho_m4r", seed=0, models=["AE"],
                      baseline_settings=TINY_BASELINES, progress=False)


def test_cli_benchmarks_a_manifest_into_a_folder(tiny_run, tmp_path, capsys):
    out = tmp_path / "cli"
    shutil.copytree(tiny_run["out"], out)  # cached models: the command only re-scores
    config_file = tmp_path / "tiny.json"
    config_file.write_text(json.dumps({"base": "fast", **TINY_OVERRIDES}))
    status = main(["benchmark", "--manifest", str(tiny_run["manifest_path"]), "--preset", "cho_m4r",
                   "--out", str(out), "--config", str(config_file), "--models", "U-Net,ScoreCAM",
                   "--min-object-size", "0", "--baselines", "paper", "--quiet"])
    assert status == 0
    assert json.loads((out / "summary.json").read_text())["baseline_preset"] == "paper"
    table = pd.read_csv(out / "table.csv", index_col="metric")
    assert table.columns.tolist() == ["U-Net", "ScoreCAM"]
    assert json.loads((out / "cutoffs.json").read_text())["object_sizes"]["min_object_size"] == 0
    assert "| metric | U-Net | ScoreCAM |" in capsys.readouterr().out


def test_cli_input_errors_exit_with_status_2(tmp_path, capsys):
    assert main(["benchmark", "--out", str(tmp_path / "out")]) == 2
    assert "give --preset" in capsys.readouterr().err
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"image": ["a.tif"], "label": [1]}).to_csv(manifest, index=False)
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((8, 8), np.uint16))
    assert main(["benchmark", "--manifest", str(manifest), "--out", str(tmp_path / "out2"), "--quiet"]) == 2
    assert "'split' column" in capsys.readouterr().err
    assert main(["benchmark", "--manifest", str(manifest), "--out", str(tmp_path / "out3"),
                 "--models", "U-Net,SAM", "--quiet"]) == 2
    assert "unknown model 'SAM'" in capsys.readouterr().err
    assert main(["benchmark", "--manifest", str(manifest), "--out", str(tmp_path / "out4"),
                 "--baselines", "medium", "--quiet"]) == 2
    assert "--baselines must be one of fast, paper" in capsys.readouterr().err


def test_notebook_redraws_the_figures_from_the_run_folder(tiny_run, tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_notebooks", NOTEBOOKS / "build_notebooks.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    built = nbformat.reads(nbformat.writes(nbformat.v4.new_notebook(cells=builder.FIG3)), as_version=4)
    committed = nbformat.read(NOTEBOOKS / "fig3_model_comparison.ipynb", as_version=4)
    assert [cell.source for cell in committed.cells] == [cell.source for cell in built.cells]
    monkeypatch.setenv("ARTSEG_BENCHMARK_OUT", str(tiny_run["out"]))
    monkeypatch.setenv("ARTSEG_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    NotebookClient(committed, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    for name in ("fig3b_pr_curves.png", "fig3b_iou_image_f1.png", "fig3a_overlays.png"):
        assert (tmp_path / "figures" / name).stat().st_size > 10_000, name
