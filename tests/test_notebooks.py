"""The figure notebooks run end to end on small output tables and write their figures."""

import os
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbclient import NotebookClient

from analysis.affinity import fit_experiments
from analysis.hill import hill

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _ligand_tables(out: Path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for c in np.repeat(np.r_[0.0, 10.0 ** np.arange(-10, -6, 0.5)], 2):
        x = np.log10(c) if c > 0 else -np.inf
        for mode in ("manual", "model", "none"):
            rows.append({"experiment": "e1", "ligand": "atropine", "concentration": c, "well": "A01",
                         "mode": mode, "specific": hill(x, 100, 1000, -8.5, -1) + rng.normal(0, 20)})
    wells = pd.DataFrame(rows)
    run = out / "ligand_affinity"
    run.mkdir(parents=True)
    wells.to_csv(run / "wells.csv", index=False)
    fit_experiments(wells).to_csv(run / "fits.csv", index=False)
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


@pytest.mark.parametrize("name, make_tables, figures", [
    ("fig6_ligand_affinity.ipynb", _ligand_tables, ["fig6_displacement_curves.png"]),
    ("fig5_nuclei_impact.ipynb", _nuclei_tables,
     ["fig5_nuclei_f1_density.png", "suppfig4_nuclei_morphometry.png"]),
])
def test_notebook_regenerates_figures(tmp_path, monkeypatch, name, make_tables, figures):
    make_tables(tmp_path)
    monkeypatch.setenv("ARTSEG_OUT", str(tmp_path))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(notebook, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    for figure in figures:
        assert (tmp_path / "figures" / figure).stat().st_size > 10_000
