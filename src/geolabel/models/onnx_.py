"""Local ONNX Runtime backend (CPU, or CUDA when onnxruntime-gpu provides it)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import numpy.typing as npt

from geolabel.errors import BackendError, MissingDependencyError, ModelSpecError
from geolabel.models.base import Batch, Prediction, activate, to_predictions
from geolabel.models.spec import ModelSpec

__all__ = ["OnnxBackend"]

logger = logging.getLogger(__name__)


class OnnxBackend:
    """Run an ONNX model with onnxruntime.

    Args:
        spec: the model spec (``format: onnx``).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        threads: intra-op threads (``None``: onnxruntime's default).

    Raises:
        BackendError: the model cannot be loaded.
        ModelSpecError: the model's input does not match the spec's bands.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        spec: ModelSpec,
        *,
        device: str = "auto",
        threads: int | None = None,
        **_: Any,
    ) -> None:
        """Create the inference session once."""
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise MissingDependencyError("onnxruntime", "onnx") from err
        path = spec.weights_path()
        if path is None:
            raise ModelSpecError(
                f"model {spec.model_id}: no weights for the onnx backend"
            )
        avail = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if device in ("auto", "cuda") and "CUDAExecutionProvider" in avail:
            providers.insert(0, "CUDAExecutionProvider")
        so = ort.SessionOptions()
        if threads is not None:
            so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=so, providers=providers
            )
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise BackendError(
                f"{path}: cannot load ONNX model: {str(err).splitlines()[0]}"
            ) from err
        self._spec = spec
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        channels = inp.shape[1] if len(inp.shape) == 4 else None
        if isinstance(channels, int) and channels != len(spec.input.bands):
            raise ModelSpecError(
                f"{path}: model takes {channels} bands, spec lists {len(spec.input.bands)}"
            )
        h, w = (inp.shape[2], inp.shape[3]) if len(inp.shape) == 4 else (None, None)
        #: the only tile size the model takes (static input dimensions), else None
        self.fixed_size: int | None = (
            h if isinstance(h, int) and h == w and h > 0 else None
        )
        self.output_name = spec.output.tensor or self.session.get_outputs()[0].name
        self.device = "cuda" if providers[0].startswith("CUDA") else "cpu"
        logger.info("onnx model %s on %s", spec.model_id, providers[0])

    @property
    def spec(self) -> ModelSpec:
        """The model spec."""
        return self._spec

    def forward(self, data: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Raw output for ``(n, bands, rows, cols)`` normalised input."""
        (y,) = self.session.run(
            [self.output_name], {self.input_name: np.ascontiguousarray(data)}
        )
        return np.asarray(y, dtype=np.float32)

    def predict(self, batch: Batch) -> list[Prediction]:
        """Class probabilities for each tile of the batch."""
        return to_predictions(
            activate(self.forward(batch.data), self._spec), batch, self._spec
        )

    def close(self) -> None:
        """Release the session."""
        self.session = None

    def __enter__(self) -> OnnxBackend:
        """Context manager entry."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on exit."""
        self.close()
