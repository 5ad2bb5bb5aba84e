"""QGIS-ready outputs checked without QGIS: COG validity, class names, sidecar styles,
``layer_styles`` inside valid GeoPackage 1.2 files, the project XML, GDAL's validators."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import yaml
from click.testing import CliRunner
from rio_cogeo.cogeo import cog_validate

from geolabel.cli.main import cli
from geolabel.config import RunConfig
from geolabel.io.raster import mask_encoding
from geolabel.io.run_record import resolve_path
from geolabel.pipeline import run_predict
from geolabel.qgis import STYLE_NAME, embed_styles, layer_styles, style_scene_outputs
from geolabel.testing import make_scene, toy_spec, write_toy_spec

from .conftest import outputs_of, run_doc

SYSTEM_PY = "/usr/bin/python3"
VALIDATE_GPKG = Path(
    "/usr/lib/python3/dist-packages/osgeo_utils/samples/validate_gpkg.py"
)


def _renderer(qml: Path | str) -> ET.Element:
    root = ET.fromstring(Path(qml).read_text() if isinstance(qml, Path) else qml)
    r = root.find(".//rasterrenderer")
    return r if r is not None else root.find("renderer-v2")


def test_every_raster_is_a_valid_cog_with_a_style(qgis_run: Path) -> None:
    outs = outputs_of(qgis_run)
    rasters = {r: p for r, p in outs.items() if p.suffix == ".tif"}
    assert {"mask", "confidence"} <= set(rasters)
    for role, path in rasters.items():
        valid, errors, _ = cog_validate(str(path))
        assert valid, (path, errors)
        qml = outs[f"style:{role}"]
        assert qml == path.with_suffix(".qml") and qml.is_file()
        r = _renderer(qml)
        if role == "mask":
            assert r.get("type") == "paletted"
        else:
            assert r.get("type") == "singlebandpseudocolor"
            shader = r.find(".//colorrampshader")
            assert (
                float(shader.get("minimumValue")),
                float(shader.get("maximumValue")),
            ) == (0.0, 1.0)


def test_mask_palette_names_and_transparent_nodata(qgis_run: Path) -> None:
    doc = run_doc(qgis_run)
    names = doc["model"]["classes"]
    outs = outputs_of(qgis_run)
    enc = mask_encoding(len(names))  # the demo's 7 classes: 4 bits, nodata 15
    with rasterio.open(outs["mask"]) as ds:
        cmap, nodata = ds.colormap(1), int(ds.nodata)
        assert ds.dtypes[0] == enc.dtype and nodata == enc.nodata
        assert ds.tags(1, "IMAGE_STRUCTURE").get("NBITS") == (
            None if enc.nbits is None else str(enc.nbits)
        )
    assert len(cmap) == 2**enc.bits and cmap[nodata][3] == 0
    assert all(cmap[i][3] == 255 for i in range(len(names)))
    entries = _renderer(outs["style:mask"]).findall(".//paletteEntry")
    assert [e.get("label") for e in entries] == names
    assert [e.get("value") for e in entries] == [str(i) for i in range(len(names))]
    assert [e.get("color") for e in entries] == [
        "#{:02x}{:02x}{:02x}".format(*cmap[i][:3]) for i in range(len(names))
    ]
    aux = ET.parse(outs["categories:mask"]).getroot()
    cats = [c.text or "" for c in aux.iter("Category")]
    assert (
        cats[: len(names)] == names
        and cats[nodata] == "nodata"
        and len(cats) == nodata + 1
    )


def test_large_mask_has_nearest_overviews_and_stays_valid(tmp_path: Path) -> None:
    scene = make_scene(
        tmp_path / "big.tif",
        shape=(1050, 1100),
        nodata=-1.0,
        nodata_region=(slice(0, 100), slice(0, 200)),
    )
    spec = write_toy_spec(tmp_path / "t.yaml", tile_size=512)
    res = run_predict(
        RunConfig(
            scenes=(str(scene),),
            model=str(spec),
            out=str(tmp_path / "run"),
            vectors=False,
            probabilities=False,
        )
    )
    mask = Path(res.scenes[0].outputs["mask"])
    assert cog_validate(str(mask))[0]
    with rasterio.open(mask) as ds:
        full, overviews = ds.read(1), ds.overviews(1)
        assert ds.nodata == 3 and ds.tags(1, "IMAGE_STRUCTURE")["NBITS"] == "2"
    with rasterio.open(mask, OVERVIEW_LEVEL=0) as ov:
        half = ov.read(1)
        assert ov.tags(1, "IMAGE_STRUCTURE")["NBITS"] == "2"  # overviews keep NBITS
    assert set(np.unique(half).tolist()) <= {0, 1, 2, 3}
    assert overviews == [2, 4]
    np.testing.assert_array_equal(
        half, full[::2, ::2][: half.shape[0], : half.shape[1]]
    )
    assert Path(res.scenes[0].outputs["style:mask"]).is_file()
    assert (res.out / "run.qgs").is_file()


def test_geopackages_are_1_2_with_registered_default_styles(qgis_run: Path) -> None:
    gpkgs = sorted({p for p in outputs_of(qgis_run).values() if p.suffix == ".gpkg"})
    assert gpkgs
    expected = {
        "predictions": ("categorizedSymbol", "class_name"),
        "tiles": ("graduatedSymbol", "mean"),
        "next_to_label": ("graduatedSymbol", "rank"),
    }
    seen = set()
    for path in gpkgs:
        header = path.read_bytes()[:100]
        assert (
            header[68:72] == b"GPKG" and int.from_bytes(header[60:64], "big") == 10200
        )
        with sqlite3.connect(path) as con:
            contents = dict(
                con.execute(
                    "SELECT table_name, data_type FROM gpkg_contents"
                ).fetchall()
            )
            rows = con.execute(
                "SELECT f_table_name, f_geometry_column, styleName, styleQML, useAsDefault,"
                " update_time FROM layer_styles"
            ).fetchall()
            cols = [
                r[1] for r in con.execute("PRAGMA table_info(layer_styles)").fetchall()
            ]
        con.close()
        assert contents["layer_styles"] == "attributes"
        assert cols == [
            "id",
            "f_table_catalog",
            "f_table_schema",
            "f_table_name",
            "f_geometry_column",
            "styleName",
            "styleQML",
            "styleSLD",
            "useAsDefault",
            "description",
            "owner",
            "ui",
            "update_time",
        ]
        layers = {str(n) for n, g in pyogrio.list_layers(path) if g is not None}
        for table, geom_col, name, qml, default, when in rows:
            assert (
                table in layers
                and geom_col == "geom"
                and name == STYLE_NAME
                and default == 1
            )
            assert when == "2000-01-01T00:00:00.000Z"
            r = _renderer(qml)
            if table in expected:
                seen.add(table)
                assert (r.get("type"), r.get("attr")) == expected[table]
            if table == "predictions":
                text = ET.fromstring(qml).find("labeling/settings/text-style")
                assert text.get("fieldName") == 'format_number("score", 2)'
                assert text.get("isExpression") == "1"
        assert len(rows) == len({r[0] for r in rows})  # one default per layer
    assert {"predictions"} <= seen


def test_styling_again_replaces_its_rows_and_keeps_others(
    qgis_run: Path, tmp_path: Path
) -> None:
    gpkg = tmp_path / "p.gpkg"
    shutil.copyfile(outputs_of(qgis_run)["vectors"], gpkg)
    with sqlite3.connect(gpkg) as con:
        con.execute(
            "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name,"
            " f_geometry_column, styleName, styleQML, useAsDefault) VALUES"
            " ('', '', 'predictions', 'geom', 'mine', '<qgis/>', 1)"
        )
    con.close()
    embed_styles(gpkg, layer_styles(gpkg))
    with sqlite3.connect(gpkg) as con:
        rows = con.execute(
            "SELECT styleName, useAsDefault FROM layer_styles ORDER BY styleName"
        ).fetchall()
    con.close()
    assert rows == [(STYLE_NAME, 1), ("mine", 0)]
    assert pyogrio.read_info(gpkg, layer="predictions")["features"] > 0


@pytest.mark.skipif(
    not (Path(SYSTEM_PY).exists() and VALIDATE_GPKG.exists()),
    reason="GDAL's validate_gpkg.py (Debian python3-gdal) is not installed",
)
def test_gdal_validate_gpkg_accepts_every_geopackage(qgis_run: Path) -> None:
    gpkgs = sorted({p for p in outputs_of(qgis_run).values() if p.suffix == ".gpkg"})
    for path in gpkgs:
        r = subprocess.run(
            [SYSTEM_PY, str(VALIDATE_GPKG), str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, (path, r.stdout, r.stderr)


def test_project_lists_every_output_by_relative_path(qgis_run: Path) -> None:
    outs = outputs_of(qgis_run)
    qgs = outs["project"]
    assert qgs == qgis_run / "run.qgs"
    root = ET.parse(qgs).getroot()
    sources = [ml.findtext("datasource") for ml in root.iter("maplayer")]
    files = {(qgs.parent / s.split("|")[0]).resolve() for s in sources}
    assert all(s.startswith(("./", "../")) for s in sources)
    assert all(f.is_file() for f in files)
    wanted = {
        p.resolve()
        for r, p in outs.items()
        if ":" not in r and p.suffix in (".tif", ".gpkg")
    }
    assert wanted <= files
    scene = resolve_path(qgis_run, run_doc(qgis_run)["scenes"][0]["scene"]).resolve()
    assert scene in files
    groups = [
        g.get("name") for g in root.find("layer-tree-group").findall("layer-tree-group")
    ]
    assert Path(run_doc(qgis_run)["scenes"][0]["dir"]).name in groups
    ids = [ml.findtext("id") for ml in root.iter("maplayer")]
    assert len(ids) == len(set(ids)) == len(root.find("layerorder"))


def test_style_scene_outputs_reads_classes_from_the_mask(
    qgis_run: Path, tmp_path: Path
) -> None:
    mask = tmp_path / "m_mask.tif"
    shutil.copyfile(outputs_of(qgis_run)["mask"], mask)
    new = style_scene_outputs({"mask": str(mask)})
    assert set(new) == {"style:mask", "categories:mask"}
    labels = [
        e.get("label")
        for e in _renderer(Path(new["style:mask"])).findall(".//paletteEntry")
    ]
    assert labels == run_doc(qgis_run)["model"]["classes"]


def test_cli_qgis_errors_are_one_line(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["qgis", str(tmp_path / "nope")])
    assert r.exit_code == 2
    assert r.output.strip().startswith("geolabel: error:") and "run.json" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_background_class_is_transparent_and_hidden(tmp_path: Path) -> None:
    d = toy_spec(classes=3, tile_size=64)
    d["classes"][0]["name"] = "Background"
    spec = tmp_path / "bg.yaml"
    spec.write_text(yaml.safe_dump(d, sort_keys=False))
    scene = make_scene(tmp_path / "s.tif", shape=(70, 90), nodata=-1.0)
    res = run_predict(
        RunConfig(scenes=(str(scene),), model=str(spec), out=str(tmp_path / "run"))
    )
    outs = res.scenes[0].outputs
    entries = {
        e.get("label"): e.get("alpha")
        for e in _renderer(Path(outs["style:mask"])).iter("paletteEntry")
    }
    assert entries == {"Background": "0", "class1": "255", "class2": "255"}
    (style,) = layer_styles(Path(outs["vectors"]))
    renders = {
        c.get("value"): c.get("render") for c in style.elements[0].iter("category")
    }
    assert renders == {"Background": "false", "class1": "true", "class2": "true"}


def test_queue_style_offers_the_classes_for_label(qgis_run: Path) -> None:
    """``next_to_label`` (points by default) is labelled by picking a class from a list."""
    gpkg = qgis_run / "next_to_label.gpkg"
    with sqlite3.connect(gpkg) as con:
        (qml,) = con.execute(
            "SELECT styleQML FROM layer_styles WHERE f_table_name = 'next_to_label'"
        ).fetchone()
    con.close()
    root = ET.fromstring(qml)
    field = root.find(".//fieldConfiguration/field[@name='label']")
    assert field is not None
    assert field.find(".//editWidget").get("type") == "ValueMap"
    values = {o.get("value") for o in field.iter("Option") if o.get("value")}
    assert set(run_doc(qgis_run)["model"]["classes"]) <= values
