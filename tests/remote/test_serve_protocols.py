"""``geolabel serve`` speaks SCANEO and the Label Studio ML-backend contract.

SCANEO: geolabel's own SCANEO client (``protocol: scaneo``, the contract SCANEO's model
servers follow; SCANEO ships no client library) gets the local model's classes back.
Label Studio: the requests are built exactly as Label Studio 1.23's
``ml/api_connector.py`` builds them (``health``, ``setup``, ``predict``, ``webhook``);
the real server drives them in ``tests/exchange/test_label_studio_server.py``. The
polygons returned for a chip, burnt back, give the class mask ``geolabel predict``
wrote for that chip.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import rasterio.io
import rasterio.transform
import shapely
import yaml
from click.testing import CliRunner
from rasterio.features import rasterize

from geolabel.cli.main import cli
from geolabel.models import load_model, load_spec
from geolabel.models.check import synthetic_batch
from geolabel.models.http_ import HttpBackend
from geolabel.serve import ModelServer
from geolabel.testing import make_scene, write_toy_spec

TOKEN = "s3cret-token-value"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("protocols")
    (d / "data").mkdir()
    scene = make_scene(d / "data" / "scene.tif", shape=(70, 90))
    spec_path = write_toy_spec(d / "toy.yaml", tile_size=40)
    r = CliRunner().invoke(
        cli, ["-q", "predict", str(scene), "-m", str(spec_path), "-o", str(d / "run")]
    )
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(
        cli,
        [
            "-q",
            "label-studio",
            "export",
            str(d / "run"),
            "-o",
            str(d / "ls"),
            "--chip-size",
            "48",
        ],
    )
    assert r.exit_code == 0, r.output
    spec = load_spec(spec_path)
    return {"dir": d, "scene": scene, "spec_path": spec_path, "spec": spec}


@pytest.fixture(scope="module")
def server(setup: dict[str, Any]) -> Iterator[ModelServer]:
    spec = setup["spec"]
    with (
        load_model(spec) as model,
        ModelServer(spec, model, token=TOKEN, data_root=setup["dir"] / "data") as srv,
    ):
        yield srv


def _call(
    url: str, body: Any = None, *, auth: str | None = "basic", ctype: str | None = None
) -> tuple[int, Any]:
    data = (
        None
        if body is None
        else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    req = urllib.request.Request(
        url, data=data, method="GET" if body is None else "POST"
    )
    if data is not None:
        req.add_header("Content-Type", ctype or "application/json")
    if auth == "basic":  # Label Studio's ML backend "basic auth" (user:password)
        req.add_header(
            "Authorization",
            "Basic " + base64.b64encode(f"ls:{TOKEN}".encode()).decode(),
        )
    elif auth == "bearer":
        req.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_scaneo_client_gets_the_local_models_classes(
    setup: dict[str, Any],
    server: ModelServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doc = yaml.safe_load(setup["spec_path"].read_text())
    doc.pop("architecture")
    doc.update(
        backend="http",
        format="remote",
        endpoint={
            "url": server.url,
            "protocol": "scaneo",
            "path": "/predict",
            "token_env": "SCANEO_TOKEN",
        },
    )
    (tmp_path / "scaneo.yaml").write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("SCANEO_TOKEN", TOKEN)
    local = load_model(setup["spec"])
    with HttpBackend(load_spec(tmp_path / "scaneo.yaml")) as be:
        batch = synthetic_batch(be.spec, 3, seed=2)
        got = be.predict(batch)
    want = local.forward(batch.data).argmax(axis=1)
    for p, w in zip(got, want, strict=True):
        assert np.array_equal(p.array.argmax(axis=0), w)


def test_scaneo_tool_request_gets_one_band_per_class(
    setup: dict[str, Any], server: ModelServer
) -> None:
    """The request SCANEO's own inference code sends (scaneo 2024.12,
    ``src/usecases/models/inference_model.py``: ``requests.post(model.url,
    files={'image': img_buffer})`` with a GeoTIFF of the pre-processed image, then
    ``src.read()`` of the answer, band ``i`` the mask of output index ``i``)."""
    spec = setup["spec"]
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 40, 40)).astype(np.float32)
    transform = rasterio.transform.from_origin(500000, 4000000, 10, 10)
    with rasterio.io.MemoryFile() as mem:
        with mem.open(
            driver="GTiff", width=40, height=40, count=3, dtype="float32",
            crs="EPSG:32633", transform=transform,
        ) as ds:  # fmt: skip
            ds.write(x)
        tiff = bytes(mem.read())
    boundary = "7d8b0c1e2f3a4b5c"  # requests: name and filename "image", no part type
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
            f'filename="image"\r\n\r\n'
        ).encode()
        + tiff
        + f"\r\n--{boundary}--\r\n".encode()
    )
    req = urllib.request.Request(
        f"{server.url}/predict?output=onehot", data=body, method="POST"
    )
    req.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    req.add_header("Authorization", f"Bearer {TOKEN}")
    with urllib.request.urlopen(req, timeout=30) as resp:
        answer = resp.read()
    with rasterio.io.MemoryFile(answer) as mem, mem.open() as ds:
        y = ds.read()
        assert ds.transform == transform and ds.crs == "EPSG:32633"
    want = load_model(spec).forward(x[None])[0].argmax(axis=0)
    assert y.shape == (3, 40, 40) and y.dtype == np.uint8
    for i in range(3):
        assert np.array_equal(y[i], (want == i).astype(np.uint8))
    bad = urllib.request.Request(
        f"{server.url}/predict?output=rgb", data=body, method="POST"
    )
    bad.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    bad.add_header("Authorization", f"Bearer {TOKEN}")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(bad, timeout=30)
    assert err.value.code == 400


def _ls_predict_request(
    setup: dict[str, Any], tasks: list[dict[str, Any]]
) -> dict[str, Any]:
    """The body Label Studio's MLApi._prep_prediction_req sends."""
    config = (setup["dir"] / "ls" / "label_config.xml").read_text()
    return {
        "tasks": tasks,
        "project": "1.1733416400",
        "label_config": config,
        "params": {"login": None, "password": None, "context": None},
    }


def test_label_studio_backend_predicts_the_run_mask(
    setup: dict[str, Any], server: ModelServer
) -> None:
    url = server.url
    code, health = _call(f"{url}/health", auth=None)  # no token on health
    assert code == 200 and health["status"] == "UP"
    config = (setup["dir"] / "ls" / "label_config.xml").read_text()
    code, out = _call(
        f"{url}/setup",
        {
            "project": "1.1733416400",
            "schema": config,
            "hostname": "http://localhost:8080",
            "access_token": "x" * 40,
            "extra_params": None,
        },
    )
    assert code == 200 and out["model_version"] == setup["spec"].model_id
    tasks = json.loads((setup["dir"] / "ls" / "tasks.json").read_text())
    assert len(tasks) == 4  # 70 x 90 in 48-px chips
    for i, t in enumerate(tasks):
        t["id"] = i + 1
        t.pop("predictions")
    code, out = _call(f"{url}/predict", _ls_predict_request(setup, tasks))
    assert code == 200, out
    assert len(out["results"]) == len(tasks)
    with rasterio.open(setup["dir"] / "run" / "scene" / "scene_mask.tif") as m:
        mask = m.read(1)
    classes = list(setup["spec"].class_names)
    for task, res in zip(tasks, out["results"], strict=True):
        r0, c0, h, w = task["data"]["geolabel"]["window"]
        assert res["model_version"] == setup["spec"].model_id
        burnt = np.full((h, w), 255, dtype=np.uint8)
        for region in res["result"]:
            assert region["type"] == "polygonlabels" and 0 <= region["score"] <= 1
            assert (region["from_name"], region["to_name"]) == ("label", "image")
            pts = np.asarray(region["value"]["points"]) * [w / 100, h / 100]
            k = classes.index(region["value"]["polygonlabels"][0])
            burnt = np.where(
                rasterize([(shapely.Polygon(pts), 1)], out_shape=(h, w), fill=0).astype(
                    bool
                ),
                k,
                burnt,
            )
        assert np.array_equal(burnt, mask[r0 : r0 + h, c0 : c0 + w])


def test_label_studio_webhook_and_refusals(
    setup: dict[str, Any], server: ModelServer
) -> None:
    url = server.url
    code, out = _call(
        f"{url}/webhook", {"action": "ANNOTATION_CREATED", "project": {"id": 1}}
    )
    assert code == 200 and out["action"] == "ANNOTATION_CREATED" and out["events"] >= 1
    code, out = _call(f"{url}/webhook", {"action": "START_TRAINING"}, auth=None)
    assert code == 401  # the token guards everything but health
    code, out = _call(f"{url}/setup", {"schema": "x"}, auth="basic")
    assert code == 400 and "not XML" in out["error"]
    task = json.loads((setup["dir"] / "ls" / "tasks.json").read_text())[0]
    task["data"]["geolabel"]["scene"] = str(setup["dir"] / "run" / "run.json")
    code, out = _call(f"{url}/predict", _ls_predict_request(setup, [task]))
    assert code == 403 and "outside --data-root" in out["error"]
    task["data"]["geolabel"]["scene"] = "../run/run.json"
    code, out = _call(f"{url}/predict", _ls_predict_request(setup, [task]))
    assert code == 403
    del task["data"]["geolabel"]
    code, out = _call(f"{url}/predict", _ls_predict_request(setup, [task]))
    assert code == 400 and "no geolabel georeference" in out["error"]
