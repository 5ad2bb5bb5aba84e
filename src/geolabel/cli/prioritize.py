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
    help="Number of units (points, superpixels or regions) to pick.",
)
@click.option(
    "--unit",
    type=click.Choice(["auto", "points", "superpixels", "regions", "boxes", "tiles"]),
    default=None,
    help="What a labeller is asked to label: single pixels (one click each), SLIC "
    "superpixels (one class per patch) or square regions / tile cores (polygons); "
    "auto: points on pixels of 5 m or more, superpixels on finer ones; detection "
    "runs: predicted boxes, classification runs: classified tiles, the most "
    "uncertain first  [default: auto; boxes or tiles for those runs].",
)
@click.option(
    "--strategy",
    default="auto",
    show_default=True,
    help="auto (= margin+diverse+balance+power+cold+typical), random, coreset, "
    "typiclust, entropy, margin, least-confidence, bald, ensemble; a measure may take "
    "+diverse, +balance, +power, +cold, +typical.",
)
@click.option(
    "--superpixel-size",
    type=click.IntRange(2),
    default=12,
    show_default=True,
    help="Typical superpixel side in pixels (--unit superpixels).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    default=4_000_000,
    show_default=True,
    help="Points/superpixels: read each scene's maps decimated to about this many pixels.",
)
@click.option(
    "--cold-labels",
    type=click.IntRange(0),
    default=100,
    show_default=True,
    help="+cold: below this many labelled features (--exclude), every other pick is "
    "random (with +typical: TypiClust's most typical member of the largest cluster "
    "with the fewest labels).",
)
@click.option(
    "--region-size",
    type=click.IntRange(1),
    help="Square regions of this many pixels [default: tile cores; 32 with auto].",
)
@click.option(
    "--min-distance",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Minimum distance between picks, in the units of the first scene's CRS: "
    "metres for UTM, degrees for a geographic CRS such as EPSG:4326.",
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
    default=10,
    show_default=True,
    help="Diversity pool: this many times the (per-class) quota of most uncertain units.",
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
    unit: str | None,
    strategy: str,
    superpixel_size: int,
    max_pixels: int,
    cold_labels: int,
    region_size: int | None,
    min_distance: float,
    spread: str,
    pool_factor: int,
    balance_classes: bool,
    exclude: tuple[Path, ...],
    min_valid: float,
    seed: int,
) -> None:
    """Rank what to label next in RUN_DIR; writes next_to_label.gpkg and .csv.

    One global ranking over every finished scene of the run. The default (unit auto,
    strategy auto) asks, on pixels of 5 m or more, for single-pixel clicks (on finer
    pixels for one class per superpixel, picked the same way): uncertain pixels (drawn with probability
    proportional to their margin uncertainty) of each predicted class in turn
    (rarest-labelled class first), spread in the model's feature space, and while
    fewer than --cold-labels features are labelled (--exclude) every other one is the
    most typical member of the largest cluster with the fewest labels (TypiClust);
    set each point's `label` field in QGIS, then `geolabel train --labels
    RUN_DIR/next_to_label.gpkg` (or `geolabel accept` it into a labels file). The queue
    is also recorded in RUN_DIR/run.json. Prints the picks as JSON on stdout.

    A detection run's queue is its predicted boxes whose scores are closest to a coin
    flip (a classification run's: its tiles with the smallest class margin), classes
    taking turns, no two overlapping: confirm, correct or reject each in QGIS.

    \b
    Examples:
      geolabel prioritize tiles/run1 --budget 40
      geolabel prioritize tiles/run1 -n 30 --unit superpixels --exclude labels.gpkg
      geolabel prioritize tiles/run1 -n 20 --unit regions --strategy entropy
      geolabel prioritize tiles/run1 -n 10 --unit regions --strategy bald --min-distance 500
      geolabel prioritize tiles/run1 -n 10 --unit regions --region-size 64 --spread k-center \\
          --balance-classes --exclude labelled.gpkg
      geolabel prioritize trees/run1 -n 25   # a detection run: 25 boxes to review
    """
    from geolabel.cli._shortfall import shortfall_message
    from geolabel.io.run_record import read_record
    from geolabel.priority import prioritize as run_prioritize

    res = run_prioritize(
        run_dir,
        budget,
        strategy=strategy,
        unit=unit,
        superpixel_size=superpixel_size,
        max_pixels=max_pixels,
        cold_labels=cold_labels,
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
