"""report.html in a real browser: headless Debian chromium driven by Selenium through chromedriver.

The page is written by :func:`analysis.report.write_report` from CSVs that the analysis functions
make from simulated wells (two ligands, three removal modes, ROUT on), plus one gallery field.
The browser must render it offline with no console error, every inlined figure decoded, and a
screenshot that is not blank. Needs ``chromium`` and ``chromium-driver`` (Debian) and
``selenium`` (the ``test`` extra); .ci/run installs them. The test fails, never skips, when they
are missing.
"""

import io

import imageio.v3 as iio
import numpy as np
import pandas as pd
from selenium.webdriver.common.by import By

from analysis.affinity import fit_experiments, summarize
from analysis.hill import hill
from analysis.outliers import rout_wells
from analysis.replicates import summarize_by_ligand
from analysis.report import GalleryField, write_report
from analysis.tables import field_table
from artseg.io import atomic_write_csv

from .test_label_browser import browser  # noqa: F401  (the headless chromium fixture)

CONCENTRATIONS = np.repeat(np.r_[0.0, 10.0 ** np.arange(-10.0, -5.9, 1.0)], 2)


def _output_folder(folder):
    """CSVs of a small run, as ligand_affinity writes them, from simulated field values."""
    rng = np.random.default_rng(0)
    rows = []
    for experiment, ligand, log_ic50 in (("atropine_1", "atropine", -8.5), ("pirenzepine_1", "pirenzepine", -7.0)):
        log_x = np.where(CONCENTRATIONS > 0, np.log10(np.where(CONCENTRATIONS > 0, CONCENTRATIONS, 1.0)), -np.inf)
        signal = hill(log_x, 100.0, 900.0, log_ic50, -1.0)
        for index, (c, value) in enumerate(zip(CONCENTRATIONS, signal)):
            well = f"{'AB'[index % 2]}{index // 2 + 1:02d}"
            for mode, offset, coverage in (("manual", 0.0, 0.02), ("model", 30.0, 0.04), ("none", 250.0, 0.0)):
                noise = rng.normal(0.0, 25.0)
                rows.append({"experiment": experiment, "ligand": ligand, "concentration": c, "well": well,
                             "field": 0, "mode": mode, "cell_mean": value + 500.0 + offset + noise,
                             "background_mean": 500.0, "n_pixels": 10_000,
                             "n_artifact_px": int(10_000 * coverage * (1 + index % 3))})
    field_rows = pd.DataFrame(rows)
    wells = field_rows.assign(specific=field_rows["cell_mean"] - field_rows["background_mean"],
                              n_fields=1, n_fields_total=1)
    wells.loc[3, "specific"] += 700.0  # a wild well for ROUT
    without, outliers = rout_wells(wells)
    fits = fit_experiments(pd.concat([wells, without], ignore_index=True))
    tables = {"wells.csv": wells, "fits.csv": fits, "summary.csv": summarize(wells, fits),
              "summary_by_ligand.csv": summarize_by_ligand(fits), "outliers.csv": outliers,
              "fields.csv": field_table(field_rows)}
    for name, table in tables.items():
        atomic_write_csv(table, folder / name)
    shape = (64, 80)
    brightfield = np.linspace(0.2, 0.8, shape[0] * shape[1]).reshape(shape)
    manual, model = np.zeros(shape), np.zeros(shape)
    manual[10:30, 10:40], model[20:40, 30:60] = 1.0, 1.0
    return write_report(folder, settings={"manifest": "plate.csv", "outliers": "rout"},
                        gallery=[GalleryField(1, brightfield, manual, model)])


def test_report_renders_offline_without_console_errors(tmp_path, browser):  # noqa: F811
    page = _output_folder(tmp_path)
    browser.get(page.resolve().as_uri())
    assert "ArtSeg report" in browser.title
    headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h2")]
    assert "Artifact coverage by well" in headings and "Displacement curves" in headings
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]);")
    assert len(images) == 3  # the curves, the coverage heatmap and the one gallery field
    assert all(complete and width > 100 and height > 50 for complete, width, height in images), images
    rows = browser.execute_script("return document.querySelectorAll('table[data-source=\"fits.csv\"] tbody tr').length;")
    assert rows >= len(pd.read_csv(tmp_path / "fits.csv"))
    severe = [entry for entry in browser.get_log("browser") if entry.get("level") == "SEVERE"]
    assert severe == []
    screenshot = iio.imread(io.BytesIO(browser.get_screenshot_as_png()))
    assert screenshot.shape[0] > 100 and screenshot.shape[1] > 100
    gray = screenshot[..., :3].mean(axis=2)
    assert gray.std() > 10 and (gray < 128).mean() > 0.005  # text and figures, not a blank page
