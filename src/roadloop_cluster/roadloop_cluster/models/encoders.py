"""Image encoders written by hand (no torchvision on these machines): (B,3,H,W) in [0,1] -> (B, C)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ResNetEncoder", "SmallCNN", "build_encoder"]


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """Plain stride-2 conv stack + global average pool: cheap enough to train on 2 CPU cores.

    GroupNorm rather than BatchNorm: no running statistics, so the model is the same function in
    train and eval mode and no buffer needs synchronising between DDP ranks.
    """

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for cout in channels:
            layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.GroupNorm(min(8, cout), cout), nn.ReLU(inplace=True)]
            cin = cout
        self.body = nn.Sequential(*layers)
        self.out_dim = cin

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        feats: torch.Tensor = self.body(image)
        return feats.mean(dim=(2, 3))


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs, identity or 1x1 projection shortcut)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.short: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv2(self.conv1(x)) + self.short(x))


class ResNetEncoder(nn.Module):
    """ResNet-style encoder for GPUs: a stem, then two basic blocks per stage (widths = channels)."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv_bn(3, channels[0], 2), nn.MaxPool2d(3, 2, 1))
        blocks: list[nn.Module] = []
        cin = channels[0]
        for i, cout in enumerate(channels):
            stride = 1 if i == 0 else 2
            blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.out_dim = cin

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        feats: torch.Tensor = self.blocks(self.stem(image))
        return feats.mean(dim=(2, 3))


def build_encoder(kind: str, channels: list[int]) -> SmallCNN | ResNetEncoder:
    return ResNetEncoder(channels) if kind == "resnet" else SmallCNN(channels)
