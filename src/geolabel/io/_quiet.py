"""Silence third-party warnings that only restate a choice the caller made.

A pixel-space scene (``--allow-pixel-space``) has no geotransform and no CRS by
choice: rasterio's ``NotGeoreferencedWarning`` (on reading it and on writing its
outputs) and pyogrio's "'crs' was not provided" (on writing its vectors) say nothing
new. geolabel checks georeferencing itself and refuses such a scene unless asked.

``warnings.catch_warnings`` restores a snapshot of all filters and so is not
thread-safe (outputs are published from a thread pool): the two narrow filters are
added while any thread is inside :func:`pixel_space_ok` and then removed, leaving
every other filter as it is.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rasterio.errors import NotGeoreferencedWarning

__all__ = ["pixel_space_ok"]

_LOCK = threading.Lock()
_users = 0
_added: list[Any] = []


def _add_filters() -> None:
    warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)
    warnings.filterwarnings(
        "ignore", message="'crs' was not provided", category=UserWarning
    )
    _added[:] = warnings.filters[:2]


def _remove_filters() -> None:
    filters: list[Any] = warnings.filters  # type: ignore[assignment]  # a list
    for entry in _added:
        if entry in filters:
            filters.remove(entry)
    _added.clear()


@contextmanager
def pixel_space_ok(active: bool = True) -> Iterator[None]:
    """Ignore the "not georeferenced" and "no CRS" warnings inside the block.

    Args:
        active: ``False`` leaves the warning filters alone (a georeferenced output).
    """
    global _users
    if not active:
        yield
        return
    with _LOCK:
        if _users == 0:
            _add_filters()
        _users += 1
    try:
        yield
    finally:
        with _LOCK:
            _users -= 1
            if _users == 0:
                _remove_filters()
