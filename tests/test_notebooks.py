"""The figure notebooks: built by one script, run top to bottom on small output folders of the
commands they name, show their figures inline and save them as PNG and SVG, and stop in their
first code cell with the command to run when the outputs are missing."""

import importlib.util
import json
import os
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from jupyter_client import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from analysis.affinity import fit_experiments
from analysis.hill import hill
from analysis.paper_figures import (
    combined_overlays,
    dataset_object_sizes,
    displacement_curve_pages,
    find_runs,
    missing_outputs_message,
    object_size_boxes,
    read_overlays,
    representative_experiments,
)
from artseg.comparison import ModelResult, object_size_settings, write_outputs
from artseg.comparison.runner import BenchmarkResult
from artseg.comparison.splits import SplitData
from artseg.errors import ArtsegInputError
from artseg.io import write_labels, write_mask
from artseg.synth import generate_dataset

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebooks", NOTEBOOKS / "build_notebooks.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    return builder


# --------------------------------------------------------------------------- output folders


def _ligand_tables(out: Path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for experiment, ligand, log_ic50 in (("atropine_1", "atropine", -9.0), ("atropine_2", "atropine", -8.8),
                                         ("pirenzepine_1", "pirenzepine", -7.5)):
        for c in np.repeat(np.r_[0.0, 10.0 ** np.arange(-11, -5, 0.75)], 2):
            x = np.log10(c) if c > 0 else -np.inf
            for mode in ("manual", "model", "none"):
                rows.append({"experiment": experiment, "ligand": ligand, "concentration": c, "well": "A01",
                             "mode": mode, "specific": hill(x, 100, 1000, log_ic50, -1) + rng.normal(0, 20)})
    wells = pd.DataFrame(rows)
    run = out / "ligand_affinity"
    run.mkdir(parents=True)
    wells.to_csv(run / "wells.csv", index=False)
    fit_experiments(wells, ci="wald").to_csv(run / "fits.csv", index=False)
    pd.DataFrame({"mode": ["manual"], "mean_r_squared": [0.9]}).to_csv(run / "summary.csv", index=False)


def _nuclei_tables(out: Path) -> None:
    rng = np.random.default_rng(1)
    regions = ["artifact", "artifact_free_manual", "artifact_free_model", "whole_image"]
    per_image = pd.DataFrame([{"image": f"i{i}", "region": r, "pixel_f1": rng.uniform(0.3, 0.95),
                               "object_f1": rng.uniform(0.1, 0.8)} for i in range(6) for r in regions])
    nuclei = pd.DataFrame([{"image": "i0", "label": k, "region": r, "area": rng.uniform(100, 500),
                            "solidity": rng.uniform(0.8, 1.0), "matched": True}
                           for k in range(10) for r in regions])
    run = out / "nuclei_impact"
    run.mkdir(parents=True)
    per_image.to_csv(run / "per_image.csv", index=False)
    nuclei.to_csv(run / "nuclei.csv", index=False)
    pd.DataFrame({"region": regions}).to_csv(run / "summary.csv", index=False)


def _benchmark_run(folder: Path, preset: str, seed: int, models=("U-Net", "ScoreCAM")) -> None:
    """A small ``artseg benchmark`` folder, written by the command's own writer."""
    rng = np.random.default_rng(seed)
    shape = (32, 32)
    truths = [np.zeros(shape, bool) for _ in range(3)]
    for index, truth in enumerate(truths):
        truth[4 + index:14 + index, 6:18] = True
    sizes = object_size_settings(shape, preset)
    results = {}
    for name in models:
        masks = [np.roll(truth, int(rng.integers(0, 4)), axis=1) for truth in truths]
        cutoffs = np.linspace(0.05, 0.95, 7)
        curve = pd.DataFrame({"cutoff": cutoffs, "precision": np.linspace(0.3, 0.9, 7),
                              "recall": np.linspace(0.9, 0.2, 7), "tp": 10, "fp": 5})
        size_table = pd.DataFrame({"min_size": sizes["sizes"], "iou": rng.uniform(0.1, 0.7, len(sizes["sizes"]))})
        scores = {key: float(rng.uniform(0.2, 0.9)) for key in
                  ("image_f1", "image_precision", "image_recall", "precision", "recall", "f1", "iou",
                   "mean_image_iou", "pr_auc")}
        results[name] = ModelResult(name, 0.35, 0.4, sizes["min_object_size"], scores,
                                    pd.DataFrame({"image": ["a", "b", "c"], "iou": [0.1, 0.2, 0.3]}), curve,
                                    size_table, masks, {"fit_seconds": 1.0, "predict_seconds_per_image": 0.01,
                                                        "from_cache": False})
    test = SplitData([f"{preset}_{i}.tif" for i in range(3)], [rng.random(shape, np.float32) for _ in range(3)],
                     truths, np.ones(3, int))
    summary = {"preset": preset, "seed": 0, "config": "fast", "baseline_preset": "fast", "models": list(models),
               "n_images": {"train": 6, "val": 3, "test": 3}, "n_artifact_images": {"train": 3, "val": 2, "test": 3},
               "object_sizes": sizes, "seconds": 1.0}
    write_outputs(BenchmarkResult(results, sizes, test, [0, 1, 2], summary), folder)


def _benchmark_tables(out: Path) -> None:
    _benchmark_run(out / "benchmark_cho_m4r", "cho_m4r", 0)


def _benchmark_two_presets(out: Path) -> None:
    _benchmark_run(out / "benchmark_cho_m4r", "cho_m4r", 0)
    _benchmark_run(out / "benchmark_lncap", "lncap", 1)


def _synth_datasets(out: Path) -> None:
    for preset in ("seven_cell_lines", "lncap"):
        generate_dataset(preset, out / f"synth_{preset}", n_images=6, size=96, plate=None, progress=False)


FIGURES = {  # what each notebook saves, relative to ARTSEG_OUT (each as .png and .svg)
    "fig6_ligand_affinity.ipynb": ["figures/fig6_displacement_curves", "figures/suppfig5_displacement_curves_1"],
    "fig5_nuclei_impact.ipynb": ["figures/fig5_nuclei_f1_density", "figures/suppfig4_nuclei_morphometry"],
    "fig3_model_comparison.ipynb": ["benchmark_cho_m4r/figures/fig3b_pr_curves",
                                    "benchmark_cho_m4r/figures/fig3b_iou_image_f1",
                                    "benchmark_cho_m4r/figures/fig3a_overlays"],
    "supp_model_comparison.ipynb": ["figures/suppfig3_segmentation_examples"],
    "suppfig2_object_sizes.ipynb": ["figures/suppfig2_object_sizes"],
}


def _run_notebooks(out: Path) -> dict:
    """Run every notebook on ``ARTSEG_OUT=out`` in one kernel (its namespace reset before each).

    Returns each notebook executed, or the ``CellExecutionError`` that stopped it.
    """
    env = {key: value for key, value in os.environ.items()
           if key not in ("ARTSEG_BENCHMARK_OUT", "ARTSEG_FIGURES", "MPLBACKEND")}
    env.update(ARTSEG_OUT=str(out), JUPYTER_PLATFORM_DIRS="1")
    kernel = KernelManager(kernel_name="python3")
    kernel.start_kernel(cwd=str(NOTEBOOKS), env=env)
    results = {}
    try:
        for name in FIGURES:
            notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
            notebook.cells.insert(0, nbformat.v4.new_code_cell("%reset -f"))
            client = NotebookClient(notebook, km=kernel, timeout=180)
            try:
                client.execute()
                results[name] = notebook
            except CellExecutionError as error:
                results[name] = error
            finally:
                client.kc.stop_channels()
            notebook.cells.pop(0)
    finally:
        kernel.shutdown_kernel(now=True)
    return results


@pytest.fixture(scope="module")
def complete_run(tmp_path_factory):
    """Every notebook run on the outputs of every command (small synthetic ones)."""
    out = tmp_path_factory.mktemp("artseg-out")
    _ligand_tables(out)
    _nuclei_tables(out)
    _benchmark_two_presets(out)
    _synth_datasets(out)
    return out, _run_notebooks(out)


@pytest.fixture(scope="module")
def empty_run(tmp_path_factory):
    """Every notebook run on a folder without outputs."""
    out = tmp_path_factory.mktemp("empty-out")
    return out, _run_notebooks(out)


def _inline_images(notebook) -> int:
    return sum("image/png" in output.get("data", {})
               for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs)


# --------------------------------------------------------------------------- the notebooks


def test_every_notebook_is_the_builders_output():
    builder = _builder()
    assert sorted(path.name for path in NOTEBOOKS.glob("*.ipynb")) == sorted(builder.NOTEBOOKS) == sorted(FIGURES)
    for name, cells in builder.NOTEBOOKS.items():
        committed = nbformat.read(NOTEBOOKS / name, as_version=4)
        assert [cell.source for cell in committed.cells] == [cell.source for cell in cells], name
        code = [cell.source for cell in committed.cells if cell.cell_type == "code"]
        assert code[0].startswith("%matplotlib inline"), name
        assert not any("matplotlib.use(" in source for source in code), name


def test_readme_lists_every_notebook():
    readme = (NOTEBOOKS / "README.md").read_text()
    for name in FIGURES:
        assert f"`{name}`" in readme, name


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebook_shows_and_saves_its_figures(complete_run, name):
    out, results = complete_run
    notebook = results[name]
    assert not isinstance(notebook, CellExecutionError), notebook
    for figure in FIGURES[name]:
        assert (out / f"{figure}.png").stat().st_size > 10_000, figure
        assert "<svg" in (out / f"{figure}.svg").read_text()[:1000], figure
    assert _inline_images(notebook) == len(FIGURES[name])


def test_supp_tables_stack_the_runs_it_finds(complete_run):
    out, results = complete_run
    first = "".join(output.get("text", "") for output in results["supp_model_comparison.ipynb"].cells[1].outputs)
    assert f"artseg benchmark --preset seven_cell_lines --out {out.resolve()}/benchmark_seven_cell_lines" in first
    table1 = pd.read_csv(out / "figures" / "supp_table1_model_comparison.csv")
    assert table1["dataset"].unique().tolist() == ["cho_m4r", "lncap"]
    lncap = pd.read_csv(out / "benchmark_lncap" / "table.csv")
    pd.testing.assert_frame_equal(table1[table1["dataset"] == "lncap"].drop(columns="dataset").reset_index(drop=True),
                                  lncap)


def test_supp_fig2_sizes_come_from_the_synthetic_masks(complete_run):
    out, _ = complete_run
    sizes = pd.read_csv(out / "figures" / "suppfig2_object_sizes.csv")
    expected = pd.concat([dataset_object_sizes(out / f"synth_{p}") for p in ("seven_cell_lines", "lncap")],
                         ignore_index=True)
    pd.testing.assert_frame_equal(sizes, expected)
    assert set(sizes["kind"]) == {"artifact", "nucleus"}


@pytest.mark.parametrize("name, command", [
    ("fig6_ligand_affinity.ipynb", "python -m analysis.ligand_affinity --out {out}/ligand_affinity"),
    ("fig5_nuclei_impact.ipynb", "python -m analysis.nuclei_impact --out {out}/nuclei_impact"),
    ("fig3_model_comparison.ipynb", "artseg benchmark --preset cho_m4r --out {out}/benchmark_cho_m4r"),
    ("supp_model_comparison.ipynb", "artseg benchmark --preset lncap --out {out}/benchmark_lncap"),
    ("suppfig2_object_sizes.ipynb", "artseg synth --preset seven_cell_lines --n-images 240 "
                                    "--out {out}/synth_seven_cell_lines"),
])
def test_first_cell_names_the_command_when_outputs_are_missing(empty_run, name, command):
    out, results = empty_run
    stopped = results[name]
    assert isinstance(stopped, CellExecutionError)
    assert stopped.ename == "SystemExit"
    assert f"`{command.format(out=out.resolve())}`" in stopped.evalue
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    first_code = next(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "raise SystemExit" in first_code and command.split(" --")[0] in first_code


# --------------------------------------------------------------------------- their helpers


def test_missing_outputs_message_names_only_the_missing_files(tmp_path):
    (tmp_path / "wells.csv").write_text("x\n")
    assert missing_outputs_message(tmp_path, ["wells.csv"], "cmd") is None
    message = missing_outputs_message(tmp_path, ["wells.csv", "fits.csv", "summary.csv"], "cmd --out X")
    assert message.startswith(f"{tmp_path} has no fits.csv, summary.csv: make them with `cmd --out X`")
    present, messages = find_runs({"a": tmp_path, "b": tmp_path / "b"}, ["wells.csv"], {"a": "A", "b": "B"})
    assert present == {"a": tmp_path} and len(messages) == 1 and "`B`" in messages[0]


def test_dataset_object_sizes_counts_each_object_and_each_nucleus_once(tmp_path):
    mask = np.zeros((10, 20), bool)
    mask[0:2, 0:2] = True  # 4 px
    mask[5:7, 5:8] = True  # 6 px
    mask[9, 19] = True     # 1 px
    nuclei = np.zeros((10, 20), np.int32)
    nuclei[0:3, 10:13] = 5  # 9 px
    nuclei[8:10, 0:5] = 2   # 10 px
    for folder in ("masks", "nuclei"):
        (tmp_path / folder).mkdir()
    write_mask(tmp_path / "masks/a.png", mask)
    write_mask(tmp_path / "masks/b.png", np.zeros_like(mask))
    write_labels(tmp_path / "nuclei/a.tif", nuclei)
    write_labels(tmp_path / "nuclei/b.tif", nuclei)  # a cleaned twin: the same nuclei
    pd.DataFrame({"image": ["a.tif", "b.tif"], "mask": ["masks/a.png", "masks/b.png"],
                  "nuclei": ["nuclei/a.tif", "nuclei/b.tif"]}).to_csv(tmp_path / "manifest.csv", index=False)
    (tmp_path / "synth.json").write_text(json.dumps({"preset": "lncap", "um_per_px": 0.5}))
    sizes = dataset_object_sizes(tmp_path)
    assert sorted(sizes.loc[sizes["kind"] == "artifact", "area_px"]) == [1, 4, 6]
    assert sorted(sizes.loc[sizes["kind"] == "nucleus", "area_px"]) == [9, 10]
    assert set(sizes["dataset"]) == {"lncap"}
    np.testing.assert_allclose(sizes["area_mm2"], sizes["area_px"] * 0.25e-6)
    np.testing.assert_allclose(sizes["field_area_mm2"], 200 * 0.25e-6)
    assert sorted(dataset_object_sizes(tmp_path, connectivity=2).query("kind == 'artifact'")["area_px"]) == [1, 4, 6]
    figure = object_size_boxes(sizes)
    assert [ax.get_title() for ax in figure.axes] == ["lncap"]
    (tmp_path / "synth.json").unlink()
    with pytest.raises(ArtsegInputError, match="um_per_px"):
        dataset_object_sizes(tmp_path)
    assert dataset_object_sizes(tmp_path, um_per_px=1.0)["dataset"].iloc[0] == tmp_path.name


def test_displacement_pages_and_representative_experiments():
    wells = pd.DataFrame({"experiment": ["b_2", "a_1", "b_1", "c_1", "b_2"], "ligand": ["b", "a", "b", "c", "b"],
                          "concentration": [1e-9, 1e-9, 1e-9, 1e-9, 0.0], "mode": "none",
                          "specific": [1.0, 2.0, 3.0, 4.0, 5.0]})
    fits = pd.DataFrame({"experiment": ["a_1"], "mode": ["none"], "success": [False]})
    assert representative_experiments(wells) == ["a_1", "b_1", "c_1"]
    assert representative_experiments(wells, per_ligand=2) == ["a_1", "b_1", "b_2", "c_1"]
    pages = displacement_curve_pages(wells, fits, per_page=3)
    titles = [[ax.get_title() for ax in page.axes if ax.get_visible()] for page in pages]
    assert titles == [["a_1 (a)", "b_1 (b)", "b_2 (b)"], ["c_1 (c)"]]
    with pytest.raises(ArtsegInputError, match="per_page"):
        displacement_curve_pages(wells, fits, per_page=0)


def test_combined_overlays_take_the_first_fields_of_each_run_and_the_shared_models(tmp_path):
    _benchmark_run(tmp_path / "a", "cho_m4r", 0, models=("U-Net", "ScoreCAM"))
    _benchmark_run(tmp_path / "b", "lncap", 1, models=("ScoreCAM", "AE"))
    runs = {"cho_m4r": read_overlays(tmp_path / "a"), "lncap": read_overlays(tmp_path / "b")}
    assert runs["lncap"]["models"] == ["ScoreCAM", "AE"] and len(runs["lncap"]["images"]) == 3
    figure = combined_overlays(runs, per_dataset=2)
    rows = [ax.get_ylabel() for ax in figure.axes if ax.get_ylabel()]
    assert rows == ["cho_m4r: cho_m4r_0.tif", "cho_m4r: cho_m4r_1.tif", "lncap: lncap_0.tif", "lncap: lncap_1.tif"]
    assert [ax.get_title() for ax in figure.axes if ax.get_title()] == ["ScoreCAM"]
    with pytest.raises(ArtsegInputError, match="no such file"):
        read_overlays(tmp_path / "missing")
