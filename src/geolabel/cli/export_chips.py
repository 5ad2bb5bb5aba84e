"""``geolabel export-chips``: labels + the image under them as training chips and COCO."""

from __future__ import annotations

import json
from pathlib import Path

import click

from geolabel.cli._labels_opts import LayerPath
from geolabel.cli.options import scene_options

__all__ = ["export_chips"]


@click.command("export-chips")
@click.argument("scenes", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--labels",
    "labels",
    required=True,
    type=LayerPath(),
    help="Labels vector file (PATH or PATH:LAYER), e.g. labels.gpkg:labels.",
)
@click.option(
    "-m",
    "--model",
    required=True,
    type=click.Path(path_type=Path),
    help="Model spec: its bands are exported and its classes index the masks.",
)
@click.option(
    "-o", "--out", required=True, type=click.Path(path_type=Path), help="Folder."
)
@click.option(
    "--chip-size",
    type=click.IntRange(8, 8192),
    default=256,
    show_default=True,
    help="Chip side in pixels.",
)
@click.option(
    "--stride",
    type=click.IntRange(1, 8192),
    help="Pixels between chip origins [default: the chip size].",
)
@click.option(
    "--min-labelled",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Labelled pixels a chip needs to be written.",
)
@click.option(
    "--class-field", default="label", show_default=True, help="Class attribute."
)
@click.option("--coco/--no-coco", default=True, show_default=True, help="coco.json.")
@scene_options
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT.")
def export_chips(
    scenes: tuple[Path, ...],
    labels: tuple[str, str | None],
    model: Path,
    out: Path,
    chip_size: int,
    stride: int | None,
    min_labelled: int,
    class_field: str,
    coco: bool,
    bands: tuple[int, ...] | None,
    allow_vrt: bool,
    allow_pixel_space: bool,
    overwrite: bool,
) -> None:
    """Write GeoTIFF image + mask chips under the labels of SCENES (and COCO JSON).

    OUT/images/ and OUT/masks/ hold pairs with one file name, CRS and grid (torchgeo
    RasterDataset & RasterDataset(is_image=False)); masks hold class indexes, 255 where
    unlabelled; OUT/chips.json lists every chip; OUT/coco.json holds the polygon
    labels as COCO instances (category id = class index + 1). Prints counts (JSON).

    \b
    Examples:
      geolabel export-chips scene.tif --labels labels.gpkg:labels -m spec.yaml -o chips
      geolabel export-chips a.tif b.tif --labels l.gpkg -m spec.yaml -o chips \\
          --chip-size 128 --stride 64 --no-coco
    """
    from geolabel.exchange import export_training
    from geolabel.execution.plan import open_model_scene
    from geolabel.labels import class_lookup, read_labels
    from geolabel.models.spec import load_spec

    spec = load_spec(model, require_weights=False)
    path, layer = labels
    feats = read_labels(path, layer=layer)
    opened = [
        open_model_scene(
            s,
            spec,
            bands=bands,
            allow_vrt=allow_vrt,
            allow_pixel_space=allow_pixel_space,
        )
        for s in scenes
    ]
    result = export_training(
        opened,
        feats,
        out,
        classes=spec.class_names,
        lookup=class_lookup(spec.class_names, spec.labels()),
        chip_size=chip_size,
        stride=stride,
        min_labelled=min_labelled,
        class_field=class_field,
        coco=coco,
        overwrite=overwrite,
        source=f"{path}:{layer or ''}",
    )
    click.echo(json.dumps(result.to_dict()))
