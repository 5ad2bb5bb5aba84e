"""``geolabel loop``: predict, prioritise, wait for labels, fine-tune, re-predict."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from geolabel.cli._labels_opts import parse_layer_path
from geolabel.cli.options import scene_options

__all__ = ["loop"]


@click.command()
@click.argument("scenes", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-m", "--model", required=True, type=click.Path(path_type=Path), help="Base spec."
)
@click.option(
    "--labels",
    required=True,
    help="Labels file the labeller edits (PATH or PATH:LAYER; may not exist yet).",
)
@click.option(
    "-o", "--out", required=True, type=click.Path(path_type=Path), help="Loop folder."
)
@click.option(
    "--every",
    type=click.IntRange(1),
    default=50,
    show_default=True,
    help="New labelled features that start the next round.",
)
@click.option(
    "--rounds",
    type=click.IntRange(0),
    default=1,
    show_default=True,
    help="Fine-tuning rounds to run (after the first prediction).",
)
@click.option(
    "-n",
    "--budget",
    type=click.IntRange(1),
    default=40,
    show_default=True,
    help="Queue length of each round's prioritize.",
)
@click.option("--strategy", default="auto", show_default=True, help="As prioritize.")
@click.option(
    "--unit",
    type=click.Choice(["auto", "points", "superpixels", "regions"]),
    default="auto",
    show_default=True,
    help="As prioritize (auto: points on pixels of 5 m or more, else superpixels).",
)
@click.option("--class-field", default="label", show_default=True)
@click.option(
    "--point-buffer",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Grow point labels to (2N+1)-pixel squares for training.",
)
@click.option(
    "--steps",
    type=click.IntRange(1),
    default=200,
    show_default=True,
    help="Optimiser steps per fine-tune.",
)
@click.option("--tile-size", type=click.IntRange(16, 8192), help="Prediction tiles.")
@click.option("--threads", type=click.IntRange(1), help="Model threads.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Poll for labels, or stop when the loop would wait (run again later).",
)
@click.option(
    "--poll",
    type=click.FloatRange(0.01),
    default=10.0,
    show_default=True,
    help="Seconds between polls of the labels file.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0),
    help="Stop waiting for labels after this many seconds [default: never].",
)
@scene_options
def loop(
    scenes: tuple[Path, ...],
    model: Path,
    labels: str,
    out: Path,
    every: int,
    rounds: int,
    budget: int,
    strategy: str,
    unit: str,
    class_field: str,
    point_buffer: int,
    steps: int,
    tile_size: int | None,
    threads: int | None,
    seed: int,
    wait: bool,
    poll: float,
    timeout: float | None,
    bands: tuple[int, ...] | None,
    allow_vrt: bool,
    allow_pixel_space: bool,
) -> None:
    """Predict SCENES, queue what to label, and after every N new labels fine-tune,
    re-predict and re-queue, keeping every model version and its metrics.

    Progress goes to stdout as JSON lines (one per step), the final state last.
    Resumable: killed at any point, the same command goes on where it stopped.

    \b
    Examples:
      geolabel loop scene.tif -m base.yaml --labels labels.gpkg:labels -o loop1 \\
          --every 50 --rounds 3 --budget 40
      geolabel loop a.tif b.tif -m base.yaml --labels labels.gpkg -o loop1 --no-wait
    """
    from geolabel.loop import LoopConfig, run_loop

    path, layer = parse_layer_path(labels)

    def emit(doc: dict[str, Any]) -> None:
        click.echo(json.dumps(doc))
        sys.stdout.flush()

    result = run_loop(
        LoopConfig(
            scenes=tuple(str(s) for s in scenes),
            model=str(model),
            labels=path,
            labels_layer=layer,
            out=str(out),
            every=every,
            rounds=rounds,
            budget=budget,
            strategy=strategy,
            unit=unit,
            class_field=class_field,
            point_buffer=point_buffer,
            steps=steps,
            tile_size=tile_size,
            threads=threads,
            seed=seed,
            bands=bands,
            allow_vrt=allow_vrt,
            allow_pixel_space=allow_pixel_space,
            wait=wait,
            poll=poll,
            timeout=timeout,
        ),
        emit=emit,
    )
    emit(result.to_dict())
