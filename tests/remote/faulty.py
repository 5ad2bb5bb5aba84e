"""A misbehaving V2 model server on 127.0.0.1 for the fault tests.

Each ``/infer`` request takes the next mode from ``script`` (then ``default``):

``ok``        answer correctly (the toy model's logits, JSON)
``500``       HTTP 500
``429``       HTTP 429 with ``Retry-After: retry_after``
``hang``      read the request, then say nothing for ``hang`` seconds
``drip``      send a valid header and a body one byte every ``drip`` seconds
``garbage``   HTTP 200 with a body that is not JSON
``nan``       HTTP 200 with NaN values
``shape``     HTTP 200 with the wrong output shape
``huge``      HTTP 200 declaring (and streaming) a 1 GiB body
``stream``    HTTP 200 streaming 1 GiB without a Content-Length
``redirect``  HTTP 307 to ``redirect_to``
``reset``     close the connection without answering
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from geolabel.models import _v2


class FaultyServer:
    """Scripted V2 server; ``requests`` counts infer requests, ``headers`` keeps them."""

    def __init__(
        self,
        forward: Any,
        *,
        default: str = "ok",
        retry_after: float = 0.2,
        hang: float = 30.0,
        drip: float = 0.1,
        redirect_to: str = "",
    ) -> None:
        self.forward = forward
        self.script: deque[str] = deque()
        self.default = default
        self.retry_after = retry_after
        self.hang = hang
        self.drip = drip
        self.redirect_to = redirect_to
        self.requests = 0
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.record(self)
                body = json.dumps({"ready": True}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                owner.handle(self, owner.record(self), body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def record(self, h: BaseHTTPRequestHandler) -> str:
        with self.lock:
            self.headers.append(dict(h.headers.items()))
            if h.command != "POST":
                return "get"
            self.requests += 1
            return self.script.popleft() if self.script else self.default

    def handle(self, h: BaseHTTPRequestHandler, mode: str, body: bytes) -> None:
        def send(
            status: int, payload: bytes, extra: dict[str, str] | None = None
        ) -> None:
            h.send_response(status)
            for k, v in (extra or {}).items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)

        if mode == "500":
            send(500, b"internal error")
        elif mode == "429":
            send(429, b"slow down", {"Retry-After": str(self.retry_after)})
        elif mode == "hang":
            self.stop.wait(self.hang)
            h.close_connection = True
        elif mode == "reset":
            h.close_connection = True
        elif mode == "redirect":
            send(307, b"", {"Location": self.redirect_to})
        elif mode == "garbage":
            send(200, b"<html>not json</html>", {"Content-Type": "application/json"})
        elif mode in ("huge", "stream"):
            h.send_response(200)
            if mode == "huge":
                h.send_header("Content-Length", str(1 << 30))
            else:  # no length: the body runs until the connection closes
                h.send_header("Connection", "close")
            h.end_headers()
            try:
                for _ in range(1 << 14):
                    h.wfile.write(b"[" * 65536)
            except OSError:
                pass
            h.close_connection = True
        else:
            _, tensors = _v2.decode(body, "inputs", h.headers.get(_v2.HEADER_LENGTH))
            y = self.forward(tensors[0].array)
            if mode == "nan":
                y = y.copy()
                y[0, 0, 0, 0] = np.nan
            elif mode == "shape":
                y = y[:, :-1]
            doc: dict[str, Any] = {
                "model_name": "toy-conv",
                "outputs": [
                    {
                        "name": "logits",
                        "shape": list(y.shape),
                        "datatype": "FP32",
                        "data": y.ravel().tolist(),
                    }
                ],
            }
            payload = json.dumps(doc).encode()
            if mode == "drip":
                h.send_response(200)
                h.send_header("Content-Length", str(len(payload)))
                h.end_headers()
                try:
                    for i in range(len(payload)):
                        if self.stop.wait(self.drip):
                            break
                        h.wfile.write(payload[i : i + 1])
                        h.wfile.flush()
                except OSError:
                    pass
                h.close_connection = True
            else:
                send(200, payload, {"Content-Type": "application/json"})

    def __enter__(self) -> FaultyServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
        time.sleep(0)
