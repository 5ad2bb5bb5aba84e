"""``geolabel demo``: the embedded default, offline, on a real scene and model."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["demo"]


@click.command()
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    default=Path("tiles/demo"),
    show_default=True,
    help="Run folder.",
)
@click.option("--overwrite", is_flag=True, help="Start again instead of resuming.")
@click.pass_context
def demo(ctx: click.Context, out: Path, overwrite: bool) -> None:
    """Run the shipped land-cover U-Net over the shipped Landsat-7 scene (no network).

    The scene is the GRASS GIS North Carolina Landsat-7 ETM+ sample (2000, bands 1-5,
    CC BY-SA 3.0); the model is a small U-Net trained on it by scripts/train_demo_model.py.

    \b
    Examples:
      geolabel demo
      geolabel demo --out /tmp/demo --overwrite
    """
    from geolabel.cli.options import ProgressBar
    from geolabel.cli.predict import report
    from geolabel.config import RunConfig
    from geolabel.models.spec import builtin_spec_path
    from geolabel.pipeline import run_predict
    from geolabel.samples import sample_path

    quiet = bool(ctx.obj and ctx.obj.get("quiet"))
    config = RunConfig(
        scenes=(str(sample_path("nc-landsat7/nc_landsat7_2000.tif")),),
        model=str(builtin_spec_path("nc_landcover_unet")),
        out=str(out),
        overwrite=overwrite,
    )
    bar = ProgressBar(quiet)
    try:
        result = run_predict(config, progress=bar)
    finally:
        bar.close()
    report(result, quiet)
    if result.ok:
        click.echo(f"demo outputs are in {out.resolve()}", err=True)
    else:
        ctx.exit(1)
