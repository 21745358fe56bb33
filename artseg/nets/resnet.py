"""ResNet image classifiers (He et al. 2016) in plain torch, for one-channel micrographs.

The classifier of ScoreCAM-U-Net (paper §2.2): ResNet-18/34 use basic blocks, ResNet-50 uses
bottleneck blocks. ``last_stage`` is the module whose output Score-CAM reads.
"""

from __future__ import annotations

import torch
from torch import nn

from artseg.errors import ArtsegInputError

_BLOCKS_PER_STAGE = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with an identity (or 1×1 projection) shortcut."""

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = _conv3x3(in_ch, width, stride, dilation)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, out_ch, 1, dilation)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _projection(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3, 1×1 expand (×4), with shortcut; the stride sits on the 3×3."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = _conv1x1(in_ch, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride, dilation)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, out_ch)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _projection(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


def _projection(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(_conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))


class ResNet(nn.Module):
    """ResNet-18/34/50 classifier returning image-level logits.

    Parameters
    ----------
    depth : {18, 34, 50}
        Network depth; 18 and 34 use basic blocks, 50 uses bottleneck blocks.
    in_channels : int
        Channels of the input image (1 for brightfield).
    num_logits : int
        Number of output logits. One logit (default) is read as "contains an artifact";
        several logits are read with a softmax over classes.
    base_width : int
        Channels of the first stage (64 in the original ResNet); later stages use 2×, 4×, 8×
        (times 4 for bottleneck outputs).
    dilate_last : bool
        Replace the stride of the last stage by dilation 2, so the last stage has output
        stride 16 instead of 32 (finer class-activation maps, same parameters).
    pool : {"avg", "max"}
        Global pooling before the classifier: average (the original ResNet) or maximum,
        which lets one small object decide the image (multiple-instance style).

    Attributes
    ----------
    last_stage : nn.Module
        The last convolutional stage; its output is the activation stack for Score-CAM.
    init_kwargs : dict
        Constructor arguments, for :func:`artseg.nets.network_spec`.

    Examples
    --------
    >>> net = ResNet(18, base_width=8)
    >>> net(torch.zeros(2, 1, 64, 64)).shape
    torch.Size([2, 1])
    """

    def __init__(
        self,
        depth: int = 50,
        in_channels: int = 1,
        num_logits: int = 1,
        base_width: int = 64,
        dilate_last: bool = False,
        pool: str = "avg",
    ):
        super().__init__()
        if depth not in _BLOCKS_PER_STAGE:
            raise ArtsegInputError(f"ResNet depth must be one of 18, 34, 50, got {depth!r}")
        if pool not in ("avg", "max"):
            raise ArtsegInputError(f"ResNet pool must be 'avg' or 'max', got {pool!r}")
        self.init_kwargs = dict(
            depth=depth,
            in_channels=in_channels,
            num_logits=num_logits,
            base_width=base_width,
            dilate_last=dilate_last,
            pool=pool,
        )
        block = Bottleneck if depth == 50 else BasicBlock
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, base_width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(base_width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages = []
        in_ch = base_width
        for index, n_blocks in enumerate(_BLOCKS_PER_STAGE[depth]):
            width = base_width * 2**index
            stride = 1 if index == 0 else 2
            dilation = 1
            if dilate_last and index == 3:
                stride, dilation = 1, 2
            blocks = []
            for b in range(n_blocks):
                # torchvision convention: the first block of a dilated stage keeps dilation 1.
                blocks.append(block(in_ch, width, stride if b == 0 else 1, dilation if b > 0 else 1))
                in_ch = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = in_ch
        self.pool = nn.AdaptiveAvgPool2d(1) if pool == "avg" else nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(in_ch, num_logits)
        _init_weights(self)

    @property
    def last_stage(self) -> nn.Module:
        """The last convolutional stage (``layer4``), whose output Score-CAM reads."""
        return self.layer4

    @property
    def output_stride(self) -> int:
        """Input pixels per pixel of the last stage's activation map (32, or 16 if dilated)."""
        return 16 if self.init_kwargs["dilate_last"] else 32

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last stage's activations ``(N, num_features, H/stride, W/stride)``."""
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits ``(N, num_logits)``."""
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def _init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
