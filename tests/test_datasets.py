"""The one cache of generated datasets (artseg.datasets)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

import artseg.datasets as datasets
from tests.test_detectors import make_tiny_dataset


def test_a_dataset_is_generated_once_and_regenerated_when_its_record_differs(tmp_path, monkeypatch):
    calls = []

    def fake_generate(preset, out_dir, **settings):
        calls.append((preset, settings))
        return make_tiny_dataset(Path(out_dir), n_images=settings["n_images"])

    monkeypatch.setenv("ARTSEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "generate_dataset", fake_generate)
    first = datasets.synthetic_dataset("lncap", n_images=8, seed=3, size=64, progress=False)
    assert datasets.synthetic_dataset("lncap", n_images=8, seed=3, size=64, progress=False) == first
    assert first == tmp_path / "cache" / "datasets" / "lncap-n8-seed3-64px" and len(calls) == 1
    assert calls[0][1]["seed"] == 3 and calls[0][1]["size"] == 64 and calls[0][1]["plate"] is None
    assert len(pd.read_csv(first / "manifest.csv")) == 8
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no staging folder left

    record = json.loads((first / "generation.json").read_text())
    assert record == datasets.generation_settings("lncap", 3, 8, 64)
    (first / "generation.json").write_text(json.dumps({**record, "generator_version": -1}))  # an older generator
    assert datasets.synthetic_dataset("lncap", n_images=8, seed=3, size=64, progress=False) == first
    assert len(calls) == 2 and json.loads((first / "generation.json").read_text()) == record

    other = datasets.synthetic_dataset("lncap", n_images=4, seed=3, size=64, progress=False)
    assert other != first and len(calls) == 3  # other settings live beside, not in place


def test_an_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    def failing(preset, out_dir, **settings):
        (Path(out_dir) / "manifest.csv").write_text("image,label\n")
        raise KeyboardInterrupt

    monkeypatch.setenv("ARTSEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "generate_dataset", failing)
    try:
        datasets.synthetic_dataset("cho_m4r", n_images=4, seed=0, size=64, plate=True, progress=False)
    except KeyboardInterrupt:
        pass
    assert list((tmp_path / "cache" / "datasets").iterdir()) == []
