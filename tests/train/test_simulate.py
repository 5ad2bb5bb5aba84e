"""``geolabel simulate`` on the tiny scene: arms, units, effort, summary, plot."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.errors import ConfigError
from geolabel.simulation import SimulationConfig

from ..conftest import requires_torch

pytestmark = requires_torch

TINY = [
    "--rounds", "2", "--round-seconds", "20", "--initial-steps", "4",
    "--round-steps", "2", "--full-steps", "4", "--chip-size", "32",
    "--batch-size", "2", "--region-size", "16", "--superpixel-size", "8",
    "--point-seconds", "2", "--seed-points", "6",
]  # fmt: skip


def _fresh_spec(setup: dict[str, Path], tmp_path: Path) -> Path:
    """The tiny spec with a weights file that does not exist (a fresh model)."""
    spec = yaml.safe_load(setup["spec"].read_text())
    spec["weights"] = "not-trained-yet.safetensors"
    path = tmp_path / "fresh.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_simulate_records_arms_effort_and_summary(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "sim" / "sim.json"
    arms = ["auto/points", "random/points", "random/regions", "auto/superpixels",
            "bald/points", "ensemble/regions", "coreset/points"]  # fmt: skip
    args = ["-q", "simulate", str(setup["scene"]), "--oracle", str(setup["truth"]),
            "-m", str(_fresh_spec(setup, tmp_path)), "--seed", "0", "--seed", "1",
            *TINY, "-o", str(out)]  # fmt: skip
    for a in arms:
        args += ["--arm", a]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    rec = json.loads(out.read_text())
    assert rec["complete"] is True
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    split = rec["holdout_columns"][0]
    assert split == 96 - 24
    assert [(x["arm"], x["seed"]) for x in rec["runs"]] == [
        (a, s) for s in (0, 1) for a in arms
    ]
    assert [f["seed"] for f in rec["full_labels"]] == [0, 1]
    for run in rec["runs"]:
        rounds = run["rounds"]
        assert [x["round"] for x in rounds] == [0, 1, 2]
        assert rounds[0]["labelled_pixels"] == 6  # the seed clicks
        for prev, x in itertools.pairwise(rounds):
            spent = x["seconds"] - prev["seconds"]
            assert spent >= 20.0 or x["labelled_pixels"] == prev["labelled_pixels"]
            assert all(c < split for _, c in x["picks"])  # never the held-out strip
        if run["unit"] == "points":  # 10 clicks of 2 s a round, one pixel each
            assert [x["seconds"] for x in rounds] == [0.0, 20.0, 40.0]
            assert [x["labelled_pixels"] for x in rounds] == [6, 16, 26]
        if run["unit"] == "regions":
            assert rounds[-1]["polygons"] >= rounds[-1]["queries"] >= 1
    # same seed: every arm starts from the same first labels and first model
    by_seed = [r for r in rec["runs"] if r["seed"] == 0]
    assert all(r["rounds"][0] == by_seed[0]["rounds"][0] for r in by_seed)
    summ = rec["summary"]
    assert set(summ["arms"]) == set(arms)
    comps = {(c["arm"], c["baseline"]): c for c in summ["comparisons"]}
    c = comps[("auto/points", "random/regions")]
    assert len(c["alc_difference"]["per_seed"]) == 2 and "per_round" in c
    assert np.isfinite(c["alc_difference"]["ci95"]).all()
    assert json.loads(r.stdout)["png"] == str(out.with_suffix(".png"))


def test_default_arms_ask_for_what_prioritize_asks_for_here(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "sim.json"
    r = CliRunner().invoke(
        cli,
        ["-q", "simulate", str(setup["scene"]), "--oracle", str(setup["truth"]),
         "-m", str(_fresh_spec(setup, tmp_path)), "--seed", "0", *TINY,
         "-o", str(out)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    rec = json.loads(out.read_text())
    # 10 m pixels: unit auto is points, as `prioritize --unit auto` would ask
    assert rec["auto_unit"] == {"unit": "points", "resolution_m": 10.0}
    units = {x["arm"]: x["unit"] for x in rec["runs"]}
    assert units == {
        "auto/auto": "points",
        "random/auto": "points",
        "random/regions": "regions",
    }
    comps = {(c["arm"], c["baseline"]) for c in rec["summary"]["comparisons"]}
    assert ("auto/auto", "random/auto") in comps
    assert ("auto/auto", "random/regions") in comps


def test_bad_arms_are_refused_in_one_line(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="unknown strategy 'entropi'"):
        SimulationConfig(arms=("entropi/points",))
    with pytest.raises(ConfigError, match="unknown unit 'pixels'"):
        SimulationConfig(arms=("margin/pixels",))
    r = CliRunner().invoke(
        cli,
        ["simulate", str(setup["scene"]), "--oracle", str(setup["truth"]), "-m",
         str(setup["spec"]), "--arm", "margin/hexagons", "-o", str(tmp_path / "x.json")],
    )  # fmt: skip
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "unknown unit 'hexagons'" in r.output
    assert not (tmp_path / "x.json").exists()


def test_reuse_takes_finished_runs_and_refuses_another_experiment(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    spec = _fresh_spec(setup, tmp_path)
    base = ["-q", "simulate", str(setup["scene"]), "--oracle", str(setup["truth"]),
            "-m", str(spec), "--seed", "0", *TINY]  # fmt: skip
    first = tmp_path / "first.json"
    arms = ["--arm", "auto/points", "--arm", "random/points"]
    r = CliRunner().invoke(cli, [*base, *arms, "-o", str(first)])
    assert r.exit_code == 0, r.output
    old = json.loads(first.read_text())
    second = tmp_path / "second.json"
    arms2 = ["--arm", "margin/points", "--arm", "random/points"]
    r = CliRunner().invoke(
        cli, [*base, *arms2, "--reuse", str(first), "-o", str(second)]
    )
    assert r.exit_code == 0, r.output
    new = json.loads(second.read_text())
    assert new["reused_from"] == str(first) and new["complete"] is True
    runs = {x["arm"]: x for x in new["runs"]}
    # random/points sits at the same position: taken as it was, marked reused
    assert runs["random/points"].get("reused") is True
    assert runs["random/points"]["rounds"] == old["runs"][1]["rounds"]
    assert "reused" not in runs["margin/points"]
    # the new arm starts from the same first model (paired)
    assert runs["margin/points"]["rounds"][0] == old["runs"][1]["rounds"][0]
    assert new["full_labels"] == old["full_labels"]
    # an alias (auto) is never reused, even at the same position
    third = tmp_path / "third.json"
    r = CliRunner().invoke(cli, [*base, *arms, "--reuse", str(first), "-o", str(third)])
    assert r.exit_code == 0, r.output
    assert "reused" not in json.loads(third.read_text())["runs"][0]
    # another setting: refused in one line, nothing written
    r = CliRunner().invoke(
        cli,
        [
            *base,
            *arms2,
            "--lr",
            "0.01",
            "--reuse",
            str(first),
            "-o",
            str(tmp_path / "bad.json"),
        ],
    )
    assert r.exit_code != 0
    assert "setting fit differs" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "bad.json").exists()
