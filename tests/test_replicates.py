"""Replicate summaries, the global fit and its F test (analysis.replicates), and the CLI end to end."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.weightstats import DescrStatsW

from analysis import ligand_affinity
from analysis.affinity import FIT_COLUMNS, fit_experiments
from analysis.hill import fit_hill, hill
from analysis.replicates import (
    LIGAND_SUMMARY_COLUMNS,
    compare_shared_log_ic50,
    equivalence_p,
    mean_interval,
    summarize_by_ligand,
)
from artseg.io import read_image_manifest
from artseg.segmenter import ArtifactSegmenter
from artseg.synth import PlateOptions, generate_dataset

from .test_segmenter import tiny_config

DOSE = np.repeat(np.r_[0.0, 10.0 ** np.arange(-10.0, -6.4, 0.5)], 2)
LOG_DOSE = np.where(DOSE > 0, np.log10(np.where(DOSE > 0, DOSE, 1.0)), -np.inf)


def _curve(log_ic50, rng, noise=40.0):
    return hill(LOG_DOSE, 100.0, 1000.0, log_ic50, -1.0) + rng.normal(0.0, noise, DOSE.size)


def test_mean_interval_matches_statsmodels():
    values = [-8.1, -7.9, -8.3, np.nan, -8.0]
    mean, sd, sem, low, high = mean_interval(values)
    finite = np.array([-8.1, -7.9, -8.3, -8.0])
    described = DescrStatsW(finite)
    assert mean == pytest.approx(finite.mean()) and sd == pytest.approx(finite.std(ddof=1))
    assert sem == pytest.approx(sd / 2.0)
    assert (low, high) == pytest.approx(described.tconfint_mean(0.05))
    single = mean_interval([-7.0])
    assert single[0] == -7.0 and all(math.isnan(v) for v in single[1:])


def test_equivalence_test_within_and_beyond_the_margin():
    manual = np.array([-8.0, -7.5, -9.0, -6.8])
    close = manual + np.array([0.05, -0.04, 0.02, -0.01])
    assert equivalence_p(close, manual, margin=0.5) < 0.01
    assert equivalence_p(manual + 1.0 + np.array([0.05, -0.04, 0.02, -0.01]), manual, margin=0.5) > 0.9
    assert equivalence_p(manual + 0.1, manual, margin=0.5) == 0.0  # identical differences
    assert math.isnan(equivalence_p(manual[:1], manual[:1], margin=0.5))


def _starts(curves):
    starts = []
    for x, y in curves:
        fit = fit_hill(x, y)
        starts.append((fit.bottom, fit.top, fit.log_ic50, fit.hill_slope))
    return starts


def test_global_fit_tells_replicates_of_one_ic50_from_shifted_ones():
    rng = np.random.default_rng(1)
    same = [(DOSE, _curve(-8.0, rng)) for _ in range(3)]
    shifted = [(DOSE, _curve(value, rng)) for value in (-8.5, -8.0, -7.5)]
    one = compare_shared_log_ic50(same, _starts(same))
    apart = compare_shared_log_ic50(shifted, _starts(shifted))
    assert one["global_p_one_log_ic50"] > 0.05 and apart["global_p_one_log_ic50"] < 1e-6
    assert one["global_aic_one_log_ic50"] < one["global_aic_separate"]
    assert apart["global_aic_one_log_ic50"] > apart["global_aic_separate"]
    assert one["global_log_ic50"] == pytest.approx(-8.0, abs=3 * one["global_log_ic50_se"])
    # the shared-parameter fit pools the replicates: tighter than any single experiment
    single_se = [fit_hill(x, y).log_ic50_se for x, y in same]
    assert one["global_log_ic50_se"] < min(single_se)
    free = compare_shared_log_ic50(same, _starts(same), hill_slope=None)
    assert 0 <= free["global_p_one_log_ic50"] <= 1
    assert all(math.isnan(v) for v in compare_shared_log_ic50(same[:1], _starts(same[:1])).values())


def _wells(curves, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for experiment, (ligand, log_ic50) in curves.items():
        clean = np.full(DOSE.size, 1000.0) if log_ic50 is None else hill(LOG_DOSE, 100.0, 1000.0, log_ic50, -1.0)
        values = clean + rng.normal(0.0, 40.0, DOSE.size)
        for mode, shift in (("manual", 0.0), ("model", 5.0)):
            for i, c in enumerate(DOSE):
                rows.append({"experiment": experiment, "ligand": ligand, "concentration": c,
                             "well": f"W{i:02d}", "mode": mode, "specific": values[i] + shift})
    return pd.DataFrame(rows)


def test_summary_by_ligand_over_replicates_with_pki_and_a_non_displacer():
    curves = {"a1": ("A", -8.0), "a2": ("A", -8.1), "a3": ("A", -7.9), "x1": ("X", None), "x2": ("X", None)}
    wells = _wells(curves)
    fits = fit_experiments(wells, tracer_concentration=1e-9, tracer_kd=1e-9)
    summary = summarize_by_ligand(fits, wells).set_index(["ligand", "mode"])
    assert list(summary.reset_index().columns) == LIGAND_SUMMARY_COLUMNS
    a = summary.loc[("A", "manual")]
    manual_a = fits[(fits["ligand"] == "A") & (fits["mode"] == "manual")]["log_ic50"]
    assert a["n_experiments"] == 3 and a["n_fitted"] == 3 and a["n_no_displacement"] == 0
    assert a["mean_log_ic50"] == pytest.approx(manual_a.mean())
    assert a["sd_log_ic50"] == pytest.approx(manual_a.std(ddof=1))
    assert a["log_ic50_ci_low"] < -8.0 < a["log_ic50_ci_high"]
    assert a["mean_pki"] == pytest.approx(-(manual_a.mean() - math.log10(2.0)))
    assert np.isfinite(a["global_log_ic50"]) and a["global_aic_one_log_ic50"] > 0
    # a constant offset of every well leaves LogIC50 alone: equivalent to manual removal
    assert summary.loc[("A", "model"), "tost_p_vs_manual"] < 0.01
    x = summary.loc[("X", "manual")]
    assert x["n_experiments"] == 2 and x["n_fitted"] == 0 and x["n_no_displacement"] == 2
    assert math.isnan(x["mean_log_ic50"]) and math.isnan(x["global_log_ic50"])
    assert summarize_by_ligand(fits)["global_log_ic50"].isna().all()  # no wells: no global fit


# --- the CLI on a plate with replicate experiments and a non-displacing compound ------------------


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    """A 128² cho_m4r plate whose atropine_1 and atropine_2 are replicates, and a tiny artifact model."""
    root = tmp_path_factory.mktemp("replicate_plate")
    generate_dataset("cho_m4r", root / "data", n_images=8, seed=3, size=128, progress=False,
                     plate=PlateOptions(n_experiments=5, n_concentrations=5, wells_per_concentration=2,
                                        fields_per_well=1))
    manifest = read_image_manifest(root / "data" / "manifest.csv", require_label=True)
    ArtifactSegmenter(tiny_config()).fit(manifest, progress=False).save(root / "model")
    return root


IMAGE_COLUMNS = ("brightfield", "fluorescence", "artifact_mask", "cell_mask")


def _replicate_manifest(plate, tmp_path):
    """The two atropine replicates and an inert compound whose wells all show vehicle images.

    The inert compound's signal does not depend on its concentration: each of its wells (one per
    concentration) shows one of the four vehicle fields of the two atropine experiments.
    """
    table = pd.read_csv(plate / "data" / "plate.csv")
    table["cell_mask"] = table["cell_truth"]
    for column in IMAGE_COLUMNS:
        table[column] = [str(plate / "data" / p) for p in table[column]]
    atropine = table[table["ligand"] == "atropine"].drop(columns="cell_truth")
    vehicle = atropine[atropine["concentration"] == 0].reset_index(drop=True)
    inert = atropine[(atropine["experiment"] == "atropine_1") & atropine["well"].str.startswith("A")]
    inert = inert.reset_index(drop=True)
    donors = vehicle.iloc[np.arange(len(inert)) % len(vehicle)]
    for name in IMAGE_COLUMNS:
        inert[name] = donors[name].to_numpy()
    inert = inert.assign(experiment="inert_1", ligand="inert")
    path = tmp_path / "replicates.csv"
    pd.concat([atropine, inert], ignore_index=True).to_csv(path, index=False)
    truth = json.loads((plate / "data" / "truth.json").read_text())
    return path, {name: truth[name]["log_ic50"] for name in ("atropine_1", "atropine_2")}


def test_cli_on_replicates_and_a_non_displacer(plate, tmp_path, capsys):
    manifest, truth = _replicate_manifest(plate, tmp_path)
    out = tmp_path / "out"
    status = ligand_affinity.main([
        "--manifest", str(manifest), "--model", str(plate / "model"), "--out", str(out), "--quiet",
        "--tracer-concentration", "2e-9", "--tracer-kd", "1e-9", "--global-fit"])
    assert status == 0, capsys.readouterr().err
    assert "summary_by_ligand.csv" in capsys.readouterr().out
    fits = pd.read_csv(out / "fits.csv")
    assert list(fits.columns) == FIT_COLUMNS
    fits["fit_flags"] = fits["fit_flags"].fillna("")
    active = fits[fits["ligand"] == "atropine"]
    assert len(active) == 6 and active["success"].all()
    assert not active["fit_flags"].str.contains("no_displacement").any()
    # with manual removal the intervals cover each experiment's true LogIC50 and are bounded (a 128²
    # field holds few cells, so the other modes' noisier curves may leave one side open)
    manual = active[active["mode"] == "manual"]
    true_values = manual["experiment"].map(truth)
    assert ((manual["log_ic50_ci_low"] <= true_values) & (true_values <= manual["log_ic50_ci_high"])).all()
    assert np.isfinite(manual[["log_ic50_ci_low", "log_ic50_ci_high"]].to_numpy()).all()
    assert (active["log_ic50_ci_low"] < active["log_ic50"]).all()
    assert (active["log_ic50"] < active["log_ic50_ci_high"]).all()
    np.testing.assert_allclose(active["ki"], 10 ** active["log_ic50"] / 3.0, rtol=1e-9)
    inert = fits[fits["ligand"] == "inert"]
    assert len(inert) == 3 and not inert["success"].any()
    assert inert["fit_flags"].str.split(";").map(lambda flags: "no_displacement" in flags).all()
    assert inert[["log_ic50", "ki", "log_ic50_ci_low", "log_ic50_ci_high"]].isna().all().all()
    by_ligand = pd.read_csv(out / "summary_by_ligand.csv").set_index(["ligand", "mode"])
    assert list(by_ligand.reset_index().columns) == LIGAND_SUMMARY_COLUMNS
    atropine = by_ligand.loc[("atropine", "manual")]
    assert atropine["n_experiments"] == 2 and atropine["n_fitted"] == 2
    assert atropine["log_ic50_ci_low"] < atropine["mean_log_ic50"] < atropine["log_ic50_ci_high"]
    assert atropine["mean_pki"] == pytest.approx(-(atropine["mean_log_ic50"] - math.log10(3.0)))
    assert 0 <= atropine["global_p_one_log_ic50"] <= 1 and np.isfinite(atropine["global_log_ic50"])
    assert by_ligand.loc[("inert", "manual"), "n_no_displacement"] == 1


@pytest.mark.parametrize(("flags", "needle"), [
    (["--tracer-kd", "0"], "--tracer"),
    (["--tracer-concentration", "1e-9", "--tracer-kd=-2e-9"], "--tracer-kd"),
    (["--tracer-concentration", "1e-9", "--tracer-kd", "abc"], "--tracer-kd"),
    (["--tracer-concentration", "1e-9"], "--tracer-kd"),
    (["--tracer-kd", "1e-9"], "--tracer-concentration"),
    (["--fdr-q", "0"], "--fdr-q"),
    (["--fdr-q", "10.5"], "--fdr-q"),
    (["--fdr-q", "five"], "--fdr-q"),
    (["--ci", "bootstrap"], "--ci"),
    (["--equivalence-margin", "0"], "--equivalence-margin"),
])
def test_bad_new_flags_are_one_line_errors(tmp_path, capsys, flags, needle):
    out = tmp_path / "out"
    argv = ["--manifest", str(tmp_path / "plate.csv"), "--model", str(tmp_path / "model"), "--out", str(out),
            "--quiet", *flags]
    assert ligand_affinity.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and needle in err, err
    assert not out.exists()
