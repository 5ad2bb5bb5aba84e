"""A scene's plan: open it with the model's bands, cut its tile grid, sort its tiles.

These are the low-level steps every task's scene run shares (and that ``finalize``,
the ``--precision auto`` check, ``train`` and ``simulate`` reuse): :func:`open_run_scene`
opens a scene with the bands the model wants, :func:`plan_scene` cuts the grid and picks
the dead zone, and :class:`TilePlan` says from the manifest which tiles are done, failed
or pending and which of the shard's batches still have work.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geolabel.config import RunConfig
from geolabel.errors import InputScalingWarning, SceneReadError
from geolabel.execution.shards import shard_batches
from geolabel.execution.tile_loop import batches_of
from geolabel.grid import Tile, TileGrid, fit_tile_size
from geolabel.io.limits import SceneLimits, check_tiles
from geolabel.io.scene import Scene, open_scene
from geolabel.io.stac import Resampling
from geolabel.models.scaling import scaling_problem
from geolabel.models.spec import ModelSpec

__all__ = [
    "GDAL_ENV",
    "TilePlan",
    "open_model_scene",
    "open_run_scene",
    "plan_scene",
    "resolve_bands",
    "warn_input_scaling",
]

#: The GDAL settings of a run (one ``rasterio.Env`` around the scenes, and on workers).
GDAL_ENV = {
    "GDAL_CACHEMAX": 64,
    "GDAL_NUM_THREADS": 1,
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
}


def resolve_bands(
    scene: Scene, spec: ModelSpec, bands: tuple[int, ...] | None
) -> tuple[int, ...]:
    """Band indexes for the model: explicit, the spec's, by name, or all if counts match.

    Raises:
        SceneReadError: the scene's bands cannot be matched to the model's.
    """
    want = spec.input.bands
    if bands is not None:
        sel = bands
    elif spec.input.band_indexes is not None:
        sel = spec.input.band_indexes
    elif all(n is not None for n in scene.band_names) and set(want) <= set(
        scene.band_names
    ):
        sel = tuple(scene.bands[scene.band_names.index(b)] for b in want)
    elif len(scene.bands) == len(want):
        sel = scene.bands
    else:
        raise SceneReadError(
            f"{scene.path}: has {len(scene.bands)} bands, model {spec.model_id} wants "
            f"{len(want)} ({', '.join(want)}); choose them with --bands"
        )
    if len(sel) != len(want):
        raise SceneReadError(
            f"{scene.path}: --bands gives {len(sel)} bands, model wants {len(want)}"
        )
    return tuple(sel)


def open_model_scene(
    path: str | Path,
    spec: ModelSpec,
    *,
    bands: tuple[int, ...] | None = None,
    nodata: float | None = None,
    allow_vrt: bool = False,
    allow_pixel_space: bool = False,
    limits: SceneLimits | None = None,
    allow_remote: tuple[str, ...] = (),
    stac_resample: Resampling | None = None,
) -> Scene:
    """Open a scene with the bands ``spec`` needs (:func:`resolve_bands`), in model order.

    The file is opened once to learn its bands, then with the chosen ones (nodata and
    mask handling depend on them). A STAC item gives the spec's bands, by name.

    Raises:
        SceneReadError: see :func:`~geolabel.io.scene.open_scene`; bands that do not fit.
    """
    kw: dict[str, Any] = {
        "nodata": nodata,
        "allow_vrt": allow_vrt,
        "allow_pixel_space": allow_pixel_space,
        "limits": limits,
        "allow_remote": allow_remote,
        "stac_resample": stac_resample,
        "band_names": spec.input.bands,
    }
    base = open_scene(path, **kw)
    return open_scene(path, bands=resolve_bands(base, spec, bands), **kw)


def open_run_scene(path: str | Path, spec: ModelSpec, config: RunConfig) -> Scene:
    """:func:`open_model_scene` with a run's ``--bands``/``--nodata``/``--allow-*``."""
    return open_model_scene(
        path,
        spec,
        bands=config.bands,
        nodata=config.nodata,
        allow_vrt=config.allow_vrt,
        allow_pixel_space=config.allow_pixel_space,
        limits=config.scene_limits(),
        allow_remote=config.allow_remote,
        stac_resample=config.stac_resample,
    )


def plan_scene(
    scene: Scene, spec: ModelSpec, config: RunConfig
) -> tuple[TileGrid, int]:
    """The tile grid (``--tile-size``, ``--overlap`` or the spec's) and dead zone.

    Raises:
        ResourceLimitError: more tiles than the run's ``tiles`` limit.
    """
    tile = config.tile_size or spec.input.tile_size
    overlap = spec.default_overlap() if config.overlap is None else config.overlap
    multiple = spec.size_multiple()
    shape: tuple[int, int] | int = tile
    if multiple is not None:
        # the model takes smaller multiples: as many tiles, without the slack
        shape = (
            fit_tile_size(scene.grid.height, tile, overlap, multiple),
            fit_tile_size(scene.grid.width, tile, overlap, multiple),
        )
    grid = TileGrid(scene.grid, shape, overlap)
    check_tiles(scene.path, len(grid), config.scene_limits())
    if config.dead_zone is not None:
        dead = min(config.dead_zone, overlap)
    elif spec.receptive_field is not None:
        dead = min(overlap, math.ceil(spec.receptive_field / 2))
    else:
        dead = overlap // 2
    return grid, dead


def warn_input_scaling(scene: Scene, grid: TileGrid, spec: ModelSpec) -> None:
    """Warn (:class:`InputScalingWarning`) when the central tile, normalised as the
    spec says, looks wrong for the model (see ``models/scaling.py``)."""
    rows, cols = grid.shape
    tile = grid[rows // 2, cols // 2]
    try:
        read = scene.read(tile.read_window)
    except SceneReadError:
        return  # the tile loop records the failure where it happens
    problem = scaling_problem(read.data, read.valid, spec)
    if problem is not None:
        warnings.warn(f"{scene.path}: {problem}", InputScalingWarning, stacklevel=2)


@dataclass(frozen=True, slots=True)
class TilePlan:
    """The state of a scene's tiles and the batches a run (or shard) still has to run.

    Attributes:
        grid: the scene's tile grid.
        state: the manifest's latest record per tile id (``status``: ``done``,
            ``failed``, or ``damaged`` for a done tile whose data was lost).
        own: the run's share of the fixed batch partition (all batches unsharded).
        batches: the batches of ``own`` with at least one pending tile.
    """

    grid: TileGrid
    state: dict[str, dict[str, Any]]
    own: list[list[Tile]]
    batches: list[list[Tile]]

    @classmethod
    def from_state(
        cls, grid: TileGrid, state: dict[str, dict[str, Any]], config: RunConfig
    ) -> TilePlan:
        """Pending tiles are those not done (failed ones only with ``retry_failed``);
        a batch runs whole when any of its tiles is pending, so the model always sees
        the same batches (and the store gets the same bytes) as an uninterrupted run."""
        own = shard_batches(batches_of(grid, config.batch_size), config.shard)
        pending = {
            t.id
            for t in grid
            if cls._status(state, t) != "done"
            and (config.retry_failed or cls._status(state, t) != "failed")
        }
        batches = [b for b in own if any(t.id in pending for t in b)]
        return cls(grid, state, own, batches)

    @staticmethod
    def _status(state: dict[str, dict[str, Any]], tile: Tile) -> str | None:
        status = state.get(tile.id, {}).get("status")
        return None if status is None else str(status)

    def status(self, tile: Tile) -> str | None:
        """The tile's last recorded status (``None``: never run)."""
        return self._status(self.state, tile)

    @property
    def done(self) -> int:
        """Tiles of the whole grid recorded done."""
        return sum(self.status(t) == "done" for t in self.grid)

    @property
    def tiles_to_run(self) -> int:
        """Tiles in the batches that run."""
        return sum(len(b) for b in self.batches)

    def failed(self) -> list[str]:
        """Ids of the grid's tiles whose last record is ``failed`` (sorted)."""
        return sorted(t.id for t in self.grid if self.status(t) == "failed")

    def missing(self) -> list[str]:
        """Ids of the run's own tiles not recorded done (row-major)."""
        return [t.id for b in self.own for t in b if self.status(t) != "done"]
