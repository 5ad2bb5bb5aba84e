"""BlockStream on its own: row-major blocks, each only once its neighbours are in."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from affine import Affine

from geolabel.grid import SceneGrid, Tile, TileGrid
from geolabel.stitch._halo import halo_size
from geolabel.stitch.blend import Block, HaloCache
from geolabel.stitch.stream import BlockStream

C = 2  # classes


class _Sink:
    role = "test"

    def __init__(self, added: set[int], lock: threading.Lock) -> None:
        self.added, self.lock = added, lock
        self.order: list[tuple[int, int]] = []
        self.seen_neighbours: list[bool] = []
        self.closed = self.aborted = False

    def write(self, block: Block) -> None:
        r, c = block.tile.index
        rows, cols = GRID.shape
        need = {
            nr * cols + nc
            for nr in range(max(r - 1, 0), min(r + 2, rows))
            for nc in range(max(c - 1, 0), min(c + 2, cols))
        }
        with self.lock:
            self.seen_neighbours.append(need <= self.added)
        self.order.append(block.tile.index)

    def close(self) -> Path:
        self.closed = True
        return Path("test")

    def abort(self) -> None:
        self.aborted = True


GRID = TileGrid(SceneGrid((70, 90), Affine(1, 0, 0, 0, -1, 70), None), 32, 4)


def _core(tile: Tile) -> np.ndarray:
    out = np.zeros((C + 1, *tile.core_window.shape), dtype=np.float32)
    out[0], out[C] = 1.0, 1.0  # class 0 everywhere, weight 1
    return out


def _halo() -> np.ndarray:
    return np.zeros((C + 1, max(halo_size(GRID), 1)), dtype=np.float32)


def _stream(
    done: tuple[int, ...] = (),
) -> tuple[BlockStream, list[_Sink], set[int], threading.Lock]:
    added: set[int] = set(done)
    lock = threading.Lock()
    sinks: list[_Sink] = []

    def open_sinks() -> list[_Sink]:
        sinks.append(_Sink(added, lock))
        return list(sinks)

    stream = BlockStream(
        GRID,
        _core,
        HaloCache(lambda i: _halo(), size=4),
        C,
        open_sinks,  # type: ignore[arg-type]
        done,
    )
    return stream, sinks, added, lock


def _add(
    stream: BlockStream, added: set[int], lock: threading.Lock, index: int
) -> None:
    with lock:
        added.add(index)
    stream.add(index, _halo())


def test_blocks_come_row_major_after_their_neighbours() -> None:
    n = len(GRID)
    assert GRID.shape[0] >= 3 and GRID.shape[1] >= 3
    # resume: the first row is in the store already; the rest arrives out of order
    first_row = tuple(range(GRID.shape[1]))
    stream, sinks, added, lock = _stream(done=first_row)
    for index in reversed(range(len(first_row), n)):
        _add(stream, added, lock, index)
    got = stream.take()
    assert got is not None and got == sinks
    (sink,) = sinks
    assert sink.order == [t.index for t in GRID]
    assert all(sink.seen_neighbours) and not sink.aborted


def test_a_missing_tile_gives_nothing_and_drops_partials() -> None:
    stream, sinks, added, lock = _stream()
    missing = len(GRID) - 1  # the last tile never comes
    for index in range(missing):
        _add(stream, added, lock, index)
    assert stream.take() is None
    (sink,) = sinks
    # row-major up to the first core next to the missing tile, then nothing
    rows, cols = GRID.shape
    assert sink.order == [t.index for t in GRID][: (rows - 2) * cols + cols - 2]
    assert sink.aborted


def test_abort_stops_a_waiting_stream() -> None:
    stream, sinks, added, lock = _stream()
    _add(stream, added, lock, 0)
    stream.abort()  # returns: the thread stopped waiting
    assert sinks and sinks[0].aborted and sinks[0].order == []
