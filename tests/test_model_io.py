"""Model folders: round trip, and clear errors for tampered or incompatible folders."""

import json

import pytest
import torch

from artseg.errors import ArtsegInputError
from artseg.model_io import CONFIG_NAME, FORMAT_VERSION, file_sha256, load_model_folder, save_model_folder
from artseg.nets import ResNet, UNet


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    networks = {"classifier": ResNet(18, base_width=4).eval(), "unet": UNet(width=4, levels=2).eval()}
    save_model_folder(tmp_path / "model", networks, {"cutoff": 0.3, "names": ["a", "b"]})
    return tmp_path / "model", networks


def edit_config(folder, change):
    path = folder / CONFIG_NAME
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_round_trip_gives_identical_outputs_and_metadata(saved):
    folder, networks = saved
    loaded, metadata = load_model_folder(folder)
    assert metadata == {"cutoff": 0.3, "names": ["a", "b"]}
    image = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        for name, net in networks.items():
            assert torch.equal(loaded[name](image), net(image))
            assert not loaded[name].training
    document = json.loads((folder / CONFIG_NAME).read_text())
    assert document["format_version"] == FORMAT_VERSION and document["artseg_version"]
    assert document["networks"]["unet"]["spec"]["width"] == 4
    assert document["networks"]["unet"]["sha256"] == file_sha256(folder / "unet.pt")


def test_tampered_weights_are_rejected(saved):
    folder, _ = saved
    with (folder / "unet.pt").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ArtsegInputError, match="unet.pt: SHA-256 .* does not match"):
        load_model_folder(folder)


def test_weights_not_fitting_the_recorded_architecture_are_rejected(saved):
    folder, _ = saved
    edit_config(folder, lambda doc: doc["networks"]["unet"]["spec"].update(width=8))
    with pytest.raises(ArtsegInputError, match="do not fit the recorded unet"):
        load_model_folder(folder)


def test_pickled_code_is_never_executed(saved):
    folder, _ = saved
    torch.save({"weight": torch.zeros(1), "payload": ArtsegInputError("boom")}, folder / "unet.pt")
    edit_config(folder, lambda doc: doc["networks"]["unet"].update(sha256=file_sha256(folder / "unet.pt")))
    with pytest.raises(ArtsegInputError, match="unet.pt: holds objects other than tensors"):
        load_model_folder(folder)


def test_other_format_version_is_rejected(saved):
    folder, _ = saved
    edit_config(folder, lambda doc: doc.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(ArtsegInputError, match="format version 2 is not supported"):
        load_model_folder(folder)


def test_missing_folder_file_and_weights_are_reported(saved, tmp_path):
    folder, _ = saved
    with pytest.raises(ArtsegInputError, match="does not exist"):
        load_model_folder(tmp_path / "nowhere")
    (folder / "classifier.pt").unlink()
    with pytest.raises(ArtsegInputError, match="classifier.pt: weight file missing"):
        load_model_folder(folder)
    (folder / CONFIG_NAME).unlink()
    with pytest.raises(ArtsegInputError, match="config.json: missing"):
        load_model_folder(folder)


def test_not_a_model_config_is_reported(saved):
    folder, _ = saved
    (folder / CONFIG_NAME).write_text("{not json")
    with pytest.raises(ArtsegInputError, match="unreadable model config"):
        load_model_folder(folder)
    (folder / CONFIG_NAME).write_text(json.dumps({"format": "other"}))
    with pytest.raises(ArtsegInputError, match="not an ArtSeg model config"):
        load_model_folder(folder)
