"""The held-out look (benchmarks/heldout_look): deterministic files, a readable manifest, honest masks."""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from artseg.errors import ArtsegInputError  # noqa: E402
from artseg.io import read_image, read_image_manifest, read_mask  # noqa: E402
from benchmarks.heldout_look import ARTIFACT_KINDS, render_field, split_plan, write_heldout_look  # noqa: E402

N_FIELDS, SIZE = 12, 64


@pytest.fixture(scope="module")
def looks(tmp_path_factory):
    """The same small look written twice with seed 5, and once with seed 6."""
    root = tmp_path_factory.mktemp("heldout_look")
    return {name: write_heldout_look(root / name, n_images=N_FIELDS, size=SIZE, seed=seed).parent
            for name, seed in (("first", 5), ("again", 5), ("other", 6))}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_same_seed_writes_the_same_bytes_and_another_seed_other_pixels(looks):
    first, again, other = (_files(looks[name]) for name in ("first", "again", "other"))
    assert first == again
    images = [name for name in first if name.endswith(".tif")]
    assert len(images) == N_FIELDS
    assert all(first[name] != other[name] for name in images)


def test_the_manifest_reads_as_an_image_manifest_with_half_the_fields_of_each_split_artifacts(looks):
    manifest = read_image_manifest(looks["first"] / "manifest.csv", require_label=True)
    assert list(manifest.columns[:4]) == ["image", "label", "mask", "split"]
    counts = manifest.groupby("split")["label"].agg(["size", "sum"]).to_dict("index")
    assert counts == {"train": {"size": 7, "sum": 4}, "val": {"size": 2, "sum": 1}, "test": {"size": 3, "sum": 2}}
    for row in manifest.itertuples():
        image = read_image(row.image)
        assert image.shape == (SIZE, SIZE) and 0 < image.max() <= 4095 and image.std() > 0
        if row.label:
            assert read_mask(row.mask).any()
            assert row.artifact_kinds and set(row.artifact_kinds.split(";")) <= set(ARTIFACT_KINDS)
        else:
            assert row.mask is None and row.artifact_kinds == ""


def test_the_default_split_is_72_18_30_with_half_of_each_with_artifacts():
    plan = split_plan(120, seed=0)
    counts = plan.groupby("split")["label"].agg(["size", "sum"]).to_dict("index")
    assert counts == {"train": {"size": 72, "sum": 36}, "val": {"size": 18, "sum": 9},
                      "test": {"size": 30, "sum": 15}}
    assert list(plan["field"]) == list(range(120))
    assert not plan.equals(split_plan(120, seed=1))


def test_every_kind_appears_and_masks_cover_plausible_fractions():
    kinds, fractions = collections.Counter(), []
    for index in range(40):
        field = render_field(11, index, size=96)
        kinds.update(field.kinds)
        fractions.append(field.mask.mean())
    assert set(kinds) == set(ARTIFACT_KINDS)
    assert min(kinds.values()) >= 3
    assert 0.0005 < min(fractions) and max(fractions) < 0.5
    assert 0.005 < np.median(fractions) < 0.2


def test_the_mask_marks_where_the_artifacts_change_the_field():
    for index in range(12):
        with_artifacts = render_field(3, index, size=SIZE)
        clean = render_field(3, index, size=SIZE, with_artifacts=False)
        assert not clean.mask.any() and clean.kinds == ()
        change = np.abs(with_artifacts.image.astype(float) - clean.image.astype(float))
        # phase-contrast halos spill a few pixels past an artifact's outline; beyond them nothing changes
        beyond_halo = ~ndimage.binary_dilation(with_artifacts.mask, iterations=8)
        inside = change[with_artifacts.mask].mean()
        assert inside > 50 and inside > 10 * change[beyond_halo].mean(), (index, with_artifacts.kinds)


def test_sixteen_bit_fields_use_the_sixteen_bit_range():
    field = render_field(0, 1, size=SIZE, bit_depth=16)
    assert field.image.dtype == np.uint16 and field.image.max() > 4095


@pytest.mark.parametrize("settings, flag", [({"n_images": 5}, "--n-images"), ({"size": 32}, "--size"),
                                            ({"bit_depth": 8}, "--bit-depth")])
def test_bad_settings_name_the_option(tmp_path, settings, flag):
    with pytest.raises(ArtsegInputError, match=flag):
        write_heldout_look(tmp_path / "look", **{"n_images": 6, "size": 48, **settings})


def test_the_benchmark_reuses_its_cached_look_and_regenerates_a_stale_one(tmp_path, monkeypatch):
    monkeypatch.setenv("ARTSEG_CACHE", str(tmp_path))
    from benchmarks.bench_generalisation import heldout_look_folder

    folder = heldout_look_folder(n_images=6, size=48, seed=2)
    assert folder.parent == tmp_path / "heldout_look"
    image = folder / read_image_manifest(folder / "manifest.csv")["image"][0]
    image.write_bytes(b"stale")
    assert heldout_look_folder(n_images=6, size=48, seed=2) == folder and image.read_bytes() == b"stale"
    record = json.loads((folder / "look.json").read_text())
    (folder / "look.json").write_text(json.dumps({**record, "look_version": -1}))
    heldout_look_folder(n_images=6, size=48, seed=2)
    assert image.read_bytes() != b"stale" and read_image(image).shape == (48, 48)
