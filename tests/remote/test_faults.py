"""The HTTP client against a misbehaving server: deadlines, retries, validation, stops."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.errors import CircuitOpenError, ModelOutputError, RemoteModelError
from geolabel.io.manifest import read_manifest
from geolabel.io.run_record import resolve_path
from geolabel.models.check import synthetic_batch
from geolabel.models.http_ import HttpBackend
from geolabel.models.spec import ModelSpec, load_spec
from geolabel.testing.backends import ConvBackend

from .conftest import write_client_spec
from .faulty import FaultyServer


def _backend(tmp_path: Path, toy: Path, url: str, **ep: object) -> HttpBackend:
    spec = load_spec(write_client_spec(tmp_path / "client.yaml", toy, url, **ep))
    return HttpBackend(spec, seed=0)


@pytest.fixture
def local(toy: Path) -> ConvBackend:
    return ConvBackend(load_spec(toy))


def test_retries_500_then_answers(
    tmp_path: Path, toy: Path, local: ConvBackend
) -> None:
    with FaultyServer(local.forward) as srv:
        srv.script.extend(["500", "reset", "500"])
        be = _backend(tmp_path, toy, srv.url, retries=3, backoff=0.01)
        batch = synthetic_batch(be.spec, 1)
        preds = be.predict(batch)
        assert srv.requests == 4
        want = local.predict(batch)[0].array
        assert np.abs(preds[0].array - want).max() <= 1e-6
        be.close()


def test_honours_retry_after(tmp_path: Path, toy: Path, local: ConvBackend) -> None:
    with FaultyServer(local.forward, retry_after=0.4) as srv:
        srv.script.append("429")
        be = _backend(tmp_path, toy, srv.url, retries=2, backoff=0.0, max_backoff=2)
        t0 = time.monotonic()
        be.predict(synthetic_batch(be.spec, 1))
        assert time.monotonic() - t0 >= 0.4
        assert srv.requests == 2
        be.close()


def test_retry_after_beyond_budget_gives_up_at_once(
    tmp_path: Path, toy: Path, local: ConvBackend
) -> None:
    with FaultyServer(local.forward, default="429", retry_after=3600) as srv:
        be = _backend(tmp_path, toy, srv.url, retries=5, max_backoff=1)
        with pytest.raises(RemoteModelError, match="retry after 3600"):
            be.predict(synthetic_batch(be.spec, 1))
        assert srv.requests == 1
        be.close()


@pytest.mark.parametrize("mode", ["hang", "drip"])
def test_total_deadline_bounds_hangs_and_slow_drips(
    tmp_path: Path, toy: Path, local: ConvBackend, mode: str
) -> None:
    # drip: every byte arrives well within the socket timeout, the body never ends in time
    with FaultyServer(local.forward, default=mode, drip=0.05) as srv:
        be = _backend(
            tmp_path,
            toy,
            srv.url,
            timeout=0.6,
            retries=1,
            backoff=0.05,
            max_backoff=0.1,
        )
        t0 = time.monotonic()
        with pytest.raises(RemoteModelError, match=r"within 0.6 s"):
            be.predict(synthetic_batch(be.spec, 1))
        wall = time.monotonic() - t0
        budget = 2 * 0.6 + 0.1
        assert 1.1 <= wall <= budget + 2.0, wall
        assert srv.requests == 2
        be.close()


@pytest.mark.parametrize(
    ("mode", "match"),
    [
        ("garbage", "not JSON"),
        ("nan", "NaN"),
        ("shape", r"output shape \(1, 2, 40, 40\) != expected \(1, 3, 40, 40\)"),
    ],
)
def test_bad_answers_are_model_output_errors(
    tmp_path: Path, toy: Path, local: ConvBackend, mode: str, match: str
) -> None:
    with FaultyServer(local.forward, default=mode) as srv:
        be = _backend(tmp_path, toy, srv.url)
        with pytest.raises(ModelOutputError, match=match):
            be.predict(synthetic_batch(be.spec, 1))
        assert srv.requests == 1  # deterministic answers are not retried
        be.close()


@pytest.mark.parametrize("mode", ["huge", "stream"])
def test_huge_body_is_refused(
    tmp_path: Path, toy: Path, local: ConvBackend, mode: str
) -> None:
    with FaultyServer(local.forward, default=mode) as srv:
        be = _backend(tmp_path, toy, srv.url, max_response_mb=1)
        t0 = time.monotonic()
        with pytest.raises(RemoteModelError, match="exceeds the limit"):
            be.predict(synthetic_batch(be.spec, 1))
        assert time.monotonic() - t0 < 5
        be.close()


def test_token_never_follows_a_redirect_or_reaches_logs(
    tmp_path: Path,
    toy: Path,
    local: ConvBackend,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("TEST_TOKEN", "tok-9f8e7d")
    with (
        FaultyServer(local.forward) as other,
        FaultyServer(
            local.forward,
            default="redirect",
            redirect_to=f"{other.url}/v2/models/toy-conv/infer",
        ) as srv,
    ):
        srv.script.append("500")
        be = _backend(tmp_path, toy, srv.url, token_env="TEST_TOKEN", backoff=0.01)
        caplog.set_level(logging.DEBUG)
        with pytest.raises(
            RemoteModelError, match="redirects are not followed"
        ) as info:
            be.predict(synthetic_batch(be.spec, 1))
        assert other.requests == 0 and not other.headers
        assert srv.headers[-1]["Authorization"] == "Bearer tok-9f8e7d"
        assert srv.headers[-1]["Accept-Encoding"] == "identity"
        assert "tok-9f8e7d" not in str(info.value) and "tok-9f8e7d" not in caplog.text
        be.close()


def test_several_requests_in_flight(
    tmp_path: Path, toy: Path, local: ConvBackend
) -> None:
    def slow(x: np.ndarray) -> np.ndarray:
        time.sleep(0.5)
        return local.forward(x)

    with FaultyServer(slow) as srv:
        be = _backend(tmp_path, toy, srv.url, concurrency=4, max_tiles_per_request=2)
        batch = synthetic_batch(be.spec, 8)
        t0 = time.monotonic()
        preds = be.predict(batch)
        wall = time.monotonic() - t0
        assert srv.requests == 4 and wall < 1.6, wall  # in series: >= 2 s
        want = local.predict(batch)
        assert (
            max(
                float(np.abs(p.array - w.array).max())
                for p, w in zip(preds, want, strict=True)
            )
            <= 1e-6
        )
        be.close()


def test_circuit_opens_after_consecutive_failures(
    tmp_path: Path, toy: Path, local: ConvBackend
) -> None:
    with FaultyServer(local.forward, default="500") as srv:
        be = _backend(tmp_path, toy, srv.url, retries=0, max_consecutive_failures=2)
        batch = synthetic_batch(be.spec, 1)
        with pytest.raises(RemoteModelError) as first:
            be.predict(batch)
        assert not isinstance(first.value, CircuitOpenError)
        with pytest.raises(CircuitOpenError, match="2 batches failed in a row"):
            be.predict(batch)
        n = srv.requests
        with pytest.raises(CircuitOpenError):
            be.predict(batch)
        assert srv.requests == n  # an open circuit sends nothing
        be.close()


def test_run_stops_cleanly_lists_failures_and_resumes(
    tmp_path: Path, toy: Path, small_scene: Path, local: ConvBackend
) -> None:
    """A server that dies mid-run: done tiles stay done, the run stops, resume completes."""
    runner = CliRunner()
    ref = tmp_path / "ref"
    r = runner.invoke(
        cli,
        [
            "-q",
            "predict",
            str(small_scene),
            "-m",
            str(toy),
            "-o",
            str(ref),
            "--batch-size",
            "2",
            "--no-vectors",
        ],
    )
    assert r.exit_code == 0, r.stderr
    with FaultyServer(local.forward) as srv:
        srv.script.extend(["ok"] * 4)  # 4 batches of 2 tiles, then a dead server
        srv.default = "hang"
        client = write_client_spec(
            tmp_path / "client.yaml",
            toy,
            srv.url,
            timeout=0.3,
            retries=1,
            backoff=0.01,
            max_backoff=0.05,
            max_consecutive_failures=2,
            max_tiles_per_request=2,
        )
        out = tmp_path / "remote"
        args = [
            "-q",
            "predict",
            str(small_scene),
            "-m",
            str(client),
            "-o",
            str(out),
            "--batch-size",
            "2",
            "--no-vectors",
        ]
        t0 = time.monotonic()
        r = runner.invoke(cli, args)
        wall = time.monotonic() - t0
        assert r.exit_code == 1
        assert "not done" in r.stderr and "retry-failed" in r.stderr
        assert wall < 2 * (2 * 0.3 + 0.05) + 8, (
            wall
        )  # 2 failed batches x budget, plus the run
        assert (
            srv.requests == 4 + 2 * 2
        )  # the circuit stopped the run: no more attempts
        doc = json.loads((out / "run.json").read_text())
        failed = doc["scenes"][0]["failed_tiles"]
        assert doc["scenes"][0]["status"] == "incomplete" and len(failed) == 4
        state = read_manifest(resolve_path(out, doc["scenes"][0]["dir"]) / "manifest")
        assert sum(v["status"] == "done" for v in state.values()) == 8
        assert all(
            "RemoteModelError" in state[t]["error"]
            or "CircuitOpenError" in state[t]["error"]
            for t in failed
        )
        srv.default = "ok"
        before = srv.requests
        r = runner.invoke(cli, [*args, "--retry-failed"])
        assert r.exit_code == 0, r.stderr
        tiles = doc["scenes"][0]["tiles"]
        assert (
            srv.requests - before == (tiles - 8 + 1) // 2
        )  # only unfinished batches are redone
    name = small_scene.stem
    with (
        rasterio.open(ref / name / f"{name}_mask.tif") as a,
        rasterio.open(out / name / f"{name}_mask.tif") as b,
    ):
        assert np.array_equal(a.read(), b.read())
    with (
        rasterio.open(ref / name / f"{name}_probabilities.tif") as a,
        rasterio.open(out / name / f"{name}_probabilities.tif") as b,
    ):
        pa, pb = a.read(), b.read()
        assert np.array_equal(np.isnan(pa), np.isnan(pb))
        assert np.nanmax(np.abs(pa - pb)) <= 1e-6


def test_spec_without_endpoint_or_token_is_refused(tmp_path: Path, toy: Path) -> None:
    spec = load_spec(
        write_client_spec(
            tmp_path / "c.yaml", toy, "http://127.0.0.1:9", token_env="NOPE_UNSET_X"
        )
    )
    with pytest.raises(Exception, match="NOPE_UNSET_X"):
        HttpBackend(spec)
    doc = spec.model_dump(mode="json", exclude_none=True)
    doc.pop("endpoint")
    with pytest.raises(ValueError, match="needs an 'endpoint'"):
        ModelSpec.model_validate(doc)
    bad = tmp_path / "bad.yaml"
    write_client_spec(bad, toy, "http://user:pw@127.0.0.1:9")
    r = CliRunner().invoke(cli, ["models", "check", str(bad)])
    assert (
        r.exit_code == 2
        and "must not hold credentials" in r.stderr
        and "Traceback" not in r.stderr
    )


def test_connection_dropped_twice_on_a_kept_alive_socket_is_retried(
    tmp_path: Path, toy: Path, local: ConvBackend
) -> None:
    with FaultyServer(local.forward) as srv:
        srv.script.extend(["500", "reset", "reset", "reset", "reset"])
        be = _backend(tmp_path, toy, srv.url, retries=4, backoff=0.01)
        be.predict(synthetic_batch(be.spec, 1))
        assert srv.requests == 6
        be.close()


def test_open_circuit_stops_the_following_scenes_without_requests(
    tmp_path: Path, toy: Path, small_scene: Path, local: ConvBackend
) -> None:
    import shutil

    second = tmp_path / "second.tif"
    shutil.copy(small_scene, second)
    with FaultyServer(local.forward, default="500") as srv:
        client = write_client_spec(
            tmp_path / "client.yaml",
            toy,
            srv.url,
            retries=1,
            backoff=0.01,
            max_backoff=0.02,
            max_consecutive_failures=2,
            max_tiles_per_request=2,
        )
        r = CliRunner().invoke(
            cli,
            [
                "-q",
                "predict",
                str(small_scene),
                str(second),
                "-m",
                str(client),
                "-o",
                str(tmp_path / "out"),
                "--batch-size",
                "2",
                "--no-vectors",
            ],
        )
        assert r.exit_code == 1
        assert srv.requests == 2 * 2  # two batches x two attempts, then nothing more
    doc = json.loads((tmp_path / "out" / "run.json").read_text())
    assert [s["status"] for s in doc["scenes"]] == ["incomplete", "incomplete"]
    assert [len(s["failed_tiles"]) for s in doc["scenes"]] == [4, 2]
