"""Drive a real Label Studio server with label-studio-sdk (runs in .venv-ls, not .venv).

Label Studio and its SDK pin packages of their own, so they live in a separate virtual
environment; the tests call this script with that environment's Python and exchange
JSON files with it. Commands (arguments: a JSON file holding one object):

``roundtrip``: create a project with ``config``, import ``tasks`` (with their
pre-annotations), accept each task's prediction as its annotation (what a labeller
does with "accept"), apply ``edit`` to one region (new label, shifted points), export
the project as JSON to ``out``.

``ml``: create a project, import ``tasks`` without predictions, connect the ML
backend at ``backend`` (basic auth, password ``password``), ask Label Studio to
retrieve predictions for all tasks (the data manager action), press "Start training",
write the tasks with their predictions to ``out``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import requests
from label_studio_sdk import LabelStudio


def _client(a: dict[str, Any]) -> LabelStudio:
    return LabelStudio(base_url=a["url"], api_key=a["token"], timeout=60)


def _project(c: LabelStudio, a: dict[str, Any], title: str) -> int:
    p = c.projects.create(title=title, label_config=a["config"])
    return int(p.id)


def roundtrip(a: dict[str, Any]) -> None:
    c = _client(a)
    pid = _project(c, a, "geolabel round trip")
    c.projects.import_tasks(id=pid, request=a["tasks"])
    tasks = list(c.tasks.list(project=pid, fields="all"))
    assert len(tasks) == len(a["tasks"]), (len(tasks), len(a["tasks"]))
    edit = a["edit"]
    for t in tasks:
        (pred,) = t.predictions
        result = json.loads(json.dumps(pred.result))
        for r in result:
            if t.data["image"] == edit["image"] and r["id"] == edit["region"]:
                r["value"]["polygonlabels"] = [edit["label"]]
                r["value"]["points"] = edit["points"]
        c.annotations.create(id=t.id, result=result, ground_truth=False)
    resp = requests.get(
        f"{a['url']}/api/projects/{pid}/export",
        params={"exportType": "JSON", "download_all_tasks": "true"},
        headers={"Authorization": f"Token {a['token']}"},
        timeout=60,
    )
    resp.raise_for_status()
    with open(a["out"], "w") as f:
        f.write(resp.text)


def ml(a: dict[str, Any]) -> None:
    c = _client(a)
    pid = _project(c, a, "geolabel ml backend")
    plain = [{"data": t["data"]} for t in a["tasks"]]
    c.projects.import_tasks(id=pid, request=plain)
    backend = c.ml.create(
        project=pid,
        url=a["backend"],
        title="geolabel",
        auth_method="BASIC_AUTH",
        basic_auth_user="labelstudio",
        basic_auth_pass=a["password"],
    )
    c.actions.create(
        id="retrieve_tasks_predictions",
        project=pid,
        selected_items={"all": True, "excluded": []},
    )
    c.ml.train(id=backend.id)  # "Start training": a training event for the backend
    tasks = list(c.tasks.list(project=pid, fields="all"))
    out = {
        "backend": json.loads(c.ml.get(id=backend.id).json()),
        "tasks": [
            {
                "data": t.data,
                "predictions": [
                    {
                        "model_version": p.model_version,
                        "score": p.score,
                        "result": p.result,
                    }
                    for p in t.predictions or []
                ],
            }
            for t in tasks
        ],
    }
    with open(a["out"], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    command = sys.argv[1]
    with open(sys.argv[2]) as f:
        args = json.load(f)
    {"roundtrip": roundtrip, "ml": ml}[command](args)
