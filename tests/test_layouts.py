"""Tests for artseg.layouts (ArtSeg-CHO-M4R folder layout) and ``artseg import-cho-m4r``."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest

from artseg import io
from artseg.cli import main
from artseg.errors import ArtsegInputError
from artseg.layouts import import_cho_m4r

SHAPE = (12, 10)


def _image(path: Path, value: int = 50) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.full(SHAPE, value, np.uint8))


def _cho_layout(root: Path) -> Path:
    """train: 2 clean + 3 artifact (stems 1, 2, 10), validation: 1 + 1, test: 1 artifact only."""
    for name in ("c1.png", "c2.png"):
        _image(root / "train" / "clean" / name)
    for stem in ("1", "2", "10"):
        _image(root / "train" / "artifact" / "x" / f"{stem}.png")
        _image(root / "train" / "artifact" / "y" / f"{stem}.png", 255)
    _image(root / "validation" / "clean" / "v.png")
    _image(root / "validation" / "artifact" / "x" / "a.png")
    _image(root / "validation" / "artifact" / "y" / "a.tif")  # pairing is by stem, not suffix
    _image(root / "test" / "artifact" / "x" / "t.png")
    _image(root / "test" / "artifact" / "y" / "t.png", 255)
    (root / "train" / "clean" / ".DS_Store").write_bytes(b"\0")
    (root / "train" / "clean" / "README.txt").write_text("not an image")
    return root


def test_import_cho_m4r_builds_manifest(tmp_path):
    root = _cho_layout(tmp_path / "cho")
    manifest = import_cho_m4r(root)
    assert list(manifest.columns) == ["image", "label", "mask", "split"]
    assert manifest["split"].tolist() == ["train"] * 5 + ["val"] * 2 + ["test"]
    assert manifest["label"].tolist() == [0, 0, 1, 1, 1, 0, 1, 1]
    names = [Path(p).name for p in manifest["image"]]
    assert names == ["c1.png", "c2.png", "1.png", "2.png", "10.png", "v.png", "a.png", "t.png"]
    for image, mask, label in zip(manifest["image"], manifest["mask"], manifest["label"]):
        assert Path(image).is_absolute()
        if label == 1:
            assert Path(mask).parent.name == "y" and Path(mask).stem == Path(image).stem
        else:
            assert mask is None


def test_import_cho_m4r_writes_relative_csv_readable_as_manifest(tmp_path):
    root = _cho_layout(tmp_path / "cho")
    out_csv = tmp_path / "manifests" / "cho.csv"
    returned = import_cho_m4r(root, out_csv)
    raw = pd.read_csv(out_csv, dtype=str, keep_default_na=False)
    assert raw["image"][0] == "../cho/train/clean/c1.png"
    assert raw["mask"][0] == "" and raw["mask"][2] == "../cho/train/artifact/y/1.png"
    reread = io.read_image_manifest(out_csv, require_label=True)
    assert reread["image"].tolist() == returned["image"].tolist()
    assert reread["mask"].tolist() == returned["mask"].tolist()
    assert reread["label"].tolist() == returned["label"].tolist()
    assert not any(p.name.startswith(".") for p in out_csv.parent.iterdir())


def test_missing_mask_names_the_image(tmp_path):
    root = _cho_layout(tmp_path / "cho")
    (root / "train" / "artifact" / "y" / "2.png").unlink()
    with pytest.raises(ArtsegInputError, match=r"train/artifact/x/2\.png: no mask named 2\.\*"):
        import_cho_m4r(root, tmp_path / "m.csv")
    assert not (tmp_path / "m.csv").exists()


def test_orphan_mask_names_the_mask(tmp_path):
    root = _cho_layout(tmp_path / "cho")
    _image(root / "test" / "artifact" / "y" / "lonely.png")
    with pytest.raises(ArtsegInputError, match=r"test/artifact/y/lonely\.png: no image named lonely"):
        import_cho_m4r(root)


@pytest.mark.parametrize(
    ("setup", "pattern"),
    [
        (lambda root: root.mkdir(), "no train, validation or test folder"),
        (lambda root: (root / "train" / "clean").mkdir(parents=True), "no images found"),
        (lambda root: (root / "train" / "artifact" / "x").mkdir(parents=True), r"artifact masks \(y\) not found"),
        (lambda root: None, "dataset folder not found"),
    ],
)
def test_bad_layouts(tmp_path, setup, pattern):
    root = tmp_path / "cho"
    setup(root)
    with pytest.raises(ArtsegInputError, match=pattern):
        import_cho_m4r(root)


def test_ambiguous_stems_are_rejected(tmp_path):
    root = _cho_layout(tmp_path / "cho")
    _image(root / "train" / "artifact" / "x" / "1.tif")
    with pytest.raises(ArtsegInputError, match="two images named '1'"):
        import_cho_m4r(root)


def test_import_command(tmp_path, capsys):
    root = _cho_layout(tmp_path / "cho")
    assert main(["import-cho-m4r", str(root), "--out", str(tmp_path / "m.csv")]) == 0
    assert "8 images" in capsys.readouterr().out
    assert len(io.read_image_manifest(tmp_path / "m.csv")) == 8
    assert main(["import-cho-m4r", str(root)]) == 0
    assert (root / "manifest.csv").is_file()
    capsys.readouterr()
    (root / "test" / "artifact" / "y" / "t.png").unlink()
    assert main(["import-cho-m4r", str(root), "--out", str(tmp_path / "m2.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "t.png" in err[0]
    assert not (tmp_path / "m2.csv").exists()
