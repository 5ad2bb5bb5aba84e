"""``geolabel predict``: run a model over scenes into a run folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from geolabel.cli.main import error_line
from geolabel.cli.options import ProgressBar, run_options, tame_dask_logging

__all__ = ["predict", "report"]


def report(result: Any, quiet: bool) -> None:
    """Print per-scene status (stderr) and the run summary (stdout, JSON)."""
    for s in result.scenes:
        if s.status != "done":
            click.echo(error_line(s.error or s.status, s.scene), err=True)
    summary = {
        "run": str(result.run_json),
        "scenes": [
            {"scene": s.scene, "status": s.status, "outputs": s.outputs}
            for s in result.scenes
        ],
    }
    click.echo(json.dumps(summary, indent=None if quiet else 2))


@click.command()
@click.argument("scenes", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "-m",
    "--model",
    "model",
    required=True,
    type=click.Path(path_type=Path),
    help="Model spec (YAML).",
)
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Run folder (created; re-running resumes).",
)
@run_options
@click.option(
    "--cluster",
    default="local",
    show_default=True,
    metavar="TARGET",
    help="Where batches run: local, local:N (worker processes), tcp://HOST:PORT (a dask "
    "scheduler), slurm:FILE.yaml or pbs:FILE.yaml (dask-jobqueue).",
)
@click.option(
    "--shard",
    metavar="I/N|auto",
    help="Run only shard I (0-based) of N of the batches and do not finalize "
    "(`geolabel finalize OUT` does); auto: from SLURM_ARRAY_TASK_ID/_COUNT.",
)
@click.pass_context
def predict(
    ctx: click.Context,
    /,
    scenes: tuple[str, ...],
    model: Path,
    out: Path,
    **opts: Any,
) -> None:
    """Run MODEL over SCENES, stitch the tiles and write COGs, vectors and run.json.

    A scene is a GeoTIFF/COG, an https:// or s3:// URL of one (with --allow-remote),
    or a STAC Item / ItemCollection JSON whose assets are the bands (ITEMS.json#ID
    for one item).

    Re-running the same command resumes: finished tiles are not redone. A bad scene is
    reported and the others finish; the exit code is 1 if any scene failed.

    \b
    Examples:
      geolabel predict scene.tif -m src/geolabel/_data/models/nc_landcover_unet.yaml -o tiles/run1
      geolabel predict a.tif b.tif -m spec.yaml -o tiles/run2 --nodata 0 --overlap 64
      geolabel predict a.tif -m spec.yaml -o tiles/run3 --cluster slurm:configs/cluster/slurm.yaml
      geolabel predict a.tif -m spec.yaml -o tiles/run4 --shard auto   # in an sbatch --array job
      geolabel predict https://example.com/cog.tif -m spec.yaml -o tiles/run5 --allow-remote example.com
      geolabel predict item.json -m spec.yaml -o tiles/run6 --stac-resample bilinear

    On SIGTERM (preemption) the run records the finished batches and exits with
    status 75 within 30 s; the same command resumes.
    """
    from geolabel.config import RunConfig
    from geolabel.execution import (
        PREEMPTED_EXIT,
        Preempted,
        preemption_guard,
        resolve_shard_option,
    )
    from geolabel.pipeline import run_predict

    quiet = bool(ctx.obj and ctx.obj.get("quiet"))
    if opts["cluster"].strip() not in ("", "local"):
        tame_dask_logging(int((ctx.obj or {}).get("verbose", 0)))
    opts["shard"] = resolve_shard_option(opts["shard"])
    if opts["shard"] is not None and opts["overwrite"]:
        raise click.BadParameter(
            "shards share one run folder and must not --overwrite it; "
            "empty OUT once before submitting",
            param_hint="--shard",
        )
    from geolabel.io.stac import expand_stac_items

    config = RunConfig(
        scenes=expand_stac_items(scenes), model=str(model), out=str(out), **opts
    )
    bar = ProgressBar(quiet)
    try:
        with preemption_guard():
            result = run_predict(config, progress=bar)
    except Preempted as stop:
        bar.close()
        click.echo(
            f"geolabel: preempted: {stop}; re-run the same command to resume", err=True
        )
        ctx.exit(PREEMPTED_EXIT)
    finally:
        bar.close()
    report(result, quiet)
    if not result.ok:
        ctx.exit(1)
