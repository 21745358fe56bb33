"""``artseg plate-manifest`` and artseg.platemap: imager exports + plate maps -> plate manifest."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from artseg import platemap
from artseg.cli import main
from artseg.errors import ArtsegInputError
from artseg.io import read_plate_manifest

GUID = "6E29C7D9-A76F-4C4F-8D9D-E1E0B2B1E1F8"


def grid_csv(path: Path, values: dict, rows: str = "ABCDEFGH", columns: int = 12, sep: str = ",") -> Path:
    """Write a plate map drawn as a grid, as a pharmacologist's spreadsheet exports it."""
    lines = [sep.join(["", *map(str, range(1, columns + 1))])]
    for row in rows:
        lines.append(sep.join([row, *(str(values.get(f"{row}{c}", "")) for c in range(1, columns + 1))]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------- pure functions


@pytest.mark.parametrize("text, well", [
    ("B3", "B03"), ("B03", "B03"), ("b003", "B03"), ("r02c03", "B03"), ("R16C24", "P24"),
    ("AF48", "AF48"), ("r27c01", "AA01"), ("A0", None), ("r00c01", None), ("3B", None), ("", None),
])
def test_normalize_well(text, well):
    assert platemap.normalize_well(text) == well


def test_grid_maps_of_96_and_384_wells(tmp_path):
    small = platemap.read_csv_cells(grid_csv(tmp_path / "96.csv", {"B3": "10", "H12": "0"}))
    assert platemap.parse_grid_map(small, "96.csv") == {"B03": "10", "H12": "0"}
    big = grid_csv(tmp_path / "384.csv", {"P24": "x", "A1": "y"}, rows="ABCDEFGHIJKLMNOP", columns=24, sep=";")
    assert platemap.parse_grid_map(platemap.read_csv_cells(big), "384.csv") == {"A01": "y", "P24": "x"}
    # spreadsheets add empty trailing rows and columns
    padded = [row + ["", ""] for row in small] + [[""] * 15, []]
    assert platemap.parse_grid_map(padded, "96.csv") == {"B03": "10", "H12": "0"}


@pytest.mark.parametrize("edit, needle", [
    (lambda cells: cells[:-1], "7 row(s) × 12 column(s)"),
    (lambda cells: [row[:-1] for row in cells], "8 row(s) × 11 column(s)"),
    (lambda cells: [cells[0][:3] + ["x"] + cells[0][4:], *cells[1:]], "column numbers 1..12"),
    (lambda cells: [cells[0], *cells[2:], cells[1]], "row letters A..H"),
])
def test_grid_of_the_wrong_shape_is_refused(edit, needle):
    cells = [["", *map(str, range(1, 13))]] + [[row, *[""] * 11, "1"] for row in "ABCDEFGH"]
    with pytest.raises(ArtsegInputError, match=re.escape(needle)) as caught:
        platemap.parse_grid_map(edit(cells), "map.csv")
    assert str(caught.value).startswith("map.csv: ")


def test_long_map_and_combined_concentrations_in_molar():
    cells = [["well", "experiment", "ligand", "concentration", "replicate"],
             ["B3", "E1", "atropine", "10", "1"], ["B04", "E1", "atropine", "0", "2"], ["", "", "", "", ""]]
    maps = {name: (values, "map.csv") for name, values in platemap.parse_long_map(cells, "map.csv").items()}
    table = platemap.combine_plate_maps(maps, concentration_unit="nM")
    assert list(table.index) == ["B03", "B04"]
    assert list(table.columns) == ["experiment", "ligand", "concentration", "replicate"]
    assert table["concentration"].tolist() == [1e-8, 0.0]  # decimal-exact, not 1.0000000000000001e-08
    with pytest.raises(ArtsegInputError, match="row 3: well B03 is listed twice"):
        platemap.parse_long_map([cells[0], cells[1], cells[1]], "map.csv")


@pytest.mark.parametrize("value", ["ten", "-5", "nan", "1,5"])
def test_bad_concentrations(value):
    maps = {"experiment": ({"A01": "E"}, "e.csv"), "ligand": ({"A01": "L"}, "l.csv"),
            "concentration": ({"A01": value}, "c.csv")}
    with pytest.raises(ArtsegInputError, match=f"c.csv: well A01: concentration '{value}' is not a number >= 0"):
        platemap.combine_plate_maps(maps, concentration_unit="uM")


def test_match_images_reads_groups_and_counts_the_rest():
    pattern = platemap.compile_pattern(platemap.LAYOUTS["metaxpress"].pattern, ignore_case=True)
    names = [f"P1_B03_s2_w1{GUID}.TIF", "P1_C04_w2.tif", f"P1_B03_s2_w1_thumb{GUID}.tif", "P1.HTD"]
    table, unmatched = platemap.match_images(names, pattern)
    assert table[["well", "field", "channel", "plate"]].values.tolist() == [
        ["B03", 2, "w1", "P1"], ["C04", 1, "w2", "P1"]]
    assert unmatched == 2
    with pytest.raises(ArtsegInputError, match=r"lacks the named group\(s\) \(\?P<field>"):
        platemap.compile_pattern(r"(?P<well>\w+)_(?P<channel>\w+)\.tif")


# --------------------------------------------------------------------------- the command

DESIGN = {  # experiment -> (ligand, rows of replicate wells, concentrations in nM for columns 2..5)
    "atropine_1": ("atropine", "BC", ["0", "1", "10", "100"]),
    "pirenzepine_1": ("pirenzepine", "EF", ["0", "3", "30", "300"]),
}
SITES = (1, 2)


def _tiff(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.random.default_rng(seed).integers(0, 4096, (16, 16)).astype(np.uint16))


@pytest.fixture
def gen5_export(tmp_path):
    """A Gen5 export (unpadded wells, spaces in channel names, an unused DAPI channel), the three
    grid maps in nM and the manifest a person would have written by hand."""
    export = tmp_path / "export"
    values = {"experiment": {}, "ligand": {}, "concentration": {}}
    hand = []
    seed = 0
    for experiment, (ligand, rows, concentrations) in DESIGN.items():
        for row in rows:
            for column, nanomolar in zip(range(2, 6), concentrations):
                well = f"{row}{column}"
                values["experiment"][well], values["ligand"][well] = experiment, ligand
                values["concentration"][well] = nanomolar
                for site in SITES:
                    names = {channel: f"{well}_04_1_{site}_{channel}_001.tif"
                             for channel in ("Bright Field", "Texas Red", "DAPI")}
                    for name in names.values():
                        seed += 1
                        _tiff(export / name, seed)
                    hand.append({"experiment": experiment, "ligand": ligand,
                                 "concentration": float(nanomolar) * 1e-9, "well": f"{row}{column:02d}",
                                 "field": site, "brightfield": f"export/{names['Bright Field']}",
                                 "fluorescence": f"export/{names['Texas Red']}"})
    _tiff(export / "H12_04_1_1_Bright Field_001.tif", 99)  # imaged, but in no plate map
    _tiff(export / "H12_04_1_1_Texas Red_001.tif", 98)
    (export / "Experiment1.xpt").write_text("Gen5 experiment file")
    maps = {name: grid_csv(tmp_path / "maps" / f"{name}.csv", grid) for name, grid in values.items()}
    pd.DataFrame(hand).to_csv(tmp_path / "by_hand.csv", index=False)
    return tmp_path, maps


def _argv(root, maps, *extra, out="plate.csv"):
    return ["plate-manifest", "--images", str(root / "export"), "--layout", "gen5",
            "--channel", "brightfield=Bright Field", "--channel", "fluorescence=Texas Red",
            *(f"--plate-map={name}={path}" for name, path in maps.items()),
            "--concentration-unit", "nM", "--out", str(root / out), *extra]


def _by_well(manifest):
    return manifest.sort_values(["well", "field"]).reset_index(drop=True)


def test_written_manifest_equals_the_hand_written_one(gen5_export, capsys):
    root, maps = gen5_export
    assert main(_argv(root, maps)) == 0
    captured = capsys.readouterr()
    assert "wrote" in captured.out and "32 fields in 16 wells" in captured.out
    assert "'DAPI' (32 files)" in captured.out
    assert "1 well(s) with images are in no plate map" in captured.err and "H12" in captured.err
    written = pd.read_csv(root / "plate.csv")
    assert list(written.columns) == ["experiment", "ligand", "concentration", "well", "field",
                                     "brightfield", "fluorescence"]
    assert written["brightfield"].str.startswith("export/").all()  # relative to the manifest
    pd.testing.assert_frame_equal(_by_well(read_plate_manifest(root / "plate.csv")),
                                  _by_well(read_plate_manifest(root / "by_hand.csv")))


def _expect_error(root, argv, capsys, *needles, out="plate.csv"):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, err
    assert not (root / out).exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".plate.csv")]


def test_a_mapped_well_without_images_is_one_line_naming_it(gen5_export, capsys):
    root, maps = gen5_export
    for name, value in (("experiment", "atropine_1"), ("ligand", "atropine"), ("concentration", "1000")):
        cells = platemap.read_csv_cells(maps[name])
        values = platemap.parse_grid_map(cells, "")
        grid_csv(maps[name], {**{w[0] + str(int(w[1:])): v for w, v in values.items()}, "G7": value})
    _expect_error(root, _argv(root, maps), capsys, "well G07", "no image file matched")


def test_strict_refuses_images_of_unmapped_wells(gen5_export, capsys):
    root, maps = gen5_export
    _expect_error(root, _argv(root, maps, "--strict"), capsys, "well H12 has images but no plate map covers it")


def test_a_field_lacking_a_channel(gen5_export, capsys):
    root, maps = gen5_export
    (root / "export" / "C4_04_1_2_Texas Red_001.tif").unlink()
    _expect_error(root, _argv(root, maps), capsys, "well C04 field 2: no fluorescence image (channel 'Texas Red')")


def test_duplicate_well_field_channel(gen5_export, capsys):
    root, maps = gen5_export
    _tiff(root / "export" / "again" / "B2_04_1_1_Bright Field_001.tif", 7)
    _expect_error(root, _argv(root, maps), capsys, "well B02 field 1 channel 'Bright Field': two files", "again")


def test_a_channel_token_no_file_has(gen5_export, capsys):
    root, maps = gen5_export
    argv = _argv(root, maps)
    argv[argv.index("brightfield=Bright Field")] = "brightfield=Brightfield"
    _expect_error(root, argv, capsys, "no file name has channel 'Brightfield'", "'Bright Field'")


@pytest.mark.parametrize("value", ["ten", "-3"])
def test_a_bad_concentration_in_the_map(gen5_export, capsys, value):
    root, maps = gen5_export
    text = maps["concentration"].read_text().replace(",100,", f",{value},", 1)
    maps["concentration"].write_text(text)
    _expect_error(root, _argv(root, maps), capsys, "concentration.csv: well B05", f"'{value}' is not a number >= 0")


def test_a_pattern_without_the_required_groups(gen5_export, capsys):
    root, maps = gen5_export
    argv = _argv(root, maps)
    at = argv.index("--layout")
    argv[at:at + 2] = ["--pattern", r"(?P<well>[A-H]\d+)_.*\.tif"]
    _expect_error(root, argv, capsys, "lacks the named group(s) (?P<field>...), (?P<channel>...)")


def test_a_grid_of_the_wrong_shape(gen5_export, capsys):
    root, maps = gen5_export
    grid_csv(maps["ligand"], {"B2": "atropine"}, rows="ABCDEFG")
    _expect_error(root, _argv(root, maps), capsys, "ligand.csv: a grid plate map has 7 row(s) × 12 column(s)")


def test_a_well_with_an_experiment_but_no_ligand(gen5_export, capsys):
    root, maps = gen5_export
    maps["ligand"].write_text(maps["ligand"].read_text().replace("pirenzepine", "", 1))
    _expect_error(root, _argv(root, maps), capsys, "ligand.csv: well E02 has no ligand")


# --------------------------------------------------------------------------- layout presets


def _preset_names(layout, well, site, channel):
    row, column = "ABCDEFGH".index(well[0]) + 1, int(well[1:])
    return {
        "gen5": f"{well[0]}{column}_04_1_{site}_{['Bright Field', 'Texas Red'][channel]}_001.tif",
        "harmony": f"r{row:02d}c{column:02d}f{site:02d}p01-ch{channel + 1}sk1fk1fl1.tiff",
        "metaxpress": f"HTS 2024-05_{well}_s{site}_w{channel + 1}{GUID}.TIF",
        "cellvoyager": f"AssayPlate_Greiner_#781091_{well}_T0001F{site:03d}L01A01Z01C{channel + 1:02d}.tif",
    }[layout]


PRESET_TOKENS = {"gen5": ("Bright Field", "Texas Red"), "harmony": ("ch1", "ch2"),
                 "metaxpress": ("w1", "w2"), "cellvoyager": ("C01", "C02")}
PRESET_DECOYS = {"gen5": "B03_04_1_1_Bright Field.xpt", "harmony": "Index.idx.xml",
                 "metaxpress": f"HTS 2024-05_B03_s1_w1_thumb{GUID}.TIF", "cellvoyager": "MeasurementData.mlf"}


@pytest.mark.parametrize("layout", sorted(platemap.LAYOUTS))
def test_layout_presets_on_folders_of_empty_files(tmp_path, layout):
    export = tmp_path / "export" / "Images"
    export.mkdir(parents=True)
    wells = ["B03", "B04", "C03"]
    for well in wells:
        for site in (1, 2, 3):
            for channel in (0, 1):
                (export / _preset_names(layout, well, site, channel)).touch()
    (export / PRESET_DECOYS[layout]).touch()
    map_csv = tmp_path / "map.csv"
    pd.DataFrame({"well": ["B3", "B4", "C3"], "experiment": "E1", "ligand": "NMS",
                  "concentration": ["0", "1e-9", "1e-8"], "replicate": ["1", "1", "2"]}).to_csv(map_csv, index=False)
    brightfield, fluorescence = PRESET_TOKENS[layout]
    out = tmp_path / "manifests" / "plate.csv"
    assert main(["plate-manifest", "--images", str(tmp_path / "export"), "--layout", layout,
                 "--channel", f"brightfield={brightfield}", "--channel", f"fluorescence={fluorescence}",
                 "--plate-map", str(map_csv), "--out", str(out)]) == 0
    manifest = read_plate_manifest(out, check_shapes=False)
    assert manifest["well"].tolist() == [w for w in wells for _ in (1, 2, 3)]
    assert manifest["field"].tolist() == [1, 2, 3] * 3
    assert manifest["concentration"].tolist() == [0.0] * 3 + [1e-9] * 3 + [1e-8] * 3
    assert manifest["replicate"].astype(str).tolist() == ["1"] * 6 + ["2"] * 3
    for row in manifest.itertuples():
        assert Path(row.brightfield).name == _preset_names(layout, row.well, row.field, 0)
        assert Path(row.fluorescence).name == _preset_names(layout, row.well, row.field, 1)
    if layout in ("metaxpress", "cellvoyager"):  # their names carry the plate
        assert manifest["plate"].nunique() == 1


def test_one_multichannel_file_per_site_with_channel_planes(tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    for index, well in enumerate(["A1", "A2"]):
        planes = np.full((2, 12, 10), index, np.uint16)
        tifffile.imwrite(export / f"{well}_site1.ome.tif", planes,
                         metadata={"axes": "CYX", "Channel": {"Name": ["Bright field", "RFP"]}})
    grid = {"experiment": {"A1": "E", "A2": "E"}, "ligand": {"A1": "L", "A2": "L"},
            "concentration": {"A1": "0", "A2": "5"}}
    maps = [f"{name}={grid_csv(tmp_path / f'{name}.csv', values)}" for name, values in grid.items()]
    out = tmp_path / "plate.csv"
    pattern = r"(?P<well>[A-H]\d+)_site(?P<field>\d+)\.ome\.tif"  # no channel group: planes by #channel=
    assert main(["plate-manifest", "--images", str(export), "--pattern", pattern,
                 "--channel", "brightfield=#channel=Bright field", "--channel", "fluorescence=#channel=RFP",
                 *(f"--plate-map={m}" for m in maps), "--concentration-unit", "pM", "--out", str(out)]) == 0
    written = pd.read_csv(out)
    assert written["fluorescence"].tolist() == ["export/A1_site1.ome.tif#channel=RFP",
                                                "export/A2_site1.ome.tif#channel=RFP"]
    manifest = read_plate_manifest(out)  # shape checks read the chosen planes
    assert manifest["concentration"].tolist() == [0.0, 5e-12]


def test_several_plates_need_a_choice(tmp_path, capsys):
    export = tmp_path / "export"
    export.mkdir()
    for plate in ("P1", "P2"):
        for channel in (1, 2):
            (export / f"{plate}_A01_s1_w{channel}.tif").touch()
    grid = {name: grid_csv(tmp_path / f"{name}.csv", {"A1": value})
            for name, value in (("experiment", "E"), ("ligand", "L"), ("concentration", "0"))}
    argv = ["plate-manifest", "--images", str(export), "--layout", "metaxpress", "--channel", "brightfield=w1",
            "--channel", "fluorescence=w2", *(f"--plate-map={n}={p}" for n, p in grid.items()),
            "--out", str(tmp_path / "plate.csv")]
    assert main(argv) == 2
    assert "files of 2 plates (P1, P2); pick one with --plate" in capsys.readouterr().err
    assert main([*argv, "--plate", "P2"]) == 0
    assert pd.read_csv(tmp_path / "plate.csv")["brightfield"].tolist() == ["export/P2_A01_s1_w1.tif"]


def test_grid_and_long_maps_combine_but_a_variable_comes_from_one_map(tmp_path):
    from artseg.commands.plate_manifest import read_plate_maps

    long_map = tmp_path / "long.csv"
    long_map.write_text("well,experiment,ligand,cell_line\nA1,E,L,CHO\nA2,E,L,CHO\n")
    concentration = grid_csv(tmp_path / "c.csv", {"A1": "0", "A2": "1"})
    maps = read_plate_maps([str(long_map), f"concentration={concentration}"])
    table = platemap.combine_plate_maps(maps, concentration_unit="mM")
    assert list(table.columns) == ["experiment", "ligand", "concentration", "cell_line"]
    assert table["concentration"].tolist() == [0.0, 1e-3]
    with pytest.raises(ArtsegInputError, match="variable 'ligand' is also given by"):
        read_plate_maps([str(long_map), f"ligand={concentration}"])
    clash = tmp_path / "clash.csv"
    clash.write_text("well,experiment,ligand,concentration,field\nA1,E,L,0,3\n")
    with pytest.raises(ArtsegInputError, match="cannot be called 'field'"):
        platemap.combine_plate_maps(read_plate_maps([str(clash)]))
    with pytest.raises(ArtsegInputError, match="--channel brightfield=TOKEN is required"):
        platemap.build_plate_manifest(pd.DataFrame(columns=["well", "field", "channel", "plate", "path"]),
                                      table, {"fluorescence": "w2"})
