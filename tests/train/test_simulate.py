"""``geolabel simulate`` on the tiny scene: rounds, reveals, summary, plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.errors import ConfigError
from geolabel.simulation import SimulationConfig, reach

from ..conftest import requires_torch

pytestmark = requires_torch


def test_simulate_records_rounds_and_plots(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "sim" / "sim.json"
    r = CliRunner().invoke(
        cli,
        [
            "-q",
            "simulate",
            str(setup["scene"]),
            "--oracle",
            str(setup["truth"]),
            "--labels",
            f"{setup['labels']}:points",
            "-m",
            str(setup["spec"]),
            "--strategy",
            "entropy",
            "--strategy",
            "random",
            "--seed",
            "0",
            "--seed",
            "1",
            "--rounds",
            "2",
            "--regions-per-round",
            "2",
            "--region-size",
            "16",
            "--initial-steps",
            "5",
            "--round-steps",
            "3",
            "--chip-size",
            "32",
            "--batch-size",
            "2",
            "--miou-target",
            "0.0",
            "--miou-target",
            "1.01",
            "-o",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.stderr
    rec = json.loads(out.read_text())
    assert rec["complete"] is True
    assert json.loads(r.stdout)["png"] == str(out.with_suffix(".png"))
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    split = rec["holdout_columns"][0]
    assert split == 96 - 24
    assert [(x["strategy"], x["seed"]) for x in rec["runs"]] == [
        ("entropy", 0),
        ("random", 0),
        ("entropy", 1),
        ("random", 1),
    ]
    with rasterio.open(setup["truth"]) as src:
        oracle_valid = src.read(1) > 0
    for run in rec["runs"]:
        rounds = run["rounds"]
        assert [x["round"] for x in rounds] == [0, 1, 2]
        assert rounds[0]["labelled_pixels"] == 9  # one point, 3x3
        seen = set()
        for x in rounds[1:]:
            assert len(x["regions"]) == 2
            for r0, c0, h, w in x["regions"]:
                assert (
                    c0 + w <= split and (r0, c0) not in seen
                )  # never the holdout, never twice
                assert h == 16 and w in (16, split - 64)
                seen.add((r0, c0, h, w))
        # labelled pixels = the first point's square + every revealed region's oracle pixels
        lab = np.zeros(oracle_valid.shape, bool)
        lab[27:30, 17:20] = True
        for r0, c0, h, w in seen:
            lab[r0 : r0 + h, c0 : c0 + w] |= oracle_valid[r0 : r0 + h, c0 : c0 + w]
        assert rounds[-1]["labelled_pixels"] == int(lab.sum())
    # same seed, same first model: round 0 is shared by the strategies of a seed
    assert rec["runs"][0]["rounds"][0] == rec["runs"][1]["rounds"][0]
    summ = rec["summary"]["random"]
    assert summ["seeds"] == 2 and len(summ["curve"]) == 3
    assert summ["pixels_to_reach_miou"]["0"] == {
        "reached": "2/2",
        "pixels_mean": 9.0,
        "pixels_sd": 0.0,
    }
    assert summ["pixels_to_reach_miou"]["1.01"]["reached"] == "0/2"


def test_reach_interpolates() -> None:
    curve = [(100, 0.2), (200, 0.4), (300, 0.5)]
    assert reach(curve, 0.1) == 100.0
    assert reach(curve, 0.3) == pytest.approx(150.0)
    assert reach(curve, 0.5) == pytest.approx(300.0)
    assert reach(curve, 0.6) is None


def test_bad_strategy_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown strategy 'entropi'"):
        SimulationConfig(strategies=("entropi",))
