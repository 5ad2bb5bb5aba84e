"""Fixtures of the remote-model tests: toy specs, client specs, servers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from geolabel.models.spec import ModelSpec, load_spec
from geolabel.serve import client_spec
from geolabel.testing import make_scene, write_toy_spec

GEOLABEL = Path(sys.executable).parent / "geolabel"


def write_client_spec(
    path: Path, local: Path | ModelSpec, url: str, **endpoint: Any
) -> Path:
    """A ``backend: http`` spec for the local spec ``local`` served at ``url``."""
    spec = local if isinstance(local, ModelSpec) else load_spec(local)
    path.write_text(yaml.safe_dump(client_spec(spec, url, **endpoint), sort_keys=False))
    return path


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first stdout line of ``proc`` within ``timeout`` seconds (or fail)."""
    box: list[str] = []
    t = threading.Thread(
        target=lambda: box.append(proc.stdout.readline() if proc.stdout else ""),
        daemon=True,
    )
    t.start()
    t.join(timeout)
    if not box or not box[0]:
        proc.kill()
        err = proc.stderr.read() if proc.stderr else ""
        pytest.fail(f"server printed nothing within {timeout} s: {err[-2000:]}")
    return box[0]


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    """A toy convolution model spec, 40-pixel tiles, 3 classes."""
    return write_toy_spec(tmp_path / "toy.yaml", tile_size=40)


@pytest.fixture
def small_scene(tmp_path: Path) -> Path:
    """A 3-band scene of 70 x 90 pixels with a nodata corner."""
    return make_scene(
        tmp_path / "scene.tif",
        shape=(70, 90),
        nodata=-1.0,
        nodata_region=(slice(0, 10), slice(0, 12)),
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``geolabel serve`` of the toy spec (as ``toy``) as a subprocess on a free port, with a token."""
    toy = write_toy_spec(tmp_path_factory.mktemp("served") / "toy.yaml", tile_size=40)
    env = {**os.environ, "TEST_SERVE_TOKEN": "s3cret-token-value"}
    proc = subprocess.Popen(
        [
            str(GEOLABEL),
            "serve",
            "-m",
            str(toy),
            "--port",
            "0",
            "--token-env",
            "TEST_SERVE_TOKEN",
            "--max-body-mb",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        info = json.loads(read_line(proc, 30))
        yield {**info, "token": env["TEST_SERVE_TOKEN"], "proc": proc}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
