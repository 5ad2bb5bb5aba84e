"""Hand-written TIFF headers for hostile-input tests (a few KB, built at test time).

:func:`write_tiff` writes a little-endian classic TIFF with a GeoTIFF grid (EPSG:32633,
10 m pixels) whose header may declare anything: tens of thousands of samples, 10^6 x
10^6 pixels with sparse (absent) blocks, one huge strip, complex samples. The pixel
bytes written are whatever ``payload`` says (empty by default), so the file stays small
whatever it declares.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

SHORT, LONG, DOUBLE = 3, 4, 12
_SIZE = {SHORT: 2, LONG: 4, DOUBLE: 8}
_FMT = {SHORT: "H", LONG: "I", DOUBLE: "d"}


def _geokeys() -> list[int]:
    # GTModelType projected, raster is area, ProjectedCSType 32633
    return [1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633]


def write_tiff(
    path: Path,
    *,
    width: int = 64,
    height: int = 64,
    samples: int = 1,
    bits: int = 8,
    sample_format: int = 1,
    compression: int = 1,
    rows_per_strip: int | None = None,
    tile: int | None = None,
    payload: bytes | None = None,
    sparse: bool = False,
    geo: bool = True,
) -> Path:
    """Write a TIFF whose header declares the given layout.

    Args:
        path: output file.
        width, height: declared pixels (columns, rows).
        samples: samples per pixel (pixel-interleaved).
        bits: bits per sample.
        sample_format: 1 uint, 2 int, 3 float, 5 complex int, 6 complex float.
        compression: 1 none, 8 deflate (``payload`` is then deflated once per block).
        rows_per_strip: strip height (default: the whole image in one strip).
        tile: square tile size instead of strips.
        payload: the bytes of one uncompressed block (default: zeros of the
            declared block size when that is at most 1 MiB, else empty blocks).
        sparse: write no block at all (offsets and byte counts 0).
        geo: add a GeoTIFF grid.

    Returns:
        ``path``.
    """
    if tile is not None:
        bw, bh = tile, tile
        nblocks = -(-width // tile) * -(-height // tile)
    else:
        bw, bh = width, rows_per_strip or height
        nblocks = -(-height // bh)
    block_bytes = bw * bh * samples * bits // 8
    if payload is None and not sparse and block_bytes <= 1 << 20:
        payload = bytes(block_bytes)
    data = b"" if sparse or payload is None else payload
    if data and compression == 8:
        data = zlib.compress(data, 9)
    body = bytearray(b"II*\x00\x00\x00\x00\x00")
    extra: dict[int, int] = {}

    def blob(raw: bytes) -> int:
        off = len(body)
        body.extend(raw)
        if len(body) % 2:
            body.append(0)
        return off

    block_off = blob(data) if data else 0
    n_written = min(nblocks, 1) if data else 0
    offsets = [block_off] * n_written + [0] * (nblocks - n_written)
    counts = [len(data)] * n_written + [0] * (nblocks - n_written)
    entries: list[tuple[int, int, list[int] | list[float]]] = [
        (256, LONG, [width]),
        (257, LONG, [height]),
        (258, SHORT, [bits] * samples),
        (259, SHORT, [compression]),
        (262, SHORT, [1]),
        (277, SHORT, [samples]),
        (284, SHORT, [1]),
        (339, SHORT, [sample_format] * samples),
    ]
    if tile is not None:
        entries += [
            (322, LONG, [tile]),
            (323, LONG, [tile]),
            (324, LONG, offsets),
            (325, LONG, counts),
        ]
    else:
        entries += [(273, LONG, offsets), (278, LONG, [bh]), (279, LONG, counts)]
    if geo:
        entries += [
            (33550, DOUBLE, [10.0, 10.0, 0.0]),
            (33922, DOUBLE, [0.0, 0.0, 0.0, 500000.0, 5000000.0, 0.0]),
            (34735, SHORT, _geokeys()),
        ]
    entries.sort()
    for tag, typ, values in entries:
        raw = struct.pack(f"<{len(values)}{_FMT[typ]}", *values)
        if len(raw) > 4:
            extra[tag] = blob(raw)
    ifd = len(body)
    struct.pack_into("<I", body, 4, ifd)
    body.extend(struct.pack("<H", len(entries)))
    for tag, typ, values in entries:
        raw = struct.pack(f"<{len(values)}{_FMT[typ]}", *values)
        field = struct.pack("<I", extra[tag]) if tag in extra else raw.ljust(4, b"\0")
        body.extend(struct.pack("<HHI", tag, typ, len(values)) + field)
    body.extend(b"\0\0\0\0")
    path.write_bytes(bytes(body))
    return path
