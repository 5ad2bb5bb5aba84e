"""The torch module of the small CenterNet detector (see :mod:`geolabel.models.detectors`).

An encoder to stride 16 (3x3 conv + BatchNorm + ReLU blocks), a top-down path that
upsamples and adds the stride-8 and stride-4 features, and three 1x1-conv heads
(heat map, log size, offset) on the stride-4 map. The receptive field is 115 input
pixels (3x3 convs: 7 at stride 1-2, 19 at 4, 43 at 8, 91 at 16, then the fuse block and
heads at stride 4), so a tile's overlap should be at least half the largest object.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

__all__ = ["CenterNet"]


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class CenterNet(nn.Module):
    """Centre heat map + size + offset detector at stride 4.

    Args:
        in_channels: input bands.
        num_classes: object classes (heat-map channels).
        width: channels at stride 4 (``2*width`` at 8, ``4*width`` at 16).

    Input ``(n, in_channels, rows, cols)`` with rows and cols multiples of 16 (others
    work; the top-down path resizes); output ``(n, classes + 4, ceil(rows/4), ceil(cols/4))``.
    """

    def __init__(
        self, in_channels: int = 3, num_classes: int = 1, width: int = 32
    ) -> None:
        """Build the layers; the heat-map bias starts at a prior of 0.1."""
        super().__init__()
        self.num_classes = num_classes
        half = max(width // 2, 4)
        self.stem = nn.Sequential(
            _block(in_channels, half, 2), _block(half, width, 2)
        )  # /4
        self.down8 = _block(width, 2 * width, 2)
        self.down16 = _block(2 * width, 4 * width, 2)
        self.lat8 = nn.Conv2d(2 * width, width, 1)
        self.lat16 = nn.Conv2d(4 * width, width, 1)
        self.fuse = _block(width, width)
        self.heat = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, num_classes, 1),
        )
        self.size = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2, 1),
        )
        self.offset = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2, 1),
        )
        last = self.heat[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        nn.init.constant_(last.bias, -math.log((1 - 0.1) / 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw output ``(n, classes + 4, rows/4, cols/4)``."""
        f4 = self.stem(x)
        f8 = self.down8(f4)
        f16 = self.down16(f8)
        top = functional.interpolate(
            self.lat16(f16), size=f8.shape[-2:], mode="nearest"
        )
        top = functional.interpolate(
            top + self.lat8(f8), size=f4.shape[-2:], mode="nearest"
        )
        feat = self.fuse(f4 + top)
        return torch.cat(
            [self.heat(feat), self.size(feat), torch.sigmoid(self.offset(feat))], dim=1
        )
