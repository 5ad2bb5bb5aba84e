"""Remote model backends: the Open Inference Protocol (KServe V2, REST) and SCANEO.

``HttpBackend`` has the same synchronous, batched face as the local backends. A batch
is cut into requests of ``max_tiles_per_request`` tiles, sent with up to
``concurrency`` requests in flight; each request has a total deadline and retries
(see :mod:`geolabel.models._transport`). Every response is validated (shape, dtype,
finite values, class count) before it becomes a :class:`Prediction`. After
``max_consecutive_failures`` failed batches in a row the backend raises
:class:`CircuitOpenError`, which stops the run cleanly (finished tiles stay done;
re-running resumes).

The input tensor is what the spec's pre-processing makes of the tile (float32,
normalised); the spec's ``output.activation`` turns the returned tensor into
probabilities, exactly as for a local model.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any

import numpy as np
import numpy.typing as npt

from geolabel.errors import (
    CircuitOpenError,
    ConfigError,
    GeolabelError,
    ModelOutputError,
    ModelSpecError,
    RemoteModelError,
)
from geolabel.models import _v2
from geolabel.models._scaneo import ScaneoProtocol
from geolabel.models._transport import HttpClient, RetryPolicy
from geolabel.models.base import Batch, Prediction, activate, to_predictions
from geolabel.models.detectors import task_predictions
from geolabel.models.endpoint import EndpointSpec
from geolabel.models.spec import ModelSpec

__all__ = ["HttpBackend", "KServeProtocol", "concurrency_limit", "make_client"]

logger = logging.getLogger(__name__)


def make_client(ep: EndpointSpec, *, seed: int | None = None) -> HttpClient:
    """An :class:`HttpClient` for an endpoint, with its token read from the environment.

    Raises:
        ModelSpecError: ``token_env`` names a variable that is not set.
    """
    token = None
    if ep.token_env is not None:
        token = os.environ.get(ep.token_env)
        if not token:
            raise ModelSpecError(
                f"endpoint {ep.url}: environment variable {ep.token_env} (token_env) is not set"
            )
    policy = RetryPolicy(
        timeout=ep.timeout,
        connect_timeout=ep.connect_timeout,
        retries=ep.retries,
        backoff=ep.backoff,
        max_backoff=ep.max_backoff,
    )
    return HttpClient(
        ep.url,
        policy=policy,
        token=token,
        max_body=int(ep.max_response_mb * (1 << 20)),
        seed=seed,
        allow_private=ep.allow_private,
    )


def concurrency_limit() -> int:
    """The ``GEOLABEL_HTTP_CONCURRENCY`` cap on requests in flight (64 when unset).

    Raises:
        ConfigError: the variable is set but not a positive integer.
    """
    raw = os.environ.get("GEOLABEL_HTTP_CONCURRENCY")
    if raw is None or raw == "":
        return 64
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(
            f"GEOLABEL_HTTP_CONCURRENCY must be a positive integer, got {raw!r}"
        )
    return int(raw)


class KServeProtocol:
    """Requests and responses of the V2 REST ``infer`` endpoint for one model."""

    def __init__(self, spec: ModelSpec, ep: EndpointSpec, client: HttpClient) -> None:
        """Remember the model path and the tensor names."""
        self.spec = spec
        self.ep = ep
        self.client = client
        name = ep.model or spec.name
        self.model_path = f"/v2/models/{name}" + (
            f"/versions/{ep.version}" if ep.version else ""
        )
        self.max_tiles = ep.max_tiles_per_request

    def metadata(self) -> dict[str, Any]:
        """The model's V2 metadata document.

        Raises:
            RemoteModelError: unreachable, or not a JSON object.
        """
        import json

        resp = self.client.request("GET", self.model_path)
        try:
            doc = json.loads(resp.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RemoteModelError(
                f"{self.client.base_url}{self.model_path}: metadata is not JSON"
            ) from err
        if not isinstance(doc, dict):
            raise RemoteModelError(
                f"{self.client.base_url}{self.model_path}: metadata is not an object"
            )
        return doc

    def infer(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Raw model output for ``(k, bands, rows, cols)`` input, in NCHW order.

        Raises:
            RemoteModelError: the request failed for good.
            ModelOutputError: the response is malformed or of the wrong shape/dtype.
        """
        ep = self.ep
        data: npt.NDArray[Any] = x.transpose(0, 2, 3, 1) if ep.layout == "NHWC" else x
        if ep.datatype == "FP16":
            data = data.astype(np.float16)
        elif ep.datatype == "UINT8":
            data = np.clip(np.rint(data), 0, 255).astype(np.uint8)
        # an id per request: an answer is matched to the request it answers
        head: dict[str, Any] = {"id": uuid.uuid4().hex}
        if ep.output is not None:
            head["outputs"] = [
                {"name": ep.output, "parameters": {"binary_data": ep.binary}}
            ]
        elif ep.binary:
            head["parameters"] = {"binary_data_output": True}
        body, headers = _v2.encode(
            head, "inputs", [_v2.Tensor(ep.input, data)], binary=ep.binary
        )
        url = f"{self.client.base_url}{self.model_path}/infer"
        resp = self.client.request(
            "POST", f"{self.model_path}/infer", body=body, headers=headers
        )
        try:
            doc, outputs = _v2.decode(
                resp.body, "outputs", resp.headers.get(_v2.HEADER_LENGTH.lower())
            )
        except _v2.TensorError as err:
            raise ModelOutputError(f"{url}: bad response: {err}") from None
        if "id" in doc and doc["id"] != head["id"]:
            raise ModelOutputError(
                f"{url}: the answer is for request {doc['id']!r}, not {head['id']!r}"
            )
        if not outputs:
            raise ModelOutputError(f"{url}: response has no outputs")
        chosen = outputs[0]
        if ep.output is not None:
            named = [t for t in outputs if t.name == ep.output]
            if not named:
                raise ModelOutputError(
                    f"{url}: no output {ep.output!r}; got {[t.name for t in outputs]}"
                )
            chosen = named[0]
        return self._check(chosen.array, x.shape, url)

    def _check(
        self, y: npt.NDArray[Any], in_shape: tuple[int, ...], url: str
    ) -> npt.NDArray[np.float32]:
        k, _, rows, cols = in_shape
        c = self.spec.num_classes
        if not np.issubdtype(y.dtype, np.floating):
            raise ModelOutputError(
                f"{url}: output {self.ep.output or 'tensor'} is {y.dtype}, not floating point"
            )
        want: tuple[int, ...] | None
        if self.spec.task == "segmentation":
            want = (
                (k, rows, cols, c) if self.ep.layout == "NHWC" else (k, c, rows, cols)
            )
        elif self.spec.task == "classification":
            want = (k, c)
        else:
            want = None
        if want is not None and tuple(y.shape) != want:
            raise ModelOutputError(
                f"{url}: output shape {tuple(y.shape)} != expected {want} "
                f"({k} tiles, {c} classes, layout {self.ep.layout})"
            )
        if y.ndim == 4 and self.ep.layout == "NHWC":
            y = y.transpose(0, 3, 1, 2)
        out = np.ascontiguousarray(y, dtype=np.float32)
        if not np.isfinite(out).all():
            raise ModelOutputError(f"{url}: output has NaN or infinite values")
        return out

    def predictions(
        self, raw: npt.NDArray[np.float32], batch: Batch
    ) -> list[Prediction]:
        """Activate raw outputs per the spec and wrap them per tile."""
        spec = self.spec
        if spec.task == "segmentation":
            return to_predictions(activate(raw, spec), batch, spec)
        if spec.task == "classification":
            probs = activate(raw, spec)
            return [
                Prediction(
                    tile=t,
                    kind="scores",
                    array=probs[i],
                    num_classes=spec.num_classes,
                    model_id=spec.model_id,
                )
                for i, t in enumerate(batch.tiles)
            ]
        preds: list[Prediction] = task_predictions(raw, batch, spec)
        return preds


class HttpBackend:
    """A model behind an HTTP endpoint (``backend: http`` with an ``endpoint:`` block).

    Args:
        spec: the model spec; ``spec.endpoint`` says where and how.
        seed: seed for the retry jitter (tests).

    Raises:
        ModelSpecError: no endpoint, or its token variable is unset.

    .. versionadded:: 0.1
    """

    def __init__(self, spec: ModelSpec, *, seed: int | None = None, **_: Any) -> None:
        """Prepare the client and the request pool (nothing is sent yet)."""
        if spec.endpoint is None:
            raise ModelSpecError(
                f"model {spec.model_id}: backend 'http' needs an 'endpoint'"
            )
        self._spec = spec
        self.endpoint = spec.endpoint
        self.client = make_client(spec.endpoint, seed=seed)
        self.protocol: KServeProtocol | ScaneoProtocol
        if spec.endpoint.protocol == "scaneo":
            self.protocol = ScaneoProtocol(spec, spec.endpoint, self.client)
        else:
            self.protocol = KServeProtocol(spec, spec.endpoint, self.client)
        self.concurrency = min(spec.endpoint.concurrency, concurrency_limit())
        self._pool = ThreadPoolExecutor(
            self.concurrency, thread_name_prefix="geolabel-http"
        )
        self._lock = threading.Lock()
        self.failures = 0
        self.last_error: str | None = None

    @property
    def spec(self) -> ModelSpec:
        """The model spec."""
        return self._spec

    def forward(self, data: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Raw outputs for ``(n, bands, rows, cols)`` input, requests sent concurrently."""
        step = self.protocol.max_tiles
        parts = [data[i : i + step] for i in range(0, len(data), step)]
        futures: list[Future[npt.NDArray[np.float32]]] = [
            self._pool.submit(self.protocol.infer, p) for p in parts
        ]
        _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        wait(futures)
        for f in futures:
            if not f.cancelled() and f.exception() is not None:
                raise f.exception()  # type: ignore[misc]
        return np.concatenate([f.result() for f in futures], axis=0)

    def predict(self, batch: Batch) -> list[Prediction]:
        """One validated prediction per tile.

        Raises:
            RemoteModelError: the endpoint failed for good.
            ModelOutputError: a response is malformed.
            CircuitOpenError: too many batches failed in a row; the run should stop.
        """
        ep = self.endpoint
        with self._lock:
            if self.failures >= ep.max_consecutive_failures:
                raise CircuitOpenError(self._stop_message())
        try:
            preds = self.protocol.predictions(self.forward(batch.data), batch)
        except GeolabelError as err:
            with self._lock:
                self.failures += 1
                self.last_error = f"{type(err).__name__}: {err}"
                tripped = self.failures >= ep.max_consecutive_failures
            logger.warning(
                "remote model %s: batch failed (%d in a row): %s",
                self._spec.model_id,
                self.failures,
                self.last_error,
            )
            if tripped:
                raise CircuitOpenError(self._stop_message()) from err
            raise
        with self._lock:
            self.failures = 0
        return preds

    def _stop_message(self) -> str:
        return (
            f"endpoint {self.endpoint.url}: {self.failures} batches failed in a row, "
            f"stopping the run (re-run with --retry-failed to resume); last error: "
            f"{self.last_error}"
        )

    def close(self) -> None:
        """Stop the request pool and close connections."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.client.close()

    def __enter__(self) -> HttpBackend:
        """Context manager entry."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on exit."""
        self.close()
