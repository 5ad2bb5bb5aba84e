"""The SCANEO model protocol: POST the tile as a GeoTIFF ``image``, read back the answer.

A request is ``multipart/form-data`` with one file field ``image`` holding the tile
(float32, the spec's pre-processing applied; a spec without mean/std sends the raw
scaled values). A segmentation model answers with a one-band class GeoTIFF (integer
class index per pixel), turned here into one-hot probabilities; a classification model
answers with a JSON list of class probabilities (or ``{"probabilities": [...]}``).
SCANEO takes one tile per request.
"""

from __future__ import annotations

import json
import uuid
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from geolabel.errors import ModelOutputError, ModelSpecError
from geolabel.models.base import Batch, Prediction, to_predictions

if TYPE_CHECKING:
    from geolabel.models._transport import HttpClient
    from geolabel.models.endpoint import EndpointSpec
    from geolabel.models.spec import ModelSpec

__all__ = ["ScaneoProtocol", "decode_class_tiff", "encode_tile_tiff"]


def encode_tile_tiff(tile: npt.NDArray[np.float32]) -> bytes:
    """An in-memory GeoTIFF of a ``(bands, rows, cols)`` tile."""
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    bands, rows, cols = tile.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile() as mem:
            with mem.open(
                driver="GTiff",
                width=cols,
                height=rows,
                count=bands,
                dtype=str(tile.dtype),
            ) as ds:
                ds.write(tile)
            mem.seek(0)
            data = bytes(mem.read())
    return data


def decode_class_tiff(body: bytes, where: str) -> npt.NDArray[np.int64]:
    """The ``(rows, cols)`` class indexes of a one-band GeoTIFF answer.

    Raises:
        ModelOutputError: not a GeoTIFF, more than one band, or not integers.
    """
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
    from rasterio.io import MemoryFile

    if not body.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        raise ModelOutputError(f"{where}: answer is not a GeoTIFF ({body[:16]!r}…)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with MemoryFile(body) as mem, mem.open(driver="GTiff") as ds:
                if ds.count != 1:
                    raise ModelOutputError(
                        f"{where}: class GeoTIFF has {ds.count} bands, expected 1"
                    )
                arr = ds.read(1)
    except RasterioIOError as err:
        raise ModelOutputError(f"{where}: unreadable GeoTIFF answer: {err}") from None
    if not np.issubdtype(arr.dtype, np.integer):
        raise ModelOutputError(
            f"{where}: class GeoTIFF is {arr.dtype}, expected integer classes"
        )
    out: npt.NDArray[np.int64] = np.asarray(arr, dtype=np.int64)
    return out


def _multipart(
    field: str, filename: str, content: bytes, ctype: str
) -> tuple[bytes, str]:
    boundary = f"geolabel-{uuid.uuid4().hex}"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'
    ).encode()
    return (
        head + content + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


class ScaneoProtocol:
    """One tile per request to a SCANEO model server."""

    max_tiles = 1

    def __init__(self, spec: ModelSpec, ep: EndpointSpec, client: HttpClient) -> None:
        """Check that the task has a SCANEO answer format."""
        if spec.task not in ("segmentation", "classification"):
            raise ModelSpecError(
                f"model {spec.model_id}: SCANEO serves segmentation or classification, not {spec.task!r}"
            )
        self.spec = spec
        self.ep = ep
        self.client = client

    def infer(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Probabilities for a ``(1, bands, rows, cols)`` tile: ``(1, C, rows, cols)`` or ``(1, C)``.

        Raises:
            RemoteModelError: the request failed for good.
            ModelOutputError: the answer is malformed or of the wrong size/class count.
        """
        body, ctype = _multipart(
            "image", "tile.tif", encode_tile_tiff(x[0]), "image/tiff"
        )
        url = f"{self.client.base_url}{self.ep.path}"
        resp = self.client.request(
            "POST", self.ep.path, body=body, headers={"Content-Type": ctype}
        )
        c = self.spec.num_classes
        if self.spec.task == "classification":
            return self._scores(resp.body, url)[None]
        classes = decode_class_tiff(resp.body, url)
        if classes.shape != x.shape[2:]:
            raise ModelOutputError(
                f"{url}: class GeoTIFF is {classes.shape}, tile is {x.shape[2:]}"
            )
        bad = (classes < 0) | (classes >= c)
        if bad.any():
            raise ModelOutputError(
                f"{url}: class values {sorted(set(np.unique(classes[bad]).tolist()))[:5]} "
                f"outside 0..{c - 1}"
            )
        onehot: npt.NDArray[np.float32] = (
            classes[None] == np.arange(c)[:, None, None]
        ).astype(np.float32)
        return onehot[None]

    def _scores(self, body: bytes, url: str) -> npt.NDArray[np.float32]:
        try:
            doc: Any = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ModelOutputError(
                f"{url}: classification answer is not JSON"
            ) from None
        if isinstance(doc, dict):
            doc = doc.get("probabilities")
        c = self.spec.num_classes
        if not (
            isinstance(doc, list)
            and len(doc) == c
            and all(isinstance(v, int | float) for v in doc)
        ):
            raise ModelOutputError(f"{url}: expected a list of {c} class probabilities")
        p = np.asarray(doc, dtype=np.float32)
        if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
            raise ModelOutputError(
                f"{url}: class probabilities must be finite and in [0, 1]"
            )
        return p

    def predictions(
        self, raw: npt.NDArray[np.float32], batch: Batch
    ) -> list[Prediction]:
        """Wrap the answers (already probabilities) per tile."""
        spec = self.spec
        if spec.task == "classification":
            return [
                Prediction(
                    tile=t,
                    kind="scores",
                    array=raw[i],
                    num_classes=spec.num_classes,
                    model_id=spec.model_id,
                )
                for i, t in enumerate(batch.tiles)
            ]
        return to_predictions(raw, batch, spec)
