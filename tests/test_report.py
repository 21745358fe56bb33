"""``python -m analysis.ligand_affinity`` writes fields.csv, prism/, outliers.csv and report.html.

One run on a tiny synthetic plate (2 experiments x 5 concentrations x 2 wells, 96² fields, the
ground-truth cell masks, and a stand-in artifact "model" that marks the darkest brightfield
pixels), with ``--outliers rout``. The report's numbers are parsed back from its HTML and compared
with the CSVs, cell by cell.
"""

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from analysis import ligand_affinity
from analysis.affinity import FIT_COLUMNS, fit_experiments, summarize
from analysis.outliers import OUTLIER_COLUMNS
from analysis.report import GalleryField, gallery_figure, most_different_fields, render_report
from analysis.tables import METADATA_COLUMNS
from artseg.io import read_image, read_mask
from artseg.synth import PlateOptions, generate_dataset


class DarkestPixels:
    """Stand-in artifact model: the darkest 4 % of the smoothed brightfield field is 'artifact'."""

    def predict_mask(self, image):
        smooth = ndimage.gaussian_filter(image.astype(np.float64), 4.0)
        return smooth < np.percentile(smooth, 4.0)


def make_run(root: Path, extra=()) -> Path:
    """Generate the tiny plate under `root`, run the analysis on it, return the output folder."""
    generate_dataset("cho_m4r", root / "data", n_images=4, seed=3, size=96, progress=False,
                     plate=PlateOptions(n_experiments=2, n_concentrations=5, wells_per_concentration=2,
                                        fields_per_well=1))
    table = pd.read_csv(root / "data" / "plate.csv")
    for column in ("brightfield", "fluorescence", "artifact_mask", "cell_truth"):
        table[column] = [str(root / "data" / p) for p in table[column]]
    table["cell_mask"] = table["cell_truth"]
    table.to_csv(root / "plate.csv", index=False)
    (root / "model").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ligand_affinity, "load_segmenter", lambda folder: DarkestPixels())
        status = ligand_affinity.main(["--manifest", str(root / "plate.csv"), "--model", str(root / "model"),
                                       "--out", str(root / "out"), "--quiet", *extra])
    assert status == 0
    return root / "out"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    return root, make_run(root, ["--outliers", "rout", "--rout-q", "5"])


class Tables(HTMLParser):
    """Every ``<table data-source=...>`` of a page: source, CSV row, column -> (shown text, exact value)."""

    def __init__(self):
        super().__init__()
        self.cells, self.images, self.tags = [], [], []
        self._table = self._row = self._column = self._header = self._text = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "table":
            self._table = {"source": attrs.get("data-source"), "row": attrs.get("data-row"), "columns": []}
        elif tag == "tr" and self._table is not None:
            self._row = attrs.get("data-row", self._table["row"])
            self._position = 0
        elif tag in ("th", "td") and self._table is not None:
            self._text, self._value = "", attrs.get("data-value")

    def handle_data(self, data):
        if self._text is not None:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag in ("th", "td") and self._table is not None and self._text is not None:
            text, self._text = self._text, None
            if tag == "th" and self._table["row"] is None:
                self._table["columns"].append(text)
            elif tag == "th":
                self._column = text  # a record table: column name, then its value
            elif self._table["source"]:
                column = self._column if self._table["row"] is not None else self._table["columns"][self._position]
                self.cells.append((self._table["source"], int(self._row), column, text, self._value))
            if tag == "td":
                self._position += 1


def parse(page: str) -> Tables:
    parser = Tables()
    parser.feed(page)
    return parser


def assert_cell_matches(value, text, exact, where):
    if pd.isna(value):
        assert text == "" and exact == "", where
    elif isinstance(value, (bool, np.bool_)):
        assert text == str(bool(value)), where
    elif isinstance(value, (int, np.integer)):
        assert text == str(int(value)), where
    elif isinstance(value, (float, np.floating)):
        assert float(exact) == float(value), where
        if np.isinf(value):
            assert text == ("inf" if value > 0 else "-inf"), where
        else:
            assert abs(float(text) - value) <= 5e-4 * abs(value), where
    else:
        assert text == str(value), where


def test_every_number_in_the_report_equals_the_csvs(run):
    _, out = run
    page = parse((out / "report.html").read_text(encoding="utf-8"))
    csvs = {}
    sources = set()
    for source, row, column, text, exact in page.cells:
        table = csvs.setdefault(source, pd.read_csv(out / source))
        assert_cell_matches(table.at[row, column], text, exact, (source, row, column, text))
        sources.add(source)
    assert {"summary.csv", "summary_by_ligand.csv", "fits.csv", "fields.csv"} <= sources
    fits = pd.read_csv(out / "fits.csv")
    shown = {(row, column) for source, row, column, *_ in page.cells if source == "fits.csv"}
    assert {(row, "log_ic50_ci_low") for row in fits.index} <= shown  # every fit's CI is on the page
    summary_rows = {row for source, row, *_ in page.cells if source == "summary.csv"}
    assert summary_rows == set(pd.read_csv(out / "summary.csv").index)


def test_the_report_is_self_contained(run):
    _, out = run
    text = (out / "report.html").read_text(encoding="utf-8")
    page = parse(text)
    assert "http:" not in text and "https:" not in text and "url(" not in text
    assert not [tag for tag, _ in page.tags if tag in ("script", "iframe", "object", "embed")]
    links = [attrs for tag, attrs in page.tags if tag == "link"]
    assert all(attrs.get("href", "").startswith("data:") for attrs in links)
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    for section in ("settings", "summary", "curves", "coverage", "flagged", "gallery"):
        assert ("section", {"id": section}) in page.tags
    assert "Artifact coverage by well" in text


def test_figures_are_also_written_as_svg_and_pdf(run):
    _, out = run
    for stem in ("displacement_curves", "artifact_coverage_by_well", "mask_gallery"):
        assert (out / "figures" / f"{stem}.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
        assert (out / "figures" / f"{stem}.pdf").read_bytes().startswith(b"%PDF")


def test_fields_csv_coverage_is_the_mask_fraction_of_each_field(run):
    root, out = run
    fields = pd.read_csv(out / "fields.csv")
    plate = pd.read_csv(root / "plate.csv")
    assert list(fields.columns[:len(METADATA_COLUMNS)]) == METADATA_COLUMNS
    assert len(fields) == len(plate)
    # no plate column, and each experiment uses wells A01..B05: one plate per experiment
    assert fields["Metadata_Plate"].tolist() == fields["Metadata_Experiment"].tolist()
    for field, source in zip(fields.itertuples(), plate.itertuples()):
        assert (field.Metadata_Well, field.Metadata_Site) == (source.well, source.field)
        assert field.artifact_coverage_manual == pytest.approx(read_mask(source.artifact_mask).mean())
        brightfield = read_image(source.brightfield)
        assert field.artifact_coverage_model == pytest.approx(DarkestPixels().predict_mask(brightfield).mean())
    wells = pd.read_csv(out / "wells.csv")
    manual = wells[wells["mode"] == "manual"].set_index(["experiment", "well"])["cell_mean"]
    per_well = fields.groupby(["Metadata_Experiment", "Metadata_Well"])["cell_mean_manual"].mean()
    np.testing.assert_allclose(per_well.to_numpy(), manual.loc[per_well.index].to_numpy())


def test_prism_tables_hold_every_well_of_every_experiment_and_mode(run):
    _, out = run
    wells = pd.read_csv(out / "wells.csv")
    files = sorted(p.name for p in (out / "prism").iterdir())
    modes = ["manual", "manual+rout", "model", "model+rout", "none", "none+rout"]
    assert files == sorted(f"{e}_{m}.csv" for e in wells["experiment"].unique() for m in modes)
    outliers = pd.read_csv(out / "outliers.csv")
    for experiment in wells["experiment"].unique():
        table = pd.read_csv(out / "prism" / f"{experiment}_model.csv")
        expected = wells[(wells["experiment"] == experiment) & (wells["mode"] == "model")]
        assert list(table.columns) == ["log_concentration", "replicate_1", "replicate_2"]
        np.testing.assert_allclose(np.sort(table.iloc[:, 1:].to_numpy().ravel()), np.sort(expected["specific"]))
        blanked = pd.read_csv(out / "prism" / f"{experiment}_model+rout.csv").iloc[:, 1:].isna().to_numpy().sum()
        flagged = outliers[(outliers["experiment"] == experiment) & (outliers["mode"] == "model")]["outlier"].sum()
        assert blanked == expected["specific"].isna().sum() + flagged  # unusable wells and ROUT outliers


def test_rout_adds_rows_and_outliers_csv_without_changing_the_others(run):
    root, out = run
    fits = pd.read_csv(out / "fits.csv")
    assert list(fits.columns) == FIT_COLUMNS
    assert set(fits["mode"]) == {"manual", "model", "none", "manual+rout", "model+rout", "none+rout"}
    summary = pd.read_csv(out / "summary.csv")
    assert summary["mode"].tolist() == ["manual", "model", "none", "manual+rout", "model+rout", "none+rout"]
    by_ligand = pd.read_csv(out / "summary_by_ligand.csv")
    assert "model+rout" in set(by_ligand["mode"])
    outliers = pd.read_csv(out / "outliers.csv")
    assert list(outliers.columns) == OUTLIER_COLUMNS
    rout_fits = fits[fits["mode"].str.endswith("+rout")].set_index(["experiment", "mode"])["n"]
    flagged = outliers.groupby(["experiment", "mode"])["outlier"].sum()
    tested = outliers.groupby(["experiment", "mode"]).size()
    for (experiment, mode), n in rout_fits.items():
        base = mode.removesuffix("+rout")
        assert n == tested[(experiment, base)] - flagged[(experiment, base)]
    # the other rows are what the run gives without --outliers: the fits and summary of wells.csv alone
    wells = pd.read_csv(out / "wells.csv")
    plain_fits = fit_experiments(wells)
    base = fits[~fits["mode"].str.endswith("+rout")].reset_index(drop=True)
    pd.testing.assert_frame_equal(plain_fits.astype(base.dtypes.to_dict()), base)
    pd.testing.assert_frame_equal(summarize(wells, plain_fits), summary.iloc[:3], check_dtype=False)


def test_the_gallery_shows_the_fields_whose_coverage_differs_most(run):
    _, out = run
    fields = pd.read_csv(out / "fields.csv")
    page = parse((out / "report.html").read_text(encoding="utf-8"))
    shown = list(dict.fromkeys(row for source, row, column, *_ in page.cells
                               if source == "fields.csv" and column == "artifact_coverage_model"))
    expected = most_different_fields(fields).index.tolist()
    assert 0 < len(expected) <= 6 and shown[-len(expected):] == expected


def test_gallery_figure_outlines_both_masks():
    brightfield = np.linspace(0, 1, 64 * 64).reshape(64, 64)
    manual, model = np.zeros((64, 64)), np.zeros((64, 64))
    manual[10:30, 10:30], model[40:60, 40:60] = 1.0, 1.0
    figure = gallery_figure(GalleryField(3, brightfield, manual, model))
    assert len(figure.axes[0].collections) == 2  # one contour per mask
    page = render_report({"summary.csv": pd.DataFrame({"mode": ["manual"]}),
                          "fits.csv": pd.DataFrame({"experiment": ["e"], "mode": ["manual"], "success": [True],
                                                    "fit_flags": [np.nan], "message": ["converged"], "ligand": ["l"]}),
                          "wells.csv": pd.DataFrame({"experiment": [], "well": [], "mode": [], "n_fields": [],
                                                     "n_fields_total": [], "specific": []})},
                         settings={"seed": 0}, versions={"numpy": np.__version__}, figures={})
    assert "<section id='gallery'>" in page and "none</p>" in page


@pytest.mark.parametrize("extra, needle", [
    (["--outliers", "grubbs"], "--outliers: expected 'none' or 'rout'"),
    (["--outliers", "rout", "--rout-q", "0"], "--rout-q: expected a percentage in (0, 10]"),
    (["--outliers", "rout", "--rout-q", "10.5"], "--rout-q: expected a percentage in (0, 10]"),
    (["--outliers", "rout", "--rout-q", "one"], "--rout-q: expected a percentage in (0, 10], got 'one'"),
    (["--rout-q", "1"], "--rout-q: needs --outliers rout"),
])
def test_bad_outlier_flags_are_one_line_errors(tmp_path, capsys, extra, needle):
    status = ligand_affinity.main(["--manifest", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "out"),
                                   "--quiet", *extra])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "out").exists()
