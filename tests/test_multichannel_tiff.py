"""OME-TIFF, multi-page and 12-bit images (one plane chosen with ``#channel=``) through predict and ligand analysis."""

import tracemalloc

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import tifffile

from analysis import ligand_affinity
from artseg import io
from artseg.cli import main
from artseg.errors import ArtsegInputError
from artseg.synth import PlateOptions, generate_dataset

from .test_segmenter import tiny_config

CHANNELS = ["Bright field", "RFP", "artifacts", "cells"]
PLANES = ("brightfield", "fluorescence", "artifact_mask", "cell_truth")


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    """A 128² synthetic plate (2 experiments) repacked as OME-TIFFs and multi-page TIFFs, and a tiny model.

    The model is an untrained (seeded) strong-mode U-Net: loadable and deterministic, which
    is all a same-pixels-same-results test needs.
    """
    import torch

    from artseg.nets import build_network
    from artseg.calibration import Calibration
    from artseg.pixel_model import PixelSegmenter

    root = tmp_path_factory.mktemp("multichannel")
    generate_dataset("cho_m4r", root / "data", n_images=4, seed=3, size=128, progress=False,
                     plate=PlateOptions(n_experiments=2, n_concentrations=4, wells_per_concentration=2,
                                        fields_per_well=1))
    single = pd.read_csv(root / "data" / "plate.csv")
    for column in PLANES:
        single[column] = [str(root / "data" / p) for p in single[column]]
    single["cell_mask"] = single["cell_truth"]
    single = single.drop(columns="cell_truth")
    single.to_csv(root / "single.csv", index=False)

    ome, pages = single.copy(), single.copy()
    (root / "ome").mkdir()
    (root / "pages").mkdir()
    for index, row in single.iterrows():
        planes = np.stack([io.read_image_raw(row[c]).astype(np.uint16)
                           for c in ("brightfield", "fluorescence", "artifact_mask", "cell_mask")])
        name = f"{row['experiment']}_{row['well']}_f{row['field']}"
        tifffile.imwrite(root / "ome" / f"{name}.ome.tif", planes,
                         metadata={"axes": "CYX", "Channel": {"Name": CHANNELS}})
        with tifffile.TiffWriter(root / "pages" / f"{name}.tif") as tif:
            for plane in planes:  # one page each, no shape metadata: a plain multi-page TIFF
                tif.write(plane, contiguous=False, metadata=None)
        for column, channel in zip(("brightfield", "fluorescence", "artifact_mask", "cell_mask"), CHANNELS):
            ome.loc[index, column] = f"ome/{name}.ome.tif#channel={channel}"
            pages.loc[index, column] = f"pages/{name}.tif#channel={CHANNELS.index(channel)}"
    ome.to_csv(root / "ome.csv", index=False)
    pages.to_csv(root / "pages.csv", index=False)

    config = tiny_config(mode="strong")
    segmenter = PixelSegmenter(config)
    torch.manual_seed(0)
    segmenter.unet = build_network(config.unet)
    segmenter.calibration = Calibration(cutoff=0.5, min_object_size=0, selected_on="config")
    segmenter.save(root / "model")
    return root


def test_each_plane_reads_as_its_single_file(plate):
    single = io.read_plate_manifest(plate / "single.csv")
    for name in ("ome.csv", "pages.csv"):
        packed = io.read_plate_manifest(plate / name)  # shape checks read the chosen planes' headers
        assert packed["brightfield"].str.contains("#channel=").all()
        for column in ("brightfield", "fluorescence"):
            for original, chosen in zip(single[column][:3], packed[column][:3]):
                np.testing.assert_array_equal(io.read_image(chosen), io.read_image(original))
                assert io.image_shape(chosen) == io.image_shape(original) == (128, 128)
        np.testing.assert_array_equal(io.read_mask(packed["cell_mask"][0]), io.read_mask(single["cell_mask"][0]))


def _ligand(plate, manifest, out, modes):
    argv = ["--manifest", str(plate / manifest), "--model", str(plate / "model"), "--out", str(out),
            "--modes", modes, "--quiet"]
    assert ligand_affinity.main(argv) is not None
    return pd.read_csv(out / "wells.csv"), pd.read_csv(out / "fits.csv")


def test_ligand_analysis_is_the_same_on_ome_and_multipage_planes(plate, tmp_path):
    # manual and none read every plane (brightfield, fluorescence, both masks); the model mode
    # reads the same brightfield plane again, and predict is checked on OME planes below
    wells, fits = _ligand(plate, "single.csv", tmp_path / "single", "manual,none")
    assert len(fits) == 2 * 2 and fits["success"].all()
    assert wells["n_fields"].gt(0).sum() > len(wells) / 2
    for name in ("ome.csv", "pages.csv"):
        packed_wells, packed_fits = _ligand(plate, name, tmp_path / name, "manual,none")
        pd.testing.assert_frame_equal(packed_wells, wells)
        pd.testing.assert_frame_equal(packed_fits, fits)


def test_unknown_channel_is_one_line_naming_file_and_channel(plate, tmp_path, capsys):
    table = pd.read_csv(plate / "ome.csv")
    table.loc[2, "fluorescence"] = table.loc[2, "fluorescence"].replace("#channel=RFP", "#channel=GFP")
    table.to_csv(plate / "wrong_channel.csv", index=False)
    argv = ["--manifest", str(plate / "wrong_channel.csv"), "--model", str(plate / "model"),
            "--out", str(tmp_path / "out"), "--quiet"]
    assert ligand_affinity.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "row 4" in err and ".ome.tif#channel=GFP" in err and "'RFP'" in err
    assert not (tmp_path / "out" / "fits.csv").exists()


def test_predict_on_ome_planes_and_12_bit_fields(plate, tmp_path):
    from artseg.pixel_model import PixelSegmenter

    single = pd.read_csv(plate / "single.csv")
    stretched, twelve_bit = [], []
    for index, path in enumerate(single["brightfield"][:2]):
        # a 12-bit camera's values (0..4095) in a 16-bit TIFF, and the same field stretched to 16 bits
        values = (io.read_image_raw(path).astype(np.uint32) * 4095 // 65535).astype(np.uint16)
        tifffile.imwrite(tmp_path / f"bit12_{index}.tif", values)
        tifffile.imwrite(tmp_path / f"bit16_{index}.tif", (values * 16).astype(np.uint16))
        twelve_bit.append(f"bit12_{index}.tif")
        stretched.append(f"bit16_{index}.tif")
    assert io.read_image_raw(tmp_path / "bit12_0.tif").max() <= 4095
    ome = pd.read_csv(plate / "ome.csv")
    images = [str(plate / p) for p in ome["brightfield"][:2]] + twelve_bit + stretched
    pd.DataFrame({"image": images}).to_csv(tmp_path / "images.csv", index=False)
    assert main(["predict", "--model", str(plate / "model"), "--input", str(tmp_path / "images.csv"),
                 "--out", str(tmp_path / "pred"), "--save-prob", "--quiet"]) == 0
    predicted = pd.read_csv(tmp_path / "pred" / "predictions.csv").set_index("image")
    assert len(predicted) == 6
    segmenter = PixelSegmenter.load(plate / "model")
    for packed, original in zip(ome["brightfield"][:2], single["brightfield"][:2]):
        expected = segmenter.predict(io.read_image(original))
        name = packed.split("/")[-1]  # outside the manifest's folder: keyed by file name (and channel)
        assert name.endswith(".ome.tif#channel=Bright field")
        assert predicted.loc[name, "p_artifact"] == pytest.approx(expected.p_artifact, abs=1e-6)
        mask = io.read_mask(tmp_path / "pred" / name.replace(".tif#channel=Bright field", ".png"))
        np.testing.assert_array_equal(mask, expected.mask)
    # percentile normalisation makes the container's bit depth irrelevant: same masks, same numbers
    columns = ["p_artifact", "artifact_fraction", "n_objects", "contains_artifact"]
    np.testing.assert_array_equal(predicted.loc[twelve_bit, columns].to_numpy(),
                                  predicted.loc[stretched, columns].to_numpy())
    for index in range(2):
        np.testing.assert_array_equal(io.read_image(tmp_path / "pred" / f"bit12_{index}_prob.tif"),
                                      io.read_image(tmp_path / "pred" / f"bit16_{index}_prob.tif"))


def test_a_large_field_is_read_one_plane_at_a_time(tmp_path):
    height, width = 2156, 2556  # a 5.5-megapixel sCMOS field
    planes = np.zeros((3, height, width), np.uint16)
    planes[1, ::7, ::5] = 4095
    path = tmp_path / "big.ome.tif"
    tifffile.imwrite(path, planes, metadata={"axes": "CYX", "Channel": {"Name": ["BF", "RFP", "DAPI"]}})
    del planes
    plane_bytes = height * width * 2
    tracemalloc.start()
    try:
        assert io.image_shape(f"{path}#channel=RFP") == (height, width)
        header_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        rfp = io.read_image_raw(f"{path}#channel=RFP")
        read_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rfp.shape == (height, width) and rfp.dtype == np.uint16 and int(rfp.max()) == 4095
    assert header_peak < plane_bytes / 20
    assert read_peak < 1.5 * plane_bytes  # one plane, not the file's three


@pytest.mark.parametrize("suffix, needle", [
    ("#channel=7", "out of range"),
    ("#channel=Cy5", "no channel named 'Cy5'"),
    ("#channel=", "expected FILE#channel=NAME"),
])
def test_bad_channel_choices(tmp_path, suffix, needle):
    path = tmp_path / "field.ome.tif"
    tifffile.imwrite(path, np.zeros((2, 8, 8), np.uint16), metadata={"axes": "CYX", "Channel": {"Name": ["BF", "RFP"]}})
    for reader in (io.read_image, io.image_shape):
        with pytest.raises(ArtsegInputError, match=needle) as caught:
            reader(f"{path}{suffix}")
        assert "\n" not in str(caught.value)


def test_a_stack_without_a_channel_choice_says_how_to_choose(tmp_path):
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(path, np.zeros((2, 8, 8), np.uint16), metadata={"axes": "CYX"})
    for reader in (io.read_image, io.image_shape):
        with pytest.raises(ArtsegInputError, match="expected one 2-D image.*#channel=NAME or #channel=INDEX"):
            reader(path)


def test_channel_names_are_matched_ignoring_case_and_rgb_samples_by_index(tmp_path):
    ome = tmp_path / "field.ome.tif"
    planes = np.arange(2 * 4 * 5, dtype=np.uint16).reshape(2, 4, 5)
    tifffile.imwrite(ome, planes, metadata={"axes": "CYX", "Channel": {"Name": ["Bright Field", "RFP"]}})
    np.testing.assert_array_equal(io.read_image_raw(f"{ome}#channel=bright field"), planes[0])
    np.testing.assert_array_equal(io.read_image_raw(f"{ome}#channel=1"), planes[1])
    rgb = np.random.default_rng(0).integers(0, 255, (4, 5, 3)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    np.testing.assert_array_equal(io.read_image_raw(f"{tmp_path / 'rgb.tif'}#channel=2"), rgb[..., 2])
    iio.imwrite(tmp_path / "rgb.png", rgb)
    with pytest.raises(ArtsegInputError, match="needs a TIFF"):
        io.read_image(f"{tmp_path / 'rgb.png'}#channel=0")
    with pytest.raises(ArtsegInputError, match="still has T=2"):
        tifffile.imwrite(tmp_path / "movie.ome.tif", np.zeros((2, 2, 4, 5), np.uint16), metadata={"axes": "TCYX"})
        io.read_image(f"{tmp_path / 'movie.ome.tif'}#channel=0")
