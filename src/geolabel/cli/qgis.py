"""``geolabel qgis``: (re)style a finished run's outputs and write its QGIS project."""

from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["qgis"]


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
def qgis(run_dir: Path) -> None:
    """Style every output of RUN_DIR for QGIS and write RUN_DIR/run.qgs.

    `geolabel predict` already does this; run it again after outputs were added to the
    run folder (`geolabel prioritize` writes next_to_label.gpkg) so the project holds
    them, styled. Writes .qml sidecars beside rasters, class names beside masks
    (.aux.xml), default styles into each GeoPackage's layer_styles table, and records
    them in run.json. Prints the project path and the files written as JSON.

    \b
    Examples:
      geolabel qgis tiles/run1
      geolabel prioritize tiles/run1 -n 20 && geolabel qgis tiles/run1
    """
    from geolabel.qgis import style_run

    click.echo(json.dumps(style_run(run_dir), indent=2))
