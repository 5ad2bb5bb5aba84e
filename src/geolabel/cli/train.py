"""``geolabel train``: fine-tune (or train) a model on imported labels."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from geolabel.cli._labels_opts import LayerPath
from geolabel.cli.options import scene_options

__all__ = ["train"]


@click.command()
@click.argument("scene", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--labels",
    "labels",
    multiple=True,
    required=True,
    type=LayerPath(),
    help="Label vectors PATH[:LAYER]: polygons and/or points (repeatable).",
)
@click.option(
    "--class-field",
    default="label",
    show_default=True,
    help="Class field: names (matched to the model's classes) or integer codes.",
)
@click.option(
    "--class-offset",
    type=int,
    default=0,
    show_default=True,
    help="Added to integer class codes (-1 for 1-based codes).",
)
@click.option(
    "--point-buffer",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Grow point labels to (2N+1)^2 pixel squares.",
)
@click.option(
    "-m",
    "--model",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Base model spec (its weights are the starting point).",
)
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="New spec YAML (weights: same name, .safetensors).",
)
@click.option(
    "--from-scratch", is_flag=True, help="Start from fresh weights, not the spec's."
)
@click.option("--steps", type=click.IntRange(1), default=200, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True)
@click.option(
    "--chip-size", type=click.IntRange(8), default=64, show_default=True, help="Pixels."
)
@click.option(
    "--lr", type=float, default=1e-3, show_default=True, help="Peak learning rate."
)
@click.option(
    "--sampler",
    type=click.Choice(["balanced", "uniform"]),
    default="balanced",
    show_default=True,
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--threads", type=click.IntRange(1), help="torch threads [default: torch's]."
)
@click.option("--name", help="Model name of the new spec [default: the base's].")
@click.option(
    "--version",
    "version",
    help="Version of the new spec [default: base version bumped].",
)
@scene_options
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.pass_context
def train(
    ctx: click.Context,
    scene: Path,
    labels: tuple[tuple[str, str | None], ...],
    class_field: str,
    class_offset: int,
    point_buffer: int,
    model: Path,
    out: Path,
    from_scratch: bool,
    steps: int,
    batch_size: int,
    chip_size: int,
    lr: float,
    sampler: str,
    seed: int,
    threads: int | None,
    name: str | None,
    version: str | None,
    bands: tuple[int, ...] | None,
    allow_vrt: bool,
    allow_pixel_space: bool,
    overwrite: bool,
) -> None:
    """Fine-tune MODEL on the labelled pixels of SCENE; write a new spec + weights.

    Unlabelled pixels are ignored by the loss. Same inputs and seed give the same
    weights. Prints the new spec path and the training metrics (JSON).

    \b
    Examples:
      geolabel train scene.tif --labels labels.gpkg:labels -m base.yaml -o models/v2.yaml
      geolabel train scene.tif --labels pts.gpkg --point-buffer 1 -m base.yaml \\
          -o models/scratch.yaml --from-scratch --steps 400
    """
    from geolabel.api import train as run_train
    from geolabel.models.spec import load_spec
    from geolabel.train import FitConfig

    spec = load_spec(model, require_weights=not from_scratch)
    if out.suffix not in (".yaml", ".yml"):
        raise click.BadParameter(f"{str(out)!r} must end in .yaml", param_hint="--out")
    config = FitConfig(
        steps=steps,
        batch_size=batch_size,
        chip_size=chip_size,
        lr=lr,
        sampler=sampler,  # type: ignore[arg-type]
        seed=seed,
        threads=threads,
    )
    bar: Any = None
    quiet = bool(ctx.obj and ctx.obj.get("quiet"))

    def progress(step: int, total: int, loss: float) -> None:
        # the bar starts with the first step, after every check has passed
        nonlocal bar
        if quiet:
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="step", desc="train", file=sys.stderr)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        bar.update(step - bar.n)

    try:
        result = run_train(
            scene,
            list(labels),
            spec,
            out,
            class_field=class_field,
            class_offset=class_offset,
            point_buffer=point_buffer,
            from_scratch=from_scratch,
            config=config,
            name=name,
            version=version,
            bands=bands,
            allow_vrt=allow_vrt,
            allow_pixel_space=allow_pixel_space,
            overwrite=overwrite,
            progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
    click.echo(
        json.dumps(
            {
                "spec": str(result.spec_path),
                "weights": str(result.weights_path),
                "model_id": result.model_id,
                "metrics": result.metrics,
            }
        )
    )
