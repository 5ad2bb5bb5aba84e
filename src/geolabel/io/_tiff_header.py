"""Read the layout a TIFF declares from its first IFD, without GDAL and without pixels.

GDAL reports a compressed single strip as one-row blocks (it decompresses such strips
incrementally), which hides the layout that makes window reads quadratic; and opening
a file with tens of thousands of samples per pixel already builds per-band objects.
:func:`read_tiff_layout` reads only the few tags the open-time checks need (values of
array tags are not read, only their counts), in a bounded number of bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TiffLayout", "read_tiff_layout"]

#: TIFF field type -> (struct code, size in bytes) for the integer types tags use here.
_TYPES = {1: ("B", 1), 3: ("H", 2), 4: ("I", 4), 8: ("h", 2), 9: ("i", 4), 16: ("Q", 8)}
_WIDTH, _HEIGHT, _BITS, _COMPRESSION = 256, 257, 258, 259
_SAMPLES, _ROWS_PER_STRIP, _PLANAR = 277, 278, 284
_TILE_WIDTH, _TILE_HEIGHT, _SAMPLE_FORMAT = 322, 323, 339
_WANTED = {
    _WIDTH,
    _HEIGHT,
    _BITS,
    _COMPRESSION,
    _SAMPLES,
    _ROWS_PER_STRIP,
    _PLANAR,
    _TILE_WIDTH,
    _TILE_HEIGHT,
    _SAMPLE_FORMAT,
}
#: An IFD with more entries than this is not a raster anyone writes.
_MAX_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class TiffLayout:
    """What the first IFD of a TIFF declares.

    Attributes:
        shape: ``(rows, cols)`` of the full-resolution image.
        samples: samples per pixel (bands).
        bits: bits per sample (of the first sample).
        sample_format: 1 unsigned, 2 signed, 3 float, 5/6 complex int/float.
        compression: the TIFF compression code (1: none).
        block: ``(rows, cols)`` of one strip or tile as stored.
        planar: 1 pixel-interleaved, 2 one plane per band.
    """

    shape: tuple[int, int]
    samples: int
    bits: int
    sample_format: int
    compression: int
    block: tuple[int, int]
    planar: int

    @property
    def block_bytes(self) -> int:
        """Uncompressed bytes of one stored block (all samples when interleaved)."""
        per_pixel = self.samples if self.planar == 1 else 1
        return self.block[0] * self.block[1] * per_pixel * max(self.bits, 1) // 8


def read_tiff_layout(path: Path) -> TiffLayout | None:
    """The layout of ``path``'s first image, or ``None`` if it is not a parsable TIFF.

    Reads at most the header and one IFD (a few KB); a file that is not a TIFF or
    whose header is damaged gives ``None`` and is left to GDAL to refuse.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            if len(head) < 8 or head[:2] not in (b"II", b"MM"):
                return None
            e = "<" if head[:2] == b"II" else ">"
            (magic,) = struct.unpack(e + "H", head[2:4])
            if magic == 42:
                (ifd,) = struct.unpack(e + "I", head[4:8])
                count_fmt, entry_size, inline, off_fmt = "H", 12, 4, "I"
            elif magic == 43 and len(head) >= 16:
                (ifd,) = struct.unpack(e + "Q", head[8:16])
                count_fmt, entry_size, inline, off_fmt = "Q", 20, 8, "Q"
            else:
                return None
            f.seek(ifd)
            raw = f.read(struct.calcsize(count_fmt))
            (n,) = struct.unpack(e + count_fmt, raw)
            if n > _MAX_ENTRIES:
                return None
            table = f.read(n * entry_size)
            if len(table) < n * entry_size:
                return None
            tags: dict[int, int] = {}
            head_fmt = e + "HH" + off_fmt
            for i in range(n):
                entry = table[i * entry_size : (i + 1) * entry_size]
                tag, typ, count = struct.unpack(head_fmt, entry[: 4 + inline])
                if tag not in _WANTED or typ not in _TYPES or count < 1:
                    continue
                code, size = _TYPES[typ]
                if tag in (_BITS, _SAMPLE_FORMAT) and count * size > inline:
                    # an array stored elsewhere: the first value is enough here
                    (where,) = struct.unpack(e + off_fmt, entry[4 + inline :])
                    pos = f.tell()
                    f.seek(where)
                    value = f.read(size)
                    f.seek(pos)
                    if len(value) < size:
                        return None
                    (tags[tag],) = struct.unpack(e + code, value)
                else:
                    (tags[tag],) = struct.unpack_from(e + code, entry, 4 + inline)
    except (OSError, struct.error):
        return None
    if _WIDTH not in tags or _HEIGHT not in tags:
        return None
    rows, cols = tags[_HEIGHT], tags[_WIDTH]
    if _TILE_WIDTH in tags and _TILE_HEIGHT in tags:
        block = (tags[_TILE_HEIGHT], tags[_TILE_WIDTH])
    else:
        block = (min(tags.get(_ROWS_PER_STRIP, rows), rows), cols)
    return TiffLayout(
        shape=(rows, cols),
        samples=tags.get(_SAMPLES, 1),
        bits=tags.get(_BITS, 1),
        sample_format=tags.get(_SAMPLE_FORMAT, 1),
        compression=tags.get(_COMPRESSION, 1),
        block=block,
        planar=tags.get(_PLANAR, 1),
    )
