"""EndpointSpec: where a remote model lives and how to talk to it (``endpoint:`` in a spec).

A remote model spec is an ordinary spec (bands, normalisation, tile size, classes)
with ``backend: http`` and an ``endpoint`` mapping::

    backend: http
    format: remote
    endpoint:
      url: http://gpu-box:8080          # server root; no credentials in the URL
      protocol: kserve-v2               # or scaneo
      model: toy-conv                   # V2 model name (kserve-v2)
      input: input                      # V2 input tensor name
      output: logits                    # V2 output tensor name (default: the first)
      layout: NCHW                      # or NHWC
      datatype: FP32                    # FP32 | FP16 | UINT8
      max_tiles_per_request: 4
      concurrency: 4                    # requests in flight
      token_env: GEOLABEL_MODEL_TOKEN   # bearer token read from this variable
      timeout: 30                       # seconds per request, whole exchange
      retries: 3
      allow_private: false              # true to reach private/link-local addresses

Link-local addresses (169.254.0.0/16, where cloud metadata services answer) and
private ones (10/8, 172.16/12, 192.168/16, fc00::/7) are refused unless
``allow_private: true``: a spec from elsewhere must not make the run send scene
pixels, or its token, to an internal service. Loopback is always allowed.
"""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["EndpointSpec", "internal_address_problem"]


def internal_address_problem(host: str) -> str | None:
    """Why ``host`` (an IP literal) needs ``allow_private``, or ``None``.

    Loopback and public addresses need nothing; hostnames are checked after they are
    resolved (``models/_transport.py``), before any connection is opened.
    """
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if ip.is_loopback:
        return None
    if ip.is_link_local:
        return f"{ip} is link-local (cloud metadata services answer there)"
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return f"{ip} is not a unicast host address"
    if ip.is_private:
        return f"{ip} is a private address"
    return None


class EndpointSpec(BaseModel):
    """A validated ``endpoint:`` block.

    Attributes:
        url: server root (``http``/``https``), without credentials, query or fragment.
        protocol: ``kserve-v2`` (Open Inference Protocol, REST) or ``scaneo``.
        model: V2 model name (``kserve-v2``); ``None`` takes the spec's ``name``.
        version: V2 model version (``/versions/{version}`` in paths), optional.
        path: SCANEO request path under ``url`` (default ``/``).
        input: V2 input tensor name.
        output: V2 output tensor name (``None``: the first output returned).
        layout: tensor layout the server takes and returns (``NCHW`` or ``NHWC``).
        datatype: V2 datatype of the input tensor.
        binary: send and accept tensors in the V2 binary-data extension (Triton,
            ``geolabel serve``) instead of JSON lists.
        max_tiles_per_request: tiles sent in one request (1 for servers without
            batching).
        concurrency: requests in flight at once.
        token_env: name of the environment variable holding a bearer token.
        timeout: total seconds for one request (connect, send, wait, read), > 0.
        connect_timeout: seconds to open a connection (capped by ``timeout``).
        retries: extra attempts after a failed one (connection errors, timeouts,
            429 and 5xx).
        backoff: base seconds of the exponential backoff (full jitter).
        max_backoff: largest wait between attempts, seconds.
        max_response_mb: responses larger than this are refused.
        max_consecutive_failures: failed batches in a row after which the run stops.
        allow_private: allow private and link-local addresses (never without it).

    .. versionadded:: 0.1
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    protocol: Literal["kserve-v2", "scaneo"] = "kserve-v2"
    model: str | None = None
    version: str | None = None
    path: str = "/"
    input: str = "input"
    output: str | None = None
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    datatype: Literal["FP32", "FP16", "UINT8"] = "FP32"
    binary: bool = False
    max_tiles_per_request: int = Field(default=1, ge=1, le=256)
    concurrency: int = Field(default=4, ge=1, le=64)
    token_env: str | None = None
    timeout: float = Field(default=60.0, gt=0, le=3600)
    connect_timeout: float = Field(default=10.0, gt=0, le=600)
    retries: int = Field(default=3, ge=0, le=20)
    backoff: float = Field(default=0.5, ge=0, le=60)
    max_backoff: float = Field(default=10.0, ge=0, le=600)
    max_response_mb: float = Field(default=256.0, gt=0, le=16384)
    max_consecutive_failures: int = Field(default=3, ge=1, le=1000)
    allow_private: bool = False

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"endpoint url must be http(s)://host[:port][/path], got {v!r}"
            )
        if parts.username or parts.password:
            raise ValueError("endpoint url must not hold credentials; use token_env")
        if parts.query or parts.fragment:
            raise ValueError(
                f"endpoint url must not have a query or fragment, got {v!r}"
            )
        return v.rstrip("/")

    @model_validator(mode="after")
    def _address(self) -> EndpointSpec:
        problem = internal_address_problem(urlsplit(self.url).hostname or "")
        if problem is not None and not self.allow_private:
            raise ValueError(
                f"endpoint url {self.url!r}: {problem}; set endpoint.allow_private: "
                "true if the model really runs there"
            )
        return self

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"endpoint path must start with '/', got {v!r}")
        return v

    @field_validator("token_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not (v.replace("_", "a").isalnum() and not v[0].isdigit()):
            raise ValueError(
                f"token_env must be an environment variable name, got {v!r}"
            )
        return v
