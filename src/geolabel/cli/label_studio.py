"""``geolabel label-studio export|import``: suggestions to Label Studio tasks and back."""

from __future__ import annotations

import json
from pathlib import Path

import click

from geolabel.cli.options import BandsType

__all__ = ["label_studio"]


@click.group("label-studio")
def label_studio() -> None:
    """Round trips with Label Studio (tasks with pre-annotations out, an export back)."""


@label_studio.command("export")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path))
@click.option(
    "--chip-size",
    type=click.IntRange(16, 8192),
    default=512,
    show_default=True,
    help="Task image side in pixels.",
)
@click.option(
    "--min-score",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Suggestions below this score are not sent.",
)
@click.option(
    "--rgb", type=BandsType(), help="Three scene bands to show [default: the model's]."
)
@click.option(
    "--url-prefix",
    default="/data/local-files/?d=",
    show_default=True,
    help="Prefix of each task's image URL before images/NAME.png.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT.")
def export_cmd(
    run_dir: Path,
    out: Path,
    chip_size: int,
    min_score: float,
    rgb: tuple[int, ...] | None,
    url_prefix: str,
    overwrite: bool,
) -> None:
    """Write OUT/tasks.json (pre-annotated chips), OUT/label_config.xml, OUT/images/.

    Each task carries its chip's georeference (data.geolabel), so `geolabel
    label-studio import` maps the annotations back exactly and `geolabel serve
    --data-root` can predict it as a Label Studio ML backend. Prints counts (JSON).

    \b
    Examples:
      geolabel label-studio export tiles/run1 -o ls-tasks --min-score 0.5
      geolabel label-studio export tiles/run1 -o ls-tasks --rgb 3,2,1 \\
          --url-prefix http://127.0.0.1:8000/
    """
    from geolabel.exchange import export_tasks

    if rgb is not None and len(rgb) != 3:
        raise click.BadParameter("give three bands, e.g. 3,2,1", param_hint="--rgb")
    result = export_tasks(
        run_dir,
        out,
        chip_size=chip_size,
        min_score=min_score,
        rgb=rgb,
        url_prefix=url_prefix,
        overwrite=overwrite,
    )
    click.echo(json.dumps(result.to_dict()))


@label_studio.command("import")
@click.argument("export", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="GeoPackage (its folder is created).",
)
@click.option("--layer", default="labels", show_default=True, help="Labels layer.")
@click.option(
    "-m",
    "--model",
    type=click.Path(path_type=Path),
    help="Model spec whose classes the labels name.",
)
@click.option(
    "--run",
    "run_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Or: the run folder whose model's classes the labels name.",
)
def import_cmd(
    export: Path, out: Path, layer: str, model: Path | None, run_dir: Path | None
) -> None:
    """Turn a Label Studio JSON export of geolabel tasks into a labels layer of OUT.

    Per task the latest annotation that was not cancelled; polygons and rectangles, in
    the scene's CRS; labels must name the model's classes. The layer is replaced.

    \b
    Examples:
      geolabel label-studio import project-1-export.json -o labels.gpkg --run tiles/run1
      geolabel label-studio import export.json -o labels.gpkg -m spec.yaml
    """
    from geolabel.exchange import import_annotations
    from geolabel.io.run_record import read_record
    from geolabel.models.spec import load_spec

    if (model is None) == (run_dir is None):
        raise click.BadParameter("give one of --model or --run", param_hint="--model")
    if model is not None:
        spec = load_spec(model, require_weights=False)
        classes, labels = spec.class_names, spec.labels()
    else:
        assert run_dir is not None
        rec = read_record(run_dir).get("model") or {}
        classes = tuple(rec.get("classes") or ())
        labels = tuple(rec.get("labels") or ())
    gdf = import_annotations(
        export, out, classes=classes, class_labels=labels, layer=layer
    )
    click.echo(
        json.dumps(
            {
                "labels": str(out),
                "layer": layer,
                "features": len(gdf),
                "tasks": int(gdf["task_id"].nunique()),
            }
        )
    )
