"""A dense tree / not-tree reference on the NEON OSBS_029 orthophoto, from its crown boxes.

The 61 hand-drawn crown boxes of ``tests/data/neon-trees/OSBS_029.csv`` (DeepForest
sample, MIT; see that folder's PROVENANCE.md) are burnt into a raster on the image's
grid: 2 inside any box, 1 elsewhere, 0 where the image is nodata. Boxes are not crown
outlines, so box corners count as tree: a rough reference, used only by
``geolabel simulate`` to check the unit rule on a second sub-metre scene
(docs/simulation.md).

Usage::

    python scripts/prepare_neon_reference.py /tmp/neon_tree_reference.tif
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import rasterio

NEON = Path(__file__).resolve().parents[1] / "tests" / "data" / "neon-trees"


def main(out: Path) -> None:
    """Write the reference raster to ``out``."""
    with rasterio.open(NEON / "OSBS_029.tif") as ds:
        valid = ds.read_masks(1) > 0
        profile = ds.profile
    ref = np.ones(valid.shape, np.uint8)
    with open(NEON / "OSBS_029.csv", newline="") as f:
        for row in csv.DictReader(f):
            x0, y0, x1, y1 = (
                int(float(row[k])) for k in ("xmin", "ymin", "xmax", "ymax")
            )
            ref[y0:y1, x0:x1] = 2
    ref[~valid] = 0
    profile.update(count=1, dtype="uint8", nodata=0, compress="deflate", tiled=False)
    profile.pop("blockxsize", None)
    profile.pop("blockysize", None)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(ref, 1)
    print(f"{out}: tree {float((ref == 2).mean()):.1%} of the image")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
