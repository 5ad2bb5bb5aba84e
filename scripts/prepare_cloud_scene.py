"""Write the cloud-landsat7 fixture: a georeferenced GeoTIFF pair from the ukis-csmask test file.

The source (``landsat7.npz``, Apache-2.0, see the fixture's PROVENANCE.md) has no
georeferencing, so a nominal grid is written: EPSG:32633 (UTM 33N), 30 m pixels,
upper-left corner (500000, 5000000). It is *not* the scene's true location.

Usage::

    python scripts/prepare_cloud_scene.py ../shared/data/cloud-landsat7 src/geolabel/_data/cloud-landsat7
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")
#: source mask code -> reference code (0 = nodata); names in the same order
CODES = {0: 1, 1: 2, 3: 3, 4: 4}
NAMES = ("shadow", "water", "land", "cloud")
COLOURS = {
    1: (60, 60, 60, 255),
    2: (43, 131, 186, 255),
    3: (166, 217, 106, 255),
    4: (255, 255, 255, 255),
}


def main(src: Path, dst: Path) -> None:
    """Read ``src/landsat7.npz``; write the scene, the reference and the licence to ``dst``."""
    data = np.load(src / "landsat7.npz")
    img = np.moveaxis(data["img"].astype(np.float32), -1, 0)
    msk = data["msk"][..., 0]
    ref = np.zeros(msk.shape, np.uint8)
    for code, new in CODES.items():
        ref[msk == code] = new
    if (ref == 0).any():
        raise SystemExit(
            f"unexpected mask codes {sorted(set(np.unique(msk)) - set(CODES))}"
        )
    dst.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "width": img.shape[2],
        "height": img.shape[1],
        "crs": "EPSG:32633",
        "transform": from_origin(500000.0, 5000000.0, 30.0, 30.0),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    with rasterio.open(
        dst / "cloud_landsat7.tif",
        "w",
        count=6,
        dtype="float32",
        predictor=3,
        **profile,
    ) as out:
        out.write(img)
        out.descriptions = BANDS
    with rasterio.open(
        dst / "cloud_reference.tif", "w", count=1, dtype="uint8", nodata=0, **profile
    ) as out:
        out.write(ref, 1)
        out.write_colormap(1, COLOURS)
        out.descriptions = ("cloud_reference",)
        out.update_tags(
            1, **{f"CLASS_{k}": n for k, n in zip(range(1, 5), NAMES, strict=False)}
        )
    shutil.copy(src / "LICENSE-ukis-csmask-Apache2.txt", dst)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
