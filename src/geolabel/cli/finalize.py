"""``geolabel finalize``: write the outputs of a sharded run once every shard is done."""

from __future__ import annotations

import json
from pathlib import Path

import click

from geolabel.cli.options import ProgressBar

__all__ = ["finalize"]


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.pass_context
def finalize(ctx: click.Context, run_dir: Path) -> None:
    """Write the COGs, vectors and run.json of RUN_DIR, a run made by `predict --shard`.

    Nothing is re-run. If some tiles are not done yet, it writes nothing, prints a JSON
    report (missing tiles per scene and per shard, each shard's status) on stdout, and
    exits with status 1.

    \b
    Examples:
      geolabel finalize tiles/run1
      sbatch --dependency=afterok:$ARRAY_JOB_ID --wrap "geolabel finalize tiles/run1"
    """
    from geolabel.cli.predict import report
    from geolabel.pipeline import finalize_run

    quiet = bool(ctx.obj and ctx.obj.get("quiet"))
    bar = ProgressBar(quiet)
    try:
        check, result = finalize_run(run_dir, progress=bar)
    finally:
        bar.close()
    if result is None:
        click.echo(json.dumps(check.to_dict(), indent=None if quiet else 2))
        click.echo(f"geolabel: error: {check.summary()}", err=True)
        ctx.exit(1)
    report(result, quiet)
    if not result.ok:
        ctx.exit(1)
