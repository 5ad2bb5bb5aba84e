"""Shared by the remote and STAC tests: a cropped real scene, band COGs, STAC items."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pystac
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

REPO = Path(__file__).resolve().parents[2]
NC = REPO / "src/geolabel/_data/nc-landsat7/nc_landsat7_2000.tif"
NAMES = ("blue", "green", "red", "nir", "swir1")


def crop_scene(dst: Path, *, rows: int = 150, cols: int = 170) -> Path:
    """A tiled 5-band crop of the shipped Landsat-7 scene (band names kept)."""
    with rasterio.open(NC) as ds:
        win = Window(140, 110, cols, rows)
        profile = ds.profile | {
            "height": rows,
            "width": cols,
            "transform": ds.window_transform(win),
            "blockxsize": 64,
            "blockysize": 64,
        }
        with rasterio.open(dst, "w", **profile) as out:
            out.write(ds.read(window=win))
            for b in range(1, ds.count + 1):
                out.set_band_description(b, ds.descriptions[b - 1])
    return dst


def band_item(
    scene: Path, folder: Path, *, item_id: str = "nc-crop", coarse: tuple[str, ...] = ()
) -> Path:
    """A STAC item with one single-band COG asset per band of ``scene`` (keys
    ``B1..B5``, common names in ``eo:bands``); bands in ``coarse`` at half resolution."""
    folder.mkdir(parents=True, exist_ok=True)
    item = pystac.Item(
        item_id,
        geometry=None,
        bbox=None,
        datetime=dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
        properties={},
    )
    with rasterio.open(scene) as ds:
        for b, name in enumerate(ds.descriptions, start=1):
            p = folder / f"B{b}.tif"
            profile = ds.profile | {"count": 1}
            data = ds.read(b)
            if name in coarse:
                h, w = (ds.height + 1) // 2, (ds.width + 1) // 2
                data = ds.read(b, out_shape=(h, w), resampling=Resampling.average)
                t = ds.transform * ds.transform.scale(ds.width / w, ds.height / h)
                profile |= {"height": h, "width": w, "transform": t}
            with rasterio.open(p, "w", **profile) as out:
                out.write(data, 1)
            item.add_asset(
                f"B{b}",
                pystac.Asset(
                    href=p.name,
                    media_type=pystac.MediaType.COG,
                    roles=["data"],
                    extra_fields={"eo:bands": [{"name": f"B{b}", "common_name": name}]},
                ),
            )
    item.set_self_href(str(folder / "item.json"))
    item.save_object(include_self_link=False)
    return folder / "item.json"
