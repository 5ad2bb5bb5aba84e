"""Fold eval-mode BatchNorm into the preceding convolution (an inference-only rewrite).

``Conv2d -> BatchNorm2d`` pairs that follow each other inside an ``nn.Sequential`` (the
pattern of geolabel's UNet, smp's ``Conv2dReLU`` and most encoders) become one
convolution with folded weights and an ``Identity``; the arithmetic is the same up to
rounding, and one pass over each activation is saved. Imports torch.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fold_batchnorm"]


def fold_batchnorm(module: Any) -> int:
    """Fold BatchNorm layers of an eval-mode ``module`` in place; returns how many."""
    if not isinstance(module, nn.Module) or isinstance(module, torch.jit.ScriptModule):
        return 0
    folded = 0
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in pairwise(names):
            conv, bn = seq._modules[a], seq._modules[b]
            if (
                type(conv) is nn.Conv2d
                and type(bn) is nn.BatchNorm2d
                and not bn.training
                and not conv.training
                and bn.track_running_stats
                and bn.running_mean is not None
            ):
                seq._modules[a] = fuse_conv_bn_eval(conv, bn)
                seq._modules[b] = nn.Identity()
                folded += 1
    return folded
