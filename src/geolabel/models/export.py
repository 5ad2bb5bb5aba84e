"""Export a torch model spec to an ONNX model plus a spec for the ``onnx`` backend.

The model is exported with ``torch.onnx.export`` (opset 17 or newer, TorchScript-based
exporter, so no ``onnxscript`` is needed) with a dynamic batch axis, then checked: its
per-pixel argmax must agree with torch fp32 on at least :data:`MIN_AGREEMENT` of the
pixels of a seeded check batch. Both files are written under temporary names and
renamed only when the check passes.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from geolabel.errors import BackendError, ConfigError
from geolabel.io.disk import prepare_output
from geolabel.models.onnx_ import OnnxBackend
from geolabel.models.precision import MIN_AGREEMENT, argmax_agreement
from geolabel.models.spec import ModelSpec, load_spec
from geolabel.models.torch_ import load_torch_module

__all__ = ["ExportResult", "export_onnx"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What :func:`export_onnx` wrote and measured."""

    onnx: Path
    spec: Path
    agreement: float
    max_abs_diff: float
    opset: int


def _check_input(spec: ModelSpec, batch: int, seed: int) -> np.ndarray:
    """A seeded, normalised-looking batch: smooth fields plus noise, ``N(0, 1)``-ish."""
    rng = np.random.default_rng(seed)
    t, b = spec.input.tile_size, len(spec.input.bands)
    coarse = rng.normal(size=(batch, b, t // 16 + 1, t // 16 + 1))
    smooth = np.kron(coarse, np.ones((16, 16)))[:, :, :t, :t]
    return (smooth + 0.3 * rng.normal(size=smooth.shape)).astype(np.float32)


def export_onnx(
    spec_path: str | Path,
    out: str | Path,
    *,
    opset: int = 17,
    batch: int = 2,
    seed: int = 0,
    min_agreement: float = MIN_AGREEMENT,
) -> ExportResult:
    """Export the torch model of ``spec_path`` to ``out`` (``.onnx``) and ``out`` ``.yaml``.

    Args:
        spec_path: a spec with ``backend: torch``.
        out: the ONNX file to write; the spec goes beside it with suffix ``.yaml``.
        opset: ONNX opset (17 or newer).
        batch: tiles in the check batch.
        seed: seed of the check batch.
        min_agreement: least argmax agreement with torch fp32.

    Raises:
        ConfigError: not a torch spec, or bad ``opset``/``out``.
        BackendError: export failed, or the exported model disagrees with torch.
    """
    import torch

    spec = load_spec(spec_path)
    if spec.backend != "torch":
        raise ConfigError(
            f"{spec_path}: backend is {spec.backend!r}; export-onnx needs a torch spec"
        )
    if opset < 17:
        raise ConfigError(f"--opset {opset}: must be 17 or newer")
    out = Path(out)
    if out.suffix != ".onnx":
        raise ConfigError(f"{out}: the output must end in .onnx")
    prepare_output(out)
    spec_out = out.with_suffix(".yaml")
    tmp_onnx = out.with_name(out.stem + ".partial.onnx")
    tmp_spec = out.with_name(out.stem + ".partial.yaml")
    module = load_torch_module(spec, "cpu")
    x = _check_input(spec, batch, seed)
    try:
        with torch.inference_mode():
            ref = module(torch.from_numpy(x))
        if isinstance(ref, dict):
            raise ConfigError(f"{spec_path}: models returning dicts cannot be exported")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
            torch.onnx.export(
                module,
                (torch.from_numpy(x),),
                str(tmp_onnx),
                dynamo=False,
                opset_version=opset,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            )
        raw = _onnx_spec(spec, tmp_onnx.name.replace(".partial", ""))
        tmp_spec.write_text(yaml.safe_dump(raw, sort_keys=False))
        os.replace(tmp_onnx, out)  # the spec names the final file; check through it
        check = load_spec(tmp_spec)
        got = OnnxBackend(check, device="cpu").forward(x)
        want = ref.float().numpy()
        agreement = argmax_agreement(
            got, want, np.ones((batch, *x.shape[2:]), dtype=bool)
        )
        diff = float(np.abs(got - want).max())
        if agreement < min_agreement:
            out.unlink(missing_ok=True)
            raise BackendError(
                f"{out}: exported model agrees with torch fp32 on only {agreement:.4%} of pixels "
                f"(needs {min_agreement:.1%}); not written"
            )
        os.replace(tmp_spec, spec_out)
    except (RuntimeError, ValueError, TypeError) as err:  # torch's exporter errors
        out.unlink(missing_ok=True)
        raise BackendError(
            f"{spec_path}: ONNX export failed: {str(err).splitlines()[0]}"
        ) from err
    finally:
        tmp_onnx.unlink(missing_ok=True)
        tmp_spec.unlink(missing_ok=True)
    logger.info("exported %s -> %s (agreement %.6f)", spec.model_id, out, agreement)
    return ExportResult(out, spec_out, agreement, diff, opset)


def _onnx_spec(spec: ModelSpec, weights: str) -> dict[str, Any]:
    """The source spec as a dict, pointed at the ONNX file."""
    raw = spec.model_dump(mode="json", exclude_none=True)
    raw.pop("architecture", None)
    raw.update(backend="onnx", format="onnx", weights=weights)
    raw["output"] = {**raw.get("output", {}), "tensor": "logits"}
    raw["description"] = (
        raw.get("description") or ""
    ) + f" (ONNX export of {spec.model_id})"
    return raw
