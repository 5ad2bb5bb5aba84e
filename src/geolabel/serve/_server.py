"""``geolabel serve``: any local model spec over the Open Inference Protocol (V2 REST).

The same server also speaks the SCANEO model contract and the Label Studio ML-backend
contract on ``/predict``, ``/setup``, ``/webhook``, ``/health``, ``/versions``
(:mod:`geolabel.serve._protocols`), under the same body limit and token.

Endpoints: ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``,
``/v2/models/{name}[/versions/{v}]``, ``.../ready`` and ``POST .../infer``. The
model is loaded once; inference runs on at most ``workers`` requests at a time while
other threads decode and encode. The input tensor is the normalised
``(n, bands, rows, cols)`` FP32 batch that the spec's pre-processing makes; the
output is the model's raw ``logits`` (the client applies ``output.activation``, as a
local backend would). JSON and the binary-data
extension are both accepted. A bearer token, when set, guards everything but health.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import logging
import re
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from geolabel import __version__
from geolabel.errors import BackendError, GeolabelError
from geolabel.models import _v2
from geolabel.models.base import ModelBackend
from geolabel.models.spec import ModelSpec
from geolabel.serve._protocols import ProtocolError, Protocols

__all__ = ["ModelServer", "client_spec"]

logger = logging.getLogger(__name__)

_MODEL_PATH = re.compile(
    r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<rest>/ready|/infer)?$"
)
MAX_TILES = 256
#: after a 413 answer, at most this many body bytes (and seconds) are read and dropped
#: so that a client still sending sees the answer instead of a connection reset
DRAIN_BYTES = 8 << 20
DRAIN_SECONDS = 2.0
#: pending connections the listening socket queues (the default of 5 reset clients
#: beyond it under a burst of concurrent requests)
LISTEN_BACKLOG = 256
#: POST paths of the SCANEO and Label Studio ML-backend contracts
PROTOCOL_PATHS = ("/predict", "/setup", "/webhook", "/train", "/validate")


class _Server(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ModelServer:
    """Serve one loaded model over V2 REST.

    Args:
        spec: the model's spec (input bands, tile size, classes).
        model: the loaded backend.
        host: address to bind (``127.0.0.1`` unless told otherwise).
        port: TCP port (0 picks a free one; see :attr:`url`).
        token: bearer token required on every endpoint except health.
        max_body_bytes: largest accepted request body.
        workers: model calls run at once.
        timeout: seconds a client connection may stay silent.
        data_root: Label Studio tasks may read scenes under this folder (``None``:
            none; SCANEO and V2 requests carry their pixels).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        spec: ModelSpec,
        model: ModelBackend,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        max_body_bytes: int = 64 << 20,
        workers: int = 1,
        timeout: float = 60.0,
        data_root: Path | None = None,
    ) -> None:
        """Bind the socket (serving starts with :meth:`serve_forever` or :meth:`start`)."""
        self.spec = spec
        self.model = model
        self.token = token
        self.max_body_bytes = max_body_bytes
        self._gate = threading.Semaphore(workers)
        forward = getattr(model, "forward", None)
        if not callable(forward):
            raise BackendError(
                f"model {spec.model_id}: backend {spec.backend!r} has no raw forward(); "
                "only torch, onnx and testing models can be served"
            )
        if spec.task not in ("segmentation", "classification"):
            raise BackendError(
                f"model {spec.model_id}: serving {spec.task!r} models is not supported"
            )
        self._forward = forward
        self.output_name = "logits"
        self.protocols = Protocols(self, data_root)
        self._thread: threading.Thread | None = None
        server = self

        class Handler(_Handler):
            owner = server

        Handler.timeout = timeout
        self.httpd = _Server((host, port), Handler)

    @property
    def url(self) -> str:
        """``http://host:port`` of the bound socket."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def metadata(self) -> dict[str, Any]:
        """The V2 model metadata document."""
        s = self.spec
        t = s.input.tile_size
        return {
            "name": s.name,
            "versions": [s.version],
            "platform": f"geolabel-{s.backend}",
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [-1, len(s.input.bands), t, t],
                }
            ],
            "outputs": [
                {
                    "name": self.output_name,
                    "datatype": "FP32",
                    "shape": [-1, s.num_classes, t, t]
                    if s.task == "segmentation"
                    else [-1, s.num_classes],
                }
            ],
            "parameters": {
                "model_id": s.model_id,
                "task": s.task,
                "activation": s.output.activation,
                "classes": list(s.class_names),
            },
        }

    def infer(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Raw output (or probabilities) of the model for a normalised batch.

        Raises:
            BackendError: the model failed on this input (any error of the backend's
                own library, e.g. torch's "Sizes of tensors must match").
        """
        with self._gate:
            try:
                y = self._forward(x)
            except GeolabelError:
                raise
            except Exception as err:  # torch/onnxruntime raise their own types
                first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                raise BackendError(
                    f"the model cannot take input {list(x.shape)}: "
                    f"{type(err).__name__}: {first}"
                ) from err
        return np.asarray(y, dtype=np.float32)

    def serve_forever(self) -> None:
        """Serve until :meth:`close` (or Ctrl-C in the caller)."""
        logger.info("serving %s on %s", self.spec.model_id, self.url)
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> ModelServer:
        """Serve from a background thread; returns ``self``."""
        self._thread = threading.Thread(
            target=self.serve_forever, name="geolabel-serve", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the socket."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> ModelServer:
        """Start serving in the background."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop serving."""
        self.close()


class _Handler(BaseHTTPRequestHandler):
    owner: ModelServer
    protocol_version = "HTTP/1.1"
    _consumed = False
    server_version = f"geolabel/{__version__}"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - " + format, self.address_string(), *args)

    # -- plumbing --------------------------------------------------------------------

    def _send(
        self, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        for k, v in (headers or {"Content-Type": "application/json"}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, doc: dict[str, Any]) -> None:
        self._send(status, json.dumps(doc).encode())

    def _error(self, err: _HttpError) -> None:
        headers = {"Content-Type": "application/json"}
        if err.status == HTTPStatus.UNAUTHORIZED:
            headers["WWW-Authenticate"] = 'Bearer realm="geolabel"'
        if err.status == HTTPStatus.LENGTH_REQUIRED:
            headers["Connection"] = "close"
            self.close_connection = True
        if self.command == "POST" and not self._consumed:  # unread body: do not reuse
            headers["Connection"] = "close"
            self.close_connection = True
        self._send(err.status, json.dumps({"error": str(err)}).encode(), headers)
        if err.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
            self._drain_briefly()

    def _drain_briefly(self) -> None:
        """After the 413 is sent: drop a bounded part of the body still arriving, so
        a client that sends before it reads sees the answer, not a reset."""
        self.wfile.flush()
        deadline = time.monotonic() + DRAIN_SECONDS
        left = DRAIN_BYTES
        with contextlib.suppress(OSError):
            while left > 0 and time.monotonic() < deadline:
                self.connection.settimeout(max(0.05, deadline - time.monotonic()))
                chunk = self.connection.recv(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)

    def _authorize(self) -> None:
        token = self.owner.token
        if token is None:
            return
        got = self.headers.get("Authorization", "")
        if got.startswith("Basic "):  # Label Studio's ML-backend auth: password = token
            try:
                decoded = base64.b64decode(got[6:], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            got = f"Bearer {decoded.partition(':')[2]}"
        if not hmac.compare_digest(got.encode(), f"Bearer {token}".encode()):
            raise _HttpError(HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token")

    def _model(self) -> tuple[str | None, str | None]:
        m = _MODEL_PATH.match(self.path.split("?", 1)[0])
        if m is None:
            raise _HttpError(HTTPStatus.NOT_FOUND, f"no endpoint {self.path!r}")
        spec = self.owner.spec
        if m["name"] != spec.name or (m["version"] not in (None, spec.version)):
            raise _HttpError(
                HTTPStatus.NOT_FOUND,
                f"unknown model {m['name']!r} (serving {spec.name!r} version {spec.version!r})",
            )
        return m["rest"], m["version"]

    # -- verbs -----------------------------------------------------------------------

    def do_GET(self) -> None:
        try:
            path = self.path.split("?", 1)[0]
            if path == "/health":  # Label Studio ML backend
                self._json(200, self.owner.protocols.health())
                return
            if path in ("/v2/health/live", "/v2/health/ready"):
                self._json(
                    200, {"live": True} if path.endswith("live") else {"ready": True}
                )
                return
            self._authorize()
            if path == "/versions":
                self._json(200, self.owner.protocols.versions())
                return
            if path == "/v2":
                self._json(
                    200,
                    {
                        "name": "geolabel",
                        "version": __version__,
                        "extensions": ["binary_tensor_data"],
                    },
                )
                return
            rest, _ = self._model()
            if rest == "/ready":
                self._json(200, {"name": self.owner.spec.name, "ready": True})
            elif rest is None:
                self._json(200, self.owner.metadata())
            else:
                raise _HttpError(HTTPStatus.METHOD_NOT_ALLOWED, "infer takes POST")
        except _HttpError as err:
            self._error(err)

    def do_POST(self) -> None:
        self._consumed = False
        try:
            body = self._body()
            self._authorize()
            path = self.path.split("?", 1)[0]
            if path in PROTOCOL_PATHS:
                ctype = self.headers.get("Content-Type", "")
                try:
                    status, out, kind = self.owner.protocols.post(
                        path, ctype, body, query=self.path.partition("?")[2]
                    )
                except ProtocolError as err:
                    raise _HttpError(err.status, str(err)) from None
                self._send(status, out, {"Content-Type": kind})
                return
            rest, _ = self._model()
            if rest != "/infer":
                raise _HttpError(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    f"POST is for /infer, not {self.path!r}",
                )
            x, binary, wanted, request_id = self._inputs(body)
            try:
                y = self.owner.infer(x)
            except GeolabelError as err:
                logger.warning("inference failed: %s", err)
                raise _HttpError(
                    HTTPStatus.UNPROCESSABLE_ENTITY
                    if "cannot take input" in str(err)
                    else HTTPStatus.INTERNAL_SERVER_ERROR,
                    f"inference failed: {err}",
                ) from None
            name = self.owner.output_name
            if wanted is not None and wanted != name:
                raise _HttpError(
                    HTTPStatus.BAD_REQUEST,
                    f"no output {wanted!r}; this model has {name!r}",
                )
            s = self.owner.spec
            head = {"model_name": s.name, "model_version": s.version}
            if request_id is not None:  # the client matches answers to requests
                head["id"] = request_id
            out, headers = _v2.encode(
                head, "outputs", [_v2.Tensor(name, y)], binary=binary
            )
            self._send(200, out, headers)
        except _HttpError as err:
            self._error(err)

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise _HttpError(
                HTTPStatus.LENGTH_REQUIRED,
                "chunked requests are not accepted; send Content-Length",
            )
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise _HttpError(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
        n = int(length)
        limit = self.owner.max_body_bytes
        if n > limit:  # answered at once from the header; the body is never read
            raise _HttpError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"request of {n} bytes exceeds the limit of {limit} bytes (--max-body-mb)",
            )
        body = self.rfile.read(n)
        self._consumed = True
        return body

    def _inputs(
        self, body: bytes
    ) -> tuple[npt.NDArray[np.float32], bool, str | None, str | None]:
        hl = self.headers.get(_v2.HEADER_LENGTH)
        try:
            doc, tensors = _v2.decode(body, "inputs", hl)
        except _v2.TensorError as err:
            raise _HttpError(HTTPStatus.BAD_REQUEST, f"bad request: {err}") from None
        spec = self.owner.spec
        if len(tensors) != 1:
            raise _HttpError(
                HTTPStatus.BAD_REQUEST, f"expected 1 input tensor, got {len(tensors)}"
            )
        x = tensors[0].array
        bands = len(spec.input.bands)
        if x.ndim != 4 or x.shape[1] != bands or not 1 <= x.shape[0] <= MAX_TILES:
            raise _HttpError(
                HTTPStatus.BAD_REQUEST,
                f"input must be (1..{MAX_TILES}, {bands}, rows, cols) NCHW, got {list(x.shape)}",
            )
        if not np.issubdtype(x.dtype, np.floating):
            raise _HttpError(
                HTTPStatus.BAD_REQUEST,
                f"input datatype must be FP32/FP16, got {x.dtype}",
            )
        t = spec.input.tile_size
        if spec.input.fixed_size and x.shape[2:] != (t, t):
            raise _HttpError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                f"the model takes only {t} x {t} tiles, got {list(x.shape[2:])}",
            )
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not np.isfinite(x).all():
            raise _HttpError(HTTPStatus.BAD_REQUEST, "input has NaN or infinite values")
        outputs = doc.get("outputs")
        wanted: str | None = None
        binary = hl is not None
        if isinstance(outputs, list) and outputs and isinstance(outputs[0], dict):
            wanted = outputs[0].get("name")
            params = outputs[0].get("parameters") or {}
            binary = (
                bool(params.get("binary_data", binary))
                if isinstance(params, dict)
                else binary
            )
        params = doc.get("parameters") or {}
        if isinstance(params, dict) and "binary_data_output" in params:
            binary = bool(params["binary_data_output"])
        request_id = doc.get("id")
        return x, binary, wanted, request_id if isinstance(request_id, str) else None


def client_spec(spec: ModelSpec, url: str, **endpoint: Any) -> dict[str, Any]:
    """A spec dict that runs ``spec`` through a server at ``url`` (``backend: http``).

    Everything but the backend, weights and architecture is kept, so pre-processing,
    classes and activation match the local model. ``endpoint`` adds endpoint fields.

    .. versionadded:: 0.1
    """
    doc = spec.model_dump(mode="json", exclude_none=True)
    for key in ("weights", "architecture", "source"):
        doc.pop(key, None)
    doc.update(backend="http", format="remote")
    doc["endpoint"] = {
        "url": url,
        "protocol": "kserve-v2",
        "model": spec.name,
        "input": "input",
        "output": "logits",
        **endpoint,
    }
    return doc
