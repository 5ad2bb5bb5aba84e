"""The object run store: one small JSON record per tile, written atomically.

Detection and tile-classification runs keep each tile's raw output (boxes in
read-window pixels, scores, labels, instance outlines as WKB hex, or tile class
scores) in ``objects/<rRRRRRcCCCCC>.json``. A record is written to a temporary name,
fsynced and renamed, so it is either whole or absent; a redone tile replaces its own
file and nothing is ever added twice. ``objects/store.json`` holds the run token: a
store made with other settings is refused. As for the Zarr store, the manifest (not
a file's presence) says which tiles are done.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import shapely

from geolabel.errors import RunStateError
from geolabel.grid import Tile
from geolabel.io.tempnames import partial_path

__all__ = ["ObjectStore"]


def _name(tile: Tile) -> str:
    return f"r{tile.index[0]:05d}c{tile.index[1]:05d}.json"


class ObjectStore:
    """Per-tile detection / classification records of one scene.

    Args:
        path: the store folder (created).
        token: the run token; an existing store with another token is refused.

    Raises:
        RunStateError: the folder holds a store of another configuration.
    """

    def __init__(self, path: Path, token: str) -> None:
        """Open or create the store."""
        self.path = path
        meta = path / "store.json"
        if meta.exists():
            found = json.loads(meta.read_text()).get("token")
            if found != token:
                raise RunStateError(
                    f"{path}: the object store was made with other settings (token {found!r}, "
                    f"now {token!r}); use another --out or pass --overwrite"
                )
        else:
            path.mkdir(parents=True, exist_ok=True)
            self._write(meta, {"token": token})
        self.token = token

    @staticmethod
    def _write(path: Path, doc: dict[str, Any]) -> None:
        # Per process: shards of one scene start together and must not rename
        # (or truncate) each other's temporary file.
        tmp = partial_path(path, ".partial", keep_suffix=True)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def has(self, tile: Tile) -> bool:
        """Whether the tile has a record file (the manifest says if it is done)."""
        return (self.path / _name(tile)).is_file()

    def write(self, tile: Tile, record: dict[str, Any]) -> None:
        """Store one tile's record atomically (replacing an earlier one).

        ``record`` is JSON-able except for an optional ``polygons`` list of shapely
        geometries (instance outlines), which is stored as WKB hex.
        """
        doc = dict(record, tile_id=tile.id)
        if doc.get("polygons") is not None:
            doc["polygons"] = [shapely.to_wkb(g, hex=True) for g in doc["polygons"]]
        self._write(self.path / _name(tile), doc)

    def read(self, tile: Tile) -> dict[str, Any]:
        """The record of a tile (``polygons`` decoded to shapely geometries).

        Raises:
            RunStateError: the tile has no record or a record of another tile.
        """
        path = self.path / _name(tile)
        try:
            doc: dict[str, Any] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise RunStateError(
                f"{path}: tile {tile.id} has no readable record: {err}"
            ) from err
        if doc.get("tile_id") != tile.id:
            raise RunStateError(
                f"{path}: holds tile {doc.get('tile_id')!r}, expected {tile.id!r}"
            )
        if doc.get("polygons") is not None:
            doc["polygons"] = [shapely.from_wkb(h) for h in doc["polygons"]]
        return doc
