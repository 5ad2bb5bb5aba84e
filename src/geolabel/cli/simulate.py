"""``geolabel simulate``: an active-learning experiment against an oracle map, in labeller effort."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from geolabel.cli._labels_opts import LayerPath
from geolabel.cli.options import scene_options

__all__ = ["simulate"]

_DEFAULT_ARMS = ("auto/auto", "random/auto", "random/regions")


def _seconds(
    name: str, default: float, what: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        f"--{name}",
        type=click.FloatRange(0.0),
        default=default,
        show_default=True,
        help=f"Cost model: seconds {what}.",
    )


@click.command()
@click.argument("scene", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--oracle",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Dense reference raster on the scene grid (class codes).",
)
@click.option(
    "--oracle-offset",
    type=int,
    default=-1,
    show_default=True,
    help="Added to oracle codes to get model class indexes.",
)
@click.option(
    "--labels",
    "labels",
    multiple=True,
    type=LayerPath(),
    help="Extra first labels, PATH[:LAYER] (repeatable).",
)
@click.option(
    "--class-field",
    default="label",
    show_default=True,
    help="Class field of the first labels (names).",
)
@click.option(
    "--point-buffer",
    type=click.IntRange(0),
    default=1,
    show_default=True,
    help="Grow --labels points to (2N+1)^2 pixel squares.",
)
@click.option(
    "--seed-points",
    type=click.IntRange(0),
    default=24,
    show_default=True,
    help="First labels: this many clicks at random places of the training columns.",
)
@click.option(
    "-m",
    "--model",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Model spec: architecture, normalisation, classes (weights are not used).",
)
@scene_options
@click.option(
    "--arm",
    "arms",
    multiple=True,
    default=_DEFAULT_ARMS,
    show_default=True,
    help="STRATEGY/UNIT to compare (repeatable; the first is 'the default'). "
    "Strategies: auto, random, coreset, typiclust, entropy, margin, "
    "least-confidence, bald, ensemble, with +diverse/+balance/+power/+cold/+typical; "
    "units: regions, superpixels, points, auto (what prioritize asks for on this "
    "scene: points on pixels of 5 m or more, superpixels on finer ones).",
)
@click.option(
    "--baseline",
    "baselines",
    multiple=True,
    default=("random/auto", "random/regions"),
    show_default=True,
    help="Arms every other arm is compared with, paired by seed (repeatable).",
)
@click.option(
    "--seed",
    "seeds",
    multiple=True,
    type=int,
    default=(0, 1, 2, 3, 4),
    show_default=True,
    help="Repeatable.",
)
@click.option("--rounds", type=click.IntRange(0), default=7, show_default=True)
@click.option(
    "--round-seconds",
    type=click.FloatRange(0.0, min_open=True),
    default=120.0,
    show_default=True,
    help="Labeller-seconds every arm spends per round.",
)
@click.option(
    "--region-size",
    type=click.IntRange(2),
    default=32,
    show_default=True,
    help="Side of square regions (px).",
)
@click.option(
    "--superpixel-size",
    type=click.IntRange(2),
    default=12,
    show_default=True,
    help="Typical side of a SLIC superpixel (px).",
)
@click.option(
    "--point-spacing",
    type=click.FloatRange(0.0),
    default=3.0,
    show_default=True,
    help="Minimum distance between picked points (px).",
)
@click.option(
    "--holdout-fraction",
    type=float,
    default=0.25,
    show_default=True,
    help="Right-most fraction of columns used only for scoring.",
)
@click.option("--initial-steps", type=click.IntRange(1), default=200, show_default=True)
@click.option("--round-steps", type=click.IntRange(1), default=60, show_default=True)
@click.option(
    "--retrain/--fine-tune",
    default=False,
    show_default=True,
    help="Retrain from fresh weights each round instead of fine-tuning.",
)
@click.option(
    "--full-steps",
    type=click.IntRange(1),
    default=None,
    help="Training steps of the fully-labelled reference model "
    "[default: initial + rounds x round steps, as many as the arms' final models].",
)
@click.option("--chip-size", type=click.IntRange(8), default=64, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True)
@click.option("--lr", type=float, default=2e-3, show_default=True)
@_seconds("point-seconds", 3.0, "per point click")
@_seconds("superpixel-seconds", 4.0, "per superpixel (look and click its class)")
@_seconds("query-seconds", 3.0, "to go to a square region")
@_seconds("polygon-seconds", 5.0, "per polygon drawn in a region")
@_seconds("vertex-seconds", 1.5, "per polygon vertex")
@click.option(
    "--simplify",
    type=click.FloatRange(0.0),
    default=1.0,
    show_default=True,
    help="Cost model: outline simplification tolerance (px) before counting vertices.",
)
@click.option(
    "--mc-passes",
    type=click.IntRange(2),
    default=8,
    show_default=True,
    help="Dropout passes of the bald strategy.",
)
@click.option(
    "--pool-factor",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    help="+diverse: the uncertain pool is this many times the per-class quota.",
)
@click.option(
    "--cold-labels",
    type=click.IntRange(0),
    default=100,
    show_default=True,
    help="+cold: below this many labelled units, every other pick is random (with "
    "+typical: TypiClust's).",
)
@click.option(
    "--target",
    "fractions",
    multiple=True,
    type=click.FloatRange(0.0, 1.0),
    default=(0.9, 0.95),
    show_default=True,
    help="Quality targets, fractions of the fully-labelled mIoU (repeatable).",
)
@click.option(
    "--threads",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="torch threads.",
)
@click.option(
    "--reuse",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="An earlier OUT of the same experiment (same scene, oracle, model and "
    "settings but arms, baselines, seeds, targets): its fully-labelled references "
    "and its finished runs of non-alias arms at the same --arm position are taken "
    "instead of simulated again, once the seed's first model scores as it did "
    "there. Also resumes a stopped run from its partial OUT.",
)
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Output JSON; the PNG plot goes next to it.",
)
@click.pass_context
def simulate(
    ctx: click.Context,
    /,
    scene: Path,
    oracle: Path,
    model: Path,
    out: Path,
    labels: tuple[tuple[str, str | None], ...],
    class_field: str,
    point_buffer: int,
    threads: int,
    reuse: Path | None,
    allow_vrt: bool,
    allow_pixel_space: bool,
    **opts: Any,
) -> None:
    """Rounds of predict -> pick units -> the ORACLE answers -> train -> score.

    Every arm (STRATEGY/UNIT) spends the same labeller-seconds per round, costed by a
    documented model (clicks, polygons, vertices; docs/simulation.md); all arms of a
    seed start from the same first labels and first model. OUT (JSON) holds every round
    of every run, the fully-labelled reference, and the summary: curves per second of
    effort, ALC with paired bootstrap 95 % intervals, and the effort to reach each
    --target of the fully-labelled mIoU. OUT with .png plots them. OUT is rewritten
    after every finished run ("complete": false until the end).

    \b
    Example:
      D=src/geolabel/_data/cloud-landsat7
      geolabel simulate $D/cloud_landsat7.tif --oracle $D/cloud_reference.tif \\
        -m configs/simulation/cloud-landsat7-unet.yaml -o sim/cloud.json
    """
    import torch

    from geolabel.models.spec import load_spec
    from geolabel.simulation import (
        CostModel,
        LabelSource,
        SimulationConfig,
        plot_curves,
        run_simulation,
        write_json,
    )
    from geolabel.train import FitConfig

    torch.set_num_threads(threads)
    spec = load_spec(model, require_weights=False)
    cost = CostModel(
        **{f.name: opts.pop(f.name) for f in dataclasses.fields(CostModel)}
    )
    fit_cfg = FitConfig(
        chip_size=opts.pop("chip_size"),
        batch_size=opts.pop("batch_size"),
        lr=opts.pop("lr"),
    )
    config = SimulationConfig(cost=cost, fit=fit_cfg, **opts)
    sources = [LabelSource(p, layer, class_field, point_buffer) for p, layer in labels]
    quiet = bool(ctx.obj and ctx.obj.get("quiet"))
    bar: Any = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(
            total=len(config.seeds) * (2 + len(config.arms) * config.rounds),
            unit="fit",
            file=sys.stderr,
        )

    def progress(done: int, total: int, desc: str) -> None:
        if bar is not None:
            bar.set_description(desc)
            bar.update(done - bar.n)

    def checkpoint(partial: dict[str, Any]) -> None:
        write_json(partial, out)

    try:
        record = run_simulation(
            scene,
            oracle,
            sources,
            spec,
            config,
            progress=progress,
            checkpoint=checkpoint,
            reuse=reuse,
            allow_vrt=allow_vrt,
            allow_pixel_space=allow_pixel_space,
        )
    finally:
        if bar is not None:
            bar.close()
    write_json(record, out)
    png = plot_curves(record, out.with_suffix(".png"))
    click.echo(
        json.dumps(
            {
                "json": str(out),
                "png": str(png),
                "comparisons": record["summary"].get("comparisons", []),
            },
            indent=None if quiet else 2,
        )
    )
