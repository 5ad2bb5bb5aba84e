"""The labelling tools' model contracts, next to V2 REST on ``geolabel serve``.

**SCANEO**: ``POST /predict`` as ``multipart/form-data`` with the tile as a GeoTIFF in
the field ``image`` (the spec's pre-processing applied). A segmentation model answers
with a GeoTIFF on the tile's grid: ``?output=classes`` (default; one band of class
indexes, what :mod:`geolabel.models._scaneo` reads), ``?output=onehot`` (one uint8
0/1 band per class: what SCANEO's own inference code reads, band ``i`` the mask of
the label mapped to output index ``i``) or ``?output=probabilities`` (one float32
band per class). A classification model answers ``{"probabilities": [...]}``.

**Label Studio ML backend** (what Label Studio's ``ml/api_connector.py`` sends):
``GET /health`` -> ``{"status": "UP", ...}``; ``POST /setup`` (``project``,
``schema``) -> ``{"model_version": ...}``; ``POST /predict`` as JSON (``tasks``,
``label_config``) -> ``{"results": [{"result": [...], "score", "model_version"}]}``,
one per task, in order; ``POST /webhook`` (``action``, ``project``, ...) and ``POST /train`` (what "Start
training" sends without Label Studio's webhook flag) are acknowledged and counted
(training runs through ``geolabel loop``); ``GET /versions``. A task must carry the chip georeference that ``geolabel label-studio
export`` writes (``data.geolabel``): the pixels are read from the scene itself, which
must lie under the server's ``data_root``; nothing is ever fetched from a URL.

``/predict`` tells the two apart by ``Content-Type``.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import logging
import threading
import warnings
from collections import Counter
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import numpy as np
import numpy.typing as npt
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.io import MemoryFile

from geolabel.errors import GeolabelError
from geolabel.exchange import ChipRef, ConfigNames, config_names, polygon_result
from geolabel.execution.plan import open_model_scene
from geolabel.grid import Window
from geolabel.io.scene import Scene
from geolabel.models.base import activate
from geolabel.serve._window import predict_window, regions

if TYPE_CHECKING:
    from geolabel.serve._server import ModelServer

__all__ = ["ProtocolError", "Protocols"]

logger = logging.getLogger(__name__)

#: the largest chip a Label Studio task may ask for (pixels)
MAX_WINDOW_PIXELS = 4096 * 4096
#: Label Studio sends every selected task in one /predict request (and waits
#: ML_TIMEOUT_PREDICT, 100 s by default); beyond this many the request is refused
MAX_TASKS = 10_000
SCANEO_OUTPUTS = ("classes", "onehot", "probabilities")


class ProtocolError(Exception):
    """An HTTP answer other than 200 (status and one-line message)."""

    def __init__(self, status: int, message: str) -> None:
        """Keep the status."""
        super().__init__(message)
        self.status = status


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ProtocolError(
            HTTPStatus.BAD_REQUEST, f"body is not JSON: {err}"
        ) from None
    if not isinstance(doc, dict):
        raise ProtocolError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
    return doc


def _multipart_file(ctype: str, body: bytes, field: str) -> bytes:
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode("latin-1") + body
    )
    if not msg.is_multipart():
        raise ProtocolError(HTTPStatus.BAD_REQUEST, "multipart body without parts")
    for part in msg.iter_parts():
        if part.get_param("name", header="content-disposition") == field:
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                return data
    raise ProtocolError(HTTPStatus.BAD_REQUEST, f"no file field {field!r} in the form")


class Protocols:
    """SCANEO and Label Studio ML-backend routes of one :class:`ModelServer`."""

    def __init__(self, server: ModelServer, data_root: Path | None) -> None:
        """Serve ``server``'s model; Label Studio tasks read scenes under ``data_root``."""
        self.server = server
        self.spec = server.spec
        self.data_root = None if data_root is None else data_root.resolve()
        self.events: Counter[str] = Counter()
        self._scenes: dict[Path, Scene] = {}
        self._lock = threading.Lock()

    # -- GET -----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Label Studio's health answer (no token needed, like V2 health)."""
        return {
            "status": "UP",
            "model_class": "geolabel",
            "model_version": self.spec.model_id,
        }

    def versions(self) -> dict[str, Any]:
        """The model versions served (one)."""
        return {"versions": [self.spec.model_id], "model_version": self.spec.model_id}

    # -- POST ----------------------------------------------------------------------

    def post(
        self, path: str, ctype: str, body: bytes, *, query: str = ""
    ) -> tuple[int, bytes, str]:
        """Answer a POST to ``path``: ``(status, body, content type)``.

        Raises:
            ProtocolError: bad request, unknown path, or the model failed.
        """
        if path == "/predict" and ctype.lower().startswith("multipart/form-data"):
            output = (parse_qs(query).get("output") or ["classes"])[0]
            if output not in SCANEO_OUTPUTS:
                raise ProtocolError(
                    HTTPStatus.BAD_REQUEST,
                    f"output must be one of {list(SCANEO_OUTPUTS)}, got {output!r}",
                )
            return self._scaneo(ctype, body, output)
        doc = _json_body(body)
        if path == "/predict":
            out: dict[str, Any] = self._ls_predict(doc)
        elif path == "/setup":
            schema = doc.get("schema")
            if isinstance(schema, str) and schema.strip():
                self._names(schema)
            out = {"model_version": self.spec.model_id}
        elif path in ("/webhook", "/train"):
            # /train: Label Studio's "Start training" without its webhook feature flag
            action = (
                "START_TRAINING" if path == "/train" else str(doc.get("action") or "")
            )
            if not action:
                raise ProtocolError(HTTPStatus.BAD_REQUEST, "webhook without action")
            with self._lock:
                self.events[action] += 1
            logger.info("label studio event %s", action)
            out = {"status": "ok", "action": action, "events": self.events[action]}
        elif path == "/validate":
            self._names(str(doc.get("config") or ""))
            out = {"status": "ok"}
        else:
            raise ProtocolError(HTTPStatus.NOT_FOUND, f"no endpoint {path!r}")
        return 200, json.dumps(out).encode(), "application/json"

    def _infer(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        try:
            return self.server.infer(x)
        except GeolabelError as err:
            raise ProtocolError(
                HTTPStatus.UNPROCESSABLE_ENTITY, f"inference failed: {err}"
            ) from None

    # -- SCANEO --------------------------------------------------------------------

    def _scaneo(self, ctype: str, body: bytes, output: str) -> tuple[int, bytes, str]:
        tiff = _multipart_file(ctype, body, "image")
        if not tiff.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
            raise ProtocolError(
                HTTPStatus.BAD_REQUEST, "field 'image' is not a GeoTIFF"
            )
        spec = self.spec
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with MemoryFile(tiff) as mem, mem.open(driver="GTiff") as ds:
                    x = ds.read().astype(np.float32)
                    profile = {"transform": ds.transform, "crs": ds.crs}
        except RasterioIOError as err:
            raise ProtocolError(
                HTTPStatus.BAD_REQUEST, f"unreadable GeoTIFF: {err}"
            ) from None
        bands, t = len(spec.input.bands), spec.input.tile_size
        if x.shape[0] != bands:
            raise ProtocolError(
                HTTPStatus.BAD_REQUEST,
                f"tile has {x.shape[0]} bands, model takes {bands}",
            )
        if spec.input.fixed_size and x.shape[1:] != (t, t):
            raise ProtocolError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                f"the model takes only {t} x {t} tiles, got {list(x.shape[1:])}",
            )
        if not np.isfinite(x).all():
            raise ProtocolError(
                HTTPStatus.BAD_REQUEST, "tile has NaN or infinite values"
            )
        p = activate(self._infer(x[None]), spec)[0]
        if spec.task == "classification":
            doc = {"probabilities": [float(v) for v in p.reshape(-1)]}
            return 200, json.dumps(doc).encode(), "application/json"
        if output == "probabilities":
            bands = p.astype(np.float32)
        elif output == "onehot":
            bands = p.argmax(axis=0)[None] == np.arange(p.shape[0])[:, None, None]
            bands = bands.astype(np.uint8)
        else:
            dtype = np.uint8 if spec.num_classes <= 255 else np.uint16
            bands = p.argmax(axis=0)[None].astype(dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with MemoryFile() as mem:
                with mem.open(
                    driver="GTiff",
                    width=bands.shape[2],
                    height=bands.shape[1],
                    count=bands.shape[0],
                    dtype=str(bands.dtype),
                    **{k: v for k, v in profile.items() if v is not None},
                ) as out:
                    out.write(bands)
                data = bytes(mem.read())
        return 200, data, "image/tiff"

    # -- Label Studio --------------------------------------------------------------

    def _names(self, config: str) -> ConfigNames:
        try:
            return config_names(config)
        except GeolabelError as err:
            raise ProtocolError(HTTPStatus.BAD_REQUEST, str(err)) from None

    def _scene(self, ref: ChipRef) -> Scene:
        if self.data_root is None:
            raise ProtocolError(
                HTTPStatus.FORBIDDEN,
                "this server reads no scenes: start `geolabel serve` with --data-root",
            )
        p = Path(ref.scene)
        real = (p if p.is_absolute() else self.data_root / p).resolve()
        if not real.is_relative_to(self.data_root):
            raise ProtocolError(
                HTTPStatus.FORBIDDEN, f"scene {ref.scene!r} lies outside --data-root"
            )
        with self._lock:
            if real not in self._scenes:
                if not real.is_file():
                    raise ProtocolError(HTTPStatus.NOT_FOUND, f"no scene {ref.scene!r}")
                try:
                    self._scenes[real] = open_model_scene(real, self.spec)
                except GeolabelError as err:
                    raise ProtocolError(
                        HTTPStatus.UNPROCESSABLE_ENTITY, str(err)
                    ) from None
            return self._scenes[real]

    def _ls_predict(self, doc: dict[str, Any]) -> dict[str, Any]:
        if self.spec.task != "segmentation":
            raise ProtocolError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                f"Label Studio predictions need a segmentation model, not {self.spec.task!r}",
            )
        tasks = doc.get("tasks")
        if not isinstance(tasks, list) or not 1 <= len(tasks) <= MAX_TASKS:
            raise ProtocolError(
                HTTPStatus.BAD_REQUEST,
                f"'tasks' must be a list of 1..{MAX_TASKS} tasks",
            )
        names = self._names(str(doc.get("label_config") or ""))
        wanted = {v.lower(): v for v in names.labels}
        labels = self.spec.labels()
        results = []
        for n, task in enumerate(tasks):
            where = f"task {task.get('id', n) if isinstance(task, dict) else n}"
            if not isinstance(task, dict):
                raise ProtocolError(HTTPStatus.BAD_REQUEST, f"{where}: not an object")
            try:
                ref = ChipRef.from_task(task, where)
            except GeolabelError as err:
                raise ProtocolError(HTTPStatus.BAD_REQUEST, str(err)) from None
            results.append(self._task_result(ref, names, wanted, labels, where))
        return {"results": results, "model_version": self.spec.model_id}

    def _task_result(
        self,
        ref: ChipRef,
        names: ConfigNames,
        wanted: dict[str, str],
        labels: tuple[str | None, ...],
        where: str,
    ) -> dict[str, Any]:
        scene = self._scene(ref)
        r0, c0, h, w = ref.window
        if h * w > MAX_WINDOW_PIXELS:
            raise ProtocolError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"{where}: chip of {h} x {w} pixels exceeds {MAX_WINDOW_PIXELS}",
            )
        if r0 < 0 or c0 < 0 or r0 + h > scene.grid.height or c0 + w > scene.grid.width:
            raise ProtocolError(
                HTTPStatus.BAD_REQUEST,
                f"{where}: window {list(ref.window)} is off the scene",
            )
        probs, valid = predict_window(
            scene, Window(r0, c0, h, w), self.spec, self._infer
        )
        result, scores = [], []
        for k, reg in enumerate(regions(probs, valid)):
            name = self.spec.class_names[reg.class_id]
            label = labels[reg.class_id] or name
            shown = wanted.get(label.lower()) or wanted.get(name.lower())
            if wanted and shown is None:
                continue  # a class the project does not label
            result.append(
                polygon_result(
                    reg.ring,
                    width=w,
                    height=h,
                    label=shown or label,
                    score=reg.score,
                    region_id=f"g{k}",
                    names=names,
                )
            )
            scores.append(reg.score)
        return {
            "result": result,
            "score": float(np.mean(scores)) if scores else 0.0,
            "model_version": self.spec.model_id,
        }
