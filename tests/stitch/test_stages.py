"""The staged tile loop, the direct run-store chunks and the fused normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from affine import Affine

import geolabel.execution.tile_loop as tile_loop
import geolabel.stitch.stream as stream
from geolabel.config import RunConfig
from geolabel.errors import RunStateError
from geolabel.grid import SceneGrid, TileGrid
from geolabel.io.manifest import read_manifest
from geolabel.io.store import RunStore
from geolabel.models import load_spec
from geolabel.models.base import normalize_into
from geolabel.pipeline import run_predict
from geolabel.testing import ConvBackend, make_scene, write_toy_spec


def test_stage_threads_do_not_change_the_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_scene(tmp_path / "s.tif", shape=(170, 230))
    spec = load_spec(write_toy_spec(tmp_path / "toy.yaml", tile_size=48))
    outs = {}
    for threads in (1, 3):
        for mod in (tile_loop, stream):  # the loop; the blending of finalize and stream
            monkeypatch.setattr(mod, "stage_threads", lambda n=threads: n)
            monkeypatch.setattr(mod, "stage_depth", lambda n=threads: n + 1)
        res = run_predict(
            RunConfig(
                scenes=(str(path),),
                model=spec.source or "",
                out=str(tmp_path / f"t{threads}"),
                overlap=8,
                batch_size=1,
                vectors=False,
            ),
            model=ConvBackend(spec),
        )
        assert res.ok, res.scenes[0].error
        sdir = Path(res.scenes[0].outputs["mask"]).parent
        state = read_manifest(sdir / "manifest")
        assert len(state) == res.scenes[0].tiles
        assert all(row["status"] == "done" for row in state.values())
        outs[threads] = {
            Path(p).name: Path(p).read_bytes()
            for p in res.scenes[0].outputs.values()
            if p.endswith(".tif")
        }
    assert len(outs[1]) >= 3 and outs[1] == outs[3]


def test_store_chunks_are_zarr_chunks_and_damage_is_found(tmp_path: Path) -> None:
    grid = TileGrid(SceneGrid((300, 250), Affine.identity(), None), 96, 10)
    store = RunStore(tmp_path / "store.zarr", grid, 3, 500, "token")
    rng = np.random.default_rng(1)
    cores = {}
    for i, tile in enumerate(grid):
        cores[i] = rng.random((4, *tile.core_window.shape), dtype=np.float32)
        store.write_core(tile.core_window, cores[i])
        store.write_halo(i, np.full((4, 500), i, dtype=np.float32))
    z = zarr.open_group(str(tmp_path / "store.zarr"), mode="r")
    for i, tile in enumerate(grid):  # edge chunks are cropped back to their core
        np.testing.assert_array_equal(store.read_core(tile.core_window), cores[i])
        np.testing.assert_array_equal(
            z["core"][(slice(None), *tile.core_window.slices)], cores[i]
        )
        np.testing.assert_array_equal(z["halo"][i], np.full((4, 500), i, np.float32))
    chunk = tmp_path / "store.zarr" / "core" / "c" / "0" / "1" / "1"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(RunStateError, match="damaged"):
        store.read_core(grid[1, 1].core_window)
    assert store.damaged_tiles(list(grid)) == [grid[1, 1].id]


def test_normalize_into_matches_the_formula(tmp_path: Path) -> None:
    spec = load_spec(write_toy_spec(tmp_path / "toy.yaml", mean=9000.0, std=1500.0))
    rng = np.random.default_rng(2)
    raw = rng.integers(0, 20000, size=(3, 40, 50), dtype=np.uint16)
    valid = rng.random((40, 50)) > 0.2
    out = np.full(raw.shape, np.nan, dtype=np.float32)
    normalize_into(raw, valid, spec, out)
    inp = spec.input
    mean = np.asarray(inp.mean, np.float64)[:, None, None]
    std = np.asarray(inp.std, np.float64)[:, None, None]
    want = (raw * inp.scale + inp.offset - mean) / std
    np.testing.assert_allclose(out[:, valid], want[:, valid], rtol=0, atol=1e-5)
    assert (out[:, ~valid] == 0).all()
