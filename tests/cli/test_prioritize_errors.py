"""``prioritize`` refusals name what is missing, options predict has, and usable paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from geolabel.cli.main import cli
from tests.uncertainty.helpers import half_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return half_run(tmp_path_factory.mktemp("errs"))


@pytest.mark.parametrize("unit", ["regions", "points"])
def test_bald_without_a_model_band_says_what_predict_needs(
    run_dir: Path, unit: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(run_dir.parent.parent)
    rel = Path(run_dir.parent.name) / run_dir.name
    recorded = json.loads((run_dir / "run.json").read_text())["scenes"][0]["scene"]
    assert not Path(recorded).is_absolute()  # relative to the run folder
    r = CliRunner().invoke(
        cli, ["prioritize", str(rel), "-n", "3", "--strategy", "bald", "--unit", unit]
    )
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.stderr.count("\n") == 1
    scene = Path(run_dir.parent.name) / "half.tif"  # usable from here
    assert scene.is_file()
    assert r.stderr.startswith(f"geolabel: error: {scene}: the bald measure needs")
    assert "(its probabilities cannot give one)" in r.stderr  # the run has them
    assert "--model-uncertainty mc-dropout" in r.stderr
    assert "--uncertainty bald" not in r.stderr and "--probabilities" not in r.stderr


def test_unknown_measure_is_named_before_its_modifiers(run_dir: Path) -> None:
    r = CliRunner().invoke(cli, ["prioritize", str(run_dir), "-n", "3",
                                 "--strategy", "foo+bar"])  # fmt: skip
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "unknown measure 'foo'" in r.stderr and "modifier" not in r.stderr
    r = CliRunner().invoke(cli, ["prioritize", str(run_dir), "-n", "3",
                                 "--strategy", "margin+bar"])  # fmt: skip
    assert r.exit_code == 2 and "unknown modifier bar" in r.stderr
