"""The CLI's one error boundary: one ``geolabel: error: PATH: cause`` line, no traceback."""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

import geolabel.tasks
from geolabel.cli.main import cli
from geolabel.errors import SceneReadError
from geolabel.io.scene import open_scene
from geolabel.testing import make_scene


def _run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["-q", *args])
    return r.exit_code, r.stderr


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("geolabel: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_scene_named_dots_stays_inside_the_run_folder(
    tmp_path: Path, toy_spec_path: Path
) -> None:
    scenes = tmp_path / "in"
    scenes.mkdir()
    scene = make_scene(scenes / "...tif", shape=(40, 50))
    run = tmp_path / "deep" / "run"
    code, err = _run("predict", str(scene), "-m", str(toy_spec_path), "-o", str(run))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["run"]
    assert (run / "__" / "store.zarr").is_dir()
    assert all(p.resolve().is_relative_to(run) for p in run.rglob("*"))


def test_link_in_the_run_folder_is_not_followed(
    tmp_path: Path, toy_spec_path: Path
) -> None:
    scene = make_scene(tmp_path / "a.tif", shape=(40, 50))
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (run / "a").symlink_to(tmp_path / "elsewhere")
    code, err = _run("predict", str(scene), "-m", str(toy_spec_path), "-o", str(run))
    assert code == 1 and "outside the run folder" in _one_error_line(err)
    assert not any((tmp_path / "elsewhere").iterdir())


def test_error_line_names_the_path_once(tmp_path: Path, toy_spec_path: Path) -> None:
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00" + b"\x00" * 100)
    code, err = _run(
        "predict", str(bad), "-m", str(toy_spec_path), "-o", str(tmp_path / "r")
    )
    line = _one_error_line(err)
    assert code == 1 and line.startswith(f"geolabel: error: {bad}: ")
    assert line.count(str(bad)) == 1


def _corrupt_block(path: Path, row: int, col: int) -> None:
    with rasterio.open(path) as ds:
        off = int(ds.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=1))
        size = int(ds.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=1))
    with open(path, "r+b") as f:
        f.seek(off)
        f.write((bytes(range(256)) * (size // 256 + 1))[:size])


def _damaged_scene(
    p: Path, *, bands: int, size: int, block: int, at: tuple[int, int]
) -> Path:
    """A tiled DEFLATE float scene whose block ``at`` (row, col) is overwritten."""
    data = np.random.default_rng(0).normal(100, 20, size=(bands, size, size))
    with rasterio.open(
        p,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=bands,
        dtype="float32",
        crs="EPSG:32633",
        transform=rasterio.Affine(10, 0, 0, 0, -10, 0),
        tiled=True,
        blockxsize=block,
        blockysize=block,
        compress="deflate",
    ) as ds:
        ds.write(data.astype("float32"))
    _corrupt_block(p, *at)
    return p


def test_mid_scene_read_error_shows_gdals_cause(tmp_path: Path) -> None:
    p = _damaged_scene(tmp_path / "z.tif", bands=1, size=64, block=16, at=(2, 2))
    scene = open_scene(p)
    with pytest.raises(SceneReadError) as info:
        scene.read(scene.grid.window)
    assert "previous exception" not in str(info.value)
    assert str(info.value).startswith(f"{p}: cannot read window")
    assert "decod" in str(info.value).lower() or "zip" in str(info.value).lower()


@pytest.mark.parametrize(
    ("code", "named"),
    [
        (errno.ENOSPC, "no space left on device (ENOSPC)"),
        (errno.EROFS, "read-only file system (EROFS)"),
    ],
)
def test_disk_errors_are_named(
    tmp_path: Path,
    toy_spec_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
    named: str,
) -> None:
    scene = make_scene(tmp_path / "a.tif", shape=(40, 50))
    target = tmp_path / "run" / "a" / "a_mask.tif"

    def full(*a: object, **k: object) -> None:
        raise OSError(code, os.strerror(code), str(target))

    monkeypatch.setattr(geolabel.tasks, "finalize_scene", full)
    rc, err = _run(
        "predict", str(scene), "-m", str(toy_spec_path), "-o", str(tmp_path / "run")
    )
    line = _one_error_line(err)
    assert rc == 1 and line.startswith(f"geolabel: error: {scene}: {target}: {named}")


def test_read_only_run_folder_is_one_line(
    tmp_path: Path, toy_spec_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scene = make_scene(tmp_path / "a.tif", shape=(40, 50))
    run = tmp_path / "run"

    def refuse(self: Path, *a: object, **k: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    rc, err = _run("predict", str(scene), "-m", str(toy_spec_path), "-o", str(run))
    assert rc == 2
    assert (
        _one_error_line(err)
        == f"geolabel: error: {run}: read-only file system (EROFS); choose a writable --out"
    )


def test_file_size_limit_mid_run_is_one_line(
    tmp_path: Path, toy_spec_path: Path
) -> None:
    """A real process whose writes fail part-way (RLIMIT_FSIZE, as on a full disk)."""
    scene = make_scene(tmp_path / "a.tif", shape=(300, 300))

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))

    code = "from geolabel.cli.main import main; main()"
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "-q",
            "predict",
            str(scene),
            "-m",
            str(toy_spec_path),
            "-o",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=120,
        check=False,
    )
    assert r.returncode in (1, 2), r.stderr
    line = _one_error_line(r.stderr)
    assert "EFBIG" in line or "too large" in line.lower(), line


def test_damaged_block_mid_scene_is_one_line_with_gdals_cause(
    tmp_path: Path, toy_spec_path: Path
) -> None:
    p = _damaged_scene(tmp_path / "z.tif", bands=3, size=128, block=32, at=(1, 1))
    code, err = _run(
        "predict", str(p), "-m", str(toy_spec_path), "-o", str(tmp_path / "r")
    )
    line = _one_error_line(err)
    assert code == 1 and line.count(str(p)) == 1 and "tiles not done" in line
    assert "previous exception" not in line and "cannot read window" in line
