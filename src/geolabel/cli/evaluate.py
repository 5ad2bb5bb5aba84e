"""``geolabel evaluate``: per-class IoU, mIoU, F1 and the confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path

import click

from geolabel.cli._labels_opts import parse_layer_path

__all__ = ["evaluate"]


@click.command()
@click.argument("prediction", type=click.Path(exists=True, path_type=Path))
@click.argument("reference", type=str)
@click.option(
    "--kind",
    "kind",
    help="Reference kind: raster, vector, ... [default: from the suffix].",
)
@click.option("--scene", help="Scene of a multi-scene run folder (name).")
@click.option(
    "-m",
    "--model",
    type=click.Path(exists=True, path_type=Path),
    help="Model spec for the class names [default: the run's].",
)
@click.option(
    "--class-field",
    default="label",
    show_default=True,
    help="Class field of a vector reference.",
)
@click.option(
    "--class-offset",
    type=int,
    default=0,
    show_default=True,
    help="Added to integer reference codes (-1 for 1-based codes).",
)
@click.option(
    "--point-buffer",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Grow reference points to (2N+1)^2 pixel squares.",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the JSON here.",
)
@click.pass_context
def evaluate(
    ctx: click.Context,
    prediction: Path,
    reference: str,
    kind: str | None,
    scene: str | None,
    model: Path | None,
    class_field: str,
    class_offset: int,
    point_buffer: int,
    out: Path | None,
) -> None:
    """Score PREDICTION (run folder or mask GeoTIFF) against REFERENCE (PATH[:LAYER]).

    JSON on stdout (and --out); a readable table on stderr.

    \b
    Examples:
      geolabel evaluate tiles/run1 strata.tif --class-offset -1
      geolabel evaluate tiles/run1 labels.gpkg:polygons --class-field label
    """
    from geolabel.api import evaluate as run_eval
    from geolabel.evaluation import format_table
    from geolabel.simulation._report import write_json

    scores = run_eval(
        prediction,
        parse_layer_path(reference),
        kind=kind,
        scene=scene,
        model=model,
        class_field=class_field,
        class_offset=class_offset,
        point_buffer=point_buffer,
    )
    if out is not None:
        write_json(scores, out)
    tabular = "confusion_matrix" in scores or scores.get("kind") == "boxes"
    if not (ctx.obj and ctx.obj.get("quiet")) and tabular:
        click.echo(format_table(scores), err=True)
    click.echo(json.dumps(scores))
