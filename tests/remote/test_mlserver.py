"""Remote inference through a real MLServer (Open Inference Protocol) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.models.check import synthetic_batch
from geolabel.models.http_ import HttpBackend
from geolabel.models.spec import load_spec
from geolabel.testing import write_toy_spec
from geolabel.testing.backends import ConvBackend

from .conftest import write_client_spec

pytest.importorskip("mlserver")

MLSERVER = Path(sys.executable).parent / "mlserver"
TOY = {"tile_size": 40}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """MLServer serving the toy model on free ports; yields its URL."""
    root = tmp_path_factory.mktemp("mlserver")
    model = root / "toy-conv"
    model.mkdir()
    shutil.copy(
        Path(__file__).with_name("mlserver_runtime.py"), model / "mlserver_runtime.py"
    )
    http, grpc, metrics = _free_port(), _free_port(), _free_port()
    (root / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": http,
                "grpc_port": grpc,
                "metrics_port": metrics,
                "parallel_workers": 0,
                "debug": False,
                "metrics_endpoint": None,
            }
        )
    )
    (model / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "toy-conv",
                "implementation": "mlserver_runtime.ToyConvRuntime",
                "inputs": [
                    {"name": "input", "datatype": "FP32", "shape": [-1, 3, 40, 40]}
                ],
                "outputs": [
                    {"name": "logits", "datatype": "FP32", "shape": [-1, 3, 40, 40]}
                ],
                "parameters": {"extra": TOY},
            }
        )
    )
    log = (root / "mlserver.log").open("w")
    env = {**os.environ, "PYTHONPATH": str(model)}
    proc = subprocess.Popen(
        [str(MLSERVER), "start", str(root)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + 40
        while True:
            try:
                with urllib.request.urlopen(
                    f"{url}/v2/models/toy-conv/ready", timeout=1
                ) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"MLServer did not start: {(root / 'mlserver.log').read_text()[-3000:]}"
                )
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def test_mlserver_equals_local(tmp_path: Path, mlserver: str) -> None:
    toy = write_toy_spec(tmp_path / "toy.yaml", **TOY)
    client = write_client_spec(
        tmp_path / "c.yaml", toy, mlserver, max_tiles_per_request=2
    )
    local = ConvBackend(load_spec(toy))
    with HttpBackend(load_spec(client)) as remote:
        batch = synthetic_batch(remote.spec, 5, seed=1)
        got, want = remote.predict(batch), local.predict(batch)
    assert (
        max(
            float(np.abs(g.array - w.array).max())
            for g, w in zip(got, want, strict=True)
        )
        <= 1e-6
    )


def test_models_check_against_mlserver(tmp_path: Path, mlserver: str) -> None:
    toy = write_toy_spec(tmp_path / "toy.yaml", **TOY)
    client = write_client_spec(tmp_path / "c.yaml", toy, mlserver)
    r = CliRunner().invoke(cli, ["models", "check", str(client)])
    assert r.exit_code == 0, r.stderr + r.stdout
    bad = write_client_spec(tmp_path / "bad.yaml", toy, mlserver, datatype="FP16")
    r = CliRunner().invoke(cli, ["models", "check", str(bad)])
    assert r.exit_code == 1 and "input 'input' is FP32, spec sends FP16" in r.stderr


def test_predict_through_mlserver_matches_local(
    tmp_path: Path, mlserver: str, small_scene: Path
) -> None:
    import rasterio

    toy = write_toy_spec(tmp_path / "toy.yaml", **TOY)
    client = write_client_spec(
        tmp_path / "c.yaml", toy, mlserver, max_tiles_per_request=4, concurrency=2
    )
    for spec, out in ((toy, "local"), (client, "remote")):
        r = CliRunner().invoke(
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
                "8",
                "--no-vectors",
            ],
        )
        assert r.exit_code == 0, r.stderr
    name = small_scene.stem
    with (
        rasterio.open(tmp_path / "local" / name / f"{name}_mask.tif") as a,
        rasterio.open(tmp_path / "remote" / name / f"{name}_mask.tif") as b,
    ):
        assert np.array_equal(a.read(), b.read())
