"""The README walkthrough: every ```bash and ```python block of README.md runs, in
order (issues 19 and 17).

A newcomer follows the README block by block; so does this test, on a temporary folder
holding copies of the repo's shipped files. Commands run in process through the click
group (as ``geolabel`` on a shell would), so one torch import serves them all.

What the test changes, all listed here:

* ``PLACEHOLDERS``: the README's stand-in file names and the shipped file each one is
  made from. Scenes are crops of the shipped Landsat-7 scene (one model tile each, so
  the walkthrough stays under a minute on 2 cores); ``reference.tif`` is the same crop
  of the shipped ``strata.tif`` oracle map.
* ``PROGRAMS``: ``scripts/setup.sh`` is not run (the test runs inside the environment it
  makes); ``geolabel`` and ``.venv/bin/geolabel`` are this interpreter's geolabel.
* ``SPEED``: options appended to the slowest commands (training steps, simulation
  rounds); the command is otherwise run as written.
* A block preceded by ``<!-- readme-test: skip (why) -->`` is not run, and neither is a
  line ending in ``# illustrative``. Both markers are visible in README.md.
* ```python blocks run in one namespace, in the same folder, after the bash blocks
  above them (the notebook-style Python API example; its asserts are its promises).

After each command the test asserts exit code 0 and what the README promises of it
(``PROMISES``). Separately, every repo path the README names in backticks must exist.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pyogrio
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.windows import Window

from geolabel.cli.main import cli

from .conftest import requires_torch

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
NC = "src/geolabel/_data/nc-landsat7"
#: Crop of the shipped scenes: (row_off, col_off, height, width), one 256 tile.
CROP = (120, 150, 160, 180)
#: placeholder -> (shipped file, how it is made): "crop" (raster window ``CROP``),
#: "layer:NAME" (that layer of a GeoPackage, alone), "copy".
PLACEHOLDERS: dict[str, tuple[str, str]] = {
    "scene.tif": (f"{NC}/nc_landsat7_2000.tif", "crop"),
    "a.tif": (f"{NC}/nc_landsat7_2000.tif", "crop"),
    "b.tif": (f"{NC}/nc_landsat7_2000.tif", "crop"),
    "reference.tif": (f"{NC}/strata.tif", "crop"),
    "points.gpkg": (f"{NC}/labels.gpkg", "layer:points"),
    "first.gpkg": (f"{NC}/labels.gpkg", "layer:points"),
    "labelled.gpkg": (f"{NC}/labels.gpkg", "layer:polygons"),
}
#: Shipped files and folders copied into the temporary folder (README paths use them).
SHIPPED = ("src/geolabel/_data", "tests/data/neon-trees", "configs")
#: program -> None (not run; see the module docstring) or "geolabel" (in process).
PROGRAMS: dict[str, str | None] = {
    "scripts/setup.sh": None,
    "geolabel": "geolabel",
    ".venv/bin/geolabel": "geolabel",
}
#: (subcommand, options appended) for speed.
SPEED: dict[str, list[str]] = {
    "train": ["--steps", "2"],
    "simulate": [
        "--arm",
        "random/points",
        "--arm",
        "random/regions",
        "--seed",
        "0",
        "--rounds",
        "1",
        "--round-seconds",
        "10",
        "--initial-steps",
        "2",
        "--round-steps",
        "1",
        "--full-steps",
        "2",
    ],
}
SKIP_BLOCK = re.compile(r"<!--\s*readme-test:\s*skip\b")
ILLUSTRATIVE = "# illustrative"


def bash_blocks(text: str) -> Iterator[tuple[int, list[str]]]:
    """``(line number, commands)`` of each ```bash block not marked to be skipped."""
    for line_no, lang, body in fenced_blocks(text):
        if lang == "bash":
            yield line_no, _commands(body)


def fenced_blocks(text: str) -> Iterator[tuple[int, str, list[str]]]:
    """``(line number, language, lines)`` of each ```bash/```python block not marked
    to be skipped, in document order."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        lang = lines[i].strip().removeprefix("```")
        if not lines[i].strip().startswith("```") or lang not in ("bash", "python"):
            i += 1
            continue
        start = i
        skip = start > 0 and bool(SKIP_BLOCK.search(lines[start - 1]))
        body: list[str] = []
        i += 1
        while lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        i += 1
        if not skip:
            yield start + 1, lang, body


def _commands(body: list[str]) -> list[str]:
    joined: list[str] = []
    for line in body:
        if joined and joined[-1].endswith("\\"):
            joined[-1] = joined[-1][:-1] + " " + line.strip()
        else:
            joined.append(line)
    out = []
    for line in joined:
        s = line.strip()
        if not s or s.startswith("#") or s.endswith(ILLUSTRATIVE):
            continue
        out.extend(part.strip() for part in s.split("&&"))
    return out


def _make_placeholders(root: Path) -> None:
    r, c, h, w = CROP
    for name, (src, how) in PLACEHOLDERS.items():
        dst = root / name
        if how == "crop":
            with rasterio.open(REPO / src) as ds:
                win = Window(c, r, w, h)
                profile = ds.profile | {
                    "height": h,
                    "width": w,
                    "transform": ds.window_transform(win),
                    "tiled": False,
                }
                profile.pop("blockxsize", None)
                profile.pop("blockysize", None)
                with rasterio.open(dst, "w", **profile) as out:
                    out.write(ds.read(window=win))
                    for b in range(1, ds.count + 1):
                        out.set_band_description(b, ds.descriptions[b - 1])
        elif how.startswith("layer:"):
            df = pyogrio.read_dataframe(REPO / src, layer=how.split(":", 1)[1])
            pyogrio.write_dataframe(df, dst, layer=how.split(":", 1)[1])
        else:
            shutil.copy(REPO / src, dst)


def _json(text: str) -> dict:
    return json.loads(text)


def _run_record(path: str) -> dict:
    return json.loads((Path(path) / "run.json").read_text())


def _promise(args: list[str], out: str, err: str) -> None:
    """Assert what the README says of this command (by subcommand and arguments)."""
    cmd, rest = args[0], args[1:]
    opt = dict(zip(rest, [*rest[1:], ""], strict=False))
    if cmd == "demo":
        assert "demo outputs are in" in err
    elif cmd == "info":
        assert _json(out)["shape"] == list(CROP[2:])
    elif cmd == "predict":
        doc = _run_record(opt["-o"])
        scenes = [a for a in rest if a.endswith(".tif") and opt.get("-m") != a]
        recorded = {Path(s["scene"]).name: s for s in doc["scenes"]}
        for s in scenes:
            assert recorded[Path(s).name]["status"] == "done"
        assert (Path(opt["-o"]) / "run.qgs").is_file()
    elif cmd == "export-onnx":
        onnx = Path(rest[1])
        assert onnx.is_file() and onnx.with_suffix(".yaml").is_file()
    elif cmd == "evaluate":
        scores = _json(out)
        if scores.get("kind") == "boxes":  # "AP50, precision, recall"
            assert {"ap50", "precision", "recall"} <= set(scores)
            assert "AP" in err and "recall" in err
        else:  # "per-class IoU/F1 and the confusion matrix (table on stderr)"
            assert "miou" in scores and "confusion_matrix" in scores
            assert "IoU" in err and "confusion matrix" in err
    elif cmd == "prioritize":
        assert (Path(rest[0]) / "next_to_label.gpkg").is_file()
        assert (Path(rest[0]) / "next_to_label.csv").is_file()
        budget = int(opt.get("--budget") or opt.get("-n") or 0)
        if len(_json(out)["picks"]) < budget:  # "a shorter queue says why"
            assert "For more picks" in err
    elif cmd == "accept":
        assert "labels" in {n for n, _ in pyogrio.list_layers(opt["-o"])}
    elif cmd == "train":
        spec = Path(opt["-o"])
        assert spec.is_file() and spec.with_suffix(".safetensors").is_file()
    elif cmd == "simulate":
        assert Path(opt["-o"]).is_file()


def _outputs_state(args: list[str]) -> dict[Path, int]:
    """Modification times of a run folder's outputs (a re-run that redoes nothing keeps
    them all, run.json and run.qgs included; the folder lock is not an output)."""
    out = Path(args[args.index("-o") + 1])
    kinds = {".tif", ".gpkg", ".qgs", ".json", ".qml", ".xml"}
    return {
        p: p.stat().st_mtime_ns
        for p in out.rglob("*")
        if p.is_file() and p.suffix in kinds and not p.name.startswith(".")
    }


@requires_torch
def test_readme_walkthrough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for rel in SHIPPED:
        src = REPO / rel
        shutil.copytree(src, tmp_path / rel)
    _make_placeholders(tmp_path)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    ran = 0
    took: dict[str, float] = {}
    namespace: dict[str, object] = {"__name__": "readme"}
    for line_no, lang, body in fenced_blocks(README.read_text()):
        if lang == "python":
            t0 = time.perf_counter()
            code = compile("\n".join(body), f"README.md:{line_no + 1}", "exec")
            exec(code, namespace)  # the block's asserts are what the README promises
            took[f"python block at README.md:{line_no}"] = time.perf_counter() - t0
            ran += 1
            continue
        for command in _commands(body):
            words = shlex.split(command, comments=True)
            comment = command.partition(" #")[2]
            program = PROGRAMS.get(words[0], "missing")
            assert program != "missing", f"README.md:{line_no}: unknown {words[0]!r}"
            if program is None:
                continue
            args = words[1:] + SPEED.get(words[1], [])
            before = _outputs_state(args) if "redoes nothing" in comment else None
            t0 = time.perf_counter()
            r = runner.invoke(cli, args)
            took[command] = time.perf_counter() - t0
            where = f"README.md:{line_no}: {command}"
            assert r.exit_code == 0, (where, r.stderr, r.exception)
            _promise(args, r.stdout, r.stderr)
            if before is not None:  # "run again: resumes, redoes nothing"
                assert _outputs_state(args) == before, where
            ran += 1
    for command, seconds in took.items():
        print(f"{seconds:6.1f} s  {command}")
    assert ran >= 15


#: Path-like backticked words: repo paths the README names must exist.
_PATH = re.compile(r"`((?:src|configs|scripts|docs|tests|benchmarks|\.ci)/[^`\s]*)`")


def test_readme_names_only_existing_files() -> None:
    text = README.read_text()
    named = set(_PATH.findall(text))
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        named |= set(
            re.findall(r"(?:src|configs|scripts|docs|tests|benchmarks)/[\w./-]+", block)
        )
    assert named, "the README names repo paths"
    missing = sorted(p for p in named if not (REPO / p.rstrip("/")).exists())
    assert not missing, f"README.md names files that do not exist: {missing}"
