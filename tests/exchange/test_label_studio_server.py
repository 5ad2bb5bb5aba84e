"""Round trips through a real Label Studio server (started on 127.0.0.1 by conftest).

1. Tasks with geolabel's pre-annotations are imported with label-studio-sdk, accepted
   as annotations, one region is edited, the project is exported and imported back:
   the same polygons (within half a pixel) and classes, the edited one changed.
2. ``geolabel serve`` is connected to a project as its ML backend (basic auth with the
   server's token) and Label Studio's "retrieve predictions" action fetches the
   predictions: they burn back to the class mask ``geolabel predict`` wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import rasterio
import shapely
from click.testing import CliRunner
from rasterio.features import rasterize

from geolabel.cli.main import cli
from geolabel.models import load_model, load_spec
from geolabel.serve import ModelServer

from ._roundtrip import check_round_trip, largest_region, other_class
from .conftest import drive

CLASSES = ["class0", "class1", "class2"]
SQUARE = [[10.0, 10.0], [60.0, 10.0], [60.0, 60.0], [10.0, 60.0]]


def test_round_trip_through_label_studio(
    label_studio: dict[str, Any], ls_run: dict[str, Any], tmp_path: Path
) -> None:
    assert label_studio["startup_s"] < 60
    task = ls_run["tasks"][0]
    region = largest_region(task)
    new = other_class(region["value"]["polygonlabels"][0], CLASSES)
    export = tmp_path / "export.json"
    drive(
        "roundtrip",
        {
            "url": label_studio["url"],
            "token": label_studio["token"],
            "config": ls_run["config"],
            "tasks": ls_run["tasks"],
            "edit": {
                "image": task["data"]["image"],
                "region": region["id"],
                "label": new,
                "points": SQUARE,
            },
            "out": str(export),
        },
        tmp_path,
    )
    exported = json.loads(export.read_text())
    assert len(exported) == len(ls_run["tasks"])
    assert all(len(t["annotations"]) == 1 for t in exported)
    labels = tmp_path / "labels.gpkg"
    r = CliRunner().invoke(
        cli,
        ["-q", "label-studio", "import", str(export), "-o", str(labels), "--run",
         str(ls_run["run"])],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    got = pyogrio.read_dataframe(labels, layer="labels")
    check_round_trip(got, ls_run, (task["data"]["image"], region["id"]), new, SQUARE)


def test_label_studio_calls_geolabel_serve_as_ml_backend(
    label_studio: dict[str, Any], ls_run: dict[str, Any], tmp_path: Path
) -> None:
    spec = load_spec(ls_run["spec"])
    token = "ml-backend-secret"
    out = tmp_path / "predicted.json"
    with (
        load_model(spec) as model,
        ModelServer(spec, model, token=token, data_root=ls_run["scene"].parent) as srv,
    ):
        drive(
            "ml",
            {
                "url": label_studio["url"],
                "token": label_studio["token"],
                "config": ls_run["config"],
                "tasks": ls_run["tasks"],
                "backend": srv.url,
                "password": token,
                "out": str(out),
            },
            tmp_path,
        )
        assert srv.protocols.events == {"START_TRAINING": 1}
    doc = json.loads(out.read_text())
    assert doc["backend"]["readable_state"] == "Connected"
    assert doc["backend"]["model_version"] == spec.model_id
    with rasterio.open(ls_run["run"] / "scene" / "scene_mask.tif") as m:
        mask = m.read(1)
    assert len(doc["tasks"]) == len(ls_run["tasks"])
    for task in doc["tasks"]:
        (pred,) = task["predictions"]
        assert pred["model_version"] == spec.model_id
        r0, c0, h, w = task["data"]["geolabel"]["window"]
        burnt = np.full((h, w), 255, dtype=np.uint8)
        for region in pred["result"]:
            pts = np.asarray(region["value"]["points"]) * [w / 100, h / 100]
            k = CLASSES.index(region["value"]["polygonlabels"][0])
            inside = rasterize([(shapely.Polygon(pts), 1)], out_shape=(h, w), fill=0)
            burnt[inside.astype(bool)] = k
        assert np.array_equal(burnt, mask[r0 : r0 + h, c0 : c0 + w])
