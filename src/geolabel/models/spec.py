"""ModelSpec: what a model expects and returns, loaded from safe YAML.

A spec names the task, the input bands in model order, how to normalise them
(``(x * scale + offset - mean) / std``), the tile size (``fixed_size: true`` when the
model takes no other) and dtype, the classes (names,
colours), an optional mapping from model classes to project labels, the receptive
field, and the backend with its weights (a path relative to the YAML file, or
``package:<python-package>/<path>`` for files shipped inside an installed package, such
as ``package:ukis_csmask/model_4b_l1c.onnx``) or endpoint.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from geolabel.errors import ModelSpecError
from geolabel.models._yaml import load_yaml_mapping
from geolabel.models.endpoint import EndpointSpec

__all__ = ["ClassInfo", "InputSpec", "ModelSpec", "OutputSpec", "load_spec"]

_HEX = "0123456789abcdefABCDEF"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class ClassInfo(_Frozen):
    """One model class: its output index, name and display colour (``#rrggbb``)."""

    index: int = Field(ge=0, le=254)
    name: str = Field(min_length=1)
    color: str = "#808080"

    @field_validator("color")
    @classmethod
    def _hex(cls, v: str) -> str:
        if len(v) != 7 or v[0] != "#" or any(c not in _HEX for c in v[1:]):
            raise ValueError(f"colour must look like '#1a9641', got {v!r}")
        return v.lower()

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The colour as ``(r, g, b)`` 0–255."""
        return (
            int(self.color[1:3], 16),
            int(self.color[3:5], 16),
            int(self.color[5:7], 16),
        )


class InputSpec(_Frozen):
    """Model input: bands in model order, tile size, dtype and normalisation."""

    bands: tuple[str, ...] = Field(min_length=1)
    band_indexes: tuple[int, ...] | None = None
    tile_size: int = Field(gt=0, le=8192)
    #: the model takes only ``tile_size`` x ``tile_size`` (a static ONNX input).
    fixed_size: bool = False
    #: a fully convolutional model takes any rows/cols that are multiples of this
    #: (its total stride, e.g. 32 for a resnet encoder), so tiles may shrink to fit
    #: a scene without slack (``geolabel.unet``: ``2**depth`` without saying so).
    size_multiple: int | None = Field(default=None, ge=1, le=4096)
    dtype: Literal["float32", "float16", "uint8"] = "float32"
    scale: float = 1.0
    offset: float = 0.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @model_validator(mode="after")
    def _lengths(self) -> InputSpec:
        n = len(self.bands)
        for key in ("band_indexes", "mean", "std"):
            val = getattr(self, key)
            if val is not None and len(val) != n:
                raise ValueError(f"input.{key} has {len(val)} values for {n} bands")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ValueError("input.std values must be > 0")
        if self.band_indexes is not None and any(b < 1 for b in self.band_indexes):
            raise ValueError("input.band_indexes are 1-based")
        return self


class OutputSpec(_Frozen):
    """How raw outputs become probabilities (segmentation/classification)."""

    activation: Literal["softmax", "sigmoid", "none"] = "softmax"
    tensor: str | None = None
    #: detection decoding: lowest score kept and most boxes per tile.
    score_threshold: float = Field(default=0.05, ge=0.0, le=1.0)
    max_detections: int = Field(default=100, gt=0)


class ArchitectureSpec(_Frozen):
    """A named architecture and its constructor parameters (state-dict weights)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    def __hash__(self) -> int:
        """Hash by name and the sorted repr of params."""
        return hash((self.name, repr(sorted(self.params.items()))))


class ModelSpec(_Frozen):
    """A validated model spec.

    .. versionadded:: 0.1
    """

    name: str = Field(min_length=1)
    version: str = "0"
    task: Literal["segmentation", "detection", "classification"]
    description: str = ""
    backend: str = Field(min_length=1)
    weights: str | None = None
    format: Literal["torchscript", "export", "state_dict", "onnx", "remote"] | None = (
        None
    )
    architecture: ArchitectureSpec | None = None
    endpoint: EndpointSpec | None = None
    input: InputSpec
    output: OutputSpec = OutputSpec()
    classes: tuple[ClassInfo, ...] = Field(min_length=1)
    label_map: dict[str, str] | None = None
    receptive_field: int | None = Field(default=None, ge=1)
    recommended_overlap: int | None = Field(default=None, ge=0)
    metrics: dict[str, Any] | None = None
    members: tuple[str, ...] | None = None  # backend 'ensemble': member spec paths
    source: str | None = Field(default=None, exclude=True)

    def __hash__(self) -> int:
        """Hash by the model id."""
        return hash(self.model_id)

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        idx = [c.index for c in self.classes]
        if sorted(idx) != list(range(len(idx))):
            raise ValueError(f"class indexes must be 0..{len(idx) - 1}, got {idx}")
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise ValueError(f"class names must be unique, got {names}")
        if self.label_map:
            unknown = sorted(set(self.label_map) - set(names))
            if unknown:
                raise ValueError(
                    f"label_map names unknown classes {unknown}; classes are {names}"
                )
        if self.backend == "http" and self.endpoint is None:
            raise ValueError("backend 'http' needs an 'endpoint' (url, protocol, ...)")
        if self.backend in ("torch", "onnx") and not self.weights:
            raise ValueError(f"backend {self.backend!r} needs 'weights'")
        if self.format == "state_dict" and self.architecture is None:
            raise ValueError("format 'state_dict' needs an 'architecture'")
        if self.backend == "ensemble" and len(self.members or ()) < 2:
            raise ValueError(
                "backend 'ensemble' needs at least two 'members' (spec paths)"
            )
        return self

    @property
    def num_classes(self) -> int:
        """Number of model classes."""
        return len(self.classes)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names by output index."""
        return tuple(c.name for c in sorted(self.classes, key=lambda c: c.index))

    def labels(self) -> tuple[str | None, ...]:
        """Project label per model class (``None`` where the mapping leaves it blank)."""
        if self.label_map is None:
            return self.class_names
        return tuple(self.label_map.get(n) for n in self.class_names)

    def weights_path(self) -> Path | None:
        """Resolved path of the weights file (``package:`` paths point into geolabel)."""
        if self.weights is None:
            return None
        if self.weights.startswith("package:"):
            pkg, _, rel = self.weights.removeprefix("package:").partition("/")
            try:
                root = resources.files(pkg)
            except ModuleNotFoundError as err:
                raise ModelSpecError(
                    f"{self.source or self.name}: weights {self.weights!r} live in the Python "
                    f"package {pkg!r}, which is not installed"
                ) from err
            return Path(str(root.joinpath(rel)))
        w = Path(self.weights)
        if not w.is_absolute() and self.source:
            w = Path(self.source).parent / w
        return w

    def weights_sha256(self) -> str | None:
        """SHA-256 of the weights file (``None`` for remote models)."""
        p = self.weights_path()
        if p is None:
            return None
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    @property
    def model_id(self) -> str:
        """``name@version`` (the weights hash is recorded separately in run.json)."""
        return f"{self.name}@{self.version}"

    def size_multiple(self) -> int | None:
        """Sizes the model takes besides ``tile_size``: any multiple of this, or
        ``None`` when only ``tile_size`` is known to work.

        ``input.size_multiple`` if given; ``2**depth`` for ``geolabel.unet`` and 1 for
        ``geolabel.linear`` (their own architectures); never with ``fixed_size``.
        """
        if self.input.fixed_size:
            return None
        if self.input.size_multiple is not None:
            return self.input.size_multiple
        arch = self.architecture
        if arch is not None and arch.name == "geolabel.unet":
            depth = arch.params.get("depth", 3)
            return 2**depth if isinstance(depth, int) and 0 < depth < 13 else None
        if arch is not None and arch.name == "geolabel.linear":
            return 1
        return None

    def default_overlap(self) -> int:
        """Overlap that makes tiling seam-free: recommended, else half the receptive field."""
        if self.recommended_overlap is not None:
            return self.recommended_overlap
        if self.receptive_field is not None:
            return min(self.receptive_field // 2, self.input.tile_size // 4)
        return self.input.tile_size // 8

    def __dask_tokenize__(self) -> Any:
        """Stable token from the spec's content."""
        return ("ModelSpec", self.model_dump_json())


def load_spec(path: str | Path, *, require_weights: bool = True) -> ModelSpec:
    """Load a model spec from YAML (safe, strict and bounded: ``models/_yaml.py``).

    Args:
        path: the spec file.
        require_weights: refuse a local model whose weights file is missing (off for
            a spec that is about to be trained from scratch).

    Raises:
        ModelSpecError: missing file, text that is not UTF-8, bad YAML, duplicate
            keys, an alias bomb, non-finite numbers, or a spec that does not
            validate; the message names the file and the offending fields.

    .. versionadded:: 0.1
    """
    p = Path(path)
    if not p.is_file():
        raise ModelSpecError(f"{p}: model spec not found")
    raw = load_yaml_mapping(p)
    try:
        spec = ModelSpec.model_validate({**raw, "source": str(p.resolve())})
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or 'spec'}: {e['msg']}"
            for e in err.errors()
        )
        raise ModelSpecError(f"{p}: invalid model spec: {problems}") from err
    w = spec.weights_path()
    missing = w is not None and not w.is_file()
    if require_weights and spec.backend in ("torch", "onnx") and missing:
        raise ModelSpecError(f"{p}: weights file {w} not found")
    return spec


def builtin_spec_path(name: str) -> Path:
    """Path of a spec shipped in ``geolabel/_data/models``."""
    return Path(str(resources.files("geolabel").joinpath(f"_data/models/{name}.yaml")))
