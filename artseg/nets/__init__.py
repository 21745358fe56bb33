"""Plain-torch networks: the ResNet classifier and the paper's U-Net, plus spec round trips."""

from artseg.nets.registry import build_network, network_spec, register_network, registered_networks
from artseg.nets.resnet import ResNet
from artseg.nets.unet import UNet

__all__ = ["ResNet", "UNet", "build_network", "network_spec", "register_network", "registered_networks"]
