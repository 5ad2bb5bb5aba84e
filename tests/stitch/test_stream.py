"""Finalize streamed beside the tiles writes the bytes of finalize from the run store.

An in-process run blends and writes each core while the tiles run
(``geolabel.stitch.stream``); a run on another executor (or a stream that could not
finish) blends from the store afterwards. Both must give the same files, and a stream
that stops must leave nothing behind.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import geolabel.stitch.outputs as outputs
import geolabel.stitch.stream as stream_mod
from geolabel.config import RunConfig
from geolabel.execution.executors import LocalExecutor
from geolabel.models import load_spec
from geolabel.pipeline import RunResult, run_predict
from geolabel.testing import ConvBackend, make_scene, write_toy_spec


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    # several rows and columns of 48² tiles, a nodata corner, 3 classes
    return make_scene(
        tmp_path / "s.tif",
        shape=(170, 211),
        nodata=-9999.0,
        nodata_region=(slice(0, 30), slice(0, 50)),
    )


def _run(
    scene: Path, tmp_path: Path, name: str, *, fail_on: list[str] | None = None
) -> RunResult:
    spec = load_spec(
        write_toy_spec(tmp_path / f"{name}.yaml", tile_size=48, fail_on=fail_on)
    )
    config = RunConfig(
        scenes=(str(scene),),
        model=spec.source or "",
        out=str(tmp_path / name),
        overlap=8,
        batch_size=2,
        probabilities=True,
        vectors=False,
    )
    return run_predict(config, model=ConvBackend(spec))


def _tifs(res: RunResult) -> dict[str, bytes]:
    got = {
        role: Path(p).read_bytes()
        for role, p in res.scenes[0].outputs.items()
        if p.endswith(".tif")
    }
    assert {"mask", "confidence", "probabilities", "uncertainty"} <= got.keys()
    return got


@pytest.fixture
def takes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records, per finalized stream, whether it had written every core."""
    seen: list[bool] = []
    take = stream_mod.BlockStream.take

    def spy(self: stream_mod.BlockStream) -> Any:
        sinks = take(self)
        seen.append(sinks is not None)
        return sinks

    monkeypatch.setattr(stream_mod.BlockStream, "take", spy)
    return seen


def test_streamed_equals_store_finalize(
    scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, takes: list[bool]
) -> None:
    streamed = _run(scene, tmp_path, "streamed")
    assert streamed.ok and takes == [True]  # the stream wrote every core

    with monkeypatch.context() as m:  # as a cluster executor: finalize from the store
        m.setattr(LocalExecutor, "in_process", False)
        from_store = _run(scene, tmp_path, "store")
    assert from_store.ok and takes == [True]  # no stream this time
    assert _tifs(streamed) == _tifs(from_store)


def test_a_stream_that_fails_leaves_finalize_to_the_store(
    scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, takes: list[bool]
) -> None:
    reference = _tifs(_run(scene, tmp_path, "ref"))
    write = outputs.MaskSink.write

    def fail_in_stream(self: outputs.MaskSink, block: Any) -> None:
        if threading.current_thread().name == "geolabel-finalize":
            raise RuntimeError("sink broke")
        write(self, block)

    monkeypatch.setattr(outputs.MaskSink, "write", fail_in_stream)
    res = _run(scene, tmp_path, "broken")
    assert res.ok, res.scenes[0].error
    assert takes == [True, False]  # the second stream gave up; the store finished it
    assert _tifs(res) == reference
    assert not [p for p in (tmp_path / "broken").rglob("*") if ".partial" in p.name]


def test_unfinished_scene_drops_the_stream_then_resumes(
    scene: Path, tmp_path: Path, takes: list[bool]
) -> None:
    reference = _tifs(_run(scene, tmp_path, "ref"))
    failed = _run(scene, tmp_path, "run", fail_on=["r00002c00003"])
    assert failed.scenes[0].status == "incomplete"
    folder = tmp_path / "run" / "s"
    assert not [p for p in folder.rglob("*") if ".partial" in p.name]
    assert not list(folder.glob("s_*.tif"))  # no output of an unfinished scene

    spec = load_spec(write_toy_spec(tmp_path / "again.yaml", tile_size=48))
    again = run_predict(
        RunConfig(
            scenes=(str(scene),),
            model=spec.source or "",
            out=str(tmp_path / "run"),
            overlap=8,
            batch_size=2,
            probabilities=True,
            vectors=False,
            retry_failed=True,
        ),
        model=ConvBackend(spec),
    )
    assert failed.scenes[0].failed_tiles  # the failed batch only is redone
    assert again.ok and again.scenes[0].tiles_run == len(failed.scenes[0].failed_tiles)
    assert takes == [True, True]  # streamed again, from the tiles in the store
    assert _tifs(again) == reference
