"""``geolabel accept``: turn (reviewed) suggestions into labels."""

from __future__ import annotations

import json
from pathlib import Path

import click

from geolabel.cli._labels_opts import LayerPath

__all__ = ["accept"]


def _thresholds(values: tuple[str, ...]) -> tuple[float | None, dict[str, float]]:
    """``0.5`` (global) and ``forest=0.8`` (per class) -> (global, per class)."""
    glob: float | None = None
    per: dict[str, float] = {}
    for v in values:
        name, eq, num = v.rpartition("=")
        try:
            x = float(num)
        except ValueError:
            raise click.BadParameter(
                f"{v!r} is not a number or CLASS=NUMBER", param_hint="--threshold"
            ) from None
        if not 0.0 <= x <= 1.0:
            raise click.BadParameter(
                f"{v!r}: thresholds are scores in [0, 1]", param_hint="--threshold"
            )
        if eq and not name:
            raise click.BadParameter(
                f"{v!r}: class name missing", param_hint="--threshold"
            )
        if eq:
            per[name] = x
        else:
            glob = x
    return glob, per


def _ids(value: str | None) -> frozenset[int] | None:
    if value is None:
        return None
    try:
        return frozenset(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a comma-separated list of ids", param_hint="--ids"
        ) from None


@click.command()
@click.argument("suggestions", type=LayerPath())
@click.option(
    "-o",
    "--labels",
    "labels",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Labels GeoPackage to append to (created if missing, with its folder).",
)
@click.option(
    "--layer",
    "labels_layer",
    default="labels",
    show_default=True,
    help="Layer of the labels.",
)
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    help="Minimum score: 0.6 for all classes or CLASS=0.8 for one (repeatable).",
)
@click.option("--ids", help="Accept these feature ids, e.g. 1,5,9.")
@click.option(
    "--inside",
    type=LayerPath(),
    help="Accept features inside these polygons, PATH[:LAYER].",
)
@click.option(
    "-m",
    "--model",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Model spec whose classes the labels must name [default: the run's, from "
    "run.json beside the suggestions' scene folder].",
)
def accept(
    suggestions: tuple[str, str | None],
    labels: Path,
    labels_layer: str,
    thresholds: tuple[str, ...],
    ids: str | None,
    inside: tuple[str, str | None] | None,
    model: Path | None,
) -> None:
    """Append accepted SUGGESTIONS (PATH[:LAYER], default layer predictions) to labels.

    Features the reviewer marked rejected are never taken; accepted and edited ones
    always are, as they are now in the file. Suggested features are taken when every
    given criterion holds. Every taken label must be one of the model's classes
    (--model, or the run's); class_name and class_id follow it. Re-running adds
    nothing twice. Prints the counts (JSON).

    \b
    Examples:
      geolabel accept run1/scene/scene_predictions.gpkg --threshold 0.7 -o labels.gpkg
      geolabel accept run1/scene/scene_predictions.gpkg --threshold 0.6 \\
          --threshold forest=0.85 -o labels.gpkg
      geolabel accept run1/scene/scene_predictions.gpkg --ids 1,5,9 -o labels.gpkg
      geolabel accept run1/scene/scene_predictions.gpkg --inside area.gpkg -o labels.gpkg
    """
    from geolabel.api import accept as run_accept

    glob, per = _thresholds(thresholds)
    spath, slayer = suggestions
    result = run_accept(
        (spath, slayer or "predictions"),
        labels,
        threshold=glob,
        class_thresholds=per,
        ids=sorted(i) if (i := _ids(ids)) is not None else None,
        inside=inside,
        labels_layer=labels_layer,
        model=model,
    )
    click.echo(json.dumps(result.to_dict()))
