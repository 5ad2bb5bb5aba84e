"""Write the spacenet-atlanta fixture from the ``solaris`` 0.4.0 wheel's sample data.

The wheel (Apache-2.0 code; the sample is SpaceNet 4 data, CC BY-SA 4.0, with
OSM-derived building footprints, ODbL) ships a 900 x 900 px, 0.5 m WorldView-2
panchromatic chip over Atlanta (EPSG:32616) and 43 hand-digitised building polygons
on it. This script copies the image (tiled, deflate), the polygons, and a dense
reference raster on the image grid: 1 background, 2 building, 0 nodata.

Usage::

    pip download --no-deps -d /tmp/solaris solaris==0.4.0
    unzip -o /tmp/solaris/solaris-0.4.0-py3-none-any.whl 'solaris/data/sample_geotiff.tif' \
        'solaris/data/geotiff_labels.geojson' -d /tmp/solaris/x
    python scripts/prepare_spacenet_scene.py /tmp/solaris/x/solaris/data \
        src/geolabel/_data/spacenet-atlanta
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import rasterio
from rasterio.features import rasterize
from shapely.geometry import shape

COLOURS = {1: (200, 200, 200, 255), 2: (215, 25, 28, 255)}


def main(src: Path, dst: Path) -> None:
    """Write ``spacenet_atlanta.tif``, ``buildings.geojson``, ``building_reference.tif``."""
    dst.mkdir(parents=True, exist_ok=True)
    with rasterio.open(src / "sample_geotiff.tif") as ds:
        img = ds.read(1)
        profile = ds.profile
    profile.update(
        tiled=True, blockxsize=256, blockysize=256, compress="deflate", predictor=2
    )
    with rasterio.open(dst / "spacenet_atlanta.tif", "w", **profile) as out:
        out.write(img, 1)
        out.set_band_description(1, "pan")
    gj = json.loads((src / "geotiff_labels.geojson").read_text())
    feats = [
        {
            "type": "Feature",
            "properties": {
                "label": "building",
                "osm_building": f["properties"].get("building"),
            },
            "geometry": f["geometry"],
        }
        for f in gj["features"]
    ]
    (dst / "buildings.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "crs": gj["crs"], "features": feats})
    )
    ref = rasterize(
        [(shape(f["geometry"]), 2) for f in feats],
        out_shape=img.shape,
        transform=profile["transform"],
        fill=1,
        dtype="uint8",
    )
    ref[img == 0] = 0
    rp = {
        **{k: profile[k] for k in ("crs", "transform", "width", "height")},
        "driver": "GTiff",
        "count": 1,
        "dtype": "uint8",
        "nodata": 0,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    with rasterio.open(dst / "building_reference.tif", "w", **rp) as out:
        out.write(ref, 1)
        out.write_colormap(1, COLOURS)
    share = float((ref == 2).mean())
    print(f"{dst}: {img.shape[1]}x{img.shape[0]} px, buildings {share:.1%}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
