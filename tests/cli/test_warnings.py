"""Warnings in the CLI: ``geolabel: warning: <message>`` once per message, one line.

Third-party warnings that restate a choice the user made (``--allow-pixel-space``)
are not shown; a bad input gives exactly one line on stderr; ``--debug`` keeps
Python's format with file and line.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import click
import numpy as np
import pytest
from affine import Affine
from click.testing import CliRunner

import geolabel.cli.main
from geolabel.cli.main import cli
from geolabel.errors import NodataWarning
from geolabel.testing import make_scene


def _stderr(*args: str) -> tuple[int, list[str]]:
    r = CliRunner().invoke(cli, list(args))
    return r.exit_code, r.stderr.splitlines()


def _zero_bordered(path: Path) -> Path:
    """A scene without nodata whose top fifth is 0 in every band (NodataWarning)."""
    data = np.random.default_rng(0).normal(100.0, 20.0, size=(3, 80, 90))
    data[:, :16, :] = 0
    return make_scene(path, data=data)


def _pixel_space(path: Path, **kw: object) -> Path:
    with warnings.catch_warnings():  # rasterio's note on writing the test input
        warnings.simplefilter("ignore")
        return make_scene(path, crs=None, transform=Affine.identity(), **kw)


@click.command("warn-twice")
def _warn_twice() -> None:
    """Emit one message from two places, and a second one."""
    warnings.warn("same\n   message", UserWarning, stacklevel=1)
    warnings.warn("same message", NodataWarning, stacklevel=1)
    warnings.warn("other message", UserWarning, stacklevel=1)


def test_each_message_is_one_line_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        geolabel.cli.main.COMMANDS, "warn-twice", f"{__name__}:_warn_twice"
    )
    code, err = _stderr("warn-twice")
    assert code == 0
    assert err == [
        "geolabel: warning: same message",
        "geolabel: warning: other message",
    ]
    code, err = _stderr("warn-twice", "--debug")
    assert code == 0 and any("UserWarning: other message" in ln for ln in err)
    assert any(ln.startswith(__file__) for ln in err), err  # file and line kept


# rasterio's from_origin uses affine's ``*`` (a PendingDeprecationWarning that pytest
# shows and Python hides)
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_own_warning_is_one_line_even_with_quiet(
    tmp_path: Path, toy_spec_path: Path
) -> None:
    scene = _zero_bordered(tmp_path / "zero.tif")
    code, err = _stderr(
        "predict", str(scene), "-m", str(toy_spec_path), "-o", str(tmp_path / "r"), "-q"
    )
    assert code == 0, err
    assert err == [
        f"geolabel: warning: {scene}: declares no nodata but much of its border is 0 "
        "in every band; pass --nodata 0 if that is fill"
    ]


def test_own_warning_keeps_python_format_with_debug(
    tmp_path: Path, toy_spec_path: Path
) -> None:
    scene = _zero_bordered(tmp_path / "zero_debug.tif")
    code, err = _stderr("--debug", "info", str(scene))
    assert code == 0
    assert any("NodataWarning: " in ln and ".py:" in ln for ln in err), err


def test_bad_input_is_exactly_one_line(tmp_path: Path) -> None:
    scene = _pixel_space(tmp_path / "nogeo.tif")
    code, err = _stderr("info", str(scene))
    assert code == 2
    assert err == [
        f"geolabel: error: {scene}: has no CRS and no geotransform; pass "
        "--allow-pixel-space to work in pixel coordinates"
    ]


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_allowed_pixel_space_run_prints_no_warning(
    tmp_path: Path, toy_spec_path: Path
) -> None:
    scene = _pixel_space(tmp_path / "nocrs.tif", shape=(90, 110))
    code, err = _stderr(
        "predict",
        str(scene),
        "-m",
        str(toy_spec_path),
        "-o",
        str(tmp_path / "r"),
        "--allow-pixel-space",
        "-q",
    )
    assert code == 0, err
    assert err == []
    assert (tmp_path / "r" / "nocrs" / "nocrs_predictions.gpkg").exists()
