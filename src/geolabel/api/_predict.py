"""``geolabel.predict``: the CLI's ``predict`` as a function that returns a :class:`Run`.

Scenes are files, URLs, STAC items, or :class:`xarray.DataArray` s ``(band, y, x)``
with a rioxarray CRS and transform. A DataArray is written once, chunk by chunk (dask
arrays are never loaded whole), to a tiled GeoTIFF in the run folder
(``RUN/inputs/NAME.tif``), then predicted like any file. Going through a file keeps
every promise of the pipeline for arrays too: reads per tile window with a valid-data
mask, resumable runs whose record names a file that reproduces them, and worker
processes (``cluster="local:N"``, SLURM) that cannot share an in-memory array.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import xarray as xr
from rioxarray.exceptions import RioXarrayError

from geolabel.api._run import Run, open_run
from geolabel.config import RunConfig
from geolabel.errors import ConfigError, SceneReadError
from geolabel.io.stac import Resampling, expand_stac_items
from geolabel.models.spec import ModelSpec
from geolabel.pipeline import Progress, run_predict

__all__ = ["SceneInput", "predict", "write_dataarray"]

logger = logging.getLogger(__name__)

#: What :func:`predict` takes as one scene.
SceneInput = str | os.PathLike[str] | xr.DataArray
#: Block side of the GeoTIFF a DataArray is written to.
_BLOCK = 256


def _array_name(da: xr.DataArray, index: int) -> str:
    name = str(da.name) if da.name is not None else f"array{index}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or f"array{index}"


def write_dataarray(
    da: xr.DataArray, path: str | os.PathLike[str], *, allow_pixel_space: bool = False
) -> Path:
    """Write a ``(band, y, x)`` (or ``(y, x)``) DataArray as a tiled GeoTIFF.

    Band names (the ``band`` coordinate when it holds strings, else the
    ``long_name`` attribute) become band descriptions, so a spec's band names find
    them; ``da.rio.nodata`` (or ``_FillValue``) becomes the nodata value. Dask arrays
    are written chunk by chunk.

    Raises:
        SceneReadError: no CRS (unless ``allow_pixel_space``), not 2-D/3-D, or a
            dimension that is not ``band``/``y``/``x``.
    """
    p = Path(path)
    if da.ndim == 2:
        da = da.expand_dims("band")
    try:
        spatial = (da.rio.y_dim, da.rio.x_dim)
    except RioXarrayError as err:
        raise SceneReadError(
            f"{da.name or 'DataArray'}: dims {da.dims} have no y/x: {err}"
        ) from err
    if da.ndim != 3 or da.dims[1:] != spatial:
        raise SceneReadError(
            f"{da.name or 'DataArray'}: dims {da.dims} are not (band, y, x)"
        )
    if da.rio.crs is None and not allow_pixel_space:
        raise SceneReadError(
            f"{da.name or 'DataArray'}: has no CRS; set one with da.rio.write_crs(...) "
            "or pass allow_pixel_space=True"
        )
    band = da.coords.get(da.dims[0])
    names: list[str | None]
    if band is not None and band.dtype.kind in "US":
        names = [str(v) for v in band.values]
    else:
        long = da.attrs.get("long_name")
        names = list(long) if isinstance(long, (list, tuple)) else [None] * da.shape[0]
    out = da.copy()
    out.attrs = {k: v for k, v in da.attrs.items() if k not in ("long_name",)}
    if any(names):
        out.attrs["long_name"] = tuple(n or "" for n in names)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.partial")
    out.rio.to_raster(
        tmp,
        driver="GTiff",
        tiled=True,
        blockxsize=_BLOCK,
        blockysize=_BLOCK,
        compress="deflate",
        lock=threading.Lock(),
    )
    tmp.replace(p)
    return p


def _scene_inputs(
    scenes: SceneInput | Sequence[SceneInput], out: Path, allow_pixel_space: bool
) -> tuple[str, ...]:
    items: list[SceneInput] = (
        [scenes]
        if isinstance(scenes, (str, os.PathLike, xr.DataArray))
        else list(scenes)
    )
    if not items:
        raise ConfigError("predict: no scenes given")
    paths: list[str] = []
    for i, s in enumerate(items):
        if isinstance(s, xr.DataArray):
            dst = out / "inputs" / f"{_array_name(s, i)}.tif"
            paths.append(
                str(write_dataarray(s, dst, allow_pixel_space=allow_pixel_space))
            )
        else:
            paths.append(os.fspath(s))
    return expand_stac_items(paths)


def predict(
    scenes: SceneInput | Sequence[SceneInput],
    model: str | os.PathLike[str] | ModelSpec,
    out: str | os.PathLike[str],
    *,
    tile_size: int | None = None,
    overlap: int | None = None,
    batch_size: int = 4,
    bands: Sequence[int] | None = None,
    nodata: float | None = None,
    device: str = "auto",
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "auto",
    probabilities: bool = True,
    vectors: bool = True,
    uncertainty: str = "entropy",
    model_uncertainty: str = "none",
    overwrite: bool = False,
    retry_failed: bool = False,
    allow_pixel_space: bool = False,
    allow_remote: Sequence[str] = (),
    stac_resample: Resampling | None = None,
    cluster: str = "local",
    progress: Progress | None = None,
) -> Run:
    """Run a model over scenes into the run folder ``out``, as ``geolabel predict`` does.

    Args:
        scenes: one scene or a list: GeoTIFF/COG paths, ``https://``/``s3://`` URLs
            (hosts named in ``allow_remote``), STAC Item/ItemCollection JSON files, or
            DataArrays ``(band, y, x)`` with a rioxarray CRS and transform (numpy- or
            dask-backed; written to ``out/inputs/NAME.tif`` first, see the module).
        model: a model spec (YAML path, or a :class:`~geolabel.models.spec.ModelSpec`
            loaded from one).
        out: the run folder (created; running again resumes).
        tile_size: model tile size in pixels (default: the spec's).
        overlap: context pixels per tile side (default: the spec's recommendation).
        batch_size: tiles per model call.
        bands: 1-based band indexes in model order (default: by name, or all).
        nodata: treat this value as nodata.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto``.
        probabilities: write the per-class probability COG.
        vectors: write the polygon GeoPackage.
        uncertainty: per-pixel measure (``entropy``, ``margin``, ``least-confidence``,
            ``none``).
        model_uncertainty: ``none``, ``mc-dropout`` or ``tta``.
        overwrite: discard an existing run folder.
        retry_failed: re-run tiles that failed before.
        allow_pixel_space: accept scenes without a CRS.
        allow_remote: hosts (``HOST[:PORT]``) and ``s3://BUCKET`` s remote scenes may
            be read from.
        stac_resample: resample STAC band assets on different grids with this method.
        cluster: ``local``, ``local:N``, ``tcp://HOST:PORT``, ``slurm:FILE.yaml``...
        progress: ``progress(scene, tiles_done, tiles_total)`` callback.

    Returns:
        The run (:class:`Run`): per-scene status and outputs; ``run.to_dataset()``
        opens a scene's rasters as a lazy :class:`xarray.Dataset`. A scene that fails
        is ``status="failed"`` with its ``error``; the others finish.

    Raises:
        ModelSpecError: the spec or its weights are invalid (nothing is made).
        ConfigError: bad options (a tile size the model cannot take, no scenes).
        SceneReadError: a DataArray that cannot be written as a scene.
        OutputExistsError: ``out`` holds another model's run and not ``overwrite``.

    Examples:
        A dask-backed DataArray in, a lazy Dataset on the same grid out:

        >>> import tempfile, pathlib, rioxarray, geolabel
        >>> from geolabel.testing import make_scene, write_toy_spec
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> spec = write_toy_spec(tmp / "toy.yaml")
        >>> da = rioxarray.open_rasterio(make_scene(tmp / "s.tif"), chunks=True)
        >>> run = geolabel.predict(da.rename("s"), spec, tmp / "run")
        >>> run.ok, run.scenes[0].outputs["mask"].name
        (True, 's_mask.tif')
        >>> ds = run.to_dataset()
        >>> ds["class"].dims, ds["class"].shape, ds.rio.crs == da.rio.crs
        (('y', 'x'), (100, 120), True)
        >>> ds["probabilities"].dims, type(ds["probabilities"].data).__name__
        (('class_name', 'y', 'x'), 'Array')

    .. versionadded:: 0.1
    """
    run_dir = Path(out)
    if isinstance(model, ModelSpec):
        if model.source is None:
            raise ConfigError(
                f"model {model.model_id}: a spec object needs its YAML file "
                "(load it with geolabel.models.spec.load_spec)"
            )
        model_path = model.source
    else:
        model_path = os.fspath(model)
    config = RunConfig(
        scenes=_scene_inputs(scenes, run_dir, allow_pixel_space),
        model=str(model_path),
        out=str(run_dir),
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        bands=tuple(bands) if bands is not None else None,
        nodata=nodata,
        device=device,
        precision=precision,
        probabilities=probabilities,
        vectors=vectors,
        uncertainty=uncertainty,
        model_uncertainty=model_uncertainty,
        overwrite=overwrite,
        retry_failed=retry_failed,
        allow_pixel_space=allow_pixel_space,
        allow_remote=tuple(allow_remote),
        stac_resample=stac_resample,
        cluster=cluster,
    )
    run_predict(config, progress=progress)
    return open_run(run_dir)
