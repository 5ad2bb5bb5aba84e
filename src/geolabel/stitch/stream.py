"""Finalise a scene while its tiles run: blend each core as soon as it can be blended.

A core's blend needs its own tile and its (up to 8) neighbours, nothing else. In an
in-process run the tiles arrive in about row-major order, so core ``(r, c)`` can be
blended once the tile row below it has reached column ``c + 1``, long before the
scene's last tile. :class:`BlockStream` does that in a thread beside the tile loop:
the tile sink tells it each tile it has written to the run store (handing over the
tile's halo record); look-ahead threads read and blend the cores that are ready, and
the stream's thread feeds them, row-major (the order every :class:`BlockSink` needs), to
the sinks (COG writers, tile layer) it opened itself. When the loop ends, only the last
row of cores and the publishing (overviews, compression) are left, instead of a second
pass over the whole store.

The run store stays the record: every tile is in the store before the stream sees it,
so a run killed at any point resumes from the store as before, and a stream that could
not finish (a failed tile, a stop, an error in a sink) drops its partial files and
finalize blends from the store instead. The blocks are computed by the same
:func:`~geolabel.stitch.blend.blend_core` on the same float32 sums (the store's
encoding is lossless), so the outputs have the same bytes either way.

Memory stays bounded and does not grow with the scene: a core's sums are read back
from the store when it is blended (moments after they were written, so from the page
cache; keeping them in memory instead cost ~280 MiB of peak RSS at 5000² for 0.4 s of
CPU), and the halo records the writers hand over live in a
:class:`~geolabel.stitch.blend.HaloCache` of bounded size.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from geolabel.grid import Tile, TileGrid
from geolabel.io.stages import lower_priority, stage_depth, stage_threads
from geolabel.stitch.blend import Block, HaloCache, blend_core

__all__ = ["BlockSink", "BlockStream", "blend_ahead"]

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]


class BlockSink(Protocol):
    """Receives blended cores in row-major order and writes one output.

    A sink whose ``write`` needs another sink's result for the same block (see
    ``uncertainty.sinks.TileLayerSink``) comes after it in finalize's list.
    """

    role: str

    def write(self, block: Block) -> None:
        """Consume one blended core."""
        ...

    def close(self) -> Path:
        """Publish the output; returns its path."""
        ...

    def abort(self) -> None:
        """Drop partial files."""
        ...


class BlockStream:
    """Blends and writes a scene's cores in a thread while the tile loop runs.

    Args:
        grid: the scene's tile grid.
        read_core: a core's ``(C+1, rows, cols)`` sums from the run store.
        halos: the halo records (a cache over the store's; :meth:`add` fills it).
        num_classes: class channels (the rest are stitched extra channels).
        open_sinks: makes the output sinks; called on the stream's thread, which
            is the only one that writes them.
        done: flat indexes of tiles whose data is in the store already (resume).
    """

    def __init__(
        self,
        grid: TileGrid,
        read_core: Callable[[Tile], F32],
        halos: HaloCache,
        num_classes: int,
        open_sinks: Callable[[], list[BlockSink]],
        done: Iterable[int] = (),
    ) -> None:
        """Start the stream's thread."""
        self._grid = grid
        self._read_core = read_core
        self._halos = halos
        self._num_classes = num_classes
        self._open_sinks = open_sinks
        self._done = np.zeros(grid.shape, dtype=bool)
        for i in done:
            self._done.flat[i] = True
        self._cond = threading.Condition()
        self._ended = False  # no more tiles will come
        self._stopped = False  # give up now
        self._sinks: list[BlockSink] = []
        self.written = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name="geolabel-finalize", daemon=True
        )
        self._thread.start()

    def add(self, index: int, halo: F32) -> None:
        """Tile ``index`` is in the store, with this halo record (any thread)."""
        self._halos.put(index, halo)
        with self._cond:
            self._done.flat[index] = True
            self._cond.notify_all()

    def take(self) -> list[BlockSink] | None:
        """After the last tile: the sinks, every core written, ready to publish.

        Waits for the stream to blend what is left. ``None`` when it could not write
        every core (tiles missing, an error): its partial files are dropped then, and
        the caller finalises from the store.
        """
        with self._cond:
            self._ended = True
            self._cond.notify_all()
        self._thread.join()
        if self.error is None and self.written == len(self._grid):
            return self._sinks
        if self.error is not None:
            logger.debug("streamed finalize stopped: %r", self.error)
        self._abort_sinks()
        return None

    def abort(self) -> None:
        """Stop and drop the partial files (the scene did not finish)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join()
        self._abort_sinks()

    def _abort_sinks(self) -> None:
        for sink in self._sinks:
            sink.abort()
        self._sinks = []

    def _ready(self, tile: Tile) -> bool:
        """Whether the tile and its neighbours are all in the store (lock held)."""
        r, c = tile.index
        return bool(self._done[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2].all())

    def _wait(self, tile: Tile) -> bool:
        """Wait until ``tile`` can be blended; False if it never will be."""
        with self._cond:
            while not self._ready(tile):
                if self._ended or self._stopped:
                    return False
                self._cond.wait()
            return not self._stopped

    def _blend(self, tile: Tile) -> Block:
        own = self._read_core(tile)
        return blend_core(self._grid, tile, own, self._num_classes, self._halos)

    def _run(self) -> None:
        lower_priority()  # behind the model, like the store writers
        try:
            self._sinks = self._open_sinks()
            self._write_blocks()
        except BaseException as err:  # reported by take(); finalize redoes it
            self.error = err

    def _write_blocks(self) -> None:
        """Write the cores as they become ready, blended ahead as finalize does from
        the store: after the last tile, the rest goes at finalize's pace."""
        ready = itertools.takewhile(self._wait, self._grid)
        for block in blend_ahead(ready, self._blend, initializer=lower_priority):
            for sink in self._sinks:
                sink.write(block)
            self.written += 1


def blend_ahead(
    tiles: Iterable[Tile],
    blend: Callable[[Tile], Block],
    *,
    initializer: Callable[[], None] | None = None,
) -> Iterator[Block]:
    """``blend(tile)`` for each tile, in order, the next ones computed in
    ``stage_threads()`` threads (at most ``stage_depth()`` ahead, so memory stays
    bounded) while the caller consumes this one. ``tiles`` may block until the next
    tile is ready; each block is computed the same way whatever the threads.
    """
    it = iter(tiles)
    with ThreadPoolExecutor(
        stage_threads(), thread_name_prefix="geolabel-blend", initializer=initializer
    ) as pool:
        ahead: deque[Future[Block]] = deque()

        def submit(n: int) -> None:
            ahead.extend(pool.submit(blend, t) for t in itertools.islice(it, n))

        submit(stage_depth())
        try:
            while ahead:
                # queued after the caller is done with this one: a blocking ``tiles``
                # never holds back a block that is ready
                yield ahead.popleft().result()
                submit(1)
        finally:
            for pending in ahead:
                pending.cancel()
