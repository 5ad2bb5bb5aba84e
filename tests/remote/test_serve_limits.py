"""`geolabel serve` under load and abuse, and the V2 client's request ids, truncated
answers and internal addresses (all on 127.0.0.1, in process)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from pydantic import ValidationError

from geolabel.errors import ModelOutputError, RemoteModelError
from geolabel.models._transport import HttpClient
from geolabel.models.check import synthetic_batch
from geolabel.models.endpoint import EndpointSpec
from geolabel.models.http_ import HttpBackend
from geolabel.models.spec import ModelSpec, load_spec
from geolabel.serve import ModelServer
from geolabel.testing.backends import ConvBackend

from .conftest import write_client_spec


class _PickyBackend(ConvBackend):
    """Raises like a network whose skip connections need 40-pixel multiples."""

    def forward(self, data: np.ndarray) -> np.ndarray:
        if data.shape[-1] % 40:
            raise RuntimeError("Sizes of tensors must match except in dimension 1")
        return super().forward(data)


@pytest.fixture
def server(toy: Path) -> Iterator[ModelServer]:
    spec = load_spec(toy)
    with ModelServer(spec, _PickyBackend(spec), workers=2) as srv:
        yield srv


def _infer_body(spec: ModelSpec, size: int, n: int = 1) -> bytes:
    x = np.zeros((n, len(spec.input.bands), size, size), dtype=np.float32)
    doc = {
        "id": "req-1",
        "inputs": [
            {
                "name": "input",
                "shape": list(x.shape),
                "datatype": "FP32",
                "data": x.ravel().tolist(),
            }
        ],
    }
    return json.dumps(doc).encode()


def _post(url: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(
            "POST", path, body=body, headers={"Content-Type": "application/json"}
        )
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def test_fifty_concurrent_requests_are_all_answered(server: ModelServer) -> None:
    assert server.httpd.request_queue_size >= 50
    body = _infer_body(server.spec, 40)
    path = f"/v2/models/{server.spec.name}/infer"
    barrier = threading.Barrier(50)
    results: list[int | str] = []

    def one() -> None:
        barrier.wait()
        try:
            results.append(_post(server.url, path, body)[0])
        except OSError as err:  # a reset is a lost request: no retries here
            results.append(type(err).__name__)

    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results.count(200) == 50, results


def test_a_tile_the_model_cannot_take_gets_an_answer(server: ModelServer) -> None:
    status, doc = _post(
        server.url, f"/v2/models/{server.spec.name}/infer", _infer_body(server.spec, 24)
    )
    assert status == 422 and "cannot take input [1, 3, 24, 24]" in doc["error"]
    assert "Sizes of tensors must match" in doc["error"]
    status, doc = _post(
        server.url, f"/v2/models/{server.spec.name}/infer", _infer_body(server.spec, 40)
    )
    assert status == 200 and doc["id"] == "req-1"  # the request id is echoed


def test_huge_declared_body_is_refused_at_once(server: ModelServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            f"POST /v2/models/{server.spec.name}/infer HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {1 << 30}\r\n\r\n".encode()
            + b"{" * 1000
        )
        t0 = time.monotonic()
        head = s.recv(200)
    assert head.startswith(b"HTTP/1.1 413") and time.monotonic() - t0 < 5


# -- the client ---------------------------------------------------------------------


class _Fake(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    plan: ClassVar[list[str]] = []
    seen_ids: ClassVar[list[str]] = []

    def log_message(self, *a: Any) -> None:
        pass

    def do_POST(self) -> None:
        doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen_ids.append(doc.get("id"))
        mode = self.plan.pop(0) if self.plan else "ok"
        x = np.zeros((1, 3, 40, 40), dtype=np.float32)
        answer = {
            "id": doc.get("id") if mode != "other-id" else "someone-else",
            "outputs": [
                {
                    "name": "logits",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "data": x.ravel().tolist(),
                }
            ],
        }
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "short":  # fewer bytes than declared, then close
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def fake(tmp_path: Path, toy: Path) -> Iterator[tuple[type[_Fake], Path]]:
    class Handler(_Fake):
        plan: ClassVar[list[str]] = []
        seen_ids: ClassVar[list[str]] = []

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    client = write_client_spec(tmp_path / "c.yaml", toy, url, retries=1, backoff=0)
    try:
        yield Handler, client
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_requests_carry_ids_and_answers_must_match(
    fake: tuple[type[_Fake], Path],
) -> None:
    handler, client = fake
    with HttpBackend(load_spec(client)) as remote:
        remote.predict(synthetic_batch(remote.spec, 1))
        handler.plan[:] = ["other-id"]
        with pytest.raises(
            ModelOutputError, match="answer is for request 'someone-else'"
        ):
            remote.predict(synthetic_batch(remote.spec, 1))
    ids = handler.seen_ids
    assert len(ids) == 2 and all(isinstance(i, str) and len(i) == 32 for i in ids)
    assert ids[0] != ids[1]


def test_a_short_answer_is_retried_not_called_json(
    fake: tuple[type[_Fake], Path],
) -> None:
    handler, client = fake
    handler.plan[:] = ["short"]
    with HttpBackend(load_spec(client)) as remote:
        preds = remote.predict(synthetic_batch(remote.spec, 1))  # the retry succeeds
        assert preds[0].array.shape == (3, 40, 40)
        handler.plan[:] = ["short", "short"]
        with pytest.raises(
            RemoteModelError, match=r"truncated response \(\d+ of \d+ bytes\)"
        ):
            remote.predict(synthetic_batch(remote.spec, 1))


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254", "http://10.0.0.5:8080", "http://[fe80::1]:80"]
)
def test_internal_addresses_need_an_opt_in(url: str) -> None:
    with pytest.raises(ValidationError, match="allow_private"):
        EndpointSpec(url=url)
    assert EndpointSpec(url=url, allow_private=True).allow_private
    assert EndpointSpec(url="http://127.0.0.1:8080").url


def test_hostnames_resolving_inside_are_refused_before_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def resolve(host: str, port: int, *a: Any, **k: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]

    def never(*a: Any, **k: Any) -> None:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.setattr(socket, "create_connection", never)
    monkeypatch.setattr(http.client.HTTPConnection, "connect", never)
    client = HttpClient("http://metadata.example:80")
    with pytest.raises(
        RemoteModelError, match=r"resolves to 169\.254\.169\.254 is link-local"
    ):
        client.request("GET", "/")
