"""Output files get their folder made, or one error that names the output."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from pyogrio.errors import DataSourceError

import geolabel.io.vector
from geolabel.errors import describe_error
from geolabel.io.disk import prepare_output
from geolabel.io.vector import replace_layer


def _square() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"label": ["a"]}, geometry=[shapely.box(0, 0, 1, 1)], crs="EPSG:32633"
    )


def test_prepare_output_makes_the_missing_folders(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "x.gpkg"
    assert prepare_output(out) == out
    assert out.parent.is_dir() and not out.exists()


@pytest.mark.parametrize("depth", [0, 2])
def test_prepare_output_under_a_file_names_both(tmp_path: Path, depth: int) -> None:
    blocker = tmp_path / "f.tif"
    blocker.write_bytes(b"")
    out = blocker.joinpath(*["sub"] * depth, "x.gpkg")
    with pytest.raises(NotADirectoryError) as info:
        prepare_output(out)
    assert describe_error(info.value) == f"{out}: its folder {str(blocker)!r} is a file"


def test_prepare_output_refuses_a_folder(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError) as info:
        prepare_output(tmp_path)
    assert describe_error(info.value).startswith(f"{tmp_path}: is a folder")


def test_replace_layer_creates_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "missing" / "labels.gpkg"
    replace_layer(out, "labels", _square())
    assert len(gpd.read_file(out, layer="labels")) == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["labels.gpkg"]


def test_replace_layer_failure_is_an_os_error_naming_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise DataSourceError("sqlite3_open(x.partial.gpkg) failed: unable to open")

    monkeypatch.setattr(geolabel.io.vector.pyogrio, "write_dataframe", refuse)
    out = tmp_path / "labels.gpkg"
    with pytest.raises(OSError) as info:
        replace_layer(out, "labels", _square())
    line = describe_error(info.value)
    assert line.startswith(f"{out}: cannot write: ") and "\n" not in line
    assert not out.exists()
