"""The SCANEO protocol against a small SCANEO-style server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from geolabel.errors import ModelOutputError
from geolabel.models._scaneo import encode_tile_tiff
from geolabel.models.check import synthetic_batch
from geolabel.models.http_ import HttpBackend
from geolabel.models.spec import ModelSpec, load_spec
from geolabel.testing.backends import ConvBackend


def _read_tiff(data: bytes) -> np.ndarray:
    from rasterio.io import MemoryFile

    with MemoryFile(data) as mem, mem.open() as ds:
        return ds.read()


class ScaneoServer:
    """Answers POST /predict: a class GeoTIFF (segmentation) or a JSON list (classification)."""

    def __init__(
        self, model: ConvBackend, *, task: str = "segmentation", offset: int = 0
    ) -> None:
        self.model, self.task, self.offset = model, task, offset
        self.fields: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                boundary = self.headers["Content-Type"].split("boundary=")[1].encode()
                part = body.split(b"--" + boundary)[1]
                head, _, content = part.partition(b"\r\n\r\n")
                owner.fields.append(head.decode())
                tile = _read_tiff(content[:-2])[None].astype(np.float32)
                logits = owner.model.forward(tile)
                if owner.task == "classification":
                    p = np.exp(logits.mean(axis=(2, 3))[0])
                    payload, ctype = (
                        json.dumps((p / p.sum()).tolist()).encode(),
                        "application/json",
                    )
                else:
                    classes = (
                        logits[0].argmax(axis=0).astype(np.uint8)[None] + owner.offset
                    )
                    payload, ctype = encode_tile_tiff(classes), "image/tiff"
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> ScaneoServer:
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _client(toy: Path, url: str, tmp_path: Path, **over: Any) -> ModelSpec:
    doc = yaml.safe_load(toy.read_text())
    doc.pop("architecture")
    doc.update(
        backend="http",
        format="remote",
        endpoint={
            "url": url,
            "protocol": "scaneo",
            "path": "/predict",
            "concurrency": 3,
        },
        **over,
    )
    p = tmp_path / "scaneo.yaml"
    p.write_text(yaml.safe_dump(doc))
    return load_spec(p)


@pytest.fixture
def local(toy: Path) -> Iterator[ConvBackend]:
    yield ConvBackend(load_spec(toy))


def test_segmentation_class_tiff_becomes_one_hot(
    tmp_path: Path, toy: Path, local: ConvBackend
) -> None:
    with ScaneoServer(local) as srv, HttpBackend(_client(toy, srv.url, tmp_path)) as be:
        batch = synthetic_batch(be.spec, 3)
        preds = be.predict(batch)
        assert all('name="image"' in f and "image/tiff" in f for f in srv.fields)
    want = local.forward(batch.data).argmax(axis=1)
    for p, w in zip(preds, want, strict=True):
        assert p.array.shape == (3, 40, 40)
        assert np.array_equal(p.array.argmax(axis=0), w) and np.array_equal(
            p.array.sum(axis=0), np.ones((40, 40))
        )


def test_out_of_range_classes_are_refused(
    tmp_path: Path, toy: Path, local: ConvBackend
) -> None:
    with (
        ScaneoServer(local, offset=3) as srv,
        HttpBackend(_client(toy, srv.url, tmp_path)) as be,
        pytest.raises(ModelOutputError, match=r"outside 0\.\.2"),
    ):
        be.predict(synthetic_batch(be.spec, 1))


def test_classification_probabilities(
    tmp_path: Path, toy: Path, local: ConvBackend
) -> None:
    with (
        ScaneoServer(local, task="classification") as srv,
        HttpBackend(_client(toy, srv.url, tmp_path, task="classification")) as be,
    ):
        preds = be.predict(synthetic_batch(be.spec, 2))
    assert [p.kind for p in preds] == ["scores", "scores"]
    assert all(
        p.array.shape == (3,) and abs(float(p.array.sum()) - 1) < 1e-5 for p in preds
    )
