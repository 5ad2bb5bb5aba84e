"""STAC items as scenes: separate band COGs predict the multi-band GeoTIFF's mask."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.config import RunConfig
from geolabel.errors import SceneReadError
from geolabel.io.scene import open_scene
from geolabel.io.stac import expand_stac_items
from geolabel.pipeline import run_predict

from ._remote_helpers import NAMES, band_item, crop_scene


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    return crop_scene(tmp_path / "scene.tif")


def _mask(run: Path) -> np.ndarray:
    doc = json.loads((run / "run.json").read_text())
    (path,) = [o["path"] for o in doc["outputs"] if o["role"] == "mask"]
    with rasterio.open(run / path) as ds:
        return ds.read(1)


def test_item_with_band_cogs_predicts_the_multiband_mask(
    scene: Path, spec5: Path, tmp_path: Path
) -> None:
    item = band_item(scene, tmp_path / "item")
    for inp, out in ((scene, "tif"), (item, "stac")):
        res = run_predict(
            RunConfig(scenes=(str(inp),), model=str(spec5), out=str(tmp_path / out))
        )
        assert res.ok, [s.error for s in res.scenes]
    np.testing.assert_array_equal(_mask(tmp_path / "stac"), _mask(tmp_path / "tif"))
    doc = json.loads((tmp_path / "stac" / "run.json").read_text())
    s = doc["scenes"][0]
    assert s["stac_item"] == "nc-crop"
    assert s["stac_assets"]["nir"]["asset"] == "B4"
    assert Path(s["dir"]).name == "nc-crop"


def test_bands_matched_by_key_or_common_name_in_model_order(
    scene: Path, tmp_path: Path
) -> None:
    item = band_item(scene, tmp_path / "item")
    s = open_scene(item, band_names=["nir", "B1", "RED"])
    assert s.band_names == ("nir", "B1", "RED")
    with rasterio.open(scene) as ds:
        want = ds.read([4, 1, 3], window=((0, 20), (0, 30)))
    got = s.read(s.grid.window.__class__(0, 0, 20, 30))
    np.testing.assert_array_equal(got.data, want)
    with pytest.raises(SceneReadError, match="no asset for band 'coastal'"):
        open_scene(item, band_names=["coastal"])


def test_different_resolutions_refused_or_resampled(
    scene: Path, tmp_path: Path
) -> None:
    item = band_item(scene, tmp_path / "item", coarse=("swir1",))
    with pytest.raises(SceneReadError, match=r"different grids.*--stac-resample"):
        open_scene(item, band_names=list(NAMES))
    s = open_scene(item, band_names=list(NAMES), stac_resample="nearest")
    with rasterio.open(scene) as ds:
        assert s.grid.shape == (ds.height, ds.width)
    assert s.provenance["stac_resampling"] == "nearest"
    assert s.read(s.grid.window).data.shape == (5, *s.grid.shape)


def test_item_collection_expands_to_one_scene_per_item(
    scene: Path, spec5: Path, tmp_path: Path
) -> None:
    a = pystac.Item.from_file(band_item(scene, tmp_path / "a", item_id="a"))
    b = pystac.Item.from_file(band_item(scene, tmp_path / "b", item_id="b"))
    for it in (a, b):  # absolute hrefs: the collection file lies elsewhere
        for asset in it.assets.values():
            asset.href = asset.get_absolute_href()
    coll = tmp_path / "items.json"
    pystac.ItemCollection([a, b]).save_object(str(coll))
    assert expand_stac_items([str(coll), "x.tif"]) == (
        f"{coll}#a",
        f"{coll}#b",
        "x.tif",
    )
    with pytest.raises(SceneReadError, match="ItemCollection of 2 items"):
        open_scene(coll)
    r = CliRunner().invoke(
        cli, ["predict", str(coll), "-m", str(spec5), "-o", str(tmp_path / "run"), "-q"]
    )
    assert r.exit_code == 0, r.output
    assert [s["status"] for s in json.loads(r.stdout)["scenes"]] == ["done", "done"]


def test_not_a_stac_item_is_one_line(tmp_path: Path, spec5: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "Feature"}')
    with pytest.raises(SceneReadError, match="not a STAC Item"):
        open_scene(bad)
    r = CliRunner().invoke(
        cli, ["predict", str(bad), "-m", str(spec5), "-o", str(tmp_path / "r"), "-q"]
    )
    assert r.exit_code == 1
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_item_with_remote_assets_needs_their_host(scene: Path, tmp_path: Path) -> None:
    from geolabel.errors import RemoteNotAllowedError
    from geolabel.testing.range_server import serve_files

    local = band_item(scene, tmp_path / "www")
    with serve_files(tmp_path / "www") as srv:
        item = pystac.Item.from_file(local)
        for key, asset in item.assets.items():
            asset.href = srv.url(f"{key}.tif")
        remote = tmp_path / "remote-item.json"
        item.save_object(include_self_link=False, dest_href=str(remote))
        with pytest.raises(RemoteNotAllowedError, match=r"--allow-remote 127\.0\.0\.1"):
            open_scene(remote, band_names=list(NAMES))
        assert srv.requests == []
        s = open_scene(remote, band_names=list(NAMES), allow_remote=[srv.host])
        got = s.read(s.grid.window)
        r = CliRunner().invoke(cli, ["info", str(remote), "--allow-remote", srv.host])
        gets = [q for q in srv.requests if q.method == "GET"]
    want = open_scene(scene).read(s.grid.window)
    np.testing.assert_array_equal(got.data, want.data)
    assert gets and all(q.range is not None for q in gets)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["stac_item"] == "nc-crop"


def test_multiband_asset_bands_by_eo_bands_name(scene: Path, tmp_path: Path) -> None:
    item = pystac.Item(
        "multi",
        geometry=None,
        bbox=None,
        datetime=dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
        properties={},
    )
    item.add_asset(
        "image",
        pystac.Asset(
            href=str(scene),
            media_type=pystac.MediaType.GEOTIFF,
            extra_fields={
                "eo:bands": [
                    {"name": f"B{i + 1}", "common_name": n} for i, n in enumerate(NAMES)
                ]
            },
        ),
    )
    path = tmp_path / "multi.json"
    item.save_object(include_self_link=False, dest_href=str(path))
    s = open_scene(path, band_names=["nir", "red"])
    assert s.provenance["stac_assets"]["nir"] == {"asset": "image", "href": str(scene)}
    with rasterio.open(scene) as ds:
        np.testing.assert_array_equal(s.read(s.grid.window).data, ds.read([4, 3]))
