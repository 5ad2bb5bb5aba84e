"""Uncertainty COG + tile layer from real runs, and the model-based wrappers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import yaml
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.grid import SceneGrid, TileGrid
from geolabel.models.base import Batch
from geolabel.models.ensemble import TTABackend
from geolabel.testing import make_scene, toy_spec, write_toy_spec
from tests.conftest import requires_torch
from tests.uncertainty.helpers import (
    AmbiguityBackend,
    ambiguity_spec,
    half_scene,
    run_ambiguity,
)

H_CONFIDENT = -(0.95 * np.log(0.95) + 0.05 * np.log(0.05)) / np.log(2)


def test_known_uncertainty_map_nodata_and_tags(tmp_path: Path) -> None:
    nod = (slice(10, 40), slice(100, 130))
    scene = half_scene(tmp_path / "half.tif", nodata_box=nod)
    res = run_ambiguity([scene], tmp_path / "run")
    out = res.scenes[0].outputs
    with rasterio.open(out["uncertainty"]) as u, rasterio.open(out["mask"]) as m:
        assert (u.crs, u.transform, u.shape) == (m.crs, m.transform, m.shape)
        assert u.dtypes == ("float32",) and np.isnan(u.nodata)
        assert u.tags()["MEASURE"] == "entropy" and u.tags(1)["SCALE"] == "0-1"
        unc, mask, mask_nodata = u.read(1), m.read(1), m.nodata
    assert mask_nodata == 3  # 2 classes: a 2-bit mask
    assert np.array_equal(np.isnan(unc), mask == mask_nodata)
    assert np.isnan(unc[nod]).all()
    np.testing.assert_allclose(unc[:, :80], H_CONFIDENT, atol=1e-5)
    right = unc[:, 80:]
    np.testing.assert_allclose(right[np.isfinite(right)], 1.0, atol=1e-5)
    doc = json.loads(res.run_json.read_text())
    entry = next(o for o in doc["outputs"] if o["role"] == "uncertainty")
    assert (
        entry["measure"] == "entropy"
        and entry["scale"] == "0-1"
        and doc["config"]["uncertainty"] == "entropy"
    )
    assert any(o["role"] == "tiles" for o in doc["outputs"])


def test_tile_layer_carries_aggregates_in_scene_crs(tmp_path: Path) -> None:
    scene = half_scene(
        tmp_path / "half.tif", nodata_box=(slice(0, 96), slice(140, 160))
    )
    res = run_ambiguity([scene], tmp_path / "run", uncertainty="margin")
    tiles = pyogrio.read_dataframe(res.scenes[0].outputs["tiles"], layer="tiles")
    with rasterio.open(scene) as ds:
        assert tiles.crs == ds.crs
        bounds = ds.bounds
    assert len(tiles) == len(
        TileGrid(SceneGrid((96, 160), ds.transform, "EPSG:32633"), 64, 8)
    )
    assert tiles.geometry.union_all().bounds == pytest.approx(tuple(bounds))
    assert set(tiles["measure"]) == {"margin"}
    for t in tiles.itertuples():
        cx = t.col_off + t.width / 2
        if t.valid_fraction == 0:
            assert np.isnan(t.mean)
        elif t.col_off + t.width <= 80:
            assert t.mean == pytest.approx(0.1, abs=1e-5)  # 1 - margin(0.95 - 0.05)
            assert t.frac_above == 0.0 and t.frac_0_class0 == 1.0
        elif t.col_off >= 80:
            assert t.mean == pytest.approx(1.0, abs=1e-5) and t.frac_above == 1.0
        assert 0.0 <= t.valid_fraction <= 1.0 and cx > 0
    assert tiles["valid_fraction"].min() < 1.0  # the nodata strip counts as invalid


def test_tta_of_a_pointwise_model_agrees_and_position_models_disagree() -> None:
    spec = ambiguity_spec(tile_size=32)
    grid = TileGrid(SceneGrid((32, 32), (1, 0, 0, 0, -1, 32), "EPSG:32633"), 32, 0)
    tiles = tuple(grid)
    data = np.random.default_rng(1).random((1, 1, 32, 32)).astype(np.float32)
    batch = Batch(tiles, data, np.ones((1, 32, 32), bool))
    plain = AmbiguityBackend(spec).predict(batch)[0]
    tta = TTABackend(AmbiguityBackend(spec)).predict(batch)[0]
    np.testing.assert_allclose(tta.array, plain.array, atol=1e-6)
    np.testing.assert_allclose(tta.extra["uncertainty"], 0.0, atol=1e-6)

    class ByColumn(AmbiguityBackend):
        def predict(self, b: Batch):
            cols = np.linspace(0, 1, b.data.shape[-1], dtype=np.float32)
            fake = np.broadcast_to(cols, b.data.shape).copy()
            return super().predict(Batch(b.tiles, fake, b.valid))

    dis = TTABackend(ByColumn(spec)).predict(batch)[0].extra["uncertainty"]
    assert dis.shape == (1, 32, 32) and dis.max() > 0.05


def _ensemble(tmp_path: Path, seeds: tuple[int, int]) -> Path:
    for s in seeds:
        write_toy_spec(tmp_path / f"m{s}.yaml", tile_size=64, seed=s)
    raw = toy_spec(tile_size=64)
    raw.update(backend="ensemble", members=[f"m{s}.yaml" for s in seeds], name="ens")
    p = tmp_path / f"ens{seeds[0]}{seeds[1]}.yaml"
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p


def test_ensemble_disagreement_channel_is_stitched(
    tmp_path: Path, scene_path: Path
) -> None:
    runner = CliRunner()
    bands = {}
    for seeds in ((0, 1), (2, 2)):
        spec = _ensemble(tmp_path, seeds)
        r = runner.invoke(
            cli,
            [
                "-q",
                "predict",
                str(scene_path),
                "-m",
                str(spec),
                "-o",
                str(tmp_path / f"r{seeds}"),
            ],
        )
        assert r.exit_code == 0, r.output
        path = json.loads(r.stdout)["scenes"][0]["outputs"]["uncertainty"]
        with rasterio.open(path) as ds:
            assert ds.descriptions == ("entropy", "ensemble_disagreement")
            bands[seeds] = ds.read(2)
    differ, same = bands[(0, 1)], bands[(2, 2)]
    assert np.nanmax(differ) > 0.05
    np.testing.assert_allclose(same[np.isfinite(same)], 0.0, atol=1e-5)
    assert np.isnan(differ[:20, :30]).all()  # the scene's nodata corner


def test_ensemble_member_mismatch_is_a_clean_error(
    tmp_path: Path, scene_path: Path
) -> None:
    spec = _ensemble(tmp_path, (0, 1))
    write_toy_spec(tmp_path / "m1.yaml", tile_size=64, classes=2)
    r = CliRunner().invoke(
        cli,
        ["-q", "predict", str(scene_path), "-m", str(spec), "-o", str(tmp_path / "r")],
    )
    assert (
        r.exit_code == 1
        and "other classes or input" in r.output
        and "Traceback" not in r.output
    )


def test_cli_measure_choice_none_and_mc_dropout_needs_torch(
    tmp_path: Path, scene_path: Path, toy_spec_path: Path
) -> None:
    runner = CliRunner()
    base = ["-q", "predict", str(scene_path), "-m", str(toy_spec_path)]
    r = runner.invoke(
        cli,
        [
            *base,
            "-o",
            str(tmp_path / "a"),
            "--uncertainty",
            "least-confidence",
            "--no-vectors",
        ],
    )
    assert r.exit_code == 0, r.output
    outs = json.loads(r.stdout)["scenes"][0]["outputs"]
    with rasterio.open(outs["uncertainty"]) as ds:
        assert ds.tags(1)["MEASURE"] == "least-confidence"
    r = runner.invoke(
        cli, [*base, "-o", str(tmp_path / "b"), "--uncertainty", "none", "--no-vectors"]
    )
    outs = json.loads(r.stdout)["scenes"][0]["outputs"]
    assert "uncertainty" not in outs and "tiles" not in outs
    assert not list((tmp_path / "b").rglob("*uncertainty*"))
    r = runner.invoke(
        cli, [*base, "-o", str(tmp_path / "c"), "--model-uncertainty", "mc-dropout"]
    )
    assert r.exit_code == 1 and "MC dropout needs a torch backend" in r.output
    assert "Traceback" not in r.output
    r = runner.invoke(cli, [*base, "-o", str(tmp_path / "d"), "--uncertainty", "bogus"])
    assert r.exit_code == 2 and "bogus" in r.output


def test_small_scene_tta_uses_flips_only(tmp_path: Path) -> None:
    scene = make_scene(
        tmp_path / "small.tif", shape=(20, 45), bands=1, data=np.ones((1, 20, 45))
    )
    res = run_ambiguity([scene], tmp_path / "run", model_uncertainty="tta")
    with rasterio.open(res.scenes[0].outputs["uncertainty"]) as ds:
        assert ds.descriptions == ("entropy", "tta_disagreement")
        np.testing.assert_allclose(ds.read(2), 0.0, atol=1e-6)


@requires_torch
def test_mc_dropout_is_reproducible_with_a_seed(tmp_path: Path) -> None:
    from tests.uncertainty.test_mc_dropout import mc_run

    a = mc_run(tmp_path / "a", seed=7)
    b = mc_run(tmp_path / "b", seed=7)
    c = mc_run(tmp_path / "c", seed=8)
    assert np.array_equal(a, b, equal_nan=True)
    assert not np.array_equal(a, c, equal_nan=True)
    assert np.nanmax(a[1]) > 0  # passes disagree somewhere
