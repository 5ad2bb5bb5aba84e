"""A small HTTP/1.1 client that survives bad networks.

Every request has a total deadline (connect, send, wait, read) enforced with a
monotonic clock: socket timeouts shrink to the time left and a watchdog shuts the
socket when the deadline passes, so a slow-drip server cannot stretch a request.
Failed attempts (connection errors, timeouts, 429, 5xx) are retried with exponential
backoff and full jitter, honouring ``Retry-After`` when it fits. Bodies are bounded,
``Accept-Encoding: identity`` is sent, redirects are never followed (credentials
would travel with them) and the bearer token never appears in logs or errors.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import random
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from geolabel.errors import RemoteModelError
from geolabel.models.endpoint import internal_address_problem

__all__ = ["HttpClient", "Response", "RetryPolicy"]

logger = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class Response:
    """A complete response: status, lower-cased headers and the whole body."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Per-request deadline and retry budget (seconds).

    The longest a request can take is ``(retries + 1) * timeout + retries * max_backoff``.
    """

    timeout: float = 60.0
    connect_timeout: float = 10.0
    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 10.0

    @property
    def budget(self) -> float:
        """Upper bound on the wall time of one request, retries included."""
        return (self.retries + 1) * self.timeout + self.retries * self.max_backoff


class _Retryable(Exception):
    """An attempt failed in a way worth retrying."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class HttpClient:
    """A thread-safe client for one server (``scheme://host:port``), keep-alive pooled.

    Args:
        base_url: server root, e.g. ``http://127.0.0.1:8080``; paths are joined to it.
        policy: deadline and retries.
        token: bearer token (sent only to this host; redacted from messages).
        max_body: largest accepted response body in bytes.
        seed: seed for the backoff jitter (tests).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        base_url: str,
        *,
        policy: RetryPolicy | None = None,
        token: str | None = None,
        max_body: int = 256 << 20,
        seed: int | None = None,
        allow_private: bool = False,
    ) -> None:
        """Parse the URL; no connection is opened yet."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteModelError(f"not an http(s) URL: {base_url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.base_url = f"{parts.scheme}://{parts.netloc}{self.prefix}"
        self.policy = policy or RetryPolicy()
        self.max_body = max_body
        self._token = token
        self._idle: deque[http.client.HTTPConnection] = deque()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.allow_private = allow_private
        self._checked = allow_private

    def redact(self, text: str) -> str:
        """``text`` with the token replaced by ``***``."""
        return text.replace(self._token, "***") if self._token else text

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        retry: bool = True,
    ) -> Response:
        """Send a request; retry transient failures; return a 2xx/4xx response.

        Raises:
            RemoteModelError: every attempt failed (the message names the URL, the
                attempts, the time spent and the last error), a redirect, or a 4xx
                other than 429.
        """
        url = f"{self.base_url}{path}"
        pol = self.policy
        attempts = pol.retries + 1 if retry else 1
        t0 = time.monotonic()
        last = ""
        for attempt in range(attempts):
            try:
                resp = self._attempt(method, path, body, headers or {})
            except _Retryable as err:
                last = self.redact(str(err))
                if attempt + 1 >= attempts:
                    break
                wait = self._rng.uniform(
                    0.0, min(pol.max_backoff, pol.backoff * 2**attempt)
                )
                if err.retry_after is not None:
                    if err.retry_after > pol.max_backoff:
                        last += f" (server asks to retry after {err.retry_after:.0f} s, more than max_backoff)"
                        break
                    wait = max(wait, err.retry_after)
                logger.warning(
                    "%s %s: attempt %d failed (%s); retrying in %.2f s",
                    method,
                    url,
                    attempt + 1,
                    last,
                    wait,
                )
                time.sleep(wait)
                continue
            if 300 <= resp.status < 400:
                raise RemoteModelError(
                    f"{method} {url}: server redirects (HTTP {resp.status}) to "
                    f"{resp.headers.get('location')!r}; redirects are not followed, "
                    "put the final URL in the endpoint"
                )
            return resp
        raise RemoteModelError(
            f"{method} {url}: gave up after {attempt + 1} attempt(s) in "
            f"{time.monotonic() - t0:.1f} s: {last}"
        )

    def close(self) -> None:
        """Close idle connections."""
        with self._lock:
            while self._idle:
                self._idle.pop().close()

    # -- one attempt ---------------------------------------------------------------

    def _check_address(self) -> None:
        """Refuse a hostname that resolves to a private or link-local address
        (name resolution only: nothing is connected to)."""
        if self._checked:
            return
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except OSError:
            return  # the connection attempt reports it
        for info in infos:
            problem = internal_address_problem(str(info[4][0]))
            if problem is not None:
                raise RemoteModelError(
                    f"{self.base_url}: {self.host} resolves to {problem}; set "
                    "endpoint.allow_private: true if the model really runs there"
                )
        self._checked = True

    def _connect(
        self, timeout: float, *, fresh: bool = False
    ) -> tuple[http.client.HTTPConnection, bool]:
        self._check_address()
        with self._lock:
            if self._idle and not fresh:
                return self._idle.pop(), True
        cls = (
            http.client.HTTPSConnection
            if self.scheme == "https"
            else http.client.HTTPConnection
        )
        conn = cls(self.host, self.port, timeout=timeout)
        return conn, False

    def _attempt(
        self, method: str, path: str, body: bytes | None, extra: dict[str, str]
    ) -> Response:
        pol = self.policy
        deadline = time.monotonic() + pol.timeout
        headers = {"Accept-Encoding": "identity", "User-Agent": "geolabel", **extra}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        conn, reused = self._connect(min(pol.connect_timeout, pol.timeout))
        try:
            resp, will_close = self._exchange(
                conn, method, f"{self.prefix}{path}", body, headers, deadline
            )
        except (
            http.client.RemoteDisconnected,
            BrokenPipeError,
            ConnectionResetError,
        ) as err:
            conn.close()
            if not reused:
                raise _Retryable(
                    f"connection lost: {type(err).__name__}: {err}"
                ) from err
            # a stale keep-alive connection: one more try on a fresh one, not counted
            conn, _ = self._connect(min(pol.connect_timeout, pol.timeout), fresh=True)
            try:
                resp, will_close = self._exchange(
                    conn, method, f"{self.prefix}{path}", body, headers, deadline
                )
            except (
                http.client.RemoteDisconnected,
                BrokenPipeError,
                ConnectionResetError,
            ) as err2:
                conn.close()
                raise _Retryable(
                    f"connection lost: {type(err2).__name__}: {err2}"
                ) from err2
            except BaseException:
                conn.close()
                raise
        except BaseException:
            conn.close()
            raise
        if will_close:
            conn.close()
        else:
            with self._lock:
                self._idle.append(conn)
        if resp.status in RETRY_STATUS:
            raise _Retryable(
                f"HTTP {resp.status}: {_excerpt(resp.body)}",
                retry_after=_retry_after(resp.headers.get("retry-after")),
            )
        if resp.status >= 400:
            raise RemoteModelError(
                f"{self.base_url}{path}: HTTP {resp.status}: {self.redact(_excerpt(resp.body))}"
            )
        return resp

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        deadline: float,
    ) -> tuple[Response, bool]:
        def left() -> float:
            rem = deadline - time.monotonic()
            if rem <= 0:
                raise _Retryable(
                    f"no complete response within {self.policy.timeout:g} s"
                )
            return rem

        try:
            if conn.sock is None:
                conn.timeout = min(self.policy.connect_timeout, left())
                conn.connect()
            sock = conn.sock
            assert sock is not None
            watchdog = threading.Timer(left(), _shutdown, (sock,))
            watchdog.daemon = True
            watchdog.start()
            try:
                sock.settimeout(left())
                conn.request(method, path, body=body, headers=headers)
                sock.settimeout(left())
                resp = conn.getresponse()
                status = resp.status
                hdrs = {k.lower(): v for k, v in resp.getheaders()}
                if hdrs.get("content-encoding", "identity").lower() != "identity":
                    raise RemoteModelError(
                        f"{self.base_url}{path}: response is {hdrs['content-encoding']!r}-encoded "
                        "although identity was asked for"
                    )
                declared = hdrs.get("content-length")
                if (
                    declared is not None
                    and declared.isdigit()
                    and int(declared) > self.max_body
                ):
                    raise RemoteModelError(
                        f"{self.base_url}{path}: response of {int(declared)} bytes exceeds the "
                        f"limit of {self.max_body} bytes (max_response_mb)"
                    )
                chunks: list[bytes] = []
                size = 0
                while not resp.isclosed():
                    if conn.sock is not None:
                        sock.settimeout(left())
                    chunk = resp.read(_CHUNK)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > self.max_body:
                        raise RemoteModelError(
                            f"{self.base_url}{path}: response exceeds the limit of "
                            f"{self.max_body} bytes (max_response_mb)"
                        )
                    chunks.append(chunk)
                left()
                if declared is not None and declared.isdigit() and size < int(declared):
                    # http.client returns what came before the close: not an answer
                    raise _Retryable(
                        f"truncated response ({size} of {int(declared)} bytes)"
                    )
            finally:
                watchdog.cancel()
        except RemoteModelError:
            raise
        except TimeoutError as err:
            raise _Retryable(
                f"no complete response within {self.policy.timeout:g} s"
            ) from err
        except http.client.IncompleteRead as err:
            if time.monotonic() >= deadline:
                raise _Retryable(
                    f"no complete response within {self.policy.timeout:g} s"
                ) from err
            raise _Retryable(
                f"truncated response ({len(err.partial)} bytes read)"
            ) from err
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            if time.monotonic() >= deadline:
                raise _Retryable(
                    f"no complete response within {self.policy.timeout:g} s"
                ) from None
            raise
        except (http.client.HTTPException, OSError) as err:
            if time.monotonic() >= deadline:
                raise _Retryable(
                    f"no complete response within {self.policy.timeout:g} s"
                ) from err
            raise _Retryable(f"{type(err).__name__}: {err}") from err
        return Response(status, hdrs, b"".join(chunks)), bool(resp.will_close)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _excerpt(body: bytes, n: int = 200) -> str:
    text = body[:n].decode("utf-8", "replace").replace("\n", " ").strip()
    return text + ("…" if len(body) > n else "") if text else "(empty body)"
