"""Figures of the downstream analyses, shared by the CLIs and the notebooks.

Each function takes tables (pandas) and returns a matplotlib Figure; saving is the
caller's job. The non-interactive Agg backend is selected by the CLIs, not here.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from analysis.hill import hill

MODE_COLOURS = {"manual": "#1b9e77", "model": "#d95f02", "none": "#7570b3"}
REGION_COLOURS = {
    "artifact_free_manual": "#e7298a",
    "artifact": "#1f78b4",
    "artifact_free_model": "#33a02c",
    "whole_image": "#e6ab02",
}


def displacement_curves(wells: pd.DataFrame, fits: pd.DataFrame, *, max_panels: int = 12) -> Figure:
    """Fig. 6-style displacement curves: well signal vs log concentration per experiment.

    Parameters
    ----------
    wells : DataFrame
        ``wells.csv`` rows (experiment, ligand, concentration, mode, specific).
    fits : DataFrame
        ``fits.csv`` rows (experiment, mode, log_ic50, log_ic50_se, top, bottom, hill_slope,
        success).
    max_panels : int
        At most this many experiments are drawn (in sorted order).

    Returns
    -------
    matplotlib.figure.Figure
        One panel per experiment; vehicle wells (concentration 0) are drawn at the left edge;
        the legend gives LogIC50 ± SE per removal mode.
    """
    experiments = sorted(wells["experiment"].unique())[:max_panels]
    n_cols = min(4, max(1, len(experiments)))
    n_rows = max(1, math.ceil(len(experiments) / n_cols))
    fig = Figure(figsize=(4.0 * n_cols, 3.2 * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax, experiment in zip(axes, experiments):
        data = wells[wells["experiment"] == experiment]
        positive = data.loc[data["concentration"] > 0, "concentration"]
        log_c = np.log10(positive)
        vehicle_x = float(log_c.min()) - 1.0 if len(log_c) else -10.0
        grid = np.linspace(vehicle_x + 0.5, float(log_c.max()) + 0.5 if len(log_c) else -4, 200)
        for mode, rows in data.groupby("mode", sort=False):
            colour = MODE_COLOURS.get(mode)
            x = np.where(rows["concentration"] > 0, np.log10(rows["concentration"].clip(lower=1e-300)),
                         vehicle_x)
            ax.scatter(x, rows["specific"], s=14, color=colour, alpha=0.8)
            fit = fits[(fits["experiment"] == experiment) & (fits["mode"] == mode)]
            label = mode
            if len(fit) and bool(fit["success"].iloc[0]):
                f = fit.iloc[0]
                ax.plot(grid, hill(grid, f["bottom"], f["top"], f["log_ic50"], f["hill_slope"]),
                        color=colour, lw=1.5)
                label = f"{mode}: {f['log_ic50']:.2f} ± {f['log_ic50_se']:.2f}"
            ax.plot([], [], color=colour, marker="o", label=label)
        ligand = data["ligand"].iloc[0]
        ax.set_title(f"{experiment} ({ligand})", fontsize=9)
        ax.set_xlabel("log10 [competitor] (M); vehicle at left")
        ax.set_ylabel("cell − background")
        ax.legend(fontsize=7, title="LogIC50 ± SE", title_fontsize=7)
    for ax in axes[len(experiments):]:
        ax.set_visible(False)
    return fig


def region_densities(per_image: pd.DataFrame, columns: tuple[str, ...], titles: tuple[str, ...]) -> Figure:
    """Fig. 5 / Supp. Fig. 4-style density plots of per-image values by region.

    Parameters
    ----------
    per_image : DataFrame
        Long table with a ``region`` column and the value columns.
    columns : tuple of str
        Value columns, one panel each (e.g. ``("pixel_f1", "object_f1")``).
    titles : tuple of str
        Axis labels of the panels.

    Returns
    -------
    matplotlib.figure.Figure
        One density panel per column, one curve per region (in ``REGION_COLOURS`` order,
        other regions after), dashed lines at region means.
    """
    fig = Figure(figsize=(6.5, 2.8 * len(columns)), layout="constrained")
    axes = fig.subplots(len(columns), 1, squeeze=False).ravel()
    present = list(dict.fromkeys(per_image["region"]))
    regions = [r for r in REGION_COLOURS if r in present] + [r for r in present if r not in REGION_COLOURS]
    for ax, column, title in zip(axes, columns, titles):
        for region in regions:
            values = per_image.loc[per_image["region"] == region, column].dropna().to_numpy(dtype=float)
            colour = REGION_COLOURS.get(region)
            if len(values) >= 2 and np.ptp(values) > 0:
                sns.kdeplot(x=values, ax=ax, color=colour, label=f"{region} (n={len(values)})",
                            warn_singular=False, cut=0)
            elif len(values):
                ax.axvline(values[0], color=colour, lw=1, label=f"{region} (n={len(values)})")
            if len(values):
                ax.axvline(values.mean(), color=colour, ls="--", lw=1)
        ax.set_xlabel(title)
        ax.set_ylabel("density")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no values", transform=ax.transAxes, ha="center")
    return fig
