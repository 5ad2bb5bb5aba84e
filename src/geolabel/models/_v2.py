"""Open Inference Protocol (KServe V2) tensors: JSON and the binary-data extension.

Used by both the client backend and ``geolabel serve``. JSON tensors carry ``data``
as a flat list in row-major order; binary tensors (the Triton extension) carry
``parameters.binary_data_size`` and their raw little-endian bytes follow the JSON
header, whose length is given by the ``Inference-Header-Content-Length`` header.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["DTYPES", "HEADER_LENGTH", "Tensor", "decode", "encode"]

HEADER_LENGTH = "Inference-Header-Content-Length"

#: V2 datatype -> numpy dtype (BYTES is not supported: geolabel tensors are numeric).
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_NAMES = {v: k for k, v in DTYPES.items()}


class TensorError(ValueError):
    """A V2 message or tensor is malformed (the message says how)."""


@dataclass(frozen=True, slots=True)
class Tensor:
    """A named tensor."""

    name: str
    array: npt.NDArray[Any]


def datatype_of(array: npt.NDArray[Any]) -> str:
    """V2 datatype name of a numpy array."""
    dt = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    try:
        return _NAMES[np.dtype(dt)]
    except KeyError:
        raise TensorError(f"dtype {array.dtype} has no V2 datatype") from None


def encode(
    head: dict[str, Any], key: str, tensors: list[Tensor], *, binary: bool
) -> tuple[bytes, dict[str, str]]:
    """A V2 body with ``tensors`` under ``head[key]`` (``inputs`` or ``outputs``).

    Returns the body and the extra headers (content type, binary header length).
    """
    items: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for t in tensors:
        arr = np.ascontiguousarray(t.array)
        item: dict[str, Any] = {
            "name": t.name,
            "shape": list(arr.shape),
            "datatype": datatype_of(arr),
        }
        if binary:
            raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
            item["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            item["data"] = arr.ravel().tolist()
        items.append(item)
    text = json.dumps(
        {**head, key: items}, separators=(",", ":"), allow_nan=False
    ).encode()
    if not binary:
        return text, {"Content-Type": "application/json"}
    return text + b"".join(blobs), {
        "Content-Type": "application/octet-stream",
        HEADER_LENGTH: str(len(text)),
    }


def decode(
    body: bytes, key: str, header_length: str | None
) -> tuple[dict[str, Any], list[Tensor]]:
    """Parse a V2 body; returns the JSON document and its tensors under ``key``.

    Raises:
        TensorError: not JSON, a missing or bad field, or data that does not fill the
            declared shape.
    """
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise TensorError(
                f"{HEADER_LENGTH} {header_length!r} is not an integer"
            ) from None
        if not 0 < n <= len(body):
            raise TensorError(
                f"{HEADER_LENGTH} {n} does not fit a body of {len(body)} bytes"
            )
        text, rest = body[:n], memoryview(body)[n:]
    else:
        text, rest = body, memoryview(b"")
    try:
        doc = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TensorError(f"body is not JSON: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        raise TensorError(f"body has no {key!r} list")
    out: list[Tensor] = []
    offset = 0
    for i, item in enumerate(doc[key]):
        if not isinstance(item, dict):
            raise TensorError(f"{key}[{i}] is not an object")
        name, shape, dtype_name = (
            item.get("name"),
            item.get("shape"),
            item.get("datatype"),
        )
        if not isinstance(name, str):
            raise TensorError(f"{key}[{i}] has no name")
        if not (
            isinstance(shape, list)
            and all(isinstance(s, int) and s >= 0 for s in shape)
        ):
            raise TensorError(
                f"{key}[{i}] ({name!r}): shape {shape!r} is not a list of sizes"
            )
        if dtype_name not in DTYPES:
            raise TensorError(
                f"{key}[{i}] ({name!r}): unsupported datatype {dtype_name!r}"
            )
        dtype = DTYPES[dtype_name]
        count = int(np.prod(shape, dtype=np.int64))
        params = item.get("parameters") or {}
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is not None:
            if (
                not isinstance(size, int)
                or size != count * dtype.itemsize
                or offset + size > len(rest)
            ):
                raise TensorError(
                    f"{key}[{i}] ({name!r}): binary_data_size {size!r} does not match shape "
                    f"{shape} of {dtype_name} or the body"
                )
            arr = np.frombuffer(rest[offset : offset + size], dtype=dtype).reshape(
                shape
            )
            offset += size
        else:
            data = item.get("data")
            if not isinstance(data, list):
                raise TensorError(
                    f"{key}[{i}] ({name!r}) has neither data nor binary_data_size"
                )
            try:
                arr = np.asarray(data, dtype=dtype)
            except (TypeError, ValueError) as err:
                raise TensorError(
                    f"{key}[{i}] ({name!r}): data is not {dtype_name}: {err}"
                ) from None
            if arr.size != count:
                raise TensorError(
                    f"{key}[{i}] ({name!r}): {arr.size} values do not fill shape {shape}"
                )
            arr = arr.reshape(shape)
        out.append(Tensor(name, arr))
    return doc, out
