"""Tests of the synthetic microscopy generator (artseg.synth) and ``artseg synth``."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy import optimize, stats
from skimage.feature import peak_local_max

from artseg.cli import main
from artseg.errors import ArtsegInputError
from artseg.io import read_image, read_image_manifest, read_labels, read_mask, read_plate_manifest
from artseg.synth import (
    ARTIFACT_TYPES,
    GENERATOR_VERSION,
    MANIFEST_COLUMNS,
    PLATE_COLUMNS,
    PRESETS,
    ArtifactSpec,
    PlateOptions,
    generate_dataset,
    generate_plate,
    hill_response,
    is_current_dataset,
    plan_fields,
    plate_design,
    render_artifacts,
    sample_artifacts,
    simulate_plate,
    synthesize_field,
)
from artseg.synth.fluorescence import FluorescenceImaging
from artseg.synth.optics import Illumination

SMALL_PLATE = PlateOptions(n_experiments=1, n_concentrations=3, wells_per_concentration=1, fields_per_well=1)


# --------------------------------------------------------------------------- fields


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_field_arrays_and_ground_truth(preset):
    field = synthesize_field(np.random.default_rng(3), preset, (96, 80), True)
    assert field.brightfield.shape == field.fluorescence.shape == (96, 80)
    assert field.brightfield.dtype == field.fluorescence.dtype == np.uint16
    assert field.artifact_mask.dtype == bool and field.artifact_mask.any()
    assert field.nuclei.dtype == field.cells.dtype == np.int32
    assert field.n_artifacts == len(np.unique(field.artifact_labels[field.artifact_labels > 0]))
    assert set(field.artifact_types) <= set(ARTIFACT_TYPES)
    # Every nucleus lies inside the cell with the same label.
    inside = field.nuclei > 0
    assert np.array_equal(field.cells[inside], field.nuclei[inside])
    clean = synthesize_field(np.random.default_rng(3), preset, (96, 80), False)
    assert not clean.artifact_mask.any() and clean.artifact_types == []


def test_same_seed_same_field_and_different_seed_differs():
    first = synthesize_field(np.random.default_rng(11), "seven_cell_lines", (64, 64), True)
    again = synthesize_field(np.random.default_rng(11), "seven_cell_lines", (64, 64), True)
    other = synthesize_field(np.random.default_rng(12), "seven_cell_lines", (64, 64), True)
    for name in ("brightfield", "fluorescence", "artifact_mask", "nuclei", "cells"):
        assert np.array_equal(getattr(first, name), getattr(again, name)), name
    assert not np.array_equal(first.brightfield, other.brightfield)
    assert not np.array_equal(first.cells, other.cells)


def test_clean_twin_shares_cells_and_differs_only_near_artifacts():
    with_artifacts = synthesize_field(np.random.default_rng(5), "lncap", (128, 128), True)
    twin = synthesize_field(np.random.default_rng(5), "lncap", (128, 128), False)
    assert np.array_equal(with_artifacts.cells, twin.cells)
    difference = np.abs(with_artifacts.brightfield.astype(float) - twin.brightfield.astype(float))
    far_from_artifacts = ~_dilate(with_artifacts.artifact_mask, 12)
    assert difference[with_artifacts.artifact_mask].mean() > 3 * difference[far_from_artifacts].mean()


def _dilate(mask, iterations):
    from scipy import ndimage

    return ndimage.binary_dilation(mask, iterations=iterations)


def _noise_sigma(image):
    return np.median(np.abs(np.diff(image.astype(float), axis=1))) / 0.954


@pytest.mark.parametrize("kind", ARTIFACT_TYPES)
def test_every_artifact_type_is_visible_in_brightfield(kind):
    preset = dataclasses.replace(PRESETS["cho_m4r"], type_weights={kind: 1.0}, mean_artifacts=1.0)
    contrasts = []
    for index in range(6):
        field = synthesize_field(np.random.default_rng([21, index]), preset, (96, 96), True)
        twin = synthesize_field(np.random.default_rng([21, index]), preset, (96, 96), False)
        assert set(field.artifact_types) == {kind}
        change = np.abs(field.brightfield.astype(float) - twin.brightfield.astype(float))[field.artifact_mask]
        contrasts.append(change.mean() / _noise_sigma(twin.brightfield))
    assert np.median(contrasts) > 1.5


def test_artifacts_hide_the_cells_beneath():
    shape = (64, 64)
    spec = ArtifactSpec("debris", (32.0, 32.0), 900.0)
    layers = render_artifacts(np.random.default_rng(0), [spec], shape, cell_radius=20.0)
    assert layers.kinds == ["debris"]
    assert layers.occlusion[layers.mask].mean() > 0.5
    assert layers.occlusion[~_dilate(layers.mask, 6)].max() == 0.0


def test_artifact_kinds_draw_their_own_looks():
    shape = (96, 96)
    rng = np.random.default_rng(1)
    bubble = render_artifacts(rng, [ArtifactSpec("bubble", (48.0, 48.0), 1200.0)], shape, cell_radius=20.0)
    centre = bubble.absorbance[44:52, 44:52].mean()
    assert centre < 0 < bubble.absorbance[bubble.mask].max()  # light interior, dark rim
    fibre = render_artifacts(rng, [ArtifactSpec("fibre", (48.0, 48.0), 200.0)], shape, cell_radius=20.0)
    ys, xs = np.nonzero(fibre.mask)
    extent = max(np.ptp(ys), np.ptp(xs)) + 1
    assert extent**2 > 4 * fibre.mask.sum()  # long and thin
    clump = render_artifacts(rng, [ArtifactSpec("clump", (48.0, 48.0), 1500.0)], shape, cell_radius=20.0)
    bodies = peak_local_max(clump.thickness, min_distance=2, threshold_abs=0.1)
    assert len(bodies) >= 3  # several round detached cells in one clump
    with pytest.raises(ValueError, match="unknown artifact kind"):
        render_artifacts(rng, [ArtifactSpec("smudge", (5.0, 5.0), 9.0)], shape, cell_radius=20.0)


# --------------------------------------------------------------------------- statistics


@pytest.mark.parametrize(
    ("preset", "low", "high"),
    [("seven_cell_lines", 1.2, 3.0), ("lncap", 1.0, 2.0), ("cho_m4r", 9.5, 14.0)],
)
def test_artifact_counts_per_paper_sized_field(preset, low, high):
    rng = np.random.default_rng(0)
    counts = [len(sample_artifacts(rng, PRESETS[preset], PRESETS[preset].paper_shape)) for _ in range(1500)]
    assert min(counts) >= 1
    assert low <= np.mean(counts) <= high
    if preset == "cho_m4r":  # heavy-tailed: some fields have several times the mean
        assert max(counts) > 3 * np.mean(counts)


def test_a_crop_holds_fewer_artifacts_but_at_least_one():
    rng_crop, rng_paper = np.random.default_rng(5), np.random.default_rng(5)
    preset = PRESETS["cho_m4r"]
    crop = [len(sample_artifacts(rng_crop, preset, (256, 256))) for _ in range(1500)]
    paper = [len(sample_artifacts(rng_paper, preset, preset.paper_shape)) for _ in range(1500)]
    assert min(crop) >= 1
    share = 256 * 256 / (preset.paper_shape[0] * preset.paper_shape[1])
    expected = 1 + (preset.mean_artifacts - 1) * share
    assert np.mean(crop) == pytest.approx(expected, rel=0.15)
    assert np.mean(crop) < np.mean(paper) / 4


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_artifact_areas_span_pixels_to_half_the_field_with_heavy_tail(preset):
    spec = PRESETS[preset]
    shape = spec.paper_shape
    rng = np.random.default_rng(1)
    areas = np.array([a.area for _ in range(3000) for a in sample_artifacts(rng, spec, shape)])
    fractions = areas / (shape[0] * shape[1])
    assert fractions.min() < 1e-4  # a few pixels (LNCaP's fields are 5.5 Mpx)
    assert fractions.max() >= 0.15  # occasionally a large share of the field
    assert fractions.max() <= spec.max_area_fraction
    assert 0.6 * spec.mean_area_fraction <= fractions.mean() <= 1.5 * spec.mean_area_fraction
    assert fractions.mean() > 2.5 * np.median(fractions)  # heavy right tail
    assert stats.skew(np.log(fractions)) > -1.0  # roughly log-normal, not a few fixed sizes


def test_artifact_areas_are_in_pixels_whatever_the_crop_size():
    rng_small, rng_large = np.random.default_rng(2), np.random.default_rng(2)
    preset = PRESETS["cho_m4r"]
    small = np.array([a.area for _ in range(1500) for a in sample_artifacts(rng_small, preset, (192, 192))])
    large = np.array([a.area for _ in range(1500) for a in sample_artifacts(rng_large, preset, (384, 384))])
    assert np.median(large) == pytest.approx(np.median(small), rel=0.15)
    assert small.max() <= preset.max_area_fraction * 192 * 192  # clipped to the crop
    assert small.max() == pytest.approx(preset.max_area_fraction * 192 * 192)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_all_artifact_types_occur(preset):
    rng = np.random.default_rng(4)
    kinds = {a.kind for _ in range(400) for a in sample_artifacts(rng, PRESETS[preset], (128, 128))}
    assert kinds == set(ARTIFACT_TYPES)


def test_rendered_mask_areas_follow_the_requested_areas():
    shape = (160, 160)
    requested, drawn = [], []
    for index, kind in enumerate(["dust", "debris", "bubble", "out_of_focus", "clump"] * 3):
        area = [20.0, 300.0, 2000.0][index // 5]
        layers = render_artifacts(np.random.default_rng(index), [ArtifactSpec(kind, (80.0, 80.0), area)], shape, cell_radius=18.0)
        requested.append(area)
        drawn.append(layers.mask.sum())
    ratio = np.array(drawn) / np.array(requested)
    assert np.median(ratio) == pytest.approx(1.0, abs=0.5)
    assert np.corrcoef(np.log(requested), np.log(drawn))[0, 1] > 0.9


@pytest.mark.parametrize(("preset", "low", "high"), [("seven_cell_lines", 12, 32), ("cho_m4r", 3, 13)])
def test_cells_per_field_and_nucleus_size(preset, low, high):
    counts, nucleus_areas = [], []
    for index in range(8):
        field = synthesize_field(np.random.default_rng([8, index]), preset, (256, 256), False)
        counts.append(len(np.unique(field.cells[field.cells > 0])))
        nucleus_areas += list(np.bincount(field.nuclei.ravel())[1:][np.bincount(field.nuclei.ravel())[1:] > 0])
    assert low <= np.mean(counts) <= high
    if preset == "seven_cell_lines":  # ~400 px nuclei at 0.59 µm/px (paper §3.3.1)
        assert 250 <= np.median(nucleus_areas) <= 550


# --------------------------------------------------------------------------- fluorescence


def test_nuclear_stain_is_bright_in_nuclei_and_dimmed_under_blocking_artifacts():
    field = synthesize_field(np.random.default_rng(2), "seven_cell_lines", (128, 128), False)
    fluorescence = field.fluorescence.astype(float)
    assert np.median(fluorescence[field.nuclei > 0]) > 3 * np.median(fluorescence[field.cells == 0])


def test_membrane_ligand_signal_matches_the_requested_level():
    imaging = FluorescenceImaging(
        cell_signal=800.0, cell_variation=0.2, background=300.0, autofluorescence=800.0,
        offset=100.0, adu_per_electron=1.0, read_noise=3.0, psf_sigma=1.2,
        illumination=Illumination((0.0, 0.0, 0.0, 0.0, 0.0), 0.0, (0.0, 0.0)),
    )
    specific = []
    for index in range(6):
        field = synthesize_field(np.random.default_rng(index), "cho_m4r", (192, 192), False, fluorescence_imaging=imaging)
        fluorescence = field.fluorescence.astype(float)
        background = fluorescence[~_dilate(field.cells > 0, 6)].mean()
        specific.append(fluorescence[field.cells > 0].mean() - background)
        assert background == pytest.approx(100.0 + 300.0, rel=0.05)
    # The optics blur some membrane signal out of the cells; the mean stays close.
    assert np.mean(specific) == pytest.approx(800.0, rel=0.2)


# --------------------------------------------------------------------------- global cues


def _global_features(image):
    values = image.astype(np.float64).ravel()
    percentiles = np.percentile(values, [1, 5, 50, 95, 99])
    noise = np.median(np.abs(np.diff(image.astype(np.float64), axis=1))) / 0.954
    return np.array([values.mean(), values.std(), *percentiles, noise, stats.skew(values), stats.kurtosis(values)])


def _logistic_cv_accuracy(features, labels, folds=5, l2=1.0):
    """Cross-validated accuracy of an L2 logistic regression on standardised features."""
    order = np.random.default_rng(0).permutation(len(labels))
    correct = 0
    for test in np.array_split(order, folds):
        train = np.setdiff1d(order, test)
        mean, std = features[train].mean(0), features[train].std(0) + 1e-12
        x_train = np.c_[np.ones(train.size), (features[train] - mean) / std]
        x_test = np.c_[np.ones(test.size), (features[test] - mean) / std]
        y = labels[train]

        def loss(w):
            z = x_train @ w
            return np.sum(np.logaddexp(0, z) - y * z) + l2 * w[1:] @ w[1:]

        def grad(w):
            g = x_train.T @ (1 / (1 + np.exp(-(x_train @ w))) - y)
            g[1:] += 2 * l2 * w[1:]
            return g

        weights = optimize.minimize(loss, np.zeros(x_train.shape[1]), jac=grad, method="L-BFGS-B").x
        correct += np.sum(((x_test @ weights) > 0) == labels[test])
    return correct / len(labels)


def _balanced_population_features(preset, n_per_class, dark_corner=0):
    features, labels = [], []
    for index in range(2 * n_per_class):
        has_artifacts = index % 2 == 1
        field = synthesize_field(np.random.default_rng([31, index]), preset, (112, 112), has_artifacts)
        image = field.brightfield.astype(np.float64)
        if has_artifacts and dark_corner:
            image[:dark_corner, :dark_corner] = 0.0
        features.append(_global_features(image))
        labels.append(int(has_artifacts))
    return np.array(features), np.array(labels)


# Not LNCaP: its artifacts (median ~29 000 px at the paper's pixel size) fill half of a small
# crop, so there the artifact itself is a global cue.
@pytest.mark.parametrize("preset", ["seven_cell_lines", "cho_m4r"])
def test_artifacts_are_not_detectable_from_global_intensity_statistics(preset):
    features, labels = _balanced_population_features(preset, 90)
    assert _logistic_cv_accuracy(features, labels) <= 0.65


def test_global_statistics_classifier_does_find_a_real_global_cue():
    # Positive control for the test above: a black corner (2 % of the field) is caught.
    features, labels = _balanced_population_features("lncap", 30, dark_corner=16)
    assert _logistic_cv_accuracy(features, labels) >= 0.8


# --------------------------------------------------------------------------- plans


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_population_prevalence_matches_the_paper(preset):
    n = 5000
    plans = plan_fields(preset, n, seed=0, balanced=False)
    share = np.mean([p.with_artifacts for p in plans])
    expected = PRESETS[preset].prevalence
    assert abs(share - expected) <= 4 * np.sqrt(expected * (1 - expected) / n) + 1e-9


def test_balanced_plan_has_half_artifacts_in_every_split_and_is_independent_of_n():
    plans = plan_fields("seven_cell_lines", 200, seed=7, balanced=True)
    table = pd.DataFrame([dataclasses.asdict(p) for p in plans])
    assert table["with_artifacts"].sum() == 100
    for split, group in table.groupby("split"):
        assert group["with_artifacts"].mean() == 0.5, split
    shares = table["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.6) and shares["val"] == pytest.approx(0.2)
    assert plan_fields("seven_cell_lines", 37, seed=7, balanced=True) == plans[:37]
    assert plan_fields("seven_cell_lines", 200, seed=8, balanced=True) != plans


def test_cho_clean_fields_are_cleaned_twins_of_their_artifact_partner():
    plans = plan_fields("cho_m4r", 40, seed=1, balanced=True)
    for plan in plans:
        if plan.with_artifacts:
            assert not plan.cleaned and plan.source == plan.index
        else:
            partner = plans[plan.source]
            assert plan.cleaned and partner.with_artifacts and abs(plan.source - plan.index) == 1
            assert partner.split == plan.split


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_generate_dataset_writes_every_file_and_column(preset, tmp_path):
    manifest_path = generate_dataset(preset, tmp_path, n_images=4, seed=2, size=64, plate=SMALL_PLATE, progress=False)
    table = pd.read_csv(manifest_path, keep_default_na=False)
    assert list(table.columns) == MANIFEST_COLUMNS
    assert len(table) == 4 and sorted(table["label"]) == [0, 0, 1, 1]
    for row in table.to_dict("records"):
        image = tifffile.imread(tmp_path / row["image"])
        assert image.dtype == np.uint16 and image.shape == (64, 64)
        assert tifffile.imread(tmp_path / row["fluorescence"]).dtype == np.uint16
        for column in ("nuclei", "cells"):
            labels = tifffile.imread(tmp_path / row[column])
            assert labels.dtype == np.uint16 and labels.shape == (64, 64)
        mask = read_mask(tmp_path / row["mask"])
        assert mask.any() == bool(row["label"]) == (row["n_artifacts"] > 0)
        kinds = [k for k in row["artifact_types"].split(";") if k]
        assert set(kinds) <= set(ARTIFACT_TYPES) and bool(kinds) == bool(row["label"])
    validated = read_image_manifest(manifest_path, require_label=True)
    assert set(validated["split"]) <= {"train", "val", "test"}
    settings = json.loads((tmp_path / "synth.json").read_text())
    assert settings["preset"] == preset and settings["shape"] == [64, 64]
    assert settings["generator_version"] == GENERATOR_VERSION and is_current_dataset(tmp_path)
    assert (tmp_path / "plate.csv").exists() == (preset == "cho_m4r")


def test_same_seed_writes_identical_bytes_and_fields_do_not_depend_on_n_images(tmp_path):
    first = generate_dataset("cho_m4r", tmp_path / "a", n_images=4, seed=5, size=48, plate=SMALL_PLATE, progress=False)
    second = generate_dataset("cho_m4r", tmp_path / "b", n_images=4, seed=5, size=48, plate=SMALL_PLATE, progress=False)
    fewer = generate_dataset("cho_m4r", tmp_path / "c", n_images=3, seed=5, size=48, plate=None, progress=False)
    other = generate_dataset("cho_m4r", tmp_path / "d", n_images=4, seed=6, size=48, plate=None, progress=False)
    written = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(written) > 20
    for relative in written:
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes(), relative
    for name in ("images/0000.tif", "images/0001.tif", "images/0002.tif", "cells/0002.tif"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "c" / name).read_bytes(), name
    assert (tmp_path / "a" / "images/0000.tif").read_bytes() != (tmp_path / "d" / "images/0000.tif").read_bytes()
    assert first.read_text() == second.read_text()
    assert pd.read_csv(fewer).equals(pd.read_csv(first).head(3))


def test_cho_clean_image_is_the_artifact_image_with_artifacts_replaced(tmp_path):
    manifest_path = generate_dataset("cho_m4r", tmp_path, n_images=2, seed=3, size=96, plate=None, progress=False)
    table = read_image_manifest(manifest_path)
    artifact_row = table[table["label"] == 1].iloc[0]
    clean_row = table[table["label"] == 0].iloc[0]
    artifact_image, clean_image = read_image(artifact_row["image"]), read_image(clean_row["image"])
    artifact_mask = read_mask(artifact_row["mask"])
    assert artifact_mask.any() and not read_mask(clean_row["mask"]).any()
    assert np.array_equal(artifact_image[~artifact_mask], clean_image[~artifact_mask])
    assert not np.array_equal(artifact_image[artifact_mask], clean_image[artifact_mask])
    assert np.array_equal(read_labels(artifact_row["cells"]), read_labels(clean_row["cells"]))


def test_paper_size_and_size_options(tmp_path):
    manifest_path = generate_dataset("seven_cell_lines", tmp_path, n_images=1, seed=0, paper_size=True, progress=False)
    assert read_image(read_image_manifest(manifest_path)["image"][0]).shape == (1080, 1080)
    with pytest.raises(ArtsegInputError, match="either --size or --paper-size"):
        generate_dataset("lncap", tmp_path, n_images=1, size=64, paper_size=True, progress=False)
    with pytest.raises(ArtsegInputError, match="unknown preset"):
        generate_dataset("hela", tmp_path, n_images=1, progress=False)
    with pytest.raises(ArtsegInputError, match="n-images"):
        generate_dataset("lncap", tmp_path, n_images=0, progress=False)


# --------------------------------------------------------------------------- plate


def test_default_plate_design_follows_the_paper():
    design, truth = plate_design(0)
    assert len(design) == 720 and design["experiment"].nunique() >= 10
    assert design["ligand"].nunique() == 4
    for experiment, rows in design.groupby("experiment"):
        concentrations = np.sort(rows["concentration"].unique())
        assert concentrations[0] == 0.0 and len(concentrations) >= 9  # vehicle + 8
        log_steps = np.diff(np.log10(concentrations[1:]))
        assert np.allclose(log_steps, 0.5)
        true_log_ic50 = truth[experiment].log_ic50
        assert np.log10(concentrations[1]) < true_log_ic50 < np.log10(concentrations[-1])
        wells = rows.groupby("concentration")["well"].nunique()
        assert (wells == 2).all()  # duplicate wells
        assert (rows.groupby("well")["field"].nunique() == 4).all()
        assert rows["well"].str.fullmatch(r"[A-Z]\d\d").all()
    atropine = [t.log_ic50 for t in truth.values() if t.ligand == "atropine"]
    assert len(atropine) >= 2 and np.std(atropine) < 0.3 and abs(np.mean(atropine) + 9.0) < 0.3
    with pytest.raises(ArtsegInputError, match="at least 3 concentrations"):
        plate_design(0, n_concentrations=2)


def test_hill_response_limits():
    _, truth = plate_design(0, n_experiments=1)
    experiment = next(iter(truth.values()))
    assert hill_response(0.0, experiment) == pytest.approx(experiment.top)
    assert hill_response(1.0, experiment) == pytest.approx(experiment.bottom, rel=1e-3)
    midpoint = (experiment.top + experiment.bottom) / 2
    assert hill_response(10**experiment.log_ic50, experiment) == pytest.approx(midpoint)


def _fit_log_ic50(log_x, y):
    def hill(x, bottom, top, log_ic50):
        return bottom + (top - bottom) / (1 + 10 ** (x - log_ic50))

    start = [y.min(), y.max(), np.median(log_x)]
    params, _ = optimize.curve_fit(hill, log_x, y, p0=start, maxfev=20000)
    return params[2]


def test_plate_artifacts_bias_naive_log_ic50_and_masks_recover_it():
    design, truth = plate_design(4, n_experiments=3, n_concentrations=8, fields_per_well=4)
    sums = []  # per field: pixel sums and counts of cells and background, all / artifact-free
    for index, field in simulate_plate(design, truth, seed=4, shape=(160, 160)):
        fluorescence, cells, keep = field.fluorescence.astype(float), field.cells > 0, ~field.artifact_mask
        regions = (cells, ~cells, cells & keep, ~cells & keep)
        sums.append([value for region in regions for value in (fluorescence[region].sum(), region.sum())])
    columns = ["cell_sum", "cell_n", "bg_sum", "bg_n", "cell_kept_sum", "cell_kept_n", "bg_kept_sum", "bg_kept_n"]
    design[columns] = np.array(sums)
    errors = {"naive": [], "masked": []}
    for experiment, rows in design.groupby("experiment"):
        wells = rows.groupby(["well", "concentration"])[columns].sum().reset_index()
        specific = {
            "naive": wells["cell_sum"] / wells["cell_n"] - wells["bg_sum"] / wells["bg_n"],
            "masked": wells["cell_kept_sum"] / wells["cell_kept_n"] - wells["bg_kept_sum"] / wells["bg_kept_n"],
        }
        positive = wells["concentration"] > 0
        log_x = np.where(positive, np.log10(wells["concentration"].where(positive, 1.0)), -14.0)
        for mode in errors:
            errors[mode].append(abs(_fit_log_ic50(log_x, specific[mode].to_numpy()) - truth[experiment].log_ic50))
    assert np.mean(errors["masked"]) < 0.2
    assert np.mean(errors["naive"]) > np.mean(errors["masked"]) + 0.1


def test_generate_plate_writes_a_valid_plate_manifest_and_truth(tmp_path):
    plate_csv = generate_plate(tmp_path, seed=1, n_experiments=2, n_concentrations=3, wells_per_concentration=2, fields_per_well=2, size=(48, 64), progress=False)
    table = pd.read_csv(plate_csv)
    assert list(table.columns) == PLATE_COLUMNS
    assert len(table) == 2 * 4 * 2 * 2
    assert all(path.startswith("plate/") for path in table["brightfield"])
    validated = read_plate_manifest(plate_csv)
    assert read_image(validated["fluorescence"][0]).shape == (48, 64)
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert set(truth) == set(table["experiment"])
    for entry in truth.values():
        assert {"ligand", "log_ic50", "top", "bottom"} <= set(entry)
    masks = [read_mask(p).any() for p in validated["artifact_mask"]]
    assert np.mean(masks) > 0.8  # 99.2 % prevalence
    kinds = table["artifact_types"].fillna("")
    assert [bool(k) for k in kinds] == masks  # a field lists kinds exactly when it has artifacts
    assert set(";".join(kinds).split(";")) - {""} <= set(PRESETS["cho_m4r"].type_weights)


# --------------------------------------------------------------------------- CLI


def test_cli_synth_writes_dataset_plate_and_preview(tmp_path, capsys):
    out = tmp_path / "cho"
    status = main(
        ["synth", "--preset", "cho_m4r", "--out", str(out), "--n-images", "12", "--size", "48", "64",
         "--plate-experiments", "1", "--plate-concentrations", "3", "--plate-fields-per-well", "1", "--preview", "--quiet"]
    )
    assert status == 0
    assert "12 fields" in capsys.readouterr().out
    table = pd.read_csv(out / "manifest.csv")
    assert len(table) == 12 and table["label"].sum() == 6
    assert read_image(out / table["image"][0]).shape == (48, 64)
    assert len(pd.read_csv(out / "plate.csv")) == 4 * 2
    preview = read_image(out / "preview.png")
    assert preview.shape[0] > 48


def test_cli_synth_population_and_bad_input(tmp_path, capsys):
    assert main(["synth", "--preset", "lncap", "--out", str(tmp_path), "--n-images", "3", "--size", "40", "--population", "--quiet"]) == 0
    assert len(pd.read_csv(tmp_path / "manifest.csv")) == 3
    assert main(["synth", "--preset", "lncap", "--out", str(tmp_path), "--size", "8", "--quiet"]) == 2
    assert "outside 32..8192" in capsys.readouterr().err
