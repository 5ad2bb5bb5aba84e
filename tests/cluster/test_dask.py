"""dask.distributed execution: a LocalCluster, an existing scheduler, a lost worker."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from geolabel.config import RunConfig
from geolabel.errors import ConfigError
from geolabel.execution.executors import parse_cluster
from geolabel.execution.preempt import Preempted, preemption_guard
from geolabel.pipeline import run_predict

from .conftest import Case, done_rows, output_digests, squares_case

distributed = pytest.importorskip("distributed", reason="needs the [cluster] extra")


def test_cluster_option_forms() -> None:
    assert parse_cluster("local") == ("local", "")
    assert parse_cluster("local:3") == ("localcluster", "3")
    assert parse_cluster("tcp://10.0.0.1:8786") == ("scheduler", "tcp://10.0.0.1:8786")
    assert parse_cluster("slurm:configs/cluster/slurm.yaml") == (
        "slurm",
        "configs/cluster/slurm.yaml",
    )
    for bad in ("local:0", "slurm:", "kubernetes", "10.0.0.1:8786"):
        with pytest.raises(ConfigError, match="--cluster"):
            parse_cluster(bad)


def test_unreachable_scheduler_is_one_clear_error(
    tmp_path: Path, small_case: Case
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    import dask

    with (
        dask.config.set({"distributed.comm.timeouts.connect": "2s"}),
        pytest.raises(ConfigError, match=f"tcp://127.0.0.1:{port}: cannot reach"),
    ):
        run_predict(
            small_case.config(tmp_path / "r", cluster=f"tcp://127.0.0.1:{port}")
        )


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[tuple[Any, Any]]:
    """Two single-threaded worker processes (shared by the tests of this module)."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as lc,
        Client(lc) as client,
    ):
        yield lc, client


def test_killing_a_worker_mid_run_loses_and_duplicates_nothing(
    tmp_path: Path, small_case: Case, local_cluster: tuple[Any, Any]
) -> None:
    from geolabel.execution.worker import model_loads

    run = tmp_path / "run"
    killed: dict[str, Any] = {}
    lc, client = local_cluster
    pids = client.run(os.getpid)
    stop = threading.Event()

    failures: list[BaseException] = []

    def killer() -> None:
        deadline = time.monotonic() + 60
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                busy = {w: keys for w, keys in client.processing().items() if keys}
                if sum(done_rows(run).values()) >= 2 and busy:
                    addr, keys = sorted(busy.items())[0]
                    killed.update(
                        addr=addr,
                        keys=list(keys),
                        done_at_kill=sum(done_rows(run).values()),
                    )
                    os.kill(pids[addr], signal.SIGKILL)
                    return
                time.sleep(0.02)
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        result = run_predict(small_case.config(run, cluster=lc.scheduler_address))
    finally:
        stop.set()
        t.join(5)
    loads = client.run(model_loads)
    assert not failures, failures
    assert killed, "no worker was killed while batches ran"
    assert killed["keys"] and killed["done_at_kill"] < 20
    assert result.ok, [s.error for s in result.scenes]
    rows = done_rows(run)
    assert len(rows) == 20 and set(rows.values()) == {1}, (
        "every tile recorded done exactly once"
    )
    assert output_digests(run) == output_digests(small_case.reference)
    # at most one model load per worker process, for 10 batches (the restarted worker,
    # if it got a batch, loaded it anew)
    assert loads and all(n == 1 for v in loads.values() for n in v.values()), loads
    assert sum(len(v) for v in loads.values()) >= 1


def test_sigterm_stops_a_distributed_run_between_results_and_it_resumes(
    tmp_path: Path, small_case: Case, local_cluster: tuple[Any, Any]
) -> None:
    run = tmp_path / "run"
    lc, _ = local_cluster
    config = small_case.config(run, cluster=lc.scheduler_address)

    def term_after_first_results() -> None:
        deadline = time.monotonic() + 60
        while sum(done_rows(run).values()) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(
            os.getpid(), signal.SIGTERM
        )  # a real signal to this (main-thread) handler

    t = threading.Thread(target=term_after_first_results, daemon=True)
    t.start()
    with pytest.raises(Preempted), preemption_guard(grace_s=120):
        run_predict(config)
    t.join(5)
    kept = done_rows(run)
    assert 0 < len(kept) < 20 and set(kept.values()) == {1}
    assert not (run / "run.json").exists()
    result = run_predict(config)
    assert result.ok and result.scenes[0].tiles_run == 20 - len(kept)
    assert set(done_rows(run).values()) == {1}
    assert output_digests(run) == output_digests(small_case.reference)


@pytest.mark.slow  # ~20 s on 2 busy cores (process start-up); the kill test covers the executor
def test_local_processes_target(tmp_path: Path, small_case: Case) -> None:
    result = run_predict(small_case.config(tmp_path / "run", cluster="local:2"))
    assert result.ok
    assert output_digests(tmp_path / "run") == output_digests(small_case.reference)


@pytest.mark.parametrize("task", ["detection", "classification"])
def test_object_tasks_run_on_the_cluster_with_the_same_bytes(
    tmp_path: Path, local_cluster: tuple[Any, Any], task: str
) -> None:
    scene, spec = squares_case(tmp_path, task)

    def config(out: str, **kw: Any) -> RunConfig:
        return RunConfig(
            scenes=(str(scene),), model=str(spec), out=str(tmp_path / out), **kw
        )

    assert run_predict(config("reference", batch_size=2)).ok
    lc, _ = local_cluster
    result = run_predict(config("run", batch_size=2, cluster=lc.scheduler_address))
    assert result.ok, [s.error for s in result.scenes]
    assert result.scenes[0].tiles_run == 16
    assert set(done_rows(tmp_path / "run").values()) == {1}
    assert output_digests(tmp_path / "run") == output_digests(tmp_path / "reference")
