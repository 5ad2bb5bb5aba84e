"""Benchmark: geolabel predict vs the raw model forward vs a naive torchgeo pipeline.

One command, one machine, the same weights (a seeded random-init U-Net saved as
safetensors, loaded by all three):

(a) ``raw``: the model's forward alone, in the mode ``--precision auto`` picks, on real
    tiles held in memory; its time per tile (timed right before and right after
    geolabel, mean of the two) times the number of tiles geolabel runs.
(b) ``geolabel``: ``geolabel predict`` end to end (a subprocess: start-up, reads,
    model, blending store, mask + confidence COGs) with the spec's blending overlap.
(c) ``naive``: torchgeo RasterDataset + GridGeoSampler + DataLoader, no overlap,
    argmax into a scene-sized array (benchmarks/naive_torchgeo.py, run in
    .venv-torchgeo: see setup_torchgeo.sh), in fp32 and (``naive_bf16``) with the
    bf16 autocast + channels-last forward a competent user writes. Without
    .venv-torchgeo the same chips are read with rasterio windows (``--naive-loader``).
(d) ``read``: the read-only ceiling, geolabel's read windows decoded with rasterio
    in ``--read-threads`` threads and nothing else (benchmarks/read_only.py).

``--threads 1,2`` repeats raw and geolabel with 1 and 2 model threads.

Scenes of N x N pixels are made by mirror-tiling the real Landsat-8 sample (4th band =
mean of the three) into tiled GeoTIFFs in ``--workdir``. Peak RSS of each subprocess
is its own ``VmHWM`` (benchmarks/peak_rss.py). Results:
``benchmarks/results/bench-<time>.json`` and a table.

Usage: .venv/bin/python benchmarks/bench_predict.py --sizes 5000,10000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from geolabel.io.run_record import resolve_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from read_only import grid_windows, read_windows

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests/data/landsat8-foz/LC08_L1TP_224078_20200518_20200518_01_RT.TIF"
RESULTS = ROOT / "benchmarks/results"
GEOLABEL = str(Path(sys.executable).with_name("geolabel"))
TG_PYTHON = ROOT / ".venv-torchgeo/bin/python"
MIB = 1024 * 1024


def _mirror(n: int, length: int) -> np.ndarray:
    """Indexes 0..n-1 mirrored into a source of ``length`` (…, L-1, L-1, …, 0, 0, …)."""
    i = np.arange(n) % (2 * length)
    return np.where(i < length, i, 2 * length - 1 - i)


def make_scene(size: int, workdir: Path) -> Path:
    """A ``size`` x ``size`` 4-band uint16 tiled GeoTIFF mirrored from the sample (cached)."""
    path = workdir / f"landsat8-mirror-{size}.tif"
    if path.exists():
        with rasterio.open(path) as ds:
            if ds.shape == (size, size) and ds.count == 4:
                return path
    with rasterio.open(SAMPLE) as src:
        data = src.read()
        profile = src.profile
    four = np.concatenate([data, data.mean(axis=0, keepdims=True).astype(data.dtype)])
    cols = _mirror(size, four.shape[2])
    profile.update(
        width=size,
        height=size,
        count=4,
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="deflate",
        predictor=2,
        BIGTIFF="IF_SAFER",
        interleave="pixel",
    )
    tmp = path.with_suffix(".partial.tif")
    with rasterio.open(tmp, "w", **profile) as dst:
        for r0 in range(0, size, 512):
            rows = _mirror(size, four.shape[1])[r0 : r0 + 512]
            dst.write(four[:, rows][:, :, cols], window=Window(0, r0, size, len(rows)))
    os.replace(tmp, path)
    return path


def _run(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run Python ``cmd`` (interpreter, script, args): wall seconds, peak RSS MiB, stdout.

    The script runs under ``peak_rss.py``, which reports its own ``VmHWM``: the
    ``ru_maxrss`` that ``os.wait4`` gives includes this (large) process's high-water
    mark, folded in when the child execs (see peak_rss.py).
    """
    peak = RESULTS / f".peak-{os.getpid()}.txt"
    peak.unlink(missing_ok=True)
    full = [cmd[0], str(ROOT / "benchmarks/peak_rss.py"), str(peak), *cmd[1:]]
    t0 = time.perf_counter()
    proc = subprocess.run(full, capture_output=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr.decode()[-3000:]}"
        )
    rss = int(peak.read_text()) / 1024
    peak.unlink()
    return {"seconds": wall, "peak_rss_mib": rss, "stdout": proc.stdout.decode()}


def run_geolabel(
    scene: Path,
    spec: Path,
    out: Path,
    args: argparse.Namespace,
    keep: Window | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """``geolabel predict`` end to end in a subprocess (``keep``: return that mask window)."""
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        GEOLABEL,
        "-q",
        "predict",
        str(scene),
        "-m",
        str(spec),
        "-o",
        str(out),
        "--precision",
        args.precision,
        "--batch-size",
        str(geolabel_batch(args)),
        "--device",
        "cpu",
        "--no-vectors",
        "--no-probabilities",
    ]
    if args.mask_only:
        cmd += ["--uncertainty", "none"]
    if args.geolabel_tile:
        cmd += ["--tile-size", str(args.geolabel_tile)]
    if threads:
        cmd += ["--threads", str(threads)]
    res = _run(cmd)
    run = json.loads((out / "run.json").read_text())
    s = run["scenes"][0]
    res.pop("stdout")
    res.update(
        tiles=s["tiles"],
        tile_shape=s.get("tile_size"),
        overlap=s["overlap"],
        timings=s["timings"],
        precision=run["precision"],
        batch_size=geolabel_batch(args),
        outputs=[
            o["role"]
            for o in run["outputs"]
            if not o["role"].startswith(("style:", "categories:"))
        ],
    )
    if keep is not None:
        mask = next(
            resolve_path(out, o["path"]) for o in run["outputs"] if o["role"] == "mask"
        )
        with rasterio.open(mask) as ds:
            res["_mask"] = ds.read(1, window=keep)
        conf = next(
            resolve_path(out, o["path"])
            for o in run["outputs"]
            if o["role"] == "confidence"
        )
        with rasterio.open(conf) as ds:
            res["_confidence"] = ds.read(1, window=keep)
    shutil.rmtree(out, ignore_errors=True)
    return res


def geolabel_batch(args: argparse.Namespace) -> int:
    """geolabel's batch: as many pixels per model call as the naive pipeline's batch."""
    if args.geolabel_batch_size:
        return int(args.geolabel_batch_size)
    tile = args.geolabel_tile or args.tile
    return max(1, round(args.batch_size * args.tile**2 / tile**2))


def run_naive(
    scene: Path,
    weights: Path,
    args: argparse.Namespace,
    mean: float,
    std: float,
    keep: Window | None = None,
    precision: str = "fp32",
) -> dict[str, Any]:
    """The naive baseline (``keep``: return that mask window): torchgeo in
    .venv-torchgeo, or the same loop over rasterio windows in this environment."""
    loader = naive_loader(args)
    cmd = [
        str(TG_PYTHON) if loader == "torchgeo" else sys.executable,
        str(ROOT / "benchmarks/naive_torchgeo.py"),
        str(scene),
        str(weights),
        "--base-channels",
        str(args.base_channels),
        "--depth",
        str(args.depth),
        "--batch-size",
        str(args.batch_size),
        "--mean",
        str(mean),
        "--std",
        str(std),
        "--precision",
        precision,
        "--loader",
        loader,
    ]
    saved = args.workdir / "naive-mask.npy"
    if keep is not None:
        cmd += ["--save-mask", str(saved)]
    res = _run(cmd)
    if keep is not None:
        res["_mask"] = np.load(saved, mmap_mode="r")[keep.toslices()].copy()
        saved.unlink()
    inner = json.loads(res.pop("stdout").strip().splitlines()[-1])
    inner["seconds_in_script"] = inner.pop("seconds")
    res.update(inner)  # res["seconds"] stays the subprocess's wall time
    return res


def naive_loader(args: argparse.Namespace) -> str:
    """``torchgeo`` when .venv-torchgeo imports it, else ``rasterio`` (or as asked)."""
    if args.naive_loader != "auto":
        return str(args.naive_loader)
    if not TG_PYTHON.exists():
        return "rasterio"
    ok = subprocess.run(
        [str(TG_PYTHON), "-c", "from torchgeo.datasets import RasterDataset"],
        capture_output=True,
        check=False,
    )
    return "torchgeo" if ok.returncode == 0 else "rasterio"


def _sample_batches(
    scene: Path, spec_path: Path, n_batches: int, batch: int, shape: tuple[int, int]
) -> list[np.ndarray]:
    """Normalised real tiles of ``shape`` from the scene's top-left, as the engine
    reads them."""
    from geolabel.models.spec import load_spec

    spec = load_spec(spec_path)
    th, tw = shape
    mean = np.asarray(spec.input.mean, np.float32)[:, None, None]
    std = np.asarray(spec.input.std, np.float32)[:, None, None]
    out = []
    with rasterio.open(scene) as ds:
        per_row = max(ds.width // tw, 1)
        for b in range(n_batches):
            tiles = []
            for k in range(batch):
                i = b * batch + k
                r, c = divmod(i, per_row)
                x = ds.read(
                    window=Window(c * tw, r * th, tw, th), boundless=True
                ).astype(np.float32)
                tiles.append((x - mean) / std)
            out.append(np.stack(tiles))
    return out


def _candidate(spec_path: Path, args: argparse.Namespace) -> str:
    """The mode geolabel will most likely run in (its check decides; see main)."""
    if args.precision != "auto":
        return str(args.precision)
    from geolabel.models.precision import candidate_precision
    from geolabel.models.spec import load_spec

    return candidate_precision(load_spec(spec_path), "cpu") or "fp32"


def run_raw(
    scene: Path,
    spec_path: Path,
    precision: str,
    args: argparse.Namespace,
    reference: bool,
    threads: int | None = None,
) -> dict[str, Any]:
    """Forward time per tile in ``precision`` (+ argmax agreement with fp32 if ``reference``)
    with ``threads`` torch threads (default: every core)."""
    from geolabel.models.precision import argmax_agreement
    from geolabel.models.spec import load_spec
    from geolabel.models.torch_ import TorchBackend

    spec = load_spec(spec_path)
    bs = geolabel_batch(args)
    shape = geolabel_grid(scene, spec_path, args).tile_shape
    batches = _sample_batches(scene, spec_path, args.raw_batches + 1, bs, shape)
    fast = TorchBackend(
        spec,
        device="cpu",
        precision=precision,  # type: ignore[arg-type]
        channels_last=True,
        threads=threads or os.cpu_count(),
    )
    outs = [fast.forward(batches[0])]  # warm-up
    t0 = time.perf_counter()
    outs += [fast.forward(b) for b in batches[1:]]
    per_tile = (time.perf_counter() - t0) / (args.raw_batches * bs)
    res: dict[str, Any] = {
        "precision": precision,
        "tile_shape": list(shape),
        "seconds_per_tile": per_tile,
        "tiles_timed": args.raw_batches * bs,
    }
    if reference and precision != "fp32":
        ref = TorchBackend(spec, device="cpu", precision="fp32", channels_last=False)
        t0 = time.perf_counter()
        refs = [ref.forward(b) for b in batches[1:]]
        res["fp32_seconds_per_tile"] = (time.perf_counter() - t0) / (
            args.raw_batches * bs
        )
        a = np.concatenate(outs[1:])
        f = np.concatenate(refs)
        res["argmax_agreement_vs_fp32"] = argmax_agreement(
            a, f, np.ones((a.shape[0], *a.shape[2:]), bool)
        )
    return res


def seam_window(size: int, span: int, margin: int) -> Window:
    """A ``span``² window near the scene's centre, ``margin`` inside it, 16-aligned."""
    span = min(span, size - 2 * margin) // 16 * 16
    off = max(margin, (size - span) // 2 // 16 * 16)
    return Window(off, off, span, span)


def _boundaries(edges: list[int], start: int, length: int) -> np.ndarray:
    """Pixels of ``[start, start+length)`` within 4 px of a tile boundary in ``edges``."""
    near = np.zeros(length, bool)
    for e in edges:
        lo, hi = max(e - 4 - start, 0), min(e + 4 - start, length)
        if hi > lo:
            near[lo:hi] = True
    return near


def seam_check(
    scene: Path,
    spec_path: Path,
    window: Window,
    margin: int,
    masks: dict[str, tuple[np.ndarray, str, list[int], list[int]]],
    confidence: np.ndarray | None = None,
) -> dict[str, Any]:
    """Each pipeline's mask over ``window`` vs one untiled forward in the same mode.

    ``masks``: name -> (mask window, precision, row edges, col edges of its tiles). The
    untiled forward sees ``margin`` pixels of context on every side, so where a
    pipeline disagrees with it, tiling is to blame; ``near_edges`` restricts the
    comparison to pixels within 4 px of that pipeline's tile boundaries (the seams).
    ``confidence`` (geolabel's max-probability window) is compared as a continuous
    value too: argmax can hide seams of a model whose outputs vary little.
    """
    from geolabel.models.base import softmax
    from geolabel.models.spec import load_spec
    from geolabel.models.torch_ import TorchBackend

    spec = load_spec(spec_path)
    mean = np.asarray(spec.input.mean, np.float32)[:, None, None]
    std = np.asarray(spec.input.std, np.float32)[:, None, None]
    big = Window(
        window.col_off - margin,
        window.row_off - margin,
        window.width + 2 * margin,
        window.height + 2 * margin,
    )
    with rasterio.open(scene) as ds:
        x = (ds.read(window=big).astype(np.float32) - mean) / std
    refs: dict[str, np.ndarray] = {}
    out: dict[str, Any] = {
        "window": [window.col_off, window.row_off, window.width, window.height],
        "margin": margin,
    }
    for name, (mask, precision, rows, cols) in masks.items():
        if precision not in refs:
            model = TorchBackend(
                spec,
                device="cpu",
                precision=precision,  # type: ignore[arg-type]
                channels_last=precision != "fp32",
            )
            p = model.forward(x[None])[0][
                :, margin : margin + window.height, margin : margin + window.width
            ]
            refs[precision] = np.argmax(p, axis=0)
            refs[precision + "-max"] = softmax(p, axis=0).max(axis=0)  # logits in
        ref = refs[precision]
        same = mask == ref
        near = (
            _boundaries(rows, int(window.row_off), int(window.height))[:, None]
            | _boundaries(cols, int(window.col_off), int(window.width))[None, :]
        )
        out[name] = {
            "reference": f"untiled {precision}",
            "agreement": float(same.mean()),
            "agreement_near_edges": float(same[near].mean()) if near.any() else None,
            "pixels_near_edges": int(near.sum()),
        }
        if name == "geolabel" and confidence is not None:
            diff = np.abs(confidence - refs[precision + "-max"])
            out[name]["confidence_abs_diff"] = {
                "mean": float(diff.mean()),
                "max": float(diff.max()),
                "mean_near_edges": float(diff[near].mean()) if near.any() else None,
                "max_near_edges": float(diff[near].max()) if near.any() else None,
            }
    return out


def geolabel_edges(
    scene: Path, spec_path: Path, args: argparse.Namespace
) -> tuple[list[int], list[int]]:
    """Row and column offsets where geolabel's tile cores meet."""
    grid = geolabel_grid(scene, spec_path, args)
    rows = sorted({t.core_window.row_off for t in grid} - {0})
    cols = sorted({t.core_window.col_off for t in grid} - {0})
    return rows, cols


def geolabel_grid(scene: Path, spec_path: Path, args: argparse.Namespace) -> Any:
    """The tile grid geolabel plans for ``scene`` (tiles fitted to the scene where
    the model takes other sizes: the raw and read-only rows use the same tiles)."""
    from geolabel.config import RunConfig
    from geolabel.io.scene import open_scene
    from geolabel.models.spec import load_spec
    from geolabel.pipeline import plan_scene

    config = RunConfig(
        scenes=(str(scene),),
        model=str(spec_path),
        out="unused",
        tile_size=args.geolabel_tile,
    )  # type: ignore[arg-type]
    grid, _ = plan_scene(open_scene(scene), load_spec(spec_path), config)
    return grid


def _stats() -> tuple[float, float]:
    with rasterio.open(SAMPLE) as ds:
        x = ds.read().astype(np.float64)
    four = np.concatenate([x, x.mean(axis=0, keepdims=True)])
    return float(four.mean()), float(four.std())


def table(rows: list[dict[str, Any]]) -> str:
    """The printed summary (Mpix/s; geolabel over the wall of its process, and over
    its scene time in run.json, which leaves out interpreter and torch start-up)."""
    head = (
        "| scene | threads | read-only | raw | geolabel | geolabel scene | naive fp32 "
        "| naive bf16 | geolabel/read-only (scene) | geolabel/raw | geolabel/naive fp32 "
        "| geolabel/naive bf16 | RSS geolabel MiB | RSS naive MiB |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]

    def f(v: Any, p: int = 3) -> str:
        return "–" if v is None else f"{v:.{p}f}"

    for r in rows:
        g, w = r.get("geolabel", {}), r.get("raw", {})
        n, nb = r.get("naive", {}), r.get("naive_bf16", {})
        over_read = f"{f(r.get('geolabel_over_read'), 2)} ({f(r.get('geolabel_scene_over_read'), 2)})"
        lines.append(
            f"| {r['size']}² | {r.get('threads') or 'all'} "
            f"| {f(r.get('read', {}).get('mpix_s'))} | {f(w.get('mpix_s'))} "
            f"| {f(g.get('mpix_s'))} | {f(g.get('scene_mpix_s'))} "
            f"| {f(n.get('mpix_s'))} | {f(nb.get('mpix_s'))} | {over_read} "
            f"| {f(r.get('geolabel_over_raw'), 2)} | {f(r.get('geolabel_over_naive'), 2)} "
            f"| {f(r.get('geolabel_over_naive_bf16'), 2)} "
            f"| {f(g.get('peak_rss_mib'), 0)} | {f(n.get('peak_rss_mib'), 0)} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Parse options, run the pipelines per scene size, write JSON, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--sizes", default="5000,10000,20000", help="scene sizes (pixels a side)"
    )
    ap.add_argument(
        "--pipelines",
        default="read,raw,geolabel,naive",
        help="subset of read,raw,geolabel,naive",
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        default=Path(os.environ.get("TMPDIR", "/tmp")) / "geolabel-bench",
    )
    ap.add_argument(
        "--null",
        action="store_true",
        help="the null model: a per-pixel linear classifier (geolabel.linear, a 1x1 "
        "conv) instead of the U-Net, so geolabel's own machinery sets the pace",
    )
    ap.add_argument("--base-channels", type=int, default=32)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument(
        "--overlap", type=int, default=64, help="geolabel blending overlap per side"
    )
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument(
        "--geolabel-tile",
        type=int,
        default=None,
        help="geolabel's tile size (the U-Net is fully convolutional; default: the spec's 512)",
    )
    ap.add_argument(
        "--raw-batches", type=int, default=8, help="batches timed for the raw forward"
    )
    ap.add_argument("--precision", default="auto")
    ap.add_argument(
        "--threads",
        default="",
        help="model threads, comma-separated (e.g. 1,2): one raw + geolabel row each",
    )
    ap.add_argument(
        "--read-threads", type=int, default=2, help="threads of the read-only ceiling"
    )
    ap.add_argument(
        "--naive-precisions",
        default="fp32,bf16",
        help="naive baselines: fp32 (tutorial) and/or bf16 (autocast + channels-last)",
    )
    ap.add_argument(
        "--naive-loader",
        choices=("auto", "torchgeo", "rasterio"),
        default="auto",
        help="torchgeo (.venv-torchgeo) or rasterio windows; auto: torchgeo if installed",
    )
    ap.add_argument(
        "--geolabel-batch-size",
        type=int,
        default=None,
        help="geolabel's batch (default: the naive batch's pixels, e.g. 1 for 1024² tiles)",
    )
    ap.add_argument(
        "--mask-only",
        action="store_true",
        help="geolabel writes the mask and confidence COGs only (--uncertainty none)",
    )
    ap.add_argument(
        "--seam-span",
        type=int,
        default=1536,
        help="side of the window of the seam check on the first scene (0: no check)",
    )
    ap.add_argument("--seam-margin", type=int, default=128)
    ap.add_argument(
        "--naive-up-to",
        type=int,
        default=None,
        help="run the naive pipeline only on scenes up to this size (it is the slow one)",
    )
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    pipes = set(args.pipelines.split(","))
    if args.null and "naive" in pipes:
        sys.exit(
            "--null measures geolabel's machinery: use --pipelines read,raw,geolabel"
        )
    if "naive" in pipes and args.naive_loader == "torchgeo" and not TG_PYTHON.exists():
        sys.exit(f"{TG_PYTHON} missing: run benchmarks/setup_torchgeo.sh")
    args.workdir.mkdir(parents=True, exist_ok=True)
    from geolabel.testing.unet import write_unet_spec

    mean, std = _stats()
    spec = write_unet_spec(
        args.workdir / "model",
        name="bench-unet",
        bands=4,
        classes=5,
        base_channels=args.base_channels,
        depth=args.depth,
        tile_size=args.tile,
        seed=0,
        mean=mean,
        std=std,
        overlap=args.overlap,
        linear=args.null,
    )
    weights = spec.with_suffix(".safetensors")
    rows: list[dict[str, Any]] = []
    mode = None
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench-{time.strftime('%Y%m%dT%H%M%S')}.json"
    doc: dict[str, Any] = {}
    thread_counts: list[int | None] = (
        [int(t) for t in args.threads.split(",")] if args.threads else [None]
    )
    for k, size in enumerate(sizes):
        scene = make_scene(size, args.workdir)
        keep = (
            seam_window(size, args.seam_span, args.seam_margin)
            if k == 0 and args.seam_span
            else None
        )
        read = None
        if "read" in pipes:
            shape = geolabel_grid(scene, spec, args).tile_shape
            wins = grid_windows(scene, shape, args.overlap)
            read_windows(scene, wins, args.read_threads)  # warm the page cache
            read = read_windows(scene, wins, args.read_threads)
        for j, threads in enumerate(thread_counts):
            row = measure(
                scene,
                spec,
                weights,
                args,
                mean,
                std,
                mode,
                size,
                threads,
                pipes,
                keep if j == 0 else None,
                naive=j == 0,
            )
            mode = row.get("geolabel", {}).get("precision", {}).get("precision", mode)
            if read is not None:
                row["read"] = read
                if "geolabel" in row:
                    g = row["geolabel"]
                    row["geolabel_over_read"] = g["mpix_s"] / read["mpix_s"]
                    row["geolabel_scene_over_read"] = g["scene_mpix_s"] / read["mpix_s"]
            rows.append(row)
            print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
            doc = _document(rows, args, weights)
            path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(table(rows))
    if doc["rss_largest_over_smallest"] is not None:
        g = doc["rss_largest_over_smallest"]
        print(f"geolabel peak RSS, largest / smallest scene: {g:.2f}")
    print(f"results: {path}")


def measure(
    scene: Path,
    spec: Path,
    weights: Path,
    args: argparse.Namespace,
    mean: float,
    std: float,
    mode: str | None,
    size: int,
    threads: int | None,
    pipes: set[str],
    keep: Window | None,
    *,
    naive: bool,
) -> dict[str, Any]:
    """One row: raw, geolabel and (``naive``) the baselines on one scene."""
    mpix = size * size / 1e6
    row: dict[str, Any] = {"size": size, "mpix": mpix, "threads": threads}
    # The raw forward is timed right before and right after geolabel, and the
    # mean is used: on a shared machine the same forward drifts by +-20 % over
    # minutes, and a single raw timing could land far from geolabel's.
    before = None
    if "raw" in pipes:
        guess = mode or _candidate(spec, args)
        before = run_raw(scene, spec, guess, args, reference=False, threads=threads)
    if "geolabel" in pipes:
        g = run_geolabel(scene, spec, args.workdir / "out", args, keep, threads)
        g["mpix_s"] = mpix / g["seconds"]
        g["scene_mpix_s"] = mpix / g["timings"]["total"]
        mode = g["precision"]["precision"]
        row["geolabel"] = g
    if "raw" in pipes:
        w = run_raw(
            scene,
            spec,
            mode or "fp32",
            args,
            reference=keep is not None,
            threads=threads,
        )
        if before is not None and before["precision"] == w["precision"]:
            w["seconds_per_tile_before"] = before["seconds_per_tile"]
            w["seconds_per_tile_after"] = w["seconds_per_tile"]
            w["seconds_per_tile"] = (
                before["seconds_per_tile"] + w["seconds_per_tile"]
            ) / 2
        tiles = row.get("geolabel", {}).get("tiles")
        if tiles:
            w["seconds_for_geolabel_tiles"] = w["seconds_per_tile"] * tiles
            w["mpix_s"] = mpix / w["seconds_for_geolabel_tiles"]
        w["tile_mpix_s"] = (
            w["tile_shape"][0] * w["tile_shape"][1] / 1e6 / w["seconds_per_tile"]
        )
        row["raw"] = w
    run_baselines = "naive" in pipes and (
        args.naive_up_to is None or size <= args.naive_up_to
    )
    for prec in args.naive_precisions.split(",") if naive and run_baselines else []:
        name = "naive" if prec == "fp32" else f"naive_{prec}"
        n = run_naive(
            scene, weights, args, mean, std, keep if prec == "fp32" else None, prec
        )
        n["mpix_s"] = mpix / n["seconds"]
        row[name] = n
        if "geolabel" in row:
            row[f"geolabel_over_{name}"] = row["geolabel"]["mpix_s"] / n["mpix_s"]
    if "geolabel" in row and "mpix_s" in row.get("raw", {}):
        row["geolabel_over_raw"] = row["geolabel"]["mpix_s"] / row["raw"]["mpix_s"]
    if keep is not None:
        masks = {}
        if "_mask" in row.get("geolabel", {}):
            masks["geolabel"] = (
                row["geolabel"].pop("_mask"),
                row["geolabel"]["precision"]["precision"],
                *geolabel_edges(scene, spec, args),
            )
        if "_mask" in row.get("naive", {}):
            masks["naive"] = (
                row["naive"].pop("_mask"),
                "fp32",
                list(
                    range(size - args.tile, 0, -args.tile)
                ),  # chips start at the bottom
                list(range(args.tile, size, args.tile)),
            )
        if masks:
            row["seams"] = seam_check(
                scene,
                spec,
                keep,
                args.seam_margin,
                masks,
                row.get("geolabel", {}).pop("_confidence", None),
            )
            print(json.dumps(row["seams"]), file=sys.stderr, flush=True)
    return row


def _document(
    rows: list[dict[str, Any]], args: argparse.Namespace, weights: Path
) -> dict[str, Any]:
    g_rss = {r["size"]: r["geolabel"]["peak_rss_mib"] for r in rows if "geolabel" in r}
    return {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
        "model": {
            "arch": "geolabel.linear" if args.null else "geolabel.unet",
            "base_channels": None if args.null else args.base_channels,
            "depth": None if args.null else args.depth,
            "bands": 4,
            "classes": 5,
            "tile": args.tile,
            "weights": str(weights),
        },
        "settings": {k: str(v) for k, v in vars(args).items()},
        "rows": rows,
        "rss_largest_over_smallest": (g_rss[max(g_rss)] / g_rss[min(g_rss)])
        if len(g_rss) > 1
        else None,
    }


if __name__ == "__main__":
    main()
