"""Open-time limits: what a scene may declare before any pixel of it is read.

A hostile or damaged header can declare tens of thousands of bands, 10^12 pixels in a
1 MB file, a 10 GB decompression bomb, or one compressed strip that every window read
must decompress from its start. :func:`check_layout` refuses those from metadata alone
(the TIFF header, then GDAL's view of the file), in milliseconds. Each limit has a safe
default and a name; the error names the limit and how to lift it
(``--limit NAME=VALUE``).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from geolabel.errors import ConfigError, ResourceLimitError, SceneReadError
from geolabel.io._tiff_header import TiffLayout

__all__ = [
    "ALLOWED_DTYPES",
    "LIMIT_NAMES",
    "SceneLimits",
    "check_counts",
    "check_dtypes",
    "check_layout",
    "check_size",
    "check_tiles",
    "check_time",
    "parse_limits",
]

#: Data types geolabel reads (complex and unknown types are refused).
ALLOWED_DTYPES = frozenset(
    {
        "uint8",
        "int8",
        "uint16",
        "int16",
        "uint32",
        "int32",
        "uint64",
        "int64",
        "float32",
        "float64",
    }
)

#: TIFF SampleFormat codes of complex samples -> a name for the error.
_COMPLEX = {5: "complex int", 6: "complex float"}

#: ``--limit`` name -> SceneLimits field.
LIMIT_NAMES = {
    "bands": "max_bands",
    "pixels": "max_pixels",
    "tiles": "max_tiles",
    "ratio": "max_compression_ratio",
    "block-mib": "max_block_mib",
    "scene-seconds": "scene_seconds",
}


@dataclass(frozen=True, slots=True)
class SceneLimits:
    """Resource limits of one scene (each settable with ``--limit NAME=VALUE``).

    Attributes:
        max_bands: bands a file may declare (``bands``).
        max_pixels: rows x cols of the full-resolution image (``pixels``; 10^10 is
            100 000 x 100 000).
        max_tiles: tiles of the scene's tile grid (``tiles``).
        max_compression_ratio: declared uncompressed bytes over the file's size
            (``ratio``); real scenes are below 20, decompression bombs above 10^4.
        max_block_mib: uncompressed MiB of one compressed strip or tile (``block-mib``):
            a window read decompresses the whole block, so a huge single strip makes
            reads quadratic.
        scene_seconds: wall time of one scene (``scene-seconds``); the scene stops
            after the batch in flight and can be resumed.

    .. versionadded:: 0.1
    """

    max_bands: int = 1024
    max_pixels: int = 10**10
    max_tiles: int = 10**6
    max_compression_ratio: float = 1000.0
    max_block_mib: float = 64.0
    scene_seconds: float = 24 * 3600.0

    @classmethod
    def from_items(cls, items: Iterable[tuple[str, float]]) -> SceneLimits:
        """Defaults overridden by ``(name, value)`` pairs (names as in ``--limit``).

        Raises:
            ConfigError: an unknown name or a value that is not positive.
        """
        changes: dict[str, Any] = {}
        for name, value in items:
            key = LIMIT_NAMES.get(name)
            if key is None:
                raise ConfigError(
                    f"unknown limit {name!r}; limits are {', '.join(LIMIT_NAMES)}"
                )
            if not value > 0:
                raise ConfigError(f"limit {name} must be > 0, got {value!r}")
            default = getattr(cls(), key)
            changes[key] = int(value) if isinstance(default, int) else float(value)
        return dataclasses.replace(cls(), **changes)

    def deadline(self) -> float:
        """``time.monotonic()`` value at which a scene started now runs out of time."""
        return time.monotonic() + self.scene_seconds


def parse_limits(values: Iterable[str]) -> tuple[tuple[str, float], ...]:
    """``["bands=4096", ...]`` -> ``(("bands", 4096.0), ...)`` (checked names).

    Raises:
        ConfigError: not ``NAME=NUMBER``, or an unknown name.
    """
    out: list[tuple[str, float]] = []
    for text in values:
        name, sep, raw = text.partition("=")
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not sep or value != value:
            raise ConfigError(f"--limit takes NAME=NUMBER, got {text!r}")
        out.append((name.strip(), value))
    SceneLimits.from_items(out)
    return tuple(out)


def _refuse(
    path: os.PathLike[str], what: str, name: str, needed: float, advice: str = ""
) -> ResourceLimitError:
    lift = f"{needed:.0f}" if needed >= 10 else f"{needed:g}"
    return ResourceLimitError(
        f"{path}: {what}; {advice}raise the limit with --limit {name}={lift} if the "
        "file is trusted"
    )


def check_counts(
    path: os.PathLike[str],
    *,
    bands: int,
    shape: tuple[int, int],
    limits: SceneLimits,
) -> None:
    """Refuse a band count or a pixel count beyond the limits.

    The band count is checked first: everything else per band costs time.

    Raises:
        ResourceLimitError: too many bands or pixels.
    """
    if bands > limits.max_bands:
        raise _refuse(
            path,
            f"declares {bands} bands, more than the limit of {limits.max_bands}",
            "bands",
            bands,
        )
    pixels = shape[0] * shape[1]
    if pixels > limits.max_pixels:
        raise _refuse(
            path,
            f"declares {shape[0]} x {shape[1]} pixels ({pixels:.3g}), more than the "
            f"limit of {limits.max_pixels:.3g}",
            "pixels",
            pixels,
        )


def check_tiles(path: os.PathLike[str], tiles: int, limits: SceneLimits) -> None:
    """Refuse a tile grid with more tiles than ``limits.max_tiles``.

    Raises:
        ResourceLimitError: too many tiles.
    """
    if tiles > limits.max_tiles:
        raise _refuse(
            path,
            f"needs {tiles} tiles, more than the limit of {limits.max_tiles}",
            "tiles",
            tiles,
            "use a larger --tile-size or ",
        )


def check_time(path: os.PathLike[str], deadline: float, limits: SceneLimits) -> None:
    """Refuse to go on with a scene past its ``deadline`` (``time.monotonic()``).

    Raises:
        ResourceLimitError: the scene ran longer than ``limits.scene_seconds``.
    """
    if time.monotonic() > deadline:
        raise _refuse(
            path,
            f"ran longer than the limit of {limits.scene_seconds:g} s (the finished "
            "tiles are kept: the same command resumes)",
            "scene-seconds",
            limits.scene_seconds * 2,
        )


def check_dtypes(path: os.PathLike[str], dtypes: Iterable[str]) -> None:
    """Refuse data types outside :data:`ALLOWED_DTYPES` (complex ones above all).

    Raises:
        SceneReadError: the first type that is not allowed.
    """
    bad = sorted(set(dtypes) - ALLOWED_DTYPES)
    if bad:
        dtype = bad[0]
        raise SceneReadError(
            f"{path}: data type {dtype!r} is not supported (geolabel reads "
            f"{', '.join(sorted(ALLOWED_DTYPES))})"
        )


def check_size(
    path: os.PathLike[str], *, declared_bytes: int, file_bytes: int, limits: SceneLimits
) -> None:
    """Refuse a file that declares far more pixel bytes than it holds.

    Raises:
        ResourceLimitError: declared / file bytes above ``max_compression_ratio``.
    """
    ratio = declared_bytes / max(file_bytes, 1)
    if ratio > limits.max_compression_ratio:
        raise _refuse(
            path,
            f"declares {declared_bytes / 2**30:.3g} GiB of pixels in a "
            f"{file_bytes / 2**10:.0f} KiB file (compression ratio {ratio:.0f}, limit "
            f"{limits.max_compression_ratio:.0f}): a decompression bomb or a sparse "
            "file",
            "ratio",
            ratio * 1.01,
        )


def check_layout(
    path: os.PathLike[str], layout: TiffLayout, *, file_bytes: int, limits: SceneLimits
) -> None:
    """Refuse a TIFF layout beyond ``limits`` (from the header alone).

    Raises:
        ResourceLimitError: too many bands or pixels, a decompression bomb, or a
            compressed block too large to read windows from.
        SceneReadError: a complex or unknown sample type.
    """
    check_counts(path, bands=layout.samples, shape=layout.shape, limits=limits)
    if layout.sample_format in _COMPLEX:
        check_dtypes(path, [_COMPLEX[layout.sample_format]])
    mib = layout.block_bytes / 2**20
    if layout.compression != 1 and mib > limits.max_block_mib:
        raise _refuse(
            path,
            f"stores its pixels in compressed blocks of {layout.block[0]} x "
            f"{layout.block[1]} pixels ({mib:.0f} MiB each, limit "
            f"{limits.max_block_mib:.0f}); every window read decompresses a whole "
            "block",
            "block-mib",
            mib + 1,
            "retile it first (gdal_translate -co TILED=YES) or ",
        )
    declared = layout.shape[0] * layout.shape[1] * layout.samples * layout.bits // 8
    check_size(path, declared_bytes=declared, file_bytes=file_bytes, limits=limits)
