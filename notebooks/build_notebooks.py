"""Write every figure notebook from the cell sources below (keeps them thin and reviewable).

Run ``python notebooks/build_notebooks.py`` after editing; it is the one way the notebooks are
made. The notebooks call library functions on
the output folders of the commands, so they redraw the paper's figures and tables from whatever
run made those folders. Every notebook:

- stops in its first code cell, naming the command to run, when the outputs are missing;
- shows its figures inline (``%matplotlib inline``) and saves each as PNG and SVG;
- takes its folders from ``ARTSEG_OUT`` (default ``../artseg-out``, the parent of the commands'
  default output folders) and writes figures to ``ARTSEG_FIGURES`` (default ``$ARTSEG_OUT/figures``).

``notebooks/README.md`` lists which notebook redraws which figure or table from which command.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent
PRESETS = ("seven_cell_lines", "cho_m4r", "lncap")

def _setup(check: str, *, stdlib: str = "", imports: str = "", run: str = "",
           figures: str = 'OUT / "figures"') -> str:
    """The first code cell: imports, the folders, then the notebook's check for its inputs."""
    return f"""%matplotlib inline
{stdlib}import os
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from analysis.paper_figures import find_runs, missing_outputs_message, save_figure_formats
{imports}
OUT = Path(os.environ.get("ARTSEG_OUT", "../artseg-out")).resolve()
{run}FIGURES = Path(os.environ.get("ARTSEG_FIGURES", {figures}))
{check.strip()}"""


def _single_run_check(folder: str, files: list[str], command: str) -> str:
    return f"""
RUN = {folder}
message = missing_outputs_message(RUN, {files!r}, f"{command}")
if message:
    raise SystemExit(message)"""


def _per_dataset_check(folder: str, files: list[str], command: str) -> str:
    return f"""
PRESETS = {PRESETS!r}
FOLDERS = {{preset: OUT / f"{folder}" for preset in PRESETS}}
COMMANDS = {{preset: f"{command}" for preset, folder in FOLDERS.items()}}
RUNS, missing = find_runs(FOLDERS, {files!r}, COMMANDS)
print(*missing, sep="\\n")
if not RUNS:
    raise SystemExit("no outputs under " + str(OUT) + ":\\n" + "\\n".join(missing))"""


FIG3 = [
    new_markdown_cell(
        "# Fig. 3 — artifact segmentation by six models (one dataset)\n\n"
        "Reads the output folder of `artseg benchmark --preset P --out DIR` (set `ARTSEG_BENCHMARK_OUT`; "
        "default `$ARTSEG_OUT/benchmark_cho_m4r`, made by "
        "`artseg benchmark --preset cho_m4r --out artseg-out/benchmark_cho_m4r`) and redraws the figures "
        "with `artseg.plots`; it computes nothing. Figures are saved as PNG and SVG to `$ARTSEG_FIGURES` "
        "(default `<run>/figures`, so runs of different presets keep theirs apart). "
        "`supp_model_comparison.ipynb` puts the three presets' runs side by side (Supp. Tables 1-4, "
        "Supp. Fig. 3)."),
    new_code_cell(_setup(
        "PRESET = RUN.name.removeprefix('benchmark_')\n"
        f"PRESET = PRESET if PRESET in {PRESETS!r} else 'cho_m4r'\n"
        "message = missing_outputs_message(\n"
        "    RUN, ['summary.json', 'cutoffs.json', 'table.md', 'size_cutoffs.csv', 'pr_curves.csv', 'scores.csv',\n"
        "          'overlays.npz'], f'artseg benchmark --preset {PRESET} --out {RUN}')\n"
        "if message:\n"
        "    raise SystemExit(message)\n"
        "summary = json.loads((RUN / 'summary.json').read_text())\n"
        "cutoffs = json.loads((RUN / 'cutoffs.json').read_text())\n"
        "title = f\"{summary['preset'] or 'manifest'} (test split)\"",
        stdlib="import json\n",
        imports="from analysis.paper_figures import read_overlays\n"
                "from artseg.plots import outline_overlays, pr_curves_figure, score_bars\n",
        run="RUN = Path(os.environ.get('ARTSEG_BENCHMARK_OUT', OUT / 'benchmark_cho_m4r')).resolve()\n",
        figures="RUN / 'figures'")),
    new_markdown_cell(
        "## Supplementary Table 1 for this dataset (percentages; pixel scores pooled over the test split)"),
    new_code_cell("display(Markdown((RUN / 'table.md').read_text()))"),
    new_markdown_cell("## Supplementary Table 2, 3 or 4: IoU after removing small predicted objects"),
    new_code_cell("display(pd.read_csv(RUN / 'size_cutoffs.csv'))"),
    new_markdown_cell("## Fig. 3B: precision-recall curves (dots: the cut-off chosen on validation data)"),
    new_code_cell(
        "curves = pd.read_csv(RUN / 'pr_curves.csv')\n"
        "chosen = {name: entry['cutoff'] for name, entry in cutoffs['models'].items()}\n"
        "figure = pr_curves_figure(curves, chosen, title=title)\n"
        "save_figure_formats(figure, FIGURES, 'fig3b_pr_curves')\n"
        "figure"),
    new_markdown_cell("## Fig. 3B: pixel-wise IoU and image-level F1"),
    new_code_cell(
        "scores = pd.read_csv(RUN / 'scores.csv')\n"
        "figure = score_bars(scores, ('iou', 'image_f1'), title=title)\n"
        "save_figure_formats(figure, FIGURES, 'fig3b_iou_image_f1')\n"
        "figure"),
    new_markdown_cell("## Fig. 3A: example test fields (white: annotated artifact; colours: models)"),
    new_code_cell(
        "examples = read_overlays(RUN)\n"
        "if examples['images']:\n"
        "    figure = outline_overlays(examples['images'], examples['true_masks'], examples['masks'],\n"
        "                              row_titles=examples['names'])\n"
        "    save_figure_formats(figure, FIGURES, 'fig3a_overlays')\n"
        "    display(figure)\n"
        "else:\n"
        "    print('the run kept no example fields (artseg benchmark --examples 0)')"),
    new_markdown_cell(
        "Paper (Supp. Table 1, ArtSeg-CHO-M4R): IoU U-Net 45.0, ScoreCAM-U-Net 21.3, ScoreCAM 25.1, AE 26.9, "
        "PaDiM 12.8, PatchSVDD 1.6; image F1 80.8 / 90.0 / 90.0 / 66.7 / 72.7 / 23.6. Seven cell lines: IoU "
        "72.9 / 49.5 / 31.1 / 24.8 / 33.4 / 17.1; image F1 89.7 / 93.2 / 93.2 / 66.7 / 90.1 / 63.9."),
]

SUPP_MODEL_COMPARISON = [
    new_markdown_cell(
        "# Supp. Tables 1-4 and Supp. Fig. 3 — the model comparison on all three datasets\n\n"
        "Reads the folders of `artseg benchmark --preset P --out $ARTSEG_OUT/benchmark_P` for P = "
        "`seven_cell_lines`, `cho_m4r` and `lncap` (the synthetic stand-ins of the paper's seven cell lines, "
        "ArtSeg-CHO-M4R and LNCaP datasets) and uses the runs it finds: Supp. Table 1 stacks their "
        "`table.csv`, Supp. Tables 2-4 are their `size_cutoffs.csv`, Supp. Fig. 3 their example fields "
        "(`overlays.npz`). The numbers are the runs'; nothing is recomputed."),
    new_code_cell(_setup(_per_dataset_check(
        "benchmark_{preset}", ["table.csv", "size_cutoffs.csv", "overlays.npz"],
        "artseg benchmark --preset {preset} --out {folder}"))),
    new_markdown_cell(
        "## Supplementary Table 1: segmentation and image-level detection (%), one block per dataset\n\n"
        "Saved as `$ARTSEG_FIGURES/supp_table1_model_comparison.csv`."),
    new_code_cell(
        "from artseg.io import atomic_write_csv\n\n"
        "table1 = pd.concat({preset: pd.read_csv(run / 'table.csv', index_col='metric')\n"
        "                    for preset, run in RUNS.items()}, names=['dataset'])\n"
        "FIGURES.mkdir(parents=True, exist_ok=True)\n"
        "atomic_write_csv(table1.reset_index(), FIGURES / 'supp_table1_model_comparison.csv')\n"
        "display(table1)"),
    new_markdown_cell(
        "## Supplementary Tables 2-4: IoU (%) after removing predicted objects smaller than each size\n\n"
        "Table 2 is the seven cell lines, 3 ArtSeg-CHO-M4R, 4 LNCaP. `paper_size_px` is the paper's size at its "
        "field size, `min_size_px` the same share of these fields."),
    new_code_cell(
        "for number, preset in zip((2, 3, 4), PRESETS):\n"
        "    if preset in RUNS:\n"
        "        display(Markdown(f'### Supplementary Table {number}: {preset}'))\n"
        "        display(pd.read_csv(RUNS[preset] / 'size_cutoffs.csv'))\n"
        "    else:\n"
        "        display(Markdown(f'### Supplementary Table {number}: {preset} — no run; '\n"
        "                         f'`{COMMANDS[preset]}` makes it'))"),
    new_markdown_cell(
        "## Supplementary Fig. 3: example fields of every dataset (white: annotated artifact; colours: models)\n\n"
        "The first `PER_DATASET` example fields of each run, for the models every run has."),
    new_code_cell(
        "from analysis.paper_figures import combined_overlays, read_overlays\n\n"
        "PER_DATASET = 2\n"
        "examples = {preset: read_overlays(run) for preset, run in RUNS.items()}\n"
        "if any(run['images'] for run in examples.values()):\n"
        "    supp3 = combined_overlays(examples, per_dataset=PER_DATASET)\n"
        "    save_figure_formats(supp3, FIGURES, 'suppfig3_segmentation_examples')\n"
        "    display(supp3)\n"
        "else:\n"
        "    print('the runs kept no example fields (artseg benchmark --examples 0)')"),
]

FIG5 = [
    new_markdown_cell(
        "# Fig. 5 / Supp. Fig. 4 — nuclei segmentation inside vs outside artifacts\n\n"
        "Reads the tables written by `python -m analysis.nuclei_impact` (default folder "
        "`artseg-out/nuclei_impact`; set `ARTSEG_OUT` to the parent of another run) and redraws the "
        "density plots with `analysis.figures.region_densities`."),
    new_code_cell(_setup(_single_run_check(
        "OUT / 'nuclei_impact'", ["per_image.csv", "nuclei.csv", "summary.csv"],
        "python -m analysis.nuclei_impact --out {RUN}"))),
    new_code_cell(
        "from analysis.figures import region_densities\n\n"
        "per_image = pd.read_csv(RUN / 'per_image.csv')\n"
        "nuclei = pd.read_csv(RUN / 'nuclei.csv')\n"
        "display(pd.read_csv(RUN / 'summary.csv'))"),
    new_markdown_cell("## Fig. 5: nuclei segmentation F1 per image, by region"),
    new_code_cell(
        "fig5 = region_densities(per_image, ('pixel_f1', 'object_f1'),\n"
        "                        ('nuclei pixel-wise F1 per image', 'nuclei object-wise F1 per image'))\n"
        "save_figure_formats(fig5, FIGURES, 'fig5_nuclei_f1_density')\n"
        "fig5"),
    new_markdown_cell("## Supp. Fig. 4: size and solidity of the segmented nuclei, by region"),
    new_code_cell(
        "supp4 = region_densities(nuclei, ('area', 'solidity'), ('nucleus area (px)', 'nucleus solidity'))\n"
        "save_figure_formats(supp4, FIGURES, 'suppfig4_nuclei_morphometry')\n"
        "supp4"),
    new_markdown_cell(
        "Paper (§3.3.1): pixel F1 0.60 inside vs 0.89 outside artifacts, object F1 0.28 vs 0.65; "
        "model-based removal 0.89 / 0.64; whole image 0.87 / 0.61; nuclei inside artifacts 213 px, "
        "solidity 0.92 vs 400 px, 0.95 outside."),
]

FIG6 = [
    new_markdown_cell(
        "# Fig. 6 / Supp. Fig. 5 — ligand displacement curves by artifact removal mode\n\n"
        "Reads the tables written by `python -m analysis.ligand_affinity` (default folder "
        "`artseg-out/ligand_affinity`; set `ARTSEG_OUT` to the parent of another run) and redraws the "
        "curves with `analysis.figures.displacement_curves`: Fig. 6 one experiment per ligand, "
        "Supp. Fig. 5 every experiment. Lines are the fits of `fits.csv` (none where the fit failed or "
        "the compound did not displace)."),
    new_code_cell(_setup(_single_run_check(
        "OUT / 'ligand_affinity'", ["wells.csv", "fits.csv", "summary.csv"],
        "python -m analysis.ligand_affinity --out {RUN}"))),
    new_code_cell(
        "wells = pd.read_csv(RUN / 'wells.csv')\n"
        "fits = pd.read_csv(RUN / 'fits.csv')\n"
        "display(pd.read_csv(RUN / 'summary.csv'))\n"
        "if (RUN / 'summary_by_ligand.csv').exists():\n"
        "    display(pd.read_csv(RUN / 'summary_by_ligand.csv'))"),
    new_markdown_cell(
        "## Fig. 6: one experiment per ligand\n\n"
        "Set `FIG6_EXPERIMENTS` to a list of experiment names to draw others."),
    new_code_cell(
        "from analysis.figures import displacement_curves\n"
        "from analysis.paper_figures import representative_experiments\n\n"
        "FIG6_EXPERIMENTS = representative_experiments(wells)\n"
        "fig6 = displacement_curves(wells[wells['experiment'].isin(FIG6_EXPERIMENTS)], fits)\n"
        "save_figure_formats(fig6, FIGURES, 'fig6_displacement_curves')\n"
        "fig6"),
    new_markdown_cell("## Supp. Fig. 5: every experiment (12 a page)"),
    new_code_cell(
        "from analysis.paper_figures import displacement_curve_pages\n\n"
        "for number, page in enumerate(displacement_curve_pages(wells, fits, per_page=12), start=1):\n"
        "    save_figure_formats(page, FIGURES, f'suppfig5_displacement_curves_{number}')\n"
        "    display(page)"),
    new_markdown_cell(
        "Paper (§3.3.2): mean |ΔLogIC50| vs manual removal 0.16 (ScoreCAM-U-Net) vs 0.29 (none); "
        "R² 0.89 / 0.86 / 0.74 (manual / model / none); Pearson r vs manual 0.98 (model) vs 0.93 (none)."),
]

SUPP_FIG2 = [
    new_markdown_cell(
        "# Supp. Fig. 2 — artifacts come in every size\n\n"
        "Sizes (mm², log10) of the nuclei and artifact objects of the synthetic datasets written by "
        "`artseg synth --preset P --out $ARTSEG_OUT/synth_P` for P = `seven_cell_lines` (A), `cho_m4r` (B) and "
        "`lncap` (C); the dashed red line is the area of a whole field. Artifact objects are the connected "
        "components of each field's mask, nuclei the labels of its nuclei image "
        "(`analysis.paper_figures.dataset_object_sizes`; a CHO-M4R field's cleaned twin shares its nuclei, "
        "which are counted once), and the pixel size is the preset's (`synth.json`). The fields are crops "
        "(`--size`, default 256 px) of the paper's pixel size, so the largest artifacts are cut at the field "
        "edge; `--paper-size` gives the paper's field size."),
    new_code_cell(_setup(_per_dataset_check(
        "synth_{preset}", ["manifest.csv", "synth.json"],
        "artseg synth --preset {preset} --n-images 240 --out {folder}"))),
    new_code_cell(
        "from analysis.paper_figures import dataset_object_sizes\n"
        "from artseg.io import atomic_write_csv\n\n"
        "sizes = pd.concat([dataset_object_sizes(folder) for folder in RUNS.values()], ignore_index=True)\n"
        "FIGURES.mkdir(parents=True, exist_ok=True)\n"
        "atomic_write_csv(sizes, FIGURES / 'suppfig2_object_sizes.csv')\n"
        "display(sizes.groupby(['dataset', 'kind'], sort=False)['area_px'].describe())"),
    new_code_cell(
        "from analysis.paper_figures import object_size_boxes\n\n"
        "supp2 = object_size_boxes(sizes)\n"
        "save_figure_formats(supp2, FIGURES, 'suppfig2_object_sizes')\n"
        "supp2"),
    new_markdown_cell(
        "Paper (§3.1): mean annotated artifact 4,417 px in the seven cell lines (the largest a clump covering 49 % "
        "of a field), 75,933 px in LNCaP (a hair covering 10 %), 3,450 px (0.31 % of a field) in ArtSeg-CHO-M4R "
        "(13,713 objects in 1,171 images; the largest 63 %)."),
]

NOTEBOOKS = {
    "fig3_model_comparison.ipynb": FIG3,
    "supp_model_comparison.ipynb": SUPP_MODEL_COMPARISON,
    "fig5_nuclei_impact.ipynb": FIG5,
    "fig6_ligand_affinity.ipynb": FIG6,
    "suppfig2_object_sizes.ipynb": SUPP_FIG2,
}


def notebook(cells: list) -> nbformat.NotebookNode:
    """A notebook of ``cells`` with the Python 3 kernel; cell ids by position, so a rebuild changes nothing."""
    for index, cell in enumerate(cells):
        cell["id"] = f"cell-{index}"
    return new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def build() -> list[Path]:
    """Write every notebook of ``NOTEBOOKS`` next to this script and return their paths."""
    written = []
    for name, cells in NOTEBOOKS.items():
        path = HERE / name
        nbformat.write(notebook(cells), path)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in build():
        print(path)
