"""Class masks in the fewest bits: the depth rule and the COGs CogWriter makes with it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rio_cogeo.cogeo import cog_validate

from geolabel.errors import ConfigError
from geolabel.grid import SceneGrid, Window
from geolabel.io.raster import MASK_BITS, CogWriter, mask_encoding

T = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)


@pytest.mark.parametrize(
    ("classes", "bits", "dtype", "nodata"),
    [
        (1, 1, "uint8", 1),
        (2, 2, "uint8", 3),
        (3, 2, "uint8", 3),
        (4, 4, "uint8", 15),
        (7, 4, "uint8", 15),
        (15, 4, "uint8", 15),
        (16, 8, "uint8", 255),
        (255, 8, "uint8", 255),
        (256, 16, "uint16", 65535),
        (65535, 16, "uint16", 65535),
    ],
)
def test_depth_is_the_smallest_power_of_two_holding_classes_and_nodata(
    classes: int, bits: int, dtype: str, nodata: int
) -> None:
    enc = mask_encoding(classes)
    assert (enc.bits, enc.dtype, enc.nodata) == (bits, dtype, nodata)
    assert enc.nbits == (bits if bits < 8 else None)
    # every class index is below nodata, and one depth less would not hold them all
    assert classes - 1 < enc.nodata == 2**bits - 1
    smaller = [b for b in MASK_BITS if b < bits]
    assert not smaller or classes + 1 > 2 ** smaller[-1]


@pytest.mark.parametrize("classes", [0, -1, 65536])
def test_impossible_class_counts_are_refused(classes: int) -> None:
    with pytest.raises(ConfigError, match="1 to 65535 classes"):
        mask_encoding(classes)


def _write_mask(path: Path, classes: int, shape: tuple[int, int]) -> np.ndarray:
    """Argmax of seeded random probabilities, nodata in a corner, written in blocks
    that straddle the file's 512 x 512 tiles (as finalize's tile cores do)."""
    enc = mask_encoding(classes)
    rng = np.random.default_rng(classes)
    # smooth classes (runs of equal values), so the COG looks like a real mask
    coarse = rng.random((min(classes, 8), shape[0] // 16 + 1, shape[1] // 16 + 1))
    probs = np.repeat(np.repeat(coarse, 16, axis=1), 16, axis=2)[
        :, : shape[0], : shape[1]
    ]
    mask = (np.argmax(probs, axis=0) * max(1, (classes - 1) // 7)).astype(enc.dtype)
    mask[:37, :53] = enc.nodata
    cmap = {i: ((7 * i) % 256, (3 * i) % 256, 200, 255) for i in range(classes)}
    cmap[enc.nodata] = (0, 0, 0, 0)
    w = CogWriter(
        path,
        SceneGrid(shape, T, "EPSG:32633"),
        count=1,
        dtype=enc.dtype,
        nodata=enc.nodata,
        nbits=enc.nbits,
        resampling="nearest",
        colormap=cmap,
    )
    step = 300
    for r in range(0, shape[0], step):
        for c in range(0, shape[1], step):
            win = Window(r, c, min(step, shape[0] - r), min(step, shape[1] - c))
            w.write(win, mask[win.slices])
    w.close()
    return mask


@pytest.mark.parametrize("classes", [1, 2, 7, 16, 300])
def test_mask_cog_keeps_depth_values_palette_and_nearest_overviews(
    tmp_path: Path, classes: int
) -> None:
    enc = mask_encoding(classes)
    path = tmp_path / "mask.tif"
    mask = _write_mask(path, classes, (1100, 1050))
    valid, errors, warnings = cog_validate(str(path))
    assert valid and errors == [] and warnings == [], (errors, warnings)
    with rasterio.open(path) as ds:
        assert ds.dtypes[0] == enc.dtype and ds.nodata == enc.nodata
        nbits = ds.tags(1, "IMAGE_STRUCTURE").get("NBITS")
        assert nbits == (str(enc.bits) if enc.bits < 8 else None)
        np.testing.assert_array_equal(ds.read(1), mask)
        cmap = ds.colormap(1)
        assert len(cmap) == 2**enc.bits
        assert cmap[enc.nodata][3] == 0
        assert all(
            cmap[i] == ((7 * i) % 256, (3 * i) % 256, 200, 255) for i in range(classes)
        )
        assert ds.overviews(1) == [2, 4]
    classes_and_nodata = set(range(classes)) | {enc.nodata}
    for level, f in enumerate((2, 4)):
        with rasterio.open(path, OVERVIEW_LEVEL=level) as ov:
            assert ov.tags(1, "IMAGE_STRUCTURE").get("NBITS") == nbits
            small = ov.read(1)
        # nearest: every overview pixel is a pixel of the full mask, never a mean
        np.testing.assert_array_equal(
            small, mask[::f, ::f][: small.shape[0], : small.shape[1]]
        )
        assert set(np.unique(small).tolist()) <= classes_and_nodata


def test_mask_cog_bytes_repeat(tmp_path: Path) -> None:
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    _write_mask(a, 7, (600, 700))
    _write_mask(b, 7, (600, 700))
    assert a.read_bytes() == b.read_bytes()


def test_fewer_bits_make_a_smaller_file(tmp_path: Path) -> None:
    # the reason for NBITS: the same 7-class mask at 4 bits is smaller than at 8
    mask = _write_mask(tmp_path / "m4.tif", 7, (1100, 1050))
    nodata8 = np.where(mask == 15, 255, mask).astype(np.uint8)
    w = CogWriter(
        tmp_path / "m8.tif",
        SceneGrid(mask.shape, T, "EPSG:32633"),
        count=1,
        dtype="uint8",
        nodata=255,
    )
    w.write(Window(0, 0, *mask.shape), nodata8)
    w.close()
    assert (tmp_path / "m4.tif").stat().st_size < (tmp_path / "m8.tif").stat().st_size


@pytest.mark.parametrize("classes", [2, 7, 300])
def test_qgis_sidecars_of_every_depth(tmp_path: Path, classes: int) -> None:
    from geolabel.qgis._raster import raster_style, write_category_names

    enc = mask_encoding(classes)
    path = tmp_path / "mask.tif"
    _write_mask(path, classes, (64, 80))
    names = [f"c{i}" for i in range(classes)]
    aux = ET.parse(write_category_names(path, names)).getroot()
    cats = [c.text or "" for c in aux.iter("Category")]
    if enc.bits <= 8:  # every value named, nodata too
        assert cats == [*names, *[""] * (enc.nodata - classes), "nodata"]
    else:  # not 65 536 entries for one name
        assert cats == names
    els = raster_style(path, "mask", class_names=names)
    (r,) = [x for e in els for x in e.iter("rasterrenderer")]
    assert r.get("type") == "paletted"
    entries = list(r.iter("paletteEntry"))
    assert [e.get("label") for e in entries] == names
    assert [e.get("value") for e in entries] == [str(i) for i in range(classes)]
