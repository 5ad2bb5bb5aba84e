"""An MLServer runtime serving geolabel's numpy toy model (copied next to model-settings.json).

``parameters.extra`` of the model settings holds the :func:`geolabel.testing.toy_spec`
keyword arguments; the runtime answers with the model's raw logits, as a Triton or
MLServer deployment of an exported model would.
"""

from __future__ import annotations

from typing import Any

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

from geolabel.models.spec import ModelSpec
from geolabel.testing.backends import ConvBackend, toy_spec


class ToyConvRuntime(MLModel):
    """The toy convolution model behind MLServer."""

    async def load(self) -> bool:
        extra: dict[str, Any] = (
            dict(self.settings.parameters.extra or {})
            if self.settings.parameters
            else {}
        )
        self._model = ConvBackend(ModelSpec.model_validate(toy_spec(**extra)))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0])
        y = self._model.forward(x)
        return InferenceResponse(
            model_name=self.name, outputs=[NumpyCodec.encode_output("logits", y)]
        )
