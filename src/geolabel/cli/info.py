"""``geolabel info``: what geolabel sees in a scene (grid, bands, nodata), as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["info"]


@click.command()
@click.argument("scene", type=click.Path(path_type=Path))
@click.option("--nodata", type=float, help="Override the nodata value.")
@click.option("--allow-vrt", is_flag=True, help="Accept a VRT.")
@click.option("--allow-pixel-space", is_flag=True, help="Accept a file without CRS.")
def info(
    scene: Path, nodata: float | None, allow_vrt: bool, allow_pixel_space: bool
) -> None:
    """Validate SCENE and print its grid, bands and nodata as JSON.

    \b
    Examples:
      geolabel info scene.tif
      geolabel info landsat8.tif --nodata 0
    """
    from geolabel.io.scene import open_scene

    s = open_scene(
        scene, nodata=nodata, allow_vrt=allow_vrt, allow_pixel_space=allow_pixel_space
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
            },
            indent=2,
        )
    )
