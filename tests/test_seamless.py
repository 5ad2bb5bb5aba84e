"""Tiled inference equals whole-image inference when the overlap covers the receptive field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml

from geolabel.config import RunConfig
from geolabel.io.scene import open_scene
from geolabel.models import load_spec, normalize
from geolabel.models.base import activate
from geolabel.pipeline import run_predict
from geolabel.testing import ConvBackend, make_scene, write_toy_spec


@pytest.mark.parametrize(
    ("shape", "tile", "overlap", "multiple"),
    [
        ((157, 203), 64, 9, None),
        ((97, 61), 48, 10, None),
        ((64, 200), 64, 16, None),
        # tiles fitted to the scene (a model that takes any multiple of 4)
        ((157, 203), 64, 9, 4),
        ((97, 61), 48, 10, 4),
    ],
)
def test_tiled_equals_untiled(
    tmp_path: Path,
    shape: tuple[int, int],
    tile: int,
    overlap: int,
    multiple: int | None,
) -> None:
    path = make_scene(tmp_path / "s.tif", shape=shape)
    spec_path = write_toy_spec(tmp_path / "toy.yaml", tile_size=tile)
    if multiple:
        raw = yaml.safe_load(spec_path.read_text())
        raw["input"]["size_multiple"] = multiple
        spec_path.write_text(yaml.safe_dump(raw))
    spec = load_spec(spec_path)
    model = ConvBackend(spec)
    res = run_predict(
        RunConfig(
            scenes=(str(path),),
            model=spec.source or "",
            out=str(tmp_path / "run"),
            overlap=overlap,
            vectors=False,
        ),
        model=model,
    )
    assert res.ok, res.scenes[0].error
    if multiple:
        assert res.scenes[0].info["tile_size"] != (tile, tile)  # it did shrink
    with rasterio.open(res.scenes[0].outputs["probabilities"]) as ds:
        tiled = ds.read()
    scene = open_scene(path)
    read = scene.read(scene.grid.window)
    x = normalize(read.data[None], read.valid[None], spec)
    whole = activate(model.forward(x), spec)[0]
    assert np.abs(tiled - whole).max() <= 1e-5


def test_nodata_is_nodata_and_adds_no_weight(tmp_path: Path) -> None:
    path = make_scene(
        tmp_path / "s.tif",
        shape=(90, 110),
        nodata=-1.0,
        nodata_region=(slice(10, 40), slice(20, 70)),
    )
    spec = load_spec(write_toy_spec(tmp_path / "toy.yaml", tile_size=48))
    res = run_predict(
        RunConfig(
            scenes=(str(path),),
            model=spec.source or "",
            out=str(tmp_path / "run"),
            overlap=9,
        )
    )
    with (
        rasterio.open(res.scenes[0].outputs["mask"]) as m,
        rasterio.open(res.scenes[0].outputs["probabilities"]) as p,
    ):
        mask, probs = m.read(1), p.read()
        assert m.nodata == 3  # 3 classes + nodata: 2 bits
        nodata = m.nodata
    hole = np.zeros(mask.shape, bool)
    hole[10:40, 20:70] = True
    assert (mask[hole] == nodata).all() and (mask[~hole] != nodata).all()
    assert np.isnan(probs[:, hole]).all()
    np.testing.assert_allclose(probs[:, ~hole].sum(axis=0), 1.0, atol=1e-5)


def test_scene_smaller_than_a_tile(tmp_path: Path) -> None:
    path = make_scene(tmp_path / "s.tif", shape=(30, 41))
    spec = load_spec(write_toy_spec(tmp_path / "toy.yaml", tile_size=64))
    res = run_predict(
        RunConfig(
            scenes=(str(path),), model=spec.source or "", out=str(tmp_path / "run")
        )
    )
    assert res.ok
    with rasterio.open(res.scenes[0].outputs["mask"]) as ds:
        assert ds.shape == (30, 41) and (ds.read(1) != ds.nodata).all()


def test_tile_size_other_than_the_models(tmp_path: Path) -> None:
    # a fully convolutional model can run on larger tiles than its spec says
    path = make_scene(tmp_path / "s.tif", shape=(150, 170))
    spec = load_spec(write_toy_spec(tmp_path / "toy.yaml", tile_size=48))
    cfg = RunConfig(
        scenes=(str(path),),
        model=spec.source or "",
        out=str(tmp_path / "run"),
        tile_size=96,
        overlap=9,
        vectors=False,
    )
    res = run_predict(cfg)
    assert res.ok, res.scenes[0].error
    assert res.scenes[0].info["tile_size"] == (96, 96)


def test_halo_cache_is_bounded_and_evictions_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from affine import Affine

    import geolabel.finalize as fin
    from geolabel.grid import SceneGrid, TileGrid

    # bounded whatever the width: 1024² tiles on 20 k and 100 k wide scenes
    grids = [
        TileGrid(
            SceneGrid((4096, n), Affine(10, 0, 0, 0, -10, 0), "EPSG:32633"), 1024, 64
        )
        for n in (5000, 20000, 100000)
    ]
    entries = [fin.halo_cache_entries(g, 5) for g in grids]
    assert entries[0] == 2 * grids[0].shape[1] + 4  # narrow: two rows of records
    assert entries[1] == entries[2] < 2 * grids[1].shape[1] + 4

    # a one-record cache re-reads nearly every neighbour: same bytes
    path = make_scene(tmp_path / "s.tif", shape=(150, 520))
    spec = load_spec(write_toy_spec(tmp_path / "toy.yaml", tile_size=48))
    outs = {}
    for name, entries_fn in (
        ("default", fin.halo_cache_entries),
        ("one", lambda grid, channels: 1),
    ):
        monkeypatch.setattr(fin, "halo_cache_entries", entries_fn)
        res = run_predict(
            RunConfig(
                scenes=(str(path),),
                model=spec.source or "",
                out=str(tmp_path / name),
                overlap=8,
                vectors=False,
            ),
            model=ConvBackend(spec),
        )
        assert res.ok, res.scenes[0].error
        outs[name] = {
            role: Path(p).read_bytes()
            for role, p in res.scenes[0].outputs.items()
            if p.endswith(".tif")
        }
    assert outs["default"].keys() == outs["one"].keys() and len(outs["one"]) >= 3
    assert outs["default"] == outs["one"]
