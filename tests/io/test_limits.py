"""Open-time limits: hostile headers are refused from metadata, fast, naming the limit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import rasterio

from geolabel.errors import ConfigError, ResourceLimitError, SceneReadError
from geolabel.io._tiff_header import read_tiff_layout
from geolabel.io.limits import SceneLimits, parse_limits
from geolabel.io.scene import _validate, open_scene

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
    p = write_tiff(tmp_path / "bands.tif", samples=6, width=4, height=4)
    with pytest.raises(ResourceLimitError, match="--limit bands=6 "):
        open_scene(p, limits=SceneLimits.from_items([("bands", 4)]))
    s = open_scene(p, limits=SceneLimits.from_items(parse_limits(["bands=8"])))
    assert len(s.bands) == 6


def test_real_scenes_pass_the_defaults() -> None:
    assert open_scene(LANDSAT8, nodata=0).grid.shape == (1860, 2041)


@pytest.mark.parametrize(
    "text", ["bands", "bands=x", "nope=3", "bands=0", "pixels=-1", "ratio=nan"]
)
def test_bad_limit_options(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_limits([text])


def test_scene_time_budget_stops_and_resumes(tmp_path: Path) -> None:
    import json

    import yaml
    from click.testing import CliRunner

    from geolabel.cli.main import cli
    from geolabel.testing import make_scene, toy_spec

    spec = tmp_path / "slow.yaml"
    spec.write_text(yaml.safe_dump(toy_spec(tile_size=64, sleep=0.3)))
    scene = make_scene(tmp_path / "a.tif", shape=(120, 120))
    args = ["-q", "predict", str(scene), "-m", str(spec), "-o", str(tmp_path / "run")]
    args += ["--batch-size", "1"]
    t0 = time.perf_counter()
    r = CliRunner().invoke(cli, [*args, "--limit", "scene-seconds=0.5"])
    assert time.perf_counter() - t0 < 10
    assert r.exit_code == 1
    assert "ran longer than the limit of 0.5 s" in r.stderr
    assert "--limit scene-seconds=1" in r.stderr
    first = json.loads(r.stdout)["scenes"][0]
    assert first["status"] == "failed"
    r = CliRunner().invoke(cli, args)  # the same command without the limit resumes
    assert r.exit_code == 0, r.stderr
    run = json.loads((tmp_path / "run" / "run.json").read_text())["scenes"][0]
    assert 0 < run["tiles_run"] < run["tiles"]


def test_bad_limit_option_is_a_usage_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from geolabel.cli.main import cli

    r = CliRunner().invoke(
        cli, ["predict", "a.tif", "-m", "s.yaml", "-o", "r", "--limit", "speed=3"]
    )
    assert r.exit_code == 2 and "unknown limit 'speed'" in r.stderr


class _CountingDataset:
    """A rasterio dataset that counts attribute reads (rasterio builds the per-band
    tuples anew at each read, in GDAL calls per band)."""

    def __init__(self, ds: object) -> None:
        self._ds = ds
        self.reads: dict[str, int] = {}

    def __getattr__(self, name: str) -> object:
        self.reads[name] = self.reads.get(name, 0) + 1
        return getattr(self._ds, name)


def test_many_bands_read_the_per_band_tuples_once(tmp_path: Path) -> None:
    """A 1000-band header (allowed: under the 1024-band limit) took ~2 s and, in a
    fuzz run, gigabytes: each band's mask flags re-read every band's (quadratic)."""
    p = write_tiff(tmp_path / "many.tif", samples=1000, width=8, height=8)
    with rasterio.open(p) as ds:
        counting = _CountingDataset(ds)
        scene = _validate(p, counting, None, 0.0, True)
    assert len(scene.bands) == 1000
    for per_band in ("mask_flag_enums", "descriptions", "nodatavals", "dtypes"):
        assert counting.reads.get(per_band, 0) <= 1, (per_band, counting.reads)
