"""``geolabel serve`` (a real subprocess on 127.0.0.1) against the same model run locally."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import yaml
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.errors import RemoteModelError
from geolabel.models._transport import HttpClient
from geolabel.models.check import synthetic_batch
from geolabel.models.http_ import HttpBackend
from geolabel.models.spec import load_spec
from geolabel.testing.backends import ConvBackend

from .conftest import write_client_spec

TOKEN_ENV = {"TEST_CLIENT_TOKEN": "s3cret-token-value"}


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in TOKEN_ENV.items():
        monkeypatch.setenv(k, v)


@pytest.mark.parametrize(
    "ep", [{"binary": False}, {"binary": True, "max_tiles_per_request": 3}]
)
def test_network_equals_local(
    tmp_path: Path, toy: Path, served: dict[str, Any], token: None, ep: dict[str, Any]
) -> None:
    client = write_client_spec(
        tmp_path / "c.yaml", toy, served["url"], token_env="TEST_CLIENT_TOKEN", **ep
    )
    local = ConvBackend(load_spec(toy))
    with HttpBackend(load_spec(client)) as remote:
        batch = synthetic_batch(remote.spec, 5, seed=3)
        got, want = remote.predict(batch), local.predict(batch)
    assert [p.tile.id for p in got] == [p.tile.id for p in want]
    assert (
        max(
            float(np.abs(g.array - w.array).max())
            for g, w in zip(got, want, strict=True)
        )
        <= 1e-6
    )


def test_predict_through_serve_gives_identical_outputs(
    tmp_path: Path, toy: Path, small_scene: Path, served: dict[str, Any], token: None
) -> None:
    client = write_client_spec(
        tmp_path / "c.yaml",
        toy,
        served["url"],
        token_env="TEST_CLIENT_TOKEN",
        binary=True,
        max_tiles_per_request=2,
        concurrency=2,
    )
    runner = CliRunner()
    for spec, out in ((toy, "local"), (client, "remote")):
        r = runner.invoke(
            cli,
            [
                "-q",
                "predict",
                str(small_scene),
                "-m",
                str(spec),
                "-o",
                str(tmp_path / out),
                "--batch-size",
                "4",
                "--no-vectors",
            ],
        )
        assert r.exit_code == 0, r.stderr
    name = small_scene.stem
    for suffix in ("mask", "probabilities", "confidence"):
        with (
            rasterio.open(tmp_path / "local" / name / f"{name}_{suffix}.tif") as a,
            rasterio.open(tmp_path / "remote" / name / f"{name}_{suffix}.tif") as b,
        ):
            x, y = a.read(), b.read()
            assert a.transform == b.transform and a.crs == b.crs
            if suffix == "mask":
                assert np.array_equal(x, y)
            else:
                assert np.array_equal(np.isnan(x), np.isnan(y))
                assert np.nanmax(np.abs(x - y)) <= 1e-6


def test_token_is_required_and_not_retried(
    tmp_path: Path, toy: Path, served: dict[str, Any]
) -> None:
    client = write_client_spec(tmp_path / "c.yaml", toy, served["url"])
    with (
        HttpBackend(load_spec(client)) as remote,
        pytest.raises(RemoteModelError, match="HTTP 401"),
    ):
        remote.predict(synthetic_batch(remote.spec, 1))
    assert served["url"].startswith(
        "http://127.0.0.1:"
    )  # loopback unless --host says otherwise
    c = HttpClient(served["url"])
    assert json.loads(c.request("GET", "/v2/health/ready").body) == {"ready": True}
    with pytest.raises(RemoteModelError, match="HTTP 401"):
        c.request("GET", "/v2/models/toy-conv")
    c = HttpClient(served["url"], token=served["token"])
    meta = json.loads(c.request("GET", "/v2/models/toy-conv").body)
    assert (
        meta["inputs"][0]["shape"] == [-1, 3, 40, 40]
        and meta["outputs"][0]["name"] == "logits"
    )
    with pytest.raises(RemoteModelError, match=r"HTTP 404.*unknown model"):
        c.request("GET", "/v2/models/other")


def test_request_size_limit(
    tmp_path: Path, toy: Path, served: dict[str, Any], token: None
) -> None:
    client = write_client_spec(
        tmp_path / "c.yaml",
        toy,
        served["url"],
        token_env="TEST_CLIENT_TOKEN",
        max_tiles_per_request=64,
    )  # 64 JSON tiles > --max-body-mb 1
    with (
        HttpBackend(load_spec(client)) as remote,
        pytest.raises(RemoteModelError, match="HTTP 413"),
    ):
        remote.predict(synthetic_batch(remote.spec, 64))
    c = HttpClient(served["url"], token=served["token"])
    with pytest.raises(RemoteModelError, match=r"HTTP 400.*input must be"):
        c.request(
            "POST",
            "/v2/models/toy-conv/infer",
            body=json.dumps(
                {
                    "inputs": [
                        {
                            "name": "input",
                            "shape": [1, 2],
                            "datatype": "FP32",
                            "data": [1, 2],
                        }
                    ]
                }
            ).encode(),
        )


def test_models_check(
    tmp_path: Path, toy: Path, served: dict[str, Any], token: None
) -> None:
    runner = CliRunner()
    good = write_client_spec(
        tmp_path / "good.yaml", toy, served["url"], token_env="TEST_CLIENT_TOKEN"
    )
    r = runner.invoke(cli, ["models", "check", str(good)])
    assert r.exit_code == 0, r.stderr
    assert [c["check"] for c in json.loads(r.stdout)["checks"]] == [
        "reachable",
        "metadata",
        "dry-run",
    ]

    doc = yaml.safe_load(good.read_text())
    doc["classes"].append({"index": 3, "name": "extra"})
    doc["endpoint"]["input"] = "pixels"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(doc))
    r = runner.invoke(cli, ["models", "check", str(tmp_path / "bad.yaml")])
    assert r.exit_code == 1
    assert "server has no input 'pixels'" in r.stderr
    assert (
        "output 'logits' has shape [-1, 3, 40, 40], spec needs [-1, 4, 40, 40] (4 classes)"
        in r.stderr
    )

    doc["endpoint"]["url"] = "http://127.0.0.1:9"  # nothing listens on the discard port
    doc["endpoint"]["retries"] = 0
    (tmp_path / "down.yaml").write_text(yaml.safe_dump(doc))
    r = runner.invoke(cli, ["models", "check", str(tmp_path / "down.yaml")])
    assert (
        r.exit_code == 1
        and "reachable" in r.stderr
        and "ConnectionRefusedError" in r.stderr
    )

    r = runner.invoke(cli, ["models", "list"])
    assert (
        r.exit_code == 0
        and json.loads(r.stdout)["http"] == "geolabel.models.http_:HttpBackend"
    )


def test_serve_refuses_bad_options(toy: Path) -> None:
    r = CliRunner().invoke(
        cli, ["serve", "-m", str(toy), "--token-env", "SURELY_UNSET_VAR_123"]
    )
    assert r.exit_code == 2 and "SURELY_UNSET_VAR_123 is not set" in r.stderr
