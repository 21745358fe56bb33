"""Shapes and spec round trips of the ResNet classifier and the paper's U-Net."""

import pytest
import torch
from torch import nn

from artseg.errors import ArtsegInputError
from artseg.nets import ResNet, UNet, build_network, network_spec


@pytest.mark.parametrize("depth, expansion", [(18, 1), (34, 1), (50, 4)])
def test_resnet_logits_and_last_stage_shapes(depth, expansion):
    net = ResNet(depth, in_channels=1, num_logits=2, base_width=4).eval()
    images = torch.rand(2, 1, 64, 96)
    with torch.no_grad():
        logits = net(images)
        features = net.features(images)
    assert logits.shape == (2, 2)
    assert features.shape == (2, 4 * 8 * expansion, 64 // 32, 96 // 32)
    assert net.last_stage is net.layer4


def test_resnet_default_is_one_artifact_logit_and_accepts_rgb():
    net = ResNet(18, in_channels=3, base_width=4).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 32, 32)).shape == (1, 1)


@pytest.mark.parametrize("depth", [18, 50])
def test_dilate_last_halves_output_stride_and_keeps_parameters(depth):
    plain = ResNet(depth, base_width=4)
    dilated = ResNet(depth, base_width=4, dilate_last=True).eval()
    with torch.no_grad():
        features = dilated.features(torch.rand(1, 1, 128, 64))
    assert features.shape[-2:] == (128 // 16, 64 // 16)
    assert dilated.output_stride == 16 and plain.output_stride == 32
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in dilated.parameters())


def test_bottleneck_is_used_only_for_resnet50():
    assert not any(type(m).__name__ == "Bottleneck" for m in ResNet(34, base_width=4).modules())
    assert any(type(m).__name__ == "Bottleneck" for m in ResNet(50, base_width=4).modules())


def test_resnet_rejects_unknown_depth():
    with pytest.raises(ArtsegInputError, match="depth"):
        ResNet(101)


def test_state_dict_has_no_duplicate_last_stage_entries():
    keys = ResNet(18, base_width=4).state_dict().keys()
    assert not any(key.startswith("last_stage") for key in keys)


def test_unet_output_shape():
    net = UNet(in_channels=2, out_channels=3, width=4, levels=3, convs_per_block=2).eval()
    with torch.no_grad():
        assert net(torch.rand(2, 2, 64, 40)).shape == (2, 3, 64, 40)


def test_unet_default_matches_paper_layout():
    net = UNet()
    def convs(module):
        return [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    assert sum(len(convs(block)) for block in net.encoder) == 15
    assert len(convs(net.bottleneck)) == 3
    assert sum(len(convs(block)) for block in net.decoder) == 15
    assert {m.out_channels for m in convs(net.encoder) + convs(net.bottleneck) + convs(net.decoder)} == {64}
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.modules()) == 1 and net.levels == 5
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def test_unet_batch_norm_flag_adds_normalisation():
    net = UNet(width=4, levels=2, batch_norm=True)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 3 * (2 + 1 + 2)


def test_unet_rejects_size_not_divisible_by_pooling():
    with pytest.raises(ArtsegInputError, match="divisible"):
        UNet(width=4, levels=3)(torch.rand(1, 1, 36, 32))


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "resnet", "depth": 34, "base_width": 4, "dilate_last": True, "num_logits": 2},
        {"name": "unet", "width": 4, "levels": 2, "convs_per_block": 1, "batch_norm": True},
    ],
)
def test_build_network_and_network_spec_round_trip(spec):
    torch.manual_seed(0)
    net = build_network(spec)
    recovered = network_spec(net)
    assert {key: recovered[key] for key in spec} == spec
    rebuilt = build_network(recovered)
    rebuilt.load_state_dict(net.state_dict())
    assert network_spec(rebuilt) == recovered


@pytest.mark.parametrize(
    "spec, message",
    [({"name": "vgg"}, "unknown network"), ({"name": "unet", "filters": 3}, "no argument"), ({"depth": 18}, "name")],
)
def test_build_network_rejects_bad_specs(spec, message):
    with pytest.raises(ArtsegInputError, match=message):
        build_network(spec)


def test_network_spec_rejects_unregistered_modules():
    with pytest.raises(ArtsegInputError, match="not a registered network"):
        network_spec(nn.Linear(2, 2))
