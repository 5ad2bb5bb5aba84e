"""Remote scenes: a COG over HTTP (a Range server on 127.0.0.1) and on S3 (moto's
server on 127.0.0.1) predicts the same mask as the local file, reading byte ranges only;
hosts off the allowlist are refused before any connection."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from geolabel.cli.main import cli
from geolabel.config import RunConfig
from geolabel.errors import RemoteNotAllowedError, ResourceLimitError, SceneReadError
from geolabel.io import scene as scene_mod
from geolabel.io.limits import SceneLimits
from geolabel.io.remote import RemoteSource, check_allowed, parse_source
from geolabel.io.scene import open_scene
from geolabel.pipeline import run_predict
from geolabel.testing.range_server import serve_files

from ._remote_helpers import crop_scene


@pytest.fixture
def served(tmp_path: Path) -> Path:
    www = tmp_path / "www"
    www.mkdir()
    crop_scene(www / "scene.tif")
    return www


def _mask(run: Path) -> np.ndarray:
    doc = json.loads((run / "run.json").read_text())
    (path,) = [o["path"] for o in doc["outputs"] if o["role"] == "mask"]
    with rasterio.open(run / path) as ds:
        return ds.read(1)


def _predict(scene: str, spec: Path, out: Path, **kw: object) -> np.ndarray:
    res = run_predict(
        RunConfig(scenes=(scene,), model=str(spec), out=str(out), **kw)  # type: ignore[arg-type]
    )
    assert res.ok, [s.error for s in res.scenes]
    return _mask(out)


def test_http_cog_predicts_the_local_mask_with_range_reads_only(
    served: Path, spec5: Path, tmp_path: Path
) -> None:
    local = _predict(str(served / "scene.tif"), spec5, tmp_path / "local")
    with serve_files(served) as srv:
        url = srv.url("scene.tif")
        remote = _predict(url, spec5, tmp_path / "remote", allow_remote=(srv.host,))
        log = list(srv.requests)
    np.testing.assert_array_equal(remote, local)
    gets = [r for r in log if r.method == "GET"]
    assert gets, log
    assert {r.method for r in log} <= {"GET", "HEAD"}
    assert all(r.range is not None and r.status == 206 for r in gets), log
    assert all(r.sent == 0 for r in log if r.method == "HEAD")
    doc = json.loads((tmp_path / "remote" / "run.json").read_text())
    assert doc["scenes"][0]["scene"] == url  # not mangled to http:/
    assert doc["scenes"][0]["url"] == url
    assert doc["config"]["scenes"] == [url]


def test_window_read_fetches_a_fraction_of_the_file(served: Path) -> None:
    size = (served / "scene.tif").stat().st_size
    with serve_files(served) as srv:
        s = open_scene(srv.url("scene.tif"), allow_remote=[srv.netloc])
        first = s.read(s.grid.window.__class__(0, 0, 32, 32))
        sent = sum(r.sent for r in srv.requests)
    with rasterio.open(served / "scene.tif") as ds:
        want = ds.read(window=((0, 32), (0, 32)))
    np.testing.assert_array_equal(first.data, want)
    assert sent < size / 2, (sent, size)


def test_cli_url_scene_and_one_line_refusal(
    served: Path, spec5: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    with serve_files(served) as srv:
        url = srv.url("scene.tif")
        ok = runner.invoke(
            cli,
            [
                "predict",
                url,
                "-m",
                str(spec5),
                "-o",
                str(tmp_path / "r"),
                "-q",
                "--allow-remote",
                srv.host,
            ],
        )
        refused = runner.invoke(
            cli, ["predict", url, "-m", str(spec5), "-o", str(tmp_path / "r2"), "-q"]
        )
        assert not srv.requests or all(r.path == "/scene.tif" for r in srv.requests)
        n_after_ok = len(srv.requests)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["scenes"][0]["status"] == "done"
    assert refused.exit_code == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert lines[0].startswith(f"geolabel: error: {url}: remote reads are off")
    assert "--allow-remote 127.0.0.1" in lines[0]
    assert n_after_ok > 0


def test_refusal_makes_no_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_open(*a: object, **k: object) -> None:
        raise AssertionError("GDAL was asked to open a refused URL")

    def no_connect(*a: object, **k: object) -> None:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(scene_mod.rasterio, "open", no_open)
    monkeypatch.setattr(socket.socket, "connect", no_connect)
    with pytest.raises(RemoteNotAllowedError, match="remote reads are off"):
        open_scene("https://example.com/scene.tif")
    with pytest.raises(RemoteNotAllowedError, match="not on the allowlist"):
        open_scene("https://example.com/scene.tif", allow_remote=["127.0.0.1"])
    with pytest.raises(RemoteNotAllowedError, match="s3://other"):
        open_scene("s3://other/scene.tif", allow_remote=["s3://bucket"])


@pytest.mark.parametrize(
    ("url", "allow", "ok"),
    [
        ("https://h.org/a.tif", ["h.org"], True),
        ("https://h.org:8443/a.tif", ["h.org"], True),
        ("https://h.org:8443/a.tif", ["h.org:8443"], True),
        ("https://h.org:8443/a.tif", ["h.org:9000"], False),
        ("https://h.org/a.tif", ["https://h.org"], True),
        ("https://h.org/a.tif", ["http://h.org"], False),
        ("https://evil.h.org/a.tif", ["h.org"], False),
        ("s3://b/k.tif", ["s3://b"], True),
        ("s3://b/k.tif", ["b"], False),
        ("s3://b/k.tif", ["*"], True),
    ],
)
def test_allowlist(url: str, allow: list[str], ok: bool) -> None:
    src = RemoteSource(url)
    if ok:
        check_allowed(src, allow)
    else:
        with pytest.raises(RemoteNotAllowedError):
            check_allowed(src, allow)


def test_urls_are_not_paths() -> None:
    assert str(parse_source("https://h.org/x/a.tif")) == "https://h.org/x/a.tif"
    assert isinstance(parse_source("a.tif"), Path)
    with pytest.raises(SceneReadError, match="scheme 'ftp' is not supported"):
        parse_source("ftp://h.org/a.tif")
    with pytest.raises(SceneReadError, match="not a remote scene URL"):
        RemoteSource("https://h.org/")


@pytest.fixture
def moto_s3(served: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    server_mod = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = server_mod.ThreadedMotoServer(
        ip_address="127.0.0.1", port=port, verbose=False
    )
    server.start()
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_S3_ENDPOINT": f"127.0.0.1:{port}",
        "AWS_HTTPS": "NO",
        "AWS_VIRTUAL_HOSTING": "FALSE",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(k, v)
    client = boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1"
    )
    client.create_bucket(Bucket="scenes")
    client.upload_file(str(served / "scene.tif"), "scenes", "nc/scene.tif")
    try:
        yield "s3://scenes/nc/scene.tif"
    finally:
        server.stop()


def test_s3_cog_predicts_the_local_mask(
    moto_s3: str, served: Path, spec5: Path, tmp_path: Path
) -> None:
    local = _predict(str(served / "scene.tif"), spec5, tmp_path / "local")
    remote = _predict(moto_s3, spec5, tmp_path / "s3", allow_remote=("s3://scenes",))
    np.testing.assert_array_equal(remote, local)
    doc = json.loads((tmp_path / "s3" / "run.json").read_text())
    assert doc["scenes"][0]["scene"] == moto_s3
    with pytest.raises(RemoteNotAllowedError):
        open_scene(moto_s3, allow_remote=("s3://other",))


def test_remote_files_get_the_local_validation(served: Path, tmp_path: Path) -> None:
    from geolabel.testing import make_scene

    make_scene(served / "nocrs.tif", crs=None)
    with serve_files(served) as srv:
        allow = [srv.host]
        with pytest.raises(SceneReadError) as missing:
            open_scene(srv.url("missing.tif"), allow_remote=allow)
        with pytest.raises(SceneReadError, match="no CRS"):
            open_scene(srv.url("nocrs.tif"), allow_remote=allow)
        with pytest.raises(ResourceLimitError, match="--limit pixels"):
            open_scene(
                srv.url("scene.tif"),
                allow_remote=allow,
                limits=SceneLimits(max_pixels=1000),
            )
    line = str(missing.value)
    assert line.startswith(srv.url("missing.tif") + ": ") and "\n" not in line
