"""``geolabel predict``: run a model over scenes into a run folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from geolabel.cli.options import ProgressBar, run_options

__all__ = ["predict", "report"]


def report(result: Any, quiet: bool) -> None:
    """Print per-scene status (stderr) and the run summary (stdout, JSON)."""
    for s in result.scenes:
        if s.status != "done":
            click.echo(f"geolabel: error: {s.scene}: {s.error}", err=True)
    summary = {
        "run": str(result.run_json),
        "scenes": [{"scene": s.scene, "status": s.status, "outputs": s.outputs} for s in result.scenes],
    }
    click.echo(json.dumps(summary, indent=None if quiet else 2))


@click.command()
@click.argument("scenes", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-m", "--model", "model", required=True, type=click.Path(path_type=Path), help="Model spec (YAML).")
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Run folder (created; re-running resumes).")
@run_options
@click.pass_context
def predict(ctx: click.Context, scenes: tuple[Path, ...], model: Path, out: Path, **opts: Any) -> None:
    """Run MODEL over SCENES, stitch the tiles and write COGs, vectors and run.json.

    Re-running the same command resumes: finished tiles are not redone. A bad scene is
    reported and the others finish; the exit code is 1 if any scene failed.

    \b
    Examples:
      geolabel predict scene.tif --model configs/models/nc-landcover-unet.yaml --out tiles/run1
      geolabel predict a.tif b.tif -m spec.yaml -o tiles/run2 --nodata 0 --overlap 64
    """
    from geolabel.config import RunConfig
    from geolabel.pipeline import run_predict

    quiet = bool(ctx.obj and ctx.obj.get("quiet"))
    config = RunConfig(scenes=tuple(str(s) for s in scenes), model=str(model), out=str(out), **opts)
    bar = ProgressBar(quiet)
    try:
        result = run_predict(config, progress=bar)
    finally:
        bar.close()
    report(result, quiet)
    if not result.ok:
        ctx.exit(1)
