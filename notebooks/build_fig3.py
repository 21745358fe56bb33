"""Write ``fig3_model_comparison.ipynb`` from the cell sources below (keeps it thin and reviewable).

Run ``python notebooks/build_fig3.py`` after editing. The notebook reads the folder written by
``artseg benchmark`` (``$ARTSEG_BENCHMARK_OUT``, default ``../artseg-out/benchmark_cho_m4r``)
and redraws Fig. 3 and Supplementary Tables 1-3 with :mod:`artseg.plots`; it computes nothing.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent
NOTEBOOK = "fig3_model_comparison.ipynb"

CELLS = [
    new_markdown_cell(
        "# Fig. 3 / Supp. Tables 1-4 — artifact segmentation by six models\n\n"
        "Reads the output folder of `artseg benchmark --preset P --out DIR` (set `ARTSEG_BENCHMARK_OUT`; "
        "default `../artseg-out/benchmark_cho_m4r`, made by "
        "`artseg benchmark --preset cho_m4r --out artseg-out/benchmark_cho_m4r`) and redraws the figures "
        "with `artseg.plots`. Figures are saved to `$ARTSEG_FIGURES` (default `<run>/figures`)."),
    new_code_cell(
        "import json\n"
        "import os\n"
        "from pathlib import Path\n\n"
        "import matplotlib\n"
        "import numpy as np\n"
        "import pandas as pd\n"
        "from IPython.display import Markdown, display\n\n"
        "from artseg.detectors import detector_slug\n"
        "from artseg.plots import outline_overlays, pr_curves_figure, score_bars\n\n"
        "matplotlib.use('Agg')\n"
        "RUN = Path(os.environ.get('ARTSEG_BENCHMARK_OUT', '../artseg-out/benchmark_cho_m4r'))\n"
        "FIGURES = Path(os.environ.get('ARTSEG_FIGURES', RUN / 'figures'))\n"
        "FIGURES.mkdir(parents=True, exist_ok=True)\n"
        "summary = json.loads((RUN / 'summary.json').read_text())\n"
        "cutoffs = json.loads((RUN / 'cutoffs.json').read_text())\n"
        "title = f\"{summary['preset'] or 'manifest'} (test split)\""),
    new_markdown_cell("## Supplementary Table 1 (percentages; pixel scores pooled over the test split)"),
    new_code_cell(
        "display(Markdown((RUN / 'table.md').read_text()))"),
    new_markdown_cell("## Supplementary Tables 2-4: IoU after removing small predicted objects"),
    new_code_cell(
        "display(pd.read_csv(RUN / 'size_cutoffs.csv'))"),
    new_markdown_cell("## Fig. 3B: precision-recall curves (dots: the cut-off chosen on validation data)"),
    new_code_cell(
        "curves = pd.read_csv(RUN / 'pr_curves.csv')\n"
        "chosen = {name: entry['cutoff'] for name, entry in cutoffs['models'].items()}\n"
        "figure = pr_curves_figure(curves, chosen, title=title)\n"
        "figure.savefig(FIGURES / 'fig3b_pr_curves.png', dpi=110)\n"
        "figure"),
    new_markdown_cell("## Fig. 3B: pixel-wise IoU and image-level F1"),
    new_code_cell(
        "scores = pd.read_csv(RUN / 'scores.csv')\n"
        "figure = score_bars(scores, ('iou', 'image_f1'), title=title)\n"
        "figure.savefig(FIGURES / 'fig3b_iou_image_f1.png', dpi=110)\n"
        "figure"),
    new_markdown_cell("## Fig. 3A: example test fields (white: annotated artifact; colours: models)"),
    new_code_cell(
        "with np.load(RUN / 'overlays.npz') as examples:\n"
        "    models = [str(name) for name in examples['models']]\n"
        "    masks = {name: list(examples[f'mask_{detector_slug(name)}']) for name in models}\n"
        "    figure = outline_overlays(list(examples['images']), list(examples['true_masks']), masks,\n"
        "                              row_titles=[str(name) for name in examples['names']])\n"
        "figure.savefig(FIGURES / 'fig3a_overlays.png', dpi=110)\n"
        "figure"),
    new_markdown_cell(
        "Paper (Supp. Table 1, ArtSeg-CHO-M4R): IoU U-Net 45.0, ScoreCAM-U-Net 21.3, ScoreCAM 25.1, AE 26.9, "
        "PaDiM 12.8, PatchSVDD 1.6; image F1 80.8 / 90.0 / 90.0 / 66.7 / 72.7 / 23.6. Seven cell lines: IoU "
        "72.9 / 49.5 / 31.1 / 24.8 / 33.4 / 17.1; image F1 89.7 / 93.2 / 93.2 / 66.7 / 90.1 / 63.9."),
]


def build() -> Path:
    """Write the notebook next to this script and return its path."""
    notebook = new_notebook(cells=CELLS, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = HERE / NOTEBOOK
    nbformat.write(notebook, path)
    return path


if __name__ == "__main__":
    print(build())
