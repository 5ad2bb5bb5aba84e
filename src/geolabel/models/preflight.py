"""Check a model before a run makes anything: its weights file, its tile size.

:func:`check_weights_file` looks at the first bytes of the weights (empty files,
Git-LFS pointers, HTML error pages, truncated safetensors, pickles that are not
plain tensors) and at where the path points (a relative ``weights:`` must stay in the
spec's folder). :func:`preflight_model` then loads the model once, so a file that
does not fit its architecture is refused before the run folder exists, and checks a
``--tile-size`` against a model that takes only one input size.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from geolabel.errors import ConfigError, ModelSpecError
from geolabel.models.registry import load_model
from geolabel.models.spec import ModelSpec

__all__ = [
    "check_tile_overlap",
    "check_tile_size",
    "check_weights_file",
    "preflight_model",
]

_LFS = b"version https://git-lfs"
_ZIP = b"PK\x03\x04"
#: A safetensors JSON header larger than this is not a real one.
_MAX_SAFETENSORS_HEADER = 100 << 20


def _safetensors_problem(head: bytes, size: int) -> str | None:
    if size < 8:
        return "truncated: shorter than a safetensors header"
    (n,) = struct.unpack("<Q", head[:8])
    if n > _MAX_SAFETENSORS_HEADER or n < 2:
        return f"not a safetensors file (header length {n})"
    if n > size - 8:
        return f"truncated: its header alone needs {n + 8} bytes, the file has {size}"
    return None


def _safetensors_body_problem(path: Path) -> str | None:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return "not a safetensors file (its header is not JSON)"
    if not isinstance(header, dict):
        return "not a safetensors file (its header is not a JSON object)"
    ends = [
        v["data_offsets"][1]
        for k, v in header.items()
        if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v
    ]
    need = 8 + n + max(ends, default=0)
    size = path.stat().st_size
    if need > size:
        return f"truncated: the header needs {need} bytes, the file has {size}"
    return None


def check_weights_file(spec: ModelSpec) -> None:
    """Refuse a weights file that cannot be the model the spec describes.

    Raises:
        ModelSpecError: a relative path that leaves the spec's folder, a missing,
            empty or Git-LFS pointer file, or one whose first bytes do not fit its
            format; the message starts with the file.
    """
    path = spec.weights_path()
    if path is None or spec.backend not in ("torch", "onnx"):
        return
    w = spec.weights or ""
    if not w.startswith("package:") and not Path(w).is_absolute() and spec.source:
        root = Path(spec.source).resolve().parent
        if not path.resolve().is_relative_to(root):
            raise ModelSpecError(
                f"{spec.source}: weights {w!r} climbs out of the spec's folder "
                f"({root}); give an absolute path if that is meant"
            )
    if not path.is_file():
        raise ModelSpecError(f"{path}: weights file not found")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(64)
    problem: str | None = None
    if size == 0:
        problem = "empty weights file"
    elif head.startswith(_LFS):
        problem = "a Git-LFS pointer, not the weights; run `git lfs pull`"
    elif head.lstrip()[:1] == b"<":
        problem = "an HTML or XML page, not model weights"
    elif path.suffix == ".safetensors":
        problem = _safetensors_problem(head, size) or _safetensors_body_problem(path)
    elif spec.format in ("torchscript", "export") and not head.startswith(_ZIP):
        problem = f"not a {spec.format} archive (no zip header)"
    if problem is not None:
        raise ModelSpecError(f"{path}: {problem}")


def check_tile_size(spec: ModelSpec, tile_size: int | None) -> None:
    """Refuse a ``--tile-size`` a fixed-size model cannot take.

    Raises:
        ConfigError: the spec declares ``input.fixed_size`` and ``tile_size``
            differs from ``input.tile_size``.
    """
    if tile_size is None or tile_size == spec.input.tile_size:
        return
    if spec.input.fixed_size:
        raise ConfigError(
            f"--tile-size {tile_size}: model {spec.model_id} takes only "
            f"{spec.input.tile_size} x {spec.input.tile_size} tiles (input.fixed_size "
            f"in {spec.source or spec.name}); leave --tile-size out"
        )


def check_tile_overlap(
    spec: ModelSpec, tile_size: int | None, overlap: int | None
) -> None:
    """Refuse tiles smaller than four times the overlap before any scene is read.

    Args:
        spec: the model spec (its tile size and overlap stand in for ``None``).
        tile_size: ``--tile-size`` in pixels, or ``None``.
        overlap: ``--overlap`` in pixels, or ``None``.

    Raises:
        ConfigError: ``tile_size < 4 * overlap`` (the message names the options).

    .. versionadded:: 0.1
    """
    tile = spec.input.tile_size if tile_size is None else tile_size
    ov = spec.default_overlap() if overlap is None else overlap
    if tile >= max(4 * ov, 1):
        return
    size = f"--tile-size {tile}" if tile_size is not None else f"tile size {tile}"
    where = f"--overlap {ov}" if overlap is not None else f"the model's overlap {ov}"
    raise ConfigError(
        f"{size}: tiles must be at least four times the overlap ({where}, so at "
        f"least {4 * ov} px); use a larger --tile-size or a smaller --overlap"
    )


def preflight_model(spec: ModelSpec, *, tile_size: int | None = None) -> None:
    """Check the weights, load the model once on the CPU, check the tile size.

    Remote and wrapper backends are left to their own checks (loading an HTTP
    backend does not contact the server).

    Raises:
        ModelSpecError: see :func:`check_weights_file`; weights that do not fit.
        BackendError: the model cannot be loaded.
        ConfigError: see :func:`check_tile_size`; a model whose input size is
            fixed by the file (ONNX static dimensions).
    """
    check_weights_file(spec)
    check_tile_size(spec, tile_size)
    if spec.backend not in ("torch", "onnx"):
        return

    model = load_model(spec, device="cpu", precision="fp32")
    try:
        fixed = getattr(model, "fixed_size", None)
        want = tile_size or spec.input.tile_size
        if isinstance(fixed, int) and fixed != want:
            raise ConfigError(
                f"{spec.weights_path()}: the model takes only {fixed} x {fixed} "
                f"tiles, the run asks for {want}; use --tile-size {fixed} and set "
                "input.fixed_size: true in the spec"
            )
    finally:
        model.close()
