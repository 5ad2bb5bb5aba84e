"""The click group: -v/-q/--debug work before and after the subcommand (issue 19 item 5)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.errors import GeolabelError


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_anywhere(
    where: str, tmp_path: Path, scene_path: Path, toy_spec_path: Path
) -> None:
    args = ["predict", str(scene_path), "-m", str(toy_spec_path)]
    args += ["-o", str(tmp_path / "run")]
    args = ["-q", *args] if where == "before" else [*args, "-q"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert r.stdout.count("\n") == 1  # quiet: the summary on one line, no bar
    assert "tile/s" not in r.stderr


@pytest.mark.parametrize("flag", ["--debug", "-v"])
def test_debug_after_the_subcommand_shows_the_traceback(
    flag: str, tmp_path: Path
) -> None:
    r = CliRunner().invoke(cli, ["qgis", str(tmp_path), flag])
    assert isinstance(r.exception, GeolabelError)
    r = CliRunner().invoke(cli, ["qgis", str(tmp_path)])
    assert r.exit_code == 2
    assert r.stderr.startswith("geolabel: error: ") and "Traceback" not in r.stderr


def test_verbose_counts_add_up(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = root.level
    try:
        r = CliRunner().invoke(cli, ["-v", "qgis", str(tmp_path), "-v"])
        assert r.exit_code != 0
        assert root.level == logging.DEBUG
    finally:
        root.setLevel(before)
