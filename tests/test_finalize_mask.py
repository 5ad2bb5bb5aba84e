"""The class mask finalize writes: its bit depth follows the class count, and every
reader (vectorisation, region scores, QGIS sidecars) takes nodata from the file.

``CodeBackend`` is pointwise: band 1 of the scene is the class each pixel must get, so
the expected mask is the scene itself, whatever the tiling. A model spec holds at most
255 classes (index <= 254), so masks of 16 bits are tested at the writer only
(``tests/io/test_mask_encoding.py``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
from affine import Affine
from rio_cogeo.cogeo import cog_validate

from geolabel.config import RunConfig
from geolabel.io.raster import mask_encoding
from geolabel.models.base import Batch, Prediction, to_predictions
from geolabel.models.spec import ModelSpec
from geolabel.pipeline import run_predict
from geolabel.priority.regions import load_run, score_regions
from geolabel.testing import make_scene, toy_spec

SHAPE = (96, 160)
BLOCK = 4  # class codes come in BLOCK x BLOCK squares
NODATA_BOX = (slice(8, 24), slice(12, 40))  # block-aligned


def code_spec(classes: int) -> ModelSpec:
    raw = toy_spec(
        bands=1, classes=classes, tile_size=64, mean=0.0, std=1.0, name="codes"
    )
    raw["receptive_field"], raw["recommended_overlap"] = 1, 8
    return ModelSpec.model_validate(raw)


class CodeBackend:
    """``p(class = round(band 1)) = 0.9``, the rest shared by the other classes."""

    def __init__(self, spec: ModelSpec) -> None:
        self._spec = spec

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    def predict(self, batch: Batch) -> list[Prediction]:
        c = self._spec.num_classes
        code = np.clip(np.rint(batch.data[:, 0]), 0, c - 1).astype(np.int64)
        probs = np.full((code.shape[0], c, *code.shape[1:]), 0.1 / (c - 1), np.float32)
        np.put_along_axis(probs, code[:, None], np.float32(0.9), axis=1)
        return to_predictions(probs, batch, self._spec)

    def close(self) -> None:
        pass

    def __enter__(self) -> CodeBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def codes(classes: int) -> np.ndarray:
    """Every class at least once (up to 960 blocks), in BLOCK x BLOCK squares."""
    r, c = np.indices(SHAPE)
    return ((r // BLOCK) * (SHAPE[1] // BLOCK) + c // BLOCK) % classes


def run(tmp_path: Path, classes: int):
    a = codes(classes).astype(np.float32)
    a[NODATA_BOX] = -9.0
    scene = make_scene(
        tmp_path / "codes.tif",
        data=a[None],
        bands=1,
        nodata=-9.0,
        transform=Affine(10.0, 0, 500000.0, 0, -10.0, 4000000.0),
    )
    spec = code_spec(classes)
    res = run_predict(
        RunConfig(
            scenes=(str(scene),),
            model="codes.yaml",
            out=str(tmp_path / "run"),
            probabilities=classes <= 16,  # 255 float bands take 10 s to write
        ),
        model=CodeBackend(spec),
    )
    assert res.ok, [s.error for s in res.scenes]
    return res, spec


@pytest.mark.parametrize(
    ("classes", "bits"), [(2, 2), (3, 2), (4, 4), (7, 4), (16, 8), (255, 8)]
)
def test_mask_depth_values_palette_and_names(
    tmp_path: Path, classes: int, bits: int
) -> None:
    res, spec = run(tmp_path, classes)
    outs = res.scenes[0].outputs
    enc = mask_encoding(classes)
    assert enc.bits == bits
    valid_cog, errors, _ = cog_validate(outs["mask"])
    assert valid_cog and errors == []
    with rasterio.open(outs["mask"]) as ds:
        assert ds.dtypes[0] == "uint8"
        assert ds.nodata == 2**bits - 1
        assert ds.tags(1, "IMAGE_STRUCTURE").get("NBITS") == (
            str(bits) if bits < 8 else None
        )
        mask, cmap = ds.read(1), ds.colormap(1)
    expect = codes(classes)
    expect[NODATA_BOX] = 2**bits - 1
    np.testing.assert_array_equal(mask, expect)
    if "probabilities" in outs:  # the argmax of the probabilities, nodata where NaN
        with rasterio.open(outs["probabilities"]) as p:
            probs = p.read()
        invalid = np.isnan(probs).all(axis=0)
        assert (invalid == (mask == 2**bits - 1)).all() and invalid[NODATA_BOX].all()
        argmax = np.argmax(np.nan_to_num(probs), axis=0)
        np.testing.assert_array_equal(mask[~invalid], argmax[~invalid])
    # palette: the classes' colours, opaque; nodata transparent
    assert len(cmap) == 2**bits and cmap[2**bits - 1] == (0, 0, 0, 0)
    for c in spec.classes:
        assert cmap[c.index] == (*c.rgb, 255)
    # QGIS: the .qml palette and GDAL's category names
    entries = ET.parse(outs["style:mask"]).getroot().iter("paletteEntry")
    assert [e.get("label") for e in entries] == list(spec.class_names)
    aux = ET.parse(outs["categories:mask"]).getroot()
    cats = [c.text or "" for c in aux.iter("Category")]
    assert cats[:classes] == list(spec.class_names)
    assert len(cats) == 2**bits and cats[-1] == "nodata"
    assert all(c == "" for c in cats[classes:-1])


@pytest.mark.parametrize("classes", [3, 7, 255])
def test_readers_take_nodata_from_the_mask(tmp_path: Path, classes: int) -> None:
    res, spec = run(tmp_path, classes)
    outs = res.scenes[0].outputs
    expect = codes(classes)
    valid = np.ones(SHAPE, bool)
    valid[NODATA_BOX] = False
    # vectors: every valid pixel once, in a polygon of its own class; nodata none
    df = pyogrio.read_dataframe(outs["vectors"], layer="predictions")
    assert int(df["pixels"].sum()) == int(valid.sum())
    assert set(df["class_id"]) == set(np.unique(expect[valid]).tolist())
    assert (df["class_name"] == [spec.class_names[i] for i in df["class_id"]]).all()
    # region scores: block-sized regions, each one class; the nodata box dropped
    (scene_run,) = load_run(res.out)
    regions = score_regions(scene_run, "entropy", region_size=BLOCK)
    assert len(regions) == int(valid.sum()) // BLOCK**2
    for r in regions:
        w = r.window
        assert r.valid_fraction == 1.0
        assert r.dominant_class == expect[w.row_off, w.col_off]


@pytest.mark.parametrize("compress", ["zstd", "deflate"])
def test_compress_option_reaches_every_cog(tmp_path: Path, compress: str) -> None:
    a = codes(4).astype(np.float32)
    scene = make_scene(
        tmp_path / "codes.tif",
        data=a[None],
        bands=1,
        transform=Affine(10.0, 0, 500000.0, 0, -10.0, 4000000.0),
    )
    res = run_predict(
        RunConfig(
            scenes=(str(scene),),
            model="codes.yaml",
            out=str(tmp_path / "run"),
            compress=compress,  # type: ignore[arg-type]
        ),
        model=CodeBackend(code_spec(4)),
    )
    assert res.ok, [s.error for s in res.scenes]
    cogs = {r: p for r, p in res.scenes[0].outputs.items() if p.endswith(".tif")}
    assert set(cogs) == {"mask", "confidence", "probabilities", "uncertainty"}
    for path in cogs.values():
        with rasterio.open(path) as ds:
            assert ds.compression.value.lower() == compress
        assert cog_validate(path)[0]
