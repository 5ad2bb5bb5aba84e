"""``geolabel prioritize``: rank the next regions to label from a finished run."""

from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["prioritize"]


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--budget",
    "-n",
    required=True,
    type=click.IntRange(1),
    help="Number of regions to pick.",
)
@click.option(
    "--strategy",
    type=click.Choice(["entropy", "margin", "least-confidence", "bald", "random"]),
    default="entropy",
    show_default=True,
    help="Region score (mean per-pixel uncertainty).",
)
@click.option(
    "--region-size",
    type=click.IntRange(1),
    help="Square regions of this many pixels [default: tile cores].",
)
@click.option(
    "--min-distance",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Minimum distance between picks, in CRS units of the first scene.",
)
@click.option(
    "--spread",
    type=click.Choice(["none", "k-center"]),
    default="none",
    show_default=True,
    help="k-center: spread picks among the best-scoring candidates.",
)
@click.option(
    "--pool-factor",
    type=click.IntRange(1),
    default=4,
    show_default=True,
    help="k-center pool: this many times --budget best candidates.",
)
@click.option(
    "--balance-classes",
    is_flag=True,
    help="Alternate picks between dominant predicted classes.",
)
@click.option(
    "--exclude",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Vector file of already-labelled footprints (any CRS; repeatable).",
)
@click.option(
    "--min-valid",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Minimum share of valid pixels of a region.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of --strategy random."
)
def prioritize(
    run_dir: Path,
    budget: int,
    strategy: str,
    region_size: int | None,
    min_distance: float,
    spread: str,
    pool_factor: int,
    balance_classes: bool,
    exclude: tuple[Path, ...],
    min_valid: float,
    seed: int,
) -> None:
    """Rank regions of RUN_DIR to label next; writes next_to_label.gpkg and .csv.

    One global ranking over every finished scene of the run. The queue is also
    recorded in RUN_DIR/run.json. Prints the picks as JSON on stdout.

    \b
    Examples:
      geolabel prioritize tiles/run1 --budget 20
      geolabel prioritize tiles/run1 -n 10 --strategy bald --min-distance 500
      geolabel prioritize tiles/run1 -n 10 --region-size 64 --spread k-center \\
          --balance-classes --exclude labelled.gpkg
    """
    from geolabel.cli._shortfall import shortfall_message
    from geolabel.io.run_record import read_record
    from geolabel.priority import prioritize as run_prioritize

    res = run_prioritize(
        run_dir,
        budget,
        strategy=strategy,
        region_size=region_size,
        min_distance=min_distance,
        spread=spread,  # type: ignore[arg-type]
        pool_factor=pool_factor,
        balance_classes=balance_classes,
        exclude=exclude,
        min_valid=min_valid,
        seed=seed,
    )
    rows = [{k: v for k, v in r.items() if k != "geometry"} for r in res.rows]
    note = shortfall_message(read_record(run_dir).get("priority") or {})
    if note is not None:
        click.echo(note, err=True)
    click.echo(
        json.dumps(
            {"gpkg": str(res.gpkg), "csv": str(res.csv), "picks": rows}, indent=2
        )
    )
