"""Scenes where they live: ``https://`` COGs and ``s3://`` objects, read through GDAL.

A remote scene is read with byte-range requests only (GDAL ``/vsicurl/`` and
``/vsis3/``), and only from hosts the caller names: network reads are opt-in through an
allowlist (``--allow-remote HOST``, ``allow_remote=("HOST",)``). A URL whose host is not
on the list is refused before any connection is made.

Allowlist entries:

* ``HOST`` or ``HOST:PORT`` (``example.com``, ``127.0.0.1:8080``) allow ``http(s)``
  URLs on that host (any port for ``HOST``);
* ``s3://BUCKET`` allows the objects of one bucket;
* ``*`` allows every host and bucket.

The GDAL settings of remote reads (:data:`REMOTE_GDAL_ENV`) are applied by
:func:`remote_env` around every open of and read from a remote dataset
(:meth:`~geolabel.io.scene.Scene.open`, :meth:`~geolabel.io.scene.Scene.read`): no directory listing
(``GDAL_DISABLE_READDIR_ON_OPEN``), only TIFF extensions, retries with a delay. GDAL
asks for the file size with one ``HEAD`` request; every ``GET`` is a byte range. The S3 endpoint, credentials and addressing style come from the usual
GDAL/AWS settings (``AWS_S3_ENDPOINT``, ``AWS_HTTPS``, ``AWS_VIRTUAL_HOSTING``,
``AWS_ACCESS_KEY_ID``...), which geolabel leaves alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import rasterio

from geolabel.errors import RemoteNotAllowedError, SceneReadError

__all__ = [
    "REMOTE_GDAL_ENV",
    "RemoteSource",
    "check_allowed",
    "is_remote",
    "open_remote_dataset",
    "parse_source",
    "remote_env",
]

logger = logging.getLogger(__name__)

#: URL scheme -> GDAL virtual file system prefix.
_VSI = {"http": "/vsicurl/", "https": "/vsicurl/", "s3": "/vsis3/"}

#: GDAL settings of every remote open (byte ranges only, retries, no listing).
REMOTE_GDAL_ENV: dict[str, Any] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF",
    "GDAL_HTTP_MAX_RETRY": 3,
    "GDAL_HTTP_RETRY_DELAY": 0.5,
    "GDAL_HTTP_TIMEOUT": 60,
    "GDAL_HTTP_CONNECTTIMEOUT": 15,
    "GDAL_INGESTED_BYTES_AT_OPEN": 32768,
    "VSI_CACHE": "TRUE",
}


@dataclass(frozen=True, slots=True)
class RemoteSource:
    """A scene behind a URL: ``https://HOST/...`` or ``s3://BUCKET/KEY``.

    ``str()`` is the URL (as messages and the run record name it);
    ``os.fspath()`` the GDAL path (``/vsicurl/https://...``, ``/vsis3/BUCKET/KEY``),
    so ``rasterio.open(source)`` reads it.

    Examples:
        >>> src = RemoteSource("https://example.com/data/scene.tif")
        >>> os.fspath(src), src.name, src.stem, src.host
        ('/vsicurl/https://example.com/data/scene.tif', 'scene.tif', 'scene', 'example.com')
        >>> os.fspath(RemoteSource("s3://bucket/a/b.tif"))
        '/vsis3/bucket/a/b.tif'

    .. versionadded:: 0.1
    """

    url: str

    def __post_init__(self) -> None:
        """Check the scheme and that the URL names a host (or bucket) and a file."""
        parts = urlsplit(self.url)
        if parts.scheme not in _VSI or not parts.netloc or not parts.path.strip("/"):
            raise SceneReadError(
                f"{self.url}: not a remote scene URL (https://HOST/PATH or "
                "s3://BUCKET/KEY)"
            )

    def __str__(self) -> str:
        """The URL."""
        return self.url

    def __fspath__(self) -> str:
        """The GDAL virtual file system path."""
        parts = urlsplit(self.url)
        if parts.scheme == "s3":
            return f"/vsis3/{parts.netloc}{parts.path}"
        return f"/vsicurl/{self.url}"

    @property
    def scheme(self) -> str:
        """``http``, ``https`` or ``s3``."""
        return urlsplit(self.url).scheme

    @property
    def host(self) -> str:
        """The host (``http(s)``, without the port) or the bucket (``s3``)."""
        parts = urlsplit(self.url)
        return parts.netloc if parts.scheme == "s3" else (parts.hostname or "")

    @property
    def name(self) -> str:
        """The last path segment (``scene.tif``)."""
        return PurePosixPath(urlsplit(self.url).path).name

    @property
    def stem(self) -> str:
        """The last path segment without its suffix (``scene``)."""
        return PurePosixPath(urlsplit(self.url).path).stem

    @property
    def suffix(self) -> str:
        """The suffix of the last path segment (``.tif``)."""
        return PurePosixPath(urlsplit(self.url).path).suffix


def is_remote(path: object) -> bool:
    """True for ``http(s)://`` and ``s3://`` strings (and :class:`RemoteSource`).

    Examples:
        >>> is_remote("https://example.com/a.tif"), is_remote("a.tif")
        (True, False)
    """
    if isinstance(path, RemoteSource):
        return True
    if not isinstance(path, str):
        return False
    return urlsplit(path).scheme in _VSI and "://" in path


def parse_source(path: str | os.PathLike[str]) -> Path | RemoteSource:
    """A local path or a :class:`RemoteSource` (URLs are never turned into paths).

    Raises:
        SceneReadError: a URL of another scheme (``ftp://``, ``gs://``...).
    """
    if isinstance(path, RemoteSource):
        return path
    text = os.fspath(path)
    if is_remote(text):
        return RemoteSource(text)
    if "://" in text and not Path(text).exists():
        scheme = text.split("://", 1)[0]
        raise SceneReadError(
            f"{text}: scheme {scheme!r} is not supported (https://, s3:// or a file)"
        )
    return Path(text)


def _matches(entry: str, src: RemoteSource) -> bool:
    entry = entry.strip()
    if entry == "*":
        return True
    parts = urlsplit(src.url)
    if src.scheme == "s3":
        return entry in (f"s3://{src.host}", f"s3://{src.host}/")
    if "://" in entry:  # https://HOST[:PORT]
        e = urlsplit(entry)
        return e.scheme == parts.scheme and e.netloc == parts.netloc
    return entry in (src.host, parts.netloc)


def check_allowed(src: RemoteSource, allow: Iterable[str]) -> None:
    """Refuse a URL whose host (or bucket) is not on the allowlist; no connection is made.

    Examples:
        >>> src = RemoteSource("https://example.com/a.tif")
        >>> check_allowed(src, ["example.com"])
        >>> check_allowed(src, [])
        Traceback (most recent call last):
        ...
        geolabel.errors.RemoteNotAllowedError: https://example.com/a.tif: remote reads are off; allow the host with --allow-remote example.com (allow_remote=("example.com",) in Python)

    Raises:
        RemoteNotAllowedError: the host or bucket is not allowed.
    """
    allowed = list(allow)
    if any(_matches(entry, src) for entry in allowed):
        return
    name = f"s3://{src.host}" if src.scheme == "s3" else src.host
    what = (
        "remote reads are off"
        if not allowed
        else f"{name} is not on the allowlist ({', '.join(allowed)})"
    )
    raise RemoteNotAllowedError(
        f"{src.url}: {what}; allow the host with --allow-remote {name} "
        f'(allow_remote=("{name}",) in Python)'
    )


@contextlib.contextmanager
def remote_env(path: object) -> Iterator[None]:
    """:data:`REMOTE_GDAL_ENV` around a GDAL open of ``path`` (nothing for local
    files; a VRT document naming remote files gets it too).

    Remote files opened inside keep their settings (they are read when GDAL builds
    the file handle), so reads after the block are still range reads with retries.
    """
    # a STAC item's fspath is its VRT document, which names its remote assets
    text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    if not ("/vsicurl/" in text or "/vsis3/" in text):
        yield
        return
    with rasterio.Env(**REMOTE_GDAL_ENV):
        yield


def open_remote_dataset(src: RemoteSource | str, *, driver: str | None = None) -> Any:
    """``rasterio.open`` of a remote file with :data:`REMOTE_GDAL_ENV`."""
    with remote_env(src):
        return rasterio.open(src, driver=driver)
