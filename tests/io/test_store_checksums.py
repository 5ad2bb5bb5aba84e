"""Damaged run-store chunks are detected by their checksums and recomputed."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from geolabel.cli.main import cli


def _run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["-q", *args])
    return r.exit_code, r.stderr


def _damage(chunk: Path) -> None:
    data = bytearray(chunk.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 16):
        data[i] ^= 0x5A
    chunk.write_bytes(bytes(data))


def _rows(sdir: Path) -> list[dict[str, str]]:
    return [
        json.loads(line)
        for p in sorted((sdir / "manifest").glob("*.jsonl"))
        for line in p.read_text().splitlines()
    ]


def test_damaged_chunk_is_recomputed(
    tmp_path: Path, scene_path: Path, toy_spec_path: Path
) -> None:
    run = tmp_path / "run"
    args = ("predict", str(scene_path), "-m", str(toy_spec_path), "-o", str(run))
    code, err = _run(*args)
    assert code == 0, err
    sdir = run / scene_path.stem
    outputs = {p.name: p.read_bytes() for p in sdir.glob("scene_*.tif")}
    core = sdir / "store.zarr" / "core" / "c" / "0" / "1" / "1"
    halo = sdir / "store.zarr" / "halo" / "c" / "3" / "0" / "0"
    _damage(core)
    _damage(halo)
    (sdir / "scene_mask.tif").unlink()  # the scene must be finalized again
    before = len(_rows(sdir))
    code, err = _run(*args)
    assert code == 0 and "Traceback" not in err, err
    assert {p.name: p.read_bytes() for p in sdir.glob("scene_*.tif")} == outputs
    rows = _rows(sdir)[before:]
    redone = {r["tile_id"] for r in rows if r["status"] == "done"}
    assert any(t.endswith("r00001c00001") for t in redone)
    tiles = json.loads((run / "run.json").read_text())["scenes"][0]["tiles"]
    assert len(redone) < tiles  # only the batches holding the damaged tiles
