"""Label Studio export/import without a server: an export shaped as Label Studio writes it.

The same round trip through a real server is in test_label_studio_server.py.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pyogrio
import pytest
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.exchange import config_names

from ._roundtrip import check_round_trip, largest_region, other_class

CLASSES = ["class0", "class1", "class2"]
SQUARE = [[10.0, 10.0], [60.0, 10.0], [60.0, 60.0], [10.0, 60.0]]


def as_ls_export(tasks: list[dict[str, Any]], edit: tuple[str, str, str]) -> list[dict]:
    """Label Studio's JSON export after a labeller accepted every pre-annotation and
    edited one region (label and outline)."""
    out = []
    for n, t in enumerate(tasks, start=1):
        result = copy.deepcopy(t["predictions"][0]["result"])
        for r in result:
            if (t["data"]["image"], r["id"]) == edit[:2]:
                r["value"]["polygonlabels"] = [edit[2]]
                r["value"]["points"] = SQUARE
        out.append(
            {
                "id": n,
                "data": copy.deepcopy(t["data"]),
                "annotations": [
                    {"id": 100 + n, "result": [], "was_cancelled": True,
                     "updated_at": "2026-12-05T10:00:00Z", "completed_by": 1},
                    {"id": 200 + n, "result": result, "was_cancelled": False,
                     "updated_at": "2026-12-05T09:00:00Z", "completed_by": 1},
                ],
                "predictions": t["predictions"],
            }
        )  # fmt: skip
    return out


def _import(export: Path, out: Path, run: Path) -> Any:
    r = CliRunner().invoke(
        cli,
        [
            "-q",
            "label-studio",
            "import",
            str(export),
            "-o",
            str(out),
            "--run",
            str(run),
        ],
    )
    return r


def test_export_writes_tasks_config_and_images(ls_run: dict[str, Any]) -> None:
    names = config_names(ls_run["config"])
    assert (names.from_name, names.to_name, list(names.labels)) == (
        "label",
        "image",
        CLASSES,
    )
    assert (
        len(ls_run["tasks"]) == 2
    )  # 48 x 80 in 48-px chips (the second shifted inside)
    for t in ls_run["tasks"]:
        image = t["data"]["image"]
        assert image.startswith("/data/local-files/?d=images/")
        png = ls_run["dir"] / "ls" / image.split("?d=")[1]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        (pred,) = t["predictions"]
        assert pred["model_version"] == "toy-conv@1" and pred["result"]
        for r in pred["result"]:
            assert r["type"] == "polygonlabels" and 0 <= r["score"] <= 1
            assert all(0 <= v <= 100 for p in r["value"]["points"] for v in p)


def test_round_trip_offline(ls_run: dict[str, Any], tmp_path: Path) -> None:
    task = ls_run["tasks"][0]
    region = largest_region(task)
    new = other_class(region["value"]["polygonlabels"][0], CLASSES)
    edited = (task["data"]["image"], region["id"])
    export = tmp_path / "export.json"
    export.write_text(json.dumps(as_ls_export(ls_run["tasks"], (*edited, new))))
    labels = tmp_path / "labels.gpkg"
    r = _import(export, labels, ls_run["run"])
    assert r.exit_code == 0, r.output
    got = pyogrio.read_dataframe(labels, layer="labels")
    assert json.loads(r.stdout)["features"] == len(got)
    assert (got["review"] == "label-studio").all()
    assert set(got["annotation_id"]) == {201, 202}  # the cancelled ones are skipped
    check_round_trip(got, ls_run, edited, new, SQUARE)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t[0]["data"].pop("geolabel"), "no geolabel georeference"),
        (
            lambda t: t[0]["annotations"][1]["result"][0]["value"].update(
                polygonlabels=["water"]
            ),
            "unknown labels ['water']",
        ),
        (
            lambda t: t[0]["annotations"][1]["result"][0]["value"].update(
                points=[[1, 2]]
            ),
            "malformed polygonlabels result",
        ),
    ],
)
def test_bad_exports_fail_in_one_line(
    ls_run: dict[str, Any], tmp_path: Path, change: Any, message: str
) -> None:
    tasks = as_ls_export(ls_run["tasks"], ("", "", ""))
    change(tasks)
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    r = _import(export, tmp_path / "labels.gpkg", ls_run["run"])
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert not (tmp_path / "labels.gpkg").exists()
