"""Local torch backend: TorchScript, torch.export programs, or state dict + architecture.

Weights are never unpickled unsafely: state dicts load from safetensors or with
``torch.load(weights_only=True)``. Execution modes: device (CPU/CUDA), channels-last,
inference mode, bf16 (CPU, CUDA) or fp16 (CUDA) autocast.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from geolabel.errors import (
    BackendError,
    GeolabelError,
    MissingDependencyError,
    ModelSpecError,
)
from geolabel.models._malloc import keep_freed_memory
from geolabel.models.base import Batch, Prediction, activate, to_predictions
from geolabel.models.detectors import task_predictions
from geolabel.models.spec import ModelSpec

__all__ = ["TorchBackend", "load_torch_module"]

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16", "fp16"]


def _torch() -> Any:
    try:
        import torch
    except ImportError as err:
        raise MissingDependencyError("torch", "torch") from err
    return torch


def load_torch_module(spec: ModelSpec, device: str = "cpu") -> Any:
    """Build the ``torch.nn.Module`` a spec describes, weights loaded, in eval mode.

    Raises:
        ModelSpecError: unknown format or architecture, weights that do not fit.
        BackendError: the weights file cannot be read.
    """
    torch = _torch()
    path = spec.weights_path()
    if path is None:
        raise ModelSpecError(f"model {spec.model_id}: no weights for the torch backend")
    fmt = spec.format or (
        "torchscript" if path.suffix in (".pt", ".ts") else "state_dict"
    )
    try:
        if fmt == "torchscript":
            module = torch.jit.load(str(path), map_location=device)
        elif fmt == "export":
            module = torch.export.load(str(path)).module()
        elif fmt == "state_dict":
            from geolabel.models.arch import build_architecture

            assert spec.architecture is not None  # checked by the spec
            module = build_architecture(
                spec.architecture.name, dict(spec.architecture.params)
            )
            state = _load_state_dict(path)
            try:
                module.load_state_dict(state, strict=True)
            except RuntimeError as err:
                first = str(err).splitlines()[0]
                raise ModelSpecError(
                    f"{path}: weights do not fit architecture {spec.architecture.name!r}: {first}"
                ) from err
        else:
            raise ModelSpecError(
                f"model {spec.model_id}: format {fmt!r} is not a torch format"
            )
    except GeolabelError:
        raise
    except Exception as err:  # torch, safetensors and pickle raise many types
        raise BackendError(
            f"{path}: cannot load torch model: {_first_line(err)}"
        ) from err
    module = module.to(device)
    if (
        fmt != "export"
    ):  # exported programs are frozen in the mode they were exported in
        module.eval()
    return module


def _first_line(err: BaseException) -> str:
    """The first line of an error, without torch's long advice on pickles."""
    text = str(err).strip()
    if "Weights only load failed" in text:
        return (
            "the checkpoint holds pickled Python objects, not only tensors (refused: "
            "loading it could run code); save a plain state dict or safetensors"
        )
    return text.splitlines()[0] if text else type(err).__name__


def _load_state_dict(path: Path) -> dict[str, Any]:
    torch = _torch()
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ModelSpecError(
            f"{path}: expected a state dict, got {type(state).__name__}"
        )
    return state


def _to_numpy(y: Any) -> npt.NDArray[np.float32]:
    """A float32 tensor as a numpy array on the host (no copy on CPU)."""
    return np.asarray(y.cpu().numpy(), dtype=np.float32)


class TorchBackend:
    """Run a torch model on batches of tiles.

    Args:
        spec: the model spec.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when present).
        precision: ``"fp32"``; ``"bf16"`` autocast (CPU or CUDA); ``"fp16"`` (CUDA only).
        channels_last: use the channels-last memory format (faster convs on CPU).
        threads: torch intra-op threads (``None`` keeps torch's default).

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        spec: ModelSpec,
        *,
        device: str = "auto",
        precision: Precision = "fp32",
        channels_last: bool = True,
        threads: int | None = None,
        module: Any | None = None,
    ) -> None:
        """Load the model once."""
        torch = _torch()
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if precision == "fp16" and not device.startswith("cuda"):
            raise BackendError("fp16 autocast needs a CUDA device; use bf16 on CPU")
        if threads is not None:
            torch.set_num_threads(threads)
        if device == "cpu":
            keep_freed_memory()  # no page faults per forward (models/_malloc.py)
        self._spec = spec
        self.device = device
        self.precision: Precision = precision
        self.channels_last = channels_last
        self.module = module if module is not None else load_torch_module(spec, device)
        if (
            module is None and precision != "fp32"
        ):  # part of the fast mode --precision auto checks
            from geolabel.models._fuse import fold_batchnorm

            fold_batchnorm(self.module)
        if (
            channels_last
            and (spec.format or "") != "export"
            and hasattr(self.module, "to")
        ):
            self.module = self.module.to(memory_format=torch.channels_last)
        logger.info("torch model %s on %s (%s)", spec.model_id, device, precision)

    @property
    def spec(self) -> ModelSpec:
        """The model spec."""
        return self._spec

    def forward(self, data: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Raw model output for ``(n, bands, rows, cols)`` normalised input."""
        return _to_numpy(self._forward(data))

    def _forward(self, data: npt.NDArray[np.float32]) -> Any:
        """The model's output tensor, float32, still on the model's device."""
        torch = _torch()
        x = torch.from_numpy(np.ascontiguousarray(data)).to(
            self.device, non_blocking=True
        )
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        autocast: Any = contextlib.nullcontext()
        if self.precision != "fp32":
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            autocast = torch.autocast(
                device_type=self.device.split(":")[0], dtype=dtype
            )
        with torch.inference_mode(), autocast:
            y = self.module(x)
        if isinstance(y, dict):
            y = y.get("out", next(iter(y.values())))
        return y.float()

    def predict(self, batch: Batch) -> list[Prediction]:
        """Class probabilities (boxes, tile scores for other tasks) for each tile.

        The softmax runs on the model's device (threaded on CPU, no numpy
        temporaries); only the probabilities travel back.
        """
        if self._spec.task != "segmentation":
            return task_predictions(self.forward(batch.data), batch, self._spec)
        if self._spec.output.activation == "softmax":
            torch = _torch()
            with torch.inference_mode():
                probs = _to_numpy(torch.softmax(self._forward(batch.data), dim=1))
        else:
            probs = activate(self.forward(batch.data), self._spec)
        return to_predictions(probs, batch, self._spec)

    def close(self) -> None:
        """Drop the module."""
        self.module = None

    def __enter__(self) -> TorchBackend:
        """Context manager entry."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on exit."""
        self.close()
