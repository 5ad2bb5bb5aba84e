"""Shared options and helpers of the subcommands.

Options: ``--model``, ``--out``, ``--tile-size``, ``--overlap``, ``--batch-size``,
``--bands``, ``--nodata``, ``--allow-vrt``, ``--allow-pixel-space``, ``--device``,
``--precision``, ``--overwrite``, ``--retry-failed``, ``--uncertainty``,
``--model-uncertainty``, ``--mc-passes``, ``--seed``, ``--compress``, ``--limit``,
``--allow-remote``, ``--stac-resample``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any

import click

__all__ = [
    "BandsType",
    "ProgressBar",
    "allow_pixel_space_option",
    "allow_vrt_option",
    "bands_option",
    "run_options",
    "scene_options",
    "tame_dask_logging",
]


class BandsType(click.ParamType):  # type: ignore[type-arg]
    """``1,2,3`` -> ``(1, 2, 3)`` (1-based band indexes)."""

    name = "bands"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        try:
            out = tuple(int(v) for v in str(value).split(","))
        except ValueError:
            self.fail(
                f"{value!r} is not a comma-separated list of band numbers", param, ctx
            )
        if any(b < 1 for b in out):
            self.fail(f"band numbers start at 1, got {value!r}", param, ctx)
        return out


def _limits(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[tuple[str, float], ...]:
    from geolabel.errors import ConfigError
    from geolabel.io.limits import parse_limits

    try:
        return parse_limits(value)
    except ConfigError as err:
        raise click.BadParameter(str(err), ctx=ctx, param=param) from err


def _tuple(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    return tuple(value)


#: ``-b/--bands``: the scene bands fed to the model, in model order.
bands_option = click.option(
    "-b",
    "--bands",
    type=BandsType(),
    help="1-based band indexes in model order, e.g. 4,3,2.",
)

#: ``--allow-vrt``: open VRT scenes (refused by default: they can name any file).
allow_vrt_option = click.option(
    "--allow-vrt",
    is_flag=True,
    help="Accept VRT inputs (they can reference any file).",
)

#: ``--allow-pixel-space``: open scenes without a CRS (outputs in pixel space).
allow_pixel_space_option = click.option(
    "--allow-pixel-space", is_flag=True, help="Accept inputs without a CRS."
)


def scene_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``-b/--bands``, ``--allow-vrt`` and ``--allow-pixel-space``, as predict has them.

    For commands that open a scene for a model outside a run (train, simulate,
    export-chips): the scene errors' hints name these options.
    """
    for opt in (allow_pixel_space_option, allow_vrt_option, bands_option):
        f = opt(f)
    return f


def run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The tiling and execution options shared by predict-like commands."""
    opts = [
        click.option(
            "--tile-size",
            type=click.IntRange(16, 8192),
            help="Tile size in pixels [default: the model's]; tiles shrink to fit "
            "the scene where the model takes other sizes (input.size_multiple).",
        ),
        click.option(
            "--overlap",
            type=click.IntRange(0),
            help="Context pixels per tile side [default: the model's recommendation].",
        ),
        click.option(
            "--dead-zone",
            type=click.IntRange(0),
            help="Zero-weight pixels at blended tile edges [default: receptive radius].",
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(1, 1024),
            default=4,
            show_default=True,
            help="Tiles per model call.",
        ),
        bands_option,
        click.option(
            "--nodata",
            type=float,
            help="Treat this value as nodata (overrides the file).",
        ),
        allow_vrt_option,
        allow_pixel_space_option,
        click.option(
            "--device",
            default="auto",
            show_default=True,
            help="auto, cpu, cuda or cuda:N.",
        ),
        click.option(
            "--precision",
            type=click.Choice(["fp32", "bf16", "fp16", "auto"]),
            default="auto",
            show_default=True,
            help="Model precision; auto: bf16 + channels-last (CPUs with AVX512-BF16/AMX) or fp16 (CUDA) if its argmax agrees with fp32 on >= 99.9 % of one tile's valid pixels (recorded in OUT/precision.json), else fp32.",
        ),
        click.option(
            "--threads",
            type=click.IntRange(1),
            help="Model threads [default: all cores].",
        ),
        click.option(
            "--probabilities/--no-probabilities",
            default=True,
            show_default=True,
            help="Write the per-class probability COG.",
        ),
        click.option(
            "--vectors/--no-vectors",
            default=True,
            show_default=True,
            help="Write the polygon GeoPackage.",
        ),
        click.option(
            "--retry-failed",
            is_flag=True,
            help="Re-run tiles that failed in an earlier run.",
        ),
        click.option(
            "--overwrite",
            is_flag=True,
            help="Discard existing results in the run folder.",
        ),
        click.option(
            "--uncertainty",
            type=click.Choice(["entropy", "margin", "least-confidence", "none"]),
            default="entropy",
            show_default=True,
            help="Per-pixel measure of the uncertainty COG (scaled 0-1).",
        ),
        click.option(
            "--model-uncertainty",
            type=click.Choice(["none", "mc-dropout", "tta"]),
            default="none",
            show_default=True,
            help="Also stitch MC-dropout BALD or test-time-augmentation disagreement.",
        ),
        click.option(
            "--mc-passes",
            type=click.IntRange(2, 256),
            default=8,
            show_default=True,
            help="MC-dropout passes.",
        ),
        click.option(
            "--seed",
            type=int,
            default=0,
            show_default=True,
            help="Seed of the MC-dropout passes.",
        ),
        click.option(
            "--compress",
            type=click.Choice(["zstd", "deflate"]),
            default="zstd",
            show_default=True,
            help="COG compression; deflate for readers without ZSTD (GDAL < 2.3).",
        ),
        click.option(
            "--limit",
            "limits",
            multiple=True,
            metavar="NAME=VALUE",
            callback=_limits,
            help="Raise or lower a scene limit (repeatable): bands (1024), pixels "
            "(1e10), tiles (1e6), ratio (declared/file bytes, 1000), block-mib "
            "(compressed strip or tile, 64), scene-seconds (86400).",
        ),
        click.option(
            "--allow-remote",
            "allow_remote",
            multiple=True,
            metavar="HOST",
            callback=_tuple,
            help="Read https:// scenes from HOST (or HOST:PORT) and s3:// scenes from "
            "s3://BUCKET, with byte-range requests (repeatable; * for any). Without "
            "it, URLs are refused.",
        ),
        click.option(
            "--stac-resample",
            type=click.Choice(["nearest", "bilinear", "cubic", "average", "mode"]),
            help="Resample the band assets of a STAC item that lie on different grids "
            "to the finest [default: refuse such items].",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


class ProgressBar:
    """A tqdm bar per scene on stderr (nothing when quiet or not a terminal in CI)."""

    def __init__(self, quiet: bool) -> None:
        """Start with no bar."""
        self.quiet = quiet
        self.bar: Any = None
        self.scene: str | None = None

    def __call__(self, scene: str, done: int, total: int) -> None:
        """Update (or start) the bar of ``scene``."""
        if self.quiet:
            return
        from tqdm import tqdm

        if scene != self.scene:
            self.close()
            # tiles done by an earlier call count as the start, not in the rate
            self.bar = tqdm(
                total=total,
                initial=done,
                desc=scene,
                unit="tile",
                file=sys.stderr,
                leave=True,
            )
            self.scene = scene
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        """Close the current bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def tame_dask_logging(verbose: int) -> None:
    """Keep dask.distributed's and dask-jobqueue's logs at WARNING unless ``-v``.

    distributed sets its own loggers to INFO (with their own stderr handler) when it is
    imported, so it is imported here first and then turned down; ``-v`` keeps INFO.
    """
    import importlib
    import logging

    with contextlib.suppress(ImportError):
        importlib.import_module("distributed")
    level = logging.INFO if verbose > 0 else logging.WARNING
    for name in ("distributed", "dask_jobqueue"):
        logging.getLogger(name).setLevel(level)
