"""``geolabel simulate``: an active-learning experiment against an oracle map."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from geolabel.cli._labels_opts import LayerPath

__all__ = ["simulate"]


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
    required=True,
    type=LayerPath(),
    help="First labels, PATH[:LAYER] (repeatable).",
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
    help="Grow point labels to (2N+1)^2 pixel squares.",
)
@click.option(
    "-m",
    "--model",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Model spec: architecture, normalisation, classes (weights are not used).",
)
@click.option(
    "--strategy",
    "strategies",
    multiple=True,
    default=("entropy", "random"),
    show_default=True,
    help="random, entropy, margin, least-confidence[:k-center] (repeatable).",
)
@click.option(
    "--seed",
    "seeds",
    multiple=True,
    type=int,
    default=(0, 1, 2),
    show_default=True,
    help="Repeatable.",
)
@click.option("--rounds", type=click.IntRange(0), default=4, show_default=True)
@click.option(
    "--regions-per-round", type=click.IntRange(1), default=6, show_default=True
)
@click.option(
    "--region-size",
    type=click.IntRange(4),
    default=32,
    show_default=True,
    help="Region side in pixels.",
)
@click.option(
    "--holdout-fraction",
    type=float,
    default=0.25,
    show_default=True,
    help="Right-most fraction of columns used only for scoring.",
)
@click.option("--initial-steps", type=click.IntRange(1), default=150, show_default=True)
@click.option("--round-steps", type=click.IntRange(1), default=60, show_default=True)
@click.option("--chip-size", type=click.IntRange(8), default=64, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True)
@click.option("--lr", type=float, default=2e-3, show_default=True)
@click.option(
    "--threads",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="torch threads.",
)
@click.option(
    "--miou-target",
    "targets",
    multiple=True,
    type=float,
    default=(0.3, 0.35, 0.4, 0.45, 0.5),
    show_default=True,
    help="Repeatable.",
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
    scene: Path,
    oracle: Path,
    oracle_offset: int,
    labels: tuple[tuple[str, str | None], ...],
    class_field: str,
    point_buffer: int,
    model: Path,
    strategies: tuple[str, ...],
    seeds: tuple[int, ...],
    rounds: int,
    regions_per_round: int,
    region_size: int,
    holdout_fraction: float,
    initial_steps: int,
    round_steps: int,
    chip_size: int,
    batch_size: int,
    lr: float,
    threads: int,
    targets: tuple[float, ...],
    out: Path,
) -> None:
    """Rounds of predict -> pick regions -> reveal the ORACLE there -> fine-tune -> score.

    Writes OUT (JSON: every round of every strategy and seed, and a summary of the
    labelled pixels needed to reach each --miou-target) and OUT with .png (the curves).
    OUT is rewritten after every finished run ("complete": false until the end).

    \b
    Example:
      D=src/geolabel/_data/nc-landsat7
      geolabel simulate $D/nc_landsat7_2000.tif --oracle $D/strata.tif \\
        --labels $D/labels.gpkg:points --labels $D/labels.gpkg:polygons \\
        -m src/geolabel/_data/models/nc_landcover_unet.yaml -o sim/nc.json
    """
    import torch

    from geolabel.models.spec import load_spec
    from geolabel.simulation import (
        LabelSource,
        SimulationConfig,
        plot_curves,
        run_simulation,
        write_json,
    )
    from geolabel.train import FitConfig

    torch.set_num_threads(threads)
    spec = load_spec(model)
    config = SimulationConfig(
        strategies=strategies,
        seeds=seeds,
        rounds=rounds,
        regions_per_round=regions_per_round,
        region_size=region_size,
        holdout_fraction=holdout_fraction,
        initial_steps=initial_steps,
        round_steps=round_steps,
        fit=FitConfig(chip_size=chip_size, batch_size=batch_size, lr=lr),
        oracle_offset=oracle_offset,
        miou_targets=targets,
    )
    sources = [LabelSource(p, layer, class_field, point_buffer) for p, layer in labels]
    quiet = bool(ctx.obj and ctx.obj.get("quiet"))
    bar: Any = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(
            total=len(seeds) * (1 + len(strategies) * rounds),
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
        )
    finally:
        if bar is not None:
            bar.close()
    write_json(record, out)
    png = plot_curves(record, out.with_suffix(".png"))
    click.echo(
        json.dumps(
            {"json": str(out), "png": str(png), "summary": record["summary"]},
            indent=None if quiet else 2,
        )
    )
