"""``report.html``: one self-contained page with a ligand-affinity run's results.

The page is written last, from the CSVs already in the output folder, so that every number on
it is one of theirs: tables carry the CSV's column names, each row its CSV row number
(``data-row``) and each cell the exact value (``data-value``) beside the rounded one shown.
Figures are inlined as base64 PNG; there is no script, stylesheet or address outside the file,
so it opens offline and can be mailed as one file. The figures are also written as SVG and PDF
(``figures/``) for publication.

Sections: run settings and versions; the summary tables with confidence intervals and fit
flags; the displacement curves of every experiment in each removal mode (ROUT outliers
crossed out when ``--outliers rout``); "Artifact coverage by well", a plate heatmap of manual
and model coverage side by side; flagged fits, wells and fields; a gallery of the fields whose
model and manual artifact coverage differ most, both masks outlined.
"""

from __future__ import annotations

import base64
import datetime
import html
import importlib.metadata
import io
import math
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.figures import MODE_COLOURS, displacement_curves
from analysis.hill import hill
from analysis.outliers import ROUT_SUFFIX
from analysis.reporting import save_figure_formats
from artseg.io import atomic_write_text, read_image, read_mask

__all__ = [
    "GalleryField",
    "coverage_heatmaps",
    "gallery_fields",
    "most_different_fields",
    "render_report",
    "run_versions",
    "write_report",
]

PACKAGES = ("artseg", "numpy", "scipy", "pandas", "lmfit", "statsmodels", "matplotlib", "torch")
GALLERY_SIZE = 6
_THUMBNAIL_SIDE = 384
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; font-size: 0.82em; margin: 0.4em 0 1em; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td.text { text-align: left; } td.long { white-space: normal; min-width: 24em; }
table.record th { text-align: left; }
.scroll { overflow-x: auto; } img { max-width: 100%; } .note { color: #555; font-size: 0.9em; }
.gallery { display: flex; flex-wrap: wrap; gap: 12px; } figure { margin: 0; width: 370px; }
figcaption { font-size: 0.8em; } nav a { margin-right: 1em; }
"""


def _format_number(value) -> tuple[str, str]:
    """(shown text, exact value) of one table cell; NaN and None are empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "", ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)), str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value)), str(int(value))
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return ("inf" if number > 0 else "-inf", repr(number)) if math.isinf(number) else (f"{number:.4g}", repr(number))
    return str(value), str(value)


def html_table(table: pd.DataFrame, source: str | None = None, *, columns=None) -> str:
    """An HTML table of `table` (its index = the CSV row numbers), exact values in ``data-value``."""
    columns = list(table.columns if columns is None else columns)
    if not len(table):
        return '<p class="note">none</p>'
    attribute = f' data-source="{html.escape(source)}"' if source else ""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    values = {column: table[column].tolist() for column in columns}  # Python scalars, column by column
    rows = []
    for position, index in enumerate(table.index):
        cells = []
        for column in columns:
            value = values[column][position]
            shown, exact = _format_number(value)
            kind = "" if isinstance(value, (int, float)) else ' class="text long"' if len(shown) > 40 else ' class="text"'
            cells.append(f'<td{kind} data-value="{html.escape(exact)}">{html.escape(shown)}</td>')
        rows.append(f'<tr data-row="{index}">{"".join(cells)}</tr>')
    return f'<div class="scroll"><table{attribute}><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def html_record(table: pd.DataFrame, row, source: str, columns) -> str:
    """One CSV row as a two-column table (column name, value), for captions."""
    cells = []
    for column in columns:
        shown, exact = _format_number(table.at[row, column])
        cells.append(f'<tr><th>{html.escape(column)}</th><td data-value="{html.escape(exact)}">{html.escape(shown)}</td></tr>')
    return (f'<table class="record" data-source="{html.escape(source)}" data-row="{row}"><tbody>'
            f'{"".join(cells)}</tbody></table>')


def _png(figure: Figure, dpi: int = 100) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(figure: Figure, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{_png(figure)}">'


def run_versions() -> dict[str, str]:
    """Python, the platform and the installed versions of :data:`PACKAGES`."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def curves_figure(wells: pd.DataFrame, fits: pd.DataFrame, outliers: pd.DataFrame | None = None) -> Figure:
    """Every experiment's displacement curves; ROUT outliers crossed and ROUT refits dashed."""
    base_modes = set(wells["mode"])
    experiments = sorted(wells["experiment"].unique())
    figure = displacement_curves(wells, fits[fits["mode"].isin(base_modes)], max_panels=len(experiments))
    if outliers is None or not len(outliers):
        return figure
    for ax, experiment in zip(figure.axes, experiments):  # displacement_curves draws them in this order
        positive = wells.loc[(wells["experiment"] == experiment) & (wells["concentration"] > 0), "concentration"]
        vehicle_x = float(np.log10(positive).min()) - 1.0 if len(positive) else -10.0
        flagged = outliers[(outliers["experiment"] == experiment) & outliers["outlier"].astype(bool)]
        if len(flagged):
            x = np.where(flagged["concentration"] > 0, np.log10(flagged["concentration"].clip(lower=1e-300)), vehicle_x)
            ax.scatter(x, flagged["specific"], s=60, marker="x", label="ROUT outlier (its mode's colour)",
                       color=[MODE_COLOURS.get(mode, "black") for mode in flagged["mode"]])
        for _, fit in fits[(fits["experiment"] == experiment) & fits["mode"].str.endswith(ROUT_SUFFIX)].iterrows():
            if bool(fit["success"]):
                grid = np.linspace(*ax.get_xlim(), 200)
                ax.plot(grid, hill(grid, fit["bottom"], fit["top"], fit["log_ic50"], fit["hill_slope"]), ls="--", lw=1,
                        color=MODE_COLOURS.get(fit["mode"].removesuffix(ROUT_SUFFIX)), label=f"{fit['mode']}: {fit['log_ic50']:.2f}")
        ax.legend(fontsize=6)
    return figure


def _well_position(well: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"([A-Za-z]{1,2})(\d+)", str(well))
    if match is None:
        return None
    letters = match.group(1).upper()
    row = 0
    for letter in letters:
        row = row * 26 + (ord(letter) - ord("A") + 1)
    return row - 1, int(match.group(2)) - 1


def well_coverage(fields: pd.DataFrame) -> pd.DataFrame:
    """Mean artifact coverage of each well's fields, per plate (columns ``artifact_coverage_*``)."""
    columns = [c for c in ("artifact_coverage_manual", "artifact_coverage_model") if c in fields.columns]
    plates = fields["Metadata_Plate"].map(lambda name: "" if pd.isna(name) else str(name))  # "" reads back as NaN
    return (fields.assign(Metadata_Plate=plates).groupby(["Metadata_Plate", "Metadata_Well"], sort=True)[columns]
            .mean().reset_index())


def coverage_heatmaps(fields: pd.DataFrame) -> Figure | None:
    """Plate heatmaps of per-well artifact coverage, manual and model side by side (one row per plate).

    Returns None when ``fields`` has neither coverage column or no well is like ``A01``.
    """
    wells = well_coverage(fields)
    columns = [c for c in ("artifact_coverage_manual", "artifact_coverage_model") if c in wells.columns]
    positions = wells["Metadata_Well"].map(_well_position)
    if not columns or positions.isna().any() or not len(wells):
        return None
    wells = wells.assign(_row=[p[0] for p in positions], _col=[p[1] for p in positions])
    plates = list(dict.fromkeys(wells["Metadata_Plate"]))
    n_rows, n_cols = int(wells["_row"].max()) + 1, int(wells["_col"].max()) + 1
    top = float(np.nanmax(wells[columns].to_numpy(dtype=float))) if wells[columns].notna().any().any() else 0.0
    panel_height = 0.32 * n_rows + 0.7
    figure = Figure(figsize=(min(4.0 * len(columns), 0.45 * n_cols * len(columns) + 2.2), panel_height * len(plates) + 0.6),
                    layout="constrained")
    axes = figure.subplots(len(plates), len(columns), squeeze=False)
    image = None
    for plate, row_axes in zip(plates, axes):
        on_plate = wells[wells["Metadata_Plate"] == plate]
        for ax, column in zip(row_axes, columns):
            grid = np.full((n_rows, n_cols), np.nan)
            grid[on_plate["_row"], on_plate["_col"]] = on_plate[column]
            image = ax.imshow(np.ma.masked_invalid(grid), vmin=0.0, vmax=max(top, 1e-3), cmap="viridis")
            ax.set_xticks(range(n_cols), [str(c + 1) for c in range(n_cols)], fontsize=6)
            ax.set_yticks(range(n_rows), [chr(ord("A") + r) if r < 26 else str(r + 1) for r in range(n_rows)], fontsize=6)
            ax.set_title(f"{plate + ': ' if plate else ''}{column.removeprefix('artifact_coverage_')}", fontsize=8)
            ax.set_facecolor("#dddddd")
    figure.colorbar(image, ax=axes, shrink=0.6, label="artifact coverage (fraction of field)")
    return figure


def most_different_fields(fields: pd.DataFrame, n: int = GALLERY_SIZE) -> pd.DataFrame:
    """The `n` fields (rows of ``fields.csv``) whose model and manual artifact coverage differ most.

    Examples
    --------
    >>> fields = pd.DataFrame({"artifact_coverage_manual": [0.1, 0.0, 0.2],
    ...                        "artifact_coverage_model": [0.1, 0.3, 0.05]})
    >>> most_different_fields(fields, 2).index.tolist()
    [1, 2]
    """
    if not {"artifact_coverage_manual", "artifact_coverage_model"} <= set(fields.columns):
        return fields.iloc[:0]
    difference = (fields["artifact_coverage_model"] - fields["artifact_coverage_manual"]).abs()
    order = difference[difference > 0].sort_values(ascending=False, kind="stable")
    return fields.loc[order.index[:n]]


@dataclass(frozen=True)
class GalleryField:
    """One gallery entry: ``fields.csv`` row number, brightfield thumbnail and both masks (same shape)."""

    row: int
    brightfield: np.ndarray
    manual: np.ndarray
    model: np.ndarray


def _shrink(image: np.ndarray, side: int) -> np.ndarray:
    """Block mean to at most `side` pixels on the long side (masks become coverage fractions)."""
    factor = max(1, math.ceil(max(image.shape) / side))
    height, width = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:height, :width].astype(np.float64).reshape(height // factor, factor, width // factor, factor)
    return blocks.mean(axis=(1, 3))


def gallery_fields(selected: pd.DataFrame, plate: pd.DataFrame, predict_mask: Callable[[np.ndarray], np.ndarray],
                   *, side: int = _THUMBNAIL_SIDE) -> list[GalleryField]:
    """Read the selected fields' brightfield and manual mask, predict the model's mask, shrink them.

    Parameters
    ----------
    selected : DataFrame
        Rows of ``fields.csv`` (:func:`most_different_fields`); the index is kept as the row number.
    plate : DataFrame
        The plate manifest (``experiment, well, field, brightfield, artifact_mask``).
    predict_mask : callable
        The artifact model's ``predict_mask(brightfield) -> bool array``.
    """
    by_field = plate.set_index(["experiment", "well", "field"])
    entries = []
    for row, field in selected.iterrows():
        source = by_field.loc[(field["Metadata_Experiment"], field["Metadata_Well"], field["Metadata_Site"])]
        if isinstance(source, pd.DataFrame):
            source = source.iloc[0]
        brightfield = read_image(source["brightfield"])
        manual = (read_mask(source["artifact_mask"]) if source.get("artifact_mask") is not None
                  else np.zeros(brightfield.shape, dtype=bool))
        model = np.asarray(predict_mask(brightfield), dtype=bool)
        low, high = np.percentile(brightfield, [1.0, 99.8])
        scaled = np.clip((brightfield - low) / (high - low if high > low else 1.0), 0.0, 1.0)
        entries.append(GalleryField(int(row), _shrink(scaled, side), _shrink(manual, side), _shrink(model, side)))
    return entries


def _draw_field(ax, entry: GalleryField) -> None:
    ax.imshow(entry.brightfield, cmap="gray", vmin=0.0, vmax=1.0)
    for mask, mode in ((entry.manual, "manual"), (entry.model, "model")):
        if mask.max() >= 0.5 > mask.min():
            ax.contour(mask, levels=[0.5], colors=[MODE_COLOURS[mode]], linewidths=1.2)
    ax.set_axis_off()


def gallery_figure(entry: GalleryField) -> Figure:
    """A brightfield thumbnail with the manual (green) and model (orange) artifact outlines."""
    height, width = entry.brightfield.shape
    figure = Figure(figsize=(3.6, 3.6 * height / width + 0.1), layout="constrained")
    _draw_field(figure.subplots(), entry)
    return figure


def _gallery_grid(entries: list[GalleryField]) -> Figure:
    n_cols = min(3, len(entries))
    figure = Figure(figsize=(3.2 * n_cols, 3.2 * math.ceil(len(entries) / n_cols)), layout="constrained")
    axes = figure.subplots(math.ceil(len(entries) / n_cols), n_cols, squeeze=False).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, entry in zip(axes, entries):
        _draw_field(ax, entry)
        ax.set_title(f"fields.csv row {entry.row}", fontsize=8)
    return figure


def _flagged_sections(tables: Mapping[str, pd.DataFrame]) -> str:
    parts = []
    fits = tables["fits.csv"]
    flags = fits["fit_flags"].map(lambda value: "" if pd.isna(value) else str(value))  # all-empty reads as float
    flagged = fits[flags.ne("") | ~fits["success"].astype(bool)]
    parts.append("<h3>Fits with a flag or without success</h3>"
                 + html_table(flagged, "fits.csv", columns=["experiment", "ligand", "mode", "success", "fit_flags", "message"]))
    wells = tables["wells.csv"]
    short = wells[wells["n_fields"] < wells["n_fields_total"]]
    parts.append("<h3>Wells with unusable fields</h3><p class='note'>A field is unusable in a mode when every cell or "
                 "every background pixel is excluded; a well with none left is not fitted.</p>"
                 + html_table(short, "wells.csv", columns=["experiment", "well", "mode", "n_fields", "n_fields_total", "specific"]))
    fields = tables.get("fields.csv")
    if fields is not None:
        means = [c for c in fields.columns if c.startswith(("cell_mean_", "background_mean_"))]
        empty = fields[fields[means].isna().any(axis=1)]
        parts.append("<h3>Fields without a cell or background value</h3>"
                     + html_table(empty, "fields.csv", columns=[c for c in fields.columns if c.startswith("Metadata_")] + means))
    outliers = tables.get("outliers.csv")
    if outliers is not None:
        parts.append("<h3>ROUT outlier wells</h3><p class='note'>Left out of the <code>+rout</code> fits.</p>"
                     + html_table(outliers[outliers["outlier"].astype(bool)], "outliers.csv"))
    return "".join(parts)


def _drop_empty(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if table[c].notna().any()]


def render_report(tables: Mapping[str, pd.DataFrame], *, settings: Mapping[str, object], versions: Mapping[str, str],
                  figures: Mapping[str, Figure | None], gallery: list[GalleryField] = (), title: str = "Ligand affinity") -> str:
    """The report page as one HTML string (pure: tables and figures in, text out).

    Parameters
    ----------
    tables : mapping
        CSV file name -> table as read back: ``summary.csv``, ``fits.csv``, ``wells.csv`` and
        optionally ``summary_by_ligand.csv``, ``fields.csv``, ``outliers.csv``.
    settings, versions : mapping
        Shown as two-column tables.
    figures : mapping
        ``curves`` and ``coverage`` figures (None = not available).
    gallery : list of GalleryField
        The fields shown with both outlines.
    """
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    key_values = (lambda m: pd.DataFrame({"setting": list(m), "value": [str(v) for v in m.values()]}))
    fits = tables["fits.csv"]
    sections = [
        f"<h1>{html.escape(title)} — ArtSeg report</h1><p class='note'>Written {stamp}. Every number below is read "
        "from the CSV named above its table, shown to 4 significant digits; each cell's exact value is in its "
        "<code>data-value</code> attribute.</p>",
        "<nav><a href='#settings'>Settings</a><a href='#summary'>Summary</a><a href='#curves'>Curves</a>"
        "<a href='#coverage'>Artifact coverage by well</a><a href='#flagged'>Flagged</a><a href='#gallery'>Gallery</a></nav>",
        "<section id='settings'><h2>Run settings and versions</h2>" + html_table(key_values(settings))
        + html_table(key_values(versions).rename(columns={"setting": "package"})) + "</section>",
        "<section id='summary'><h2>Summary</h2><h3>By removal mode (summary.csv)</h3>"
        + html_table(tables["summary.csv"], "summary.csv"),
    ]
    by_ligand = tables.get("summary_by_ligand.csv")
    if by_ligand is not None:
        sections.append("<h3>By ligand over replicate experiments, mean LogIC50 with its 95 % CI "
                        "(summary_by_ligand.csv; empty columns left out)</h3>"
                        + html_table(by_ligand, "summary_by_ligand.csv", columns=_drop_empty(by_ligand)))
    sections.append("<h3>Fits: LogIC50 with its 95 % CI and fit flags (fits.csv; empty columns left out)</h3>"
                    + html_table(fits, "fits.csv", columns=[c for c in _drop_empty(fits) if c != "message"]) + "</section>")
    curves = figures.get("curves")
    sections.append("<section id='curves'><h2>Displacement curves</h2><p class='note'>Well signal (cell − background) "
                    "against log10 concentration, one panel per experiment, one colour per removal mode "
                    + ("(manual green, model orange, none purple); " if curves is not None else "")
                    + "vehicle wells at the left edge.</p>" + (_img(curves, "displacement curves") if curves else "")
                    + "</section>")
    coverage = figures.get("coverage")
    sections.append("<section id='coverage'><h2>Artifact coverage by well</h2><p class='note'>Mean over a well's fields "
                    "of the fraction of the field inside the artifact mask (fields.csv), manual and model side by side; "
                    "grey = no well.</p>"
                    + (_img(coverage, "artifact coverage by well") if coverage else
                       "<p class='note'>Needs fields.csv with manual or model coverage and wells like A01.</p>")
                    + "</section>")
    sections.append("<section id='flagged'><h2>Flagged fits, wells and fields</h2>" + _flagged_sections(tables) + "</section>")
    items = []
    fields = tables.get("fields.csv")
    for entry in gallery:
        caption = [c for c in fields.columns if c in ("Metadata_Plate", "Metadata_Well", "Metadata_Site")
                   or c.startswith("artifact_coverage_")]
        items.append(f"<figure>{_img(gallery_figure(entry), 'field ' + str(entry.row))}<figcaption>"
                     + html_record(fields, entry.row, "fields.csv", caption) + "</figcaption></figure>")
    sections.append("<section id='gallery'><h2>Fields where model and manual masks differ most</h2><p class='note'>"
                    "Ranked by |model − manual| artifact coverage; outlines: manual green, model orange.</p>"
                    + (f"<div class='gallery'>{''.join(items)}</div>" if items else "<p class='note'>none</p>") + "</section>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
            f"<title>{html.escape(title)} — ArtSeg report</title><style>{_STYLE}</style></head><body>"
            + "".join(sections) + "</body></html>")


def _read_tables(out: Path) -> dict[str, pd.DataFrame]:
    names = ("summary.csv", "fits.csv", "wells.csv", "summary_by_ligand.csv", "fields.csv", "outliers.csv")
    return {name: pd.read_csv(out / name, keep_default_na=True) for name in names if (out / name).exists()}


def write_report(out: Path, *, settings: Mapping[str, object], gallery: list[GalleryField] = ()) -> Path:
    """Read the run's CSVs from `out`, write ``report.html`` and ``figures/*.svg|pdf``; returns the page's path."""
    out = Path(out)
    tables = _read_tables(out)
    base_wells = tables["wells.csv"]
    figures = {"curves": curves_figure(base_wells, tables["fits.csv"], tables.get("outliers.csv")),
               "coverage": coverage_heatmaps(tables["fields.csv"]) if "fields.csv" in tables else None}
    if gallery:
        figures["gallery"] = _gallery_grid(list(gallery))
    names = {"curves": "displacement_curves", "coverage": "artifact_coverage_by_well", "gallery": "mask_gallery"}
    for key, figure in figures.items():
        if figure is not None:
            save_figure_formats(figure, out / "figures", names[key], formats=("svg", "pdf"))
    page = render_report(tables, settings=settings, versions=run_versions(), figures=figures, gallery=list(gallery))
    atomic_write_text(out / "report.html", page)
    return out / "report.html"
