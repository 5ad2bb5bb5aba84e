"""Model architectures that state-dict weights are loaded into.

A spec with ``format: state_dict`` names its architecture; :func:`build_architecture`
turns that name and its parameters into an untrained ``torch.nn.Module``:

* ``geolabel.unet``: the small :class:`UNet` below (the shipped demo model uses it);
* ``geolabel.linear``: :class:`PixelLinear`, a per-pixel linear classifier of the bands
  (a 1x1 convolution: multinomial logistic regression on spectra);
* ``smp.<ClassName>``: a class of ``segmentation_models_pytorch`` (``smp.Unet``, ...);
* ``torchgeo.<name>``: a class or builder function of ``torchgeo.models``.

This module imports torch; import it only where torch is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from geolabel.errors import MissingDependencyError, ModelSpecError
from geolabel.models.detectors import build_centernet

__all__ = ["KNOWN_ARCHITECTURES", "PixelLinear", "UNet", "build_architecture"]

KNOWN_ARCHITECTURES = (
    "geolabel.unet",
    "geolabel.linear",
    "geolabel.centernet",
    "smp.<ClassName>",
    "torchgeo.<name>",
)

# Third-party architecture families: prefix -> (module, pip package, geolabel extra).
_FAMILIES = {
    "smp": ("segmentation_models_pytorch", "segmentation-models-pytorch", "smp"),
    "torchgeo": ("torchgeo.models", "torchgeo", "torchgeo"),
}


def _double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    """Two 3x3 conv + BatchNorm + ReLU, zero padding (size kept)."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """A small U-Net for semantic segmentation; returns logits.

    The encoder has ``depth`` down-steps (two 3x3 conv + BatchNorm + ReLU per level,
    then 2x2 max-pool), the channel count doubling each level; the decoder upsamples
    with 2x2 transposed convolutions and concatenates the skip connections. A
    ``Dropout2d`` sits before the final 1x1 conv, so Monte-Carlo dropout needs only the
    dropout layers in train mode. Convolutions are zero padded, so the network is
    translation-equivariant (by multiples of ``2**depth``) away from the edges.

    Args:
        in_channels: input bands.
        num_classes: output classes (logit channels).
        base_channels: channels of the first level.
        depth: number of down-steps; input rows and cols must be multiples of
            ``2**depth``.
        dropout: ``Dropout2d`` probability before the classifier.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        base_channels: int = 16,
        depth: int = 3,
        dropout: float = 0.0,
    ) -> None:
        """Build the layers."""
        super().__init__()
        if min(in_channels, num_classes, base_channels, depth) < 1:
            raise ValueError("channel counts and depth must be positive")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_channels, self.num_classes, self.depth = in_channels, num_classes, depth
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        ch = in_channels
        for w in widths[:-1]:
            self.down.append(_double_conv(ch, w))
            ch = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _double_conv(widths[-2], widths[-1])
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for w_low, w in zip(widths[:0:-1], widths[-2::-1], strict=True):
            self.up.append(nn.ConvTranspose2d(w_low, w, 2, stride=2))
            self.dec.append(_double_conv(2 * w, w))
        self.dropout = nn.Dropout2d(dropout)
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    @property
    def receptive_field(self) -> int:
        """Theoretical receptive field in input pixels (one axis).

        The span of input pixels one output pixel depends on, the largest over the
        ``2**depth`` output positions (it varies with the pooling phase).
        """
        depth = self.depth

        def enc(level: int, lo: int, hi: int) -> tuple[int, int]:
            # Input span of an encoder/bottleneck feature: two 3x3 convs, then the pool.
            lo, hi = lo - 2, hi + 2
            return (lo, hi) if level == 0 else enc(level - 1, 2 * lo, 2 * hi + 1)

        def dec(level: int, lo: int, hi: int) -> tuple[int, int]:
            # Decoder feature: two 3x3 convs over [skip, 2x2 stride-2 transposed conv].
            lo, hi = lo - 2, hi + 2
            deep = enc if level + 1 == depth else dec
            a, b = enc(level, lo, hi), deep(level + 1, lo // 2, hi // 2)
            return min(a[0], b[0]), max(a[1], b[1])

        spans = [dec(0, i, i) for i in range(2**depth)]
        return max(hi - lo + 1 for lo, hi in spans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes, H, W)`` for input ``(N, in_channels, H, W)``."""
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips), strict=True):
            x = dec(torch.cat([up(x), skip], dim=1))
        out: torch.Tensor = self.head(self.dropout(x))
        return out


class PixelLinear(nn.Module):
    """A per-pixel linear classifier: logits = W x + b for every pixel's band vector.

    Multinomial logistic regression on spectra as a 1x1 convolution. Its receptive
    field is one pixel, so tiling never changes its output; it costs ~``bands x
    classes`` multiply-adds per pixel, which also makes it the "null model" that
    ``benchmarks/bench_predict.py --null`` uses to measure geolabel's own machinery.

    Args:
        in_channels: input bands.
        num_classes: output classes (logit channels).
    """

    receptive_field = 1

    def __init__(self, in_channels: int, num_classes: int) -> None:
        """Build the 1x1 convolution."""
        super().__init__()
        if min(in_channels, num_classes) < 1:
            raise ValueError("channel counts must be positive")
        self.in_channels, self.num_classes = in_channels, num_classes
        self.head = nn.Conv2d(in_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes, H, W)`` for input ``(N, in_channels, H, W)``."""
        out: torch.Tensor = self.head(x)
        return out


def _import_family(prefix: str) -> Any:
    """Import a third-party architecture module, or raise MissingDependencyError."""
    module, package, extra = _FAMILIES[prefix]
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependencyError(package, extra) from err


def build_architecture(name: str, params: dict[str, object]) -> torch.nn.Module:
    """Build an untrained architecture from its spec name and constructor parameters.

    Args:
        name: ``"geolabel.unet"``, ``"geolabel.linear"``, ``"smp.<ClassName>"`` or
            ``"torchgeo.<name>"``.
        params: keyword arguments of the constructor.

    Returns:
        The module (fresh weights, train mode).

    Raises:
        ModelSpecError: unknown name, or parameters the constructor rejects.
        MissingDependencyError: the package of an ``smp.`` / ``torchgeo.`` name is not
            installed.
    """
    known = ", ".join(KNOWN_ARCHITECTURES)
    prefix, _, attr = name.partition(".")
    factory: Callable[..., Any] | None
    if name == "geolabel.unet":
        factory = UNet
    elif name == "geolabel.linear":
        factory = PixelLinear
    elif name == "geolabel.centernet":
        factory = build_centernet
    elif prefix in _FAMILIES and attr and not attr.startswith("_"):
        factory = getattr(_import_family(prefix), attr, None)
        if factory is None or not callable(factory):
            raise ModelSpecError(
                f"unknown architecture {name!r}: {_FAMILIES[prefix][0]} has no "
                f"{attr!r}; known names: {known}"
            )
    else:
        raise ModelSpecError(f"unknown architecture {name!r}; known names: {known}")
    if not isinstance(params, dict):
        raise ModelSpecError(f"architecture {name!r}: params must be a mapping")
    kwargs: dict[str, Any] = dict(params)
    try:
        module = factory(**kwargs)
    except (TypeError, ValueError) as err:
        raise ModelSpecError(
            f"architecture {name!r}: bad params {params!r}: {err}"
        ) from err
    if not isinstance(module, nn.Module):
        raise ModelSpecError(
            f"architecture {name!r} built a {type(module).__name__}, "
            "not a torch.nn.Module"
        )
    return module
