"""``geolabel info``: what geolabel sees in a scene (grid, bands, nodata), as JSON."""

from __future__ import annotations

import json
from typing import Any

import click

__all__ = ["info"]


@click.command()
@click.argument("scene", type=click.Path(path_type=str))
@click.option("--nodata", type=float, help="Override the nodata value.")
@click.option("--allow-vrt", is_flag=True, help="Accept a VRT.")
@click.option("--allow-pixel-space", is_flag=True, help="Accept a file without CRS.")
@click.option(
    "--allow-remote",
    multiple=True,
    metavar="HOST",
    help="Read an https:// or s3:// SCENE from HOST or s3://BUCKET (repeatable).",
)
@click.option(
    "--stac-resample",
    type=click.Choice(["nearest", "bilinear", "cubic", "average", "mode"]),
    help="Resample STAC band assets on different grids to the finest.",
)
def info(
    scene: str,
    nodata: float | None,
    allow_vrt: bool,
    allow_pixel_space: bool,
    allow_remote: tuple[str, ...],
    stac_resample: Any,
) -> None:
    """Validate SCENE (a file, URL or STAC item) and print its grid, bands and nodata.

    \b
    Examples:
      geolabel info scene.tif
      geolabel info landsat8.tif --nodata 0
      geolabel info https://example.com/cog.tif --allow-remote example.com
      geolabel info item.json
    """
    from geolabel.io.scene import open_scene

    s = open_scene(
        scene,
        nodata=nodata,
        allow_vrt=allow_vrt,
        allow_pixel_space=allow_pixel_space,
        allow_remote=allow_remote,
        stac_resample=stac_resample,
    )
    click.echo(
        json.dumps(
            {
                "path": str(s.path),
                "driver": s.driver,
                "shape": list(s.grid.shape),
                "transform": list(s.grid.transform)[:6],
                "crs": s.grid.crs,
                "bounds": list(s.grid.bounds),
                "bands": list(s.bands),
                "band_names": list(s.band_names),
                "dtype": s.dtype,
                "nodata": s.nodata,
                "nodata_source": s.nodata_source,
                "area_or_point": s.area_or_point,
                **s.provenance,
            },
            indent=2,
        )
    )
