"""Open-time limits: hostile headers are refused from metadata, fast, naming the limit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from geolabel.errors import ConfigError, ResourceLimitError, SceneReadError
from geolabel.io._tiff_header import read_tiff_layout
from geolabel.io.limits import SceneLimits, parse_limits
from geolabel.io.scene import open_scene

from .._tiff import write_tiff
from ..conftest import LANDSAT8


def _refused(path: Path, match: str, **kw: object) -> float:
    t0 = time.perf_counter()
    with pytest.raises((ResourceLimitError, SceneReadError), match=match) as info:
        open_scene(path, **kw)  # type: ignore[arg-type]
    assert str(info.value).startswith(f"{path}: ")
    return time.perf_counter() - t0


def test_header_reader_sees_the_declared_layout(tmp_path: Path) -> None:
    p = write_tiff(tmp_path / "a.tif", width=300, height=200, samples=3, tile=128)
    lay = read_tiff_layout(p)
    assert lay is not None
    assert lay.shape == (200, 300) and lay.samples == 3 and lay.block == (128, 128)
    assert read_tiff_layout(LANDSAT8) is not None
    (tmp_path / "b.tif").write_bytes(b"II*\x00\xff\xff\xff\x7f")
    assert read_tiff_layout(tmp_path / "b.tif") is None  # IFD past the end
    assert read_tiff_layout(tmp_path / "a.tif").bits == 8  # type: ignore[union-attr]


def test_tens_of_thousands_of_bands_refused_at_once(tmp_path: Path) -> None:
    p = write_tiff(tmp_path / "bands.tif", samples=40000, width=4, height=4)
    took = _refused(p, r"declares 40000 bands.*--limit bands=40000")
    assert took < 0.5


def test_huge_sparse_and_bombs_refused(tmp_path: Path) -> None:
    huge = write_tiff(
        tmp_path / "huge.tif", width=10**6, height=10**6, tile=1 << 16, sparse=True
    )
    assert huge.stat().st_size < 10_000
    assert _refused(huge, r"1000000 x 1000000 pixels.*--limit pixels=") < 0.5
    bomb = write_tiff(
        tmp_path / "bomb.tif",
        width=60000,
        height=60000,
        tile=1024,
        compression=8,
        payload=bytes(1 << 20),
    )
    assert _refused(bomb, r"decompression bomb.*--limit ratio=") < 0.5


def test_huge_compressed_strip_refused(tmp_path: Path) -> None:
    p = write_tiff(
        tmp_path / "strip.tif",
        width=9000,
        height=9000,
        compression=8,
        payload=bytes(9000 * 9000),
    )
    assert _refused(p, r"compressed blocks of 9000 x 9000.*TILED=YES.*block-mib") < 2
    lifted = SceneLimits(max_block_mib=100, max_compression_ratio=2000)
    s = open_scene(p, limits=lifted)
    assert s.grid.shape == (9000, 9000)


def test_complex_refused(tmp_path: Path) -> None:
    p = write_tiff(tmp_path / "c.tif", bits=64, sample_format=6)
    _refused(p, "complex")


def test_limits_can_be_lifted(tmp_path: Path) -> None:
    p = write_tiff(tmp_path / "bands.tif", samples=1500, width=4, height=4)
    with pytest.raises(ResourceLimitError):
        open_scene(p)
    s = open_scene(p, limits=SceneLimits.from_items(parse_limits(["bands=2000"])))
    assert len(s.bands) == 1500


def test_real_scenes_pass_the_defaults() -> None:
    assert open_scene(LANDSAT8, nodata=0).grid.shape == (1860, 2041)


@pytest.mark.parametrize(
    "text", ["bands", "bands=x", "nope=3", "bands=0", "pixels=-1", "ratio=nan"]
)
def test_bad_limit_options(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_limits([text])
