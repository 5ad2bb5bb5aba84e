"""Fit a segmentation module on sparsely labelled pixels (plain torch, CPU-friendly).

Sampling follows torchgeo's random geo sampler, restricted to labelled areas: each
chip is placed so that it contains one labelled pixel, drawn either uniformly over the
labelled pixels or class-balanced (a class first, then one of its pixels), which keeps
rare classes of sparse point labels in the batches. The loss is cross-entropy with
the ignore index, so unlabelled pixels add nothing. Everything random comes from one
seed (numpy ``Generator`` for sampling, a forked torch RNG for init and dropout).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from geolabel.errors import ConfigError
from geolabel.labels import IGNORE_INDEX

__all__ = ["FitConfig", "FitResult", "fit", "predict_probabilities", "seeded"]

logger = logging.getLogger(__name__)

#: ``progress(step, total_steps, loss)``
FitProgress = Callable[[int, int, float], None]


@dataclass(frozen=True, slots=True)
class FitConfig:
    """Training settings (CPU-friendly defaults).

    Attributes:
        steps: optimiser steps.
        batch_size: chips per step.
        chip_size: chip side in pixels (a multiple of the network's ``2**depth``).
        lr: peak Adam learning rate (5 % linear warm-up, cosine decay to 0).
        weight_decay: Adam weight decay.
        sampler: ``"balanced"`` (class, then pixel) or ``"uniform"`` (pixel).
        augment: random flips and 90-degree rotations.
        seed: seed of every random choice.
        threads: torch intra-op threads (``None`` keeps torch's default).
    """

    steps: int = 200
    batch_size: int = 8
    chip_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    sampler: Literal["balanced", "uniform"] = "balanced"
    augment: bool = True
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        """Validate the numbers."""
        if self.steps < 1 or self.batch_size < 1 or self.chip_size < 8:
            raise ConfigError(
                f"steps and batch size must be >= 1 and chip size >= 8, got "
                f"{self.steps!r}, {self.batch_size!r}, {self.chip_size!r}"
            )
        if not self.lr > 0:
            raise ConfigError(f"learning rate must be > 0, got {self.lr!r}")


@dataclass(frozen=True, slots=True)
class FitResult:
    """Outcome of :func:`fit`: loss per step, wall time, labelled pixels seen."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    labelled_pixels: int = 0

    @property
    def final_loss(self) -> float:
        """Mean loss over the last tenth of the steps."""
        tail = self.losses[-max(1, len(self.losses) // 10) :]
        return float(np.mean(tail))


class seeded:
    """Context manager: fork torch's global RNG and seed it (restored on exit)."""

    def __init__(self, seed: int) -> None:
        """Remember the seed."""
        self.seed = seed
        self._ctx: Any = None

    def __enter__(self) -> None:
        """Fork and seed."""
        import torch

        self._ctx = torch.random.fork_rng(devices=[])
        self._ctx.__enter__()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc: object) -> None:
        """Restore the RNG state."""
        self._ctx.__exit__(*exc)


def _pad_to(
    image: npt.NDArray[np.float32], target: npt.NDArray[np.uint8], size: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """Pad image (zeros) and target (ignore) to at least ``size`` a side."""
    ph, pw = max(0, size - image.shape[1]), max(0, size - image.shape[2])
    if ph or pw:
        image = np.pad(image, ((0, 0), (0, ph), (0, pw)))
        target = np.pad(target, ((0, ph), (0, pw)), constant_values=IGNORE_INDEX)
    return image, target


def _chip_origins(
    target: npt.NDArray[np.uint8], cfg: FitConfig, rng: np.random.Generator
) -> Iterator[tuple[int, int]]:
    """Endless ``(row, col)`` chip origins, each chip holding a labelled pixel."""
    h, w = target.shape
    c = cfg.chip_size
    flat = np.flatnonzero(target != IGNORE_INDEX)
    by_class = [flat[target.flat[flat] == k] for k in np.unique(target.flat[flat])]
    while True:
        if cfg.sampler == "balanced":
            pool = by_class[int(rng.integers(len(by_class)))]
        else:
            pool = flat
        r, col = divmod(int(pool[int(rng.integers(len(pool)))]), w)
        # The chip covers the pixel at a random position, clipped to the image.
        r0 = min(max(0, r - int(rng.integers(c))), h - c)
        c0 = min(max(0, col - int(rng.integers(c))), w - c)
        yield r0, c0


def fit(
    module: Any,
    image: npt.NDArray[np.float32],
    target: npt.NDArray[np.uint8],
    config: FitConfig,
    *,
    progress: FitProgress | None = None,
) -> FitResult:
    """Train ``module`` in place on the labelled pixels of one image.

    Args:
        module: a ``torch.nn.Module`` returning logits ``(N, classes, H, W)``.
        image: normalised ``(bands, rows, cols)`` float32 (nodata already 0).
        target: ``(rows, cols)`` uint8 class indexes, :data:`IGNORE_INDEX` unlabelled.
        config: training settings.
        progress: called after every step with ``(step, steps, loss)``.

    Returns:
        Loss history, wall time and the number of labelled pixels.

    Raises:
        ConfigError: no labelled pixel, or image and target shapes differ.

    .. versionadded:: 0.1
    """
    import torch
    import torch.nn.functional as F

    if image.shape[1:] != target.shape:
        raise ConfigError(
            f"image {image.shape[1:]} and labels {target.shape} differ in shape"
        )
    labelled = int((target != IGNORE_INDEX).sum())
    if labelled == 0:
        raise ConfigError("no labelled pixels to train on")
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    image, target = _pad_to(image, target, config.chip_size)
    rng = np.random.default_rng(config.seed)
    origins = _chip_origins(target, config, rng)
    xt, yt = (
        torch.from_numpy(np.ascontiguousarray(image)),
        torch.from_numpy(target.astype(np.int64)),
    )
    opt = torch.optim.Adam(
        module.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    total, warm = config.steps, max(1, config.steps // 20)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    c = config.chip_size
    losses: list[float] = []
    t0 = time.perf_counter()
    module.train()
    with seeded(config.seed):
        for step in range(total):
            xb, yb = [], []
            for _ in range(config.batch_size):
                r0, c0 = next(origins)
                xi, yi = xt[:, r0 : r0 + c, c0 : c0 + c], yt[r0 : r0 + c, c0 : c0 + c]
                if config.augment:
                    fv, fh, k = (int(v) for v in rng.integers(0, (2, 2, 4)))
                    if fv:
                        xi, yi = xi.flip(-2), yi.flip(-2)
                    if fh:
                        xi, yi = xi.flip(-1), yi.flip(-1)
                    xi, yi = torch.rot90(xi, k, (-2, -1)), torch.rot90(yi, k, (-2, -1))
                xb.append(xi)
                yb.append(yi)
            loss = F.cross_entropy(
                module(torch.stack(xb)), torch.stack(yb), ignore_index=IGNORE_INDEX
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
            losses.append(round(float(loss.item()), 6))
            if progress is not None:
                progress(step + 1, total, losses[-1])
    module.eval()
    seconds = time.perf_counter() - t0
    logger.info(
        "trained %d steps in %.1fs, final loss %.4f", total, seconds, losses[-1]
    )
    return FitResult(losses=losses, seconds=round(seconds, 2), labelled_pixels=labelled)


def predict_probabilities(
    module: Any, image: npt.NDArray[np.float32], *, multiple: int = 8
) -> npt.NDArray[np.float32]:
    """Softmax probabilities ``(classes, rows, cols)`` of a whole normalised image.

    The image is zero-padded to a multiple of ``multiple`` (``2**depth`` of a U-Net)
    and run in one forward pass (eval mode); use ``geolabel predict`` for scenes that
    do not fit in memory.
    """
    import torch

    module.eval()
    h, w = image.shape[1:]
    ph, pw = -h % multiple, -w % multiple
    x = torch.from_numpy(
        np.ascontiguousarray(np.pad(image, ((0, 0), (0, ph), (0, pw))))
    )
    with torch.inference_mode():
        logits = module(x[None])[0, :, :h, :w]
        probs = torch.softmax(logits.float(), dim=0)
    return np.ascontiguousarray(probs.numpy(), dtype=np.float32)
