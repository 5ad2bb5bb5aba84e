"""A static file server with HTTP Range support on 127.0.0.1 that logs every request.

For tests of remote scenes: :func:`serve_files` serves a folder, answers ``Range:
bytes=a-b`` with ``206 Partial Content``, and records each request (method, path,
``Range`` header, bytes sent) so a test can assert that only byte ranges were read.

Examples:
    >>> import tempfile, urllib.request
    >>> from pathlib import Path
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = (root / "a.bin").write_bytes(bytes(range(10)))
    >>> with serve_files(root) as server:
    ...     req = urllib.request.Request(server.url("a.bin"), headers={"Range": "bytes=2-4"})
    ...     with urllib.request.urlopen(req) as r:
    ...         print(r.status, r.read())
    ...     print(server.requests[0].range)
    206 b'\\x02\\x03\\x04'
    bytes=2-4
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["RangeServer", "ServedRequest", "serve_files"]

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass(frozen=True, slots=True)
class ServedRequest:
    """One request the server answered."""

    method: str
    path: str
    range: str | None
    status: int
    sent: int


@dataclass(slots=True)
class RangeServer:
    """A running server: its base URL and the requests it answered, in order."""

    host: str
    port: int
    requests: list[ServedRequest] = field(default_factory=list)

    def url(self, name: str) -> str:
        """The URL of a file of the served folder."""
        return f"http://{self.host}:{self.port}/{name.lstrip('/')}"

    @property
    def netloc(self) -> str:
        """``HOST:PORT``."""
        return f"{self.host}:{self.port}"


def _handler(root: Path, log: list[ServedRequest], lock: threading.Lock) -> Any:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return  # the test reads ``requests`` instead

        def _record(self, status: int, sent: int) -> None:
            with lock:
                log.append(
                    ServedRequest(
                        self.command, self.path, self.headers.get("Range"), status, sent
                    )
                )

        def _file(self) -> Path | None:
            rel = self.path.split("?", 1)[0].lstrip("/")
            p = (root / rel).resolve()
            if root not in p.parents or not p.is_file():
                return None
            return p

        def _send(self, status: int, body: bytes, extra: dict[str, str]) -> None:
            # Logged before anything is written, so a client that has read the
            # answer always finds its request in ``requests`` (no race).
            self._record(status, len(body) if self.command != "HEAD" else 0)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            p = self._file()
            if p is None:
                self._send(404, b"", {})
                return
            data = p.read_bytes()
            size = len(data)
            rng = self.headers.get("Range")
            m = _RANGE.match(rng.strip()) if rng else None
            if rng is None or m is None:
                self._send(200, data, {})
                return
            first, last = m.groups()
            if first == "":  # suffix range: the last N bytes
                start, end = max(size - int(last or 0), 0), size - 1
            else:
                start, end = int(first), min(int(last) if last else size - 1, size - 1)
            if start >= size or start > end:
                self._send(416, b"", {"Content-Range": f"bytes */{size}"})
                return
            self._send(
                206,
                data[start : end + 1],
                {"Content-Range": f"bytes {start}-{end}/{size}"},
            )

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """GDAL drops connections it no longer needs: not worth a traceback."""


@contextlib.contextmanager
def serve_files(root: str | Path) -> Iterator[RangeServer]:
    """Serve ``root`` on ``127.0.0.1`` (a free port) while the block runs."""
    base = Path(root).resolve()
    log: list[ServedRequest] = []
    httpd = _Server(("127.0.0.1", 0), _handler(base, log, threading.Lock()))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield RangeServer("127.0.0.1", int(httpd.server_address[1]), log)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
