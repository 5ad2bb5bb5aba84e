"""Label Studio's image-annotation JSON: polygon results, labelling configs, chip georef.

Label Studio places an image region in percent of the image (``x`` right, ``y``
down, ``0..100``). geolabel's chips are pixel windows of a scene, so a vertex at
chip pixel ``(col, row)`` is ``(100 * col / width, 100 * row / height)`` and goes back
to the map through the chip's affine transform, exactly (no rounding on the way).
Each task carries its chip's georeference in ``data.geolabel``: ``scene``,
``window`` ``[row_off, col_off, height, width]``, ``transform`` (6 affine
coefficients, pixel corners) and ``crs``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
import numpy.typing as npt
import shapely
from affine import Affine

from geolabel.errors import ConfigError
from geolabel.exchange._geo import apply_affine

__all__ = [
    "ChipRef",
    "ConfigNames",
    "config_names",
    "labelling_config",
    "polygon_result",
    "result_geometry",
]

#: Result types read back: polygons, rectangles (boxes) and keypoints are not mixed.
RESULT_TYPES = ("polygonlabels", "rectanglelabels")


@dataclass(frozen=True, slots=True)
class ChipRef:
    """Where a task's image lies on its scene."""

    scene: str
    window: tuple[int, int, int, int]
    transform: Affine
    crs: str | None

    @property
    def height(self) -> int:
        """Chip rows."""
        return self.window[2]

    @property
    def width(self) -> int:
        """Chip columns."""
        return self.window[3]

    def to_json(self) -> dict[str, Any]:
        """The ``data.geolabel`` block."""
        return {
            "scene": self.scene,
            "window": list(self.window),
            "transform": list(self.transform)[:6],
            "crs": self.crs,
        }

    @classmethod
    def from_task(cls, task: dict[str, Any], where: str) -> ChipRef:
        """Read ``task["data"]["geolabel"]``.

        Raises:
            ConfigError: the task has no (or a malformed) georeference.
        """
        data = task.get("data")
        ref = data.get("geolabel") if isinstance(data, dict) else None
        try:
            assert isinstance(ref, dict)
            window = tuple(int(v) for v in ref["window"])
            coeffs = [float(v) for v in ref["transform"]]
            assert len(window) == 4 and len(coeffs) == 6
            assert window[2] > 0 and window[3] > 0
            crs = ref.get("crs")
            return cls(str(ref["scene"]), window, Affine(*coeffs), crs)
        except (AssertionError, KeyError, TypeError, ValueError):
            raise ConfigError(
                f"{where}: no geolabel georeference in data.geolabel (scene, window, "
                "transform, crs); only tasks written by `geolabel label-studio export` "
                "can be imported or predicted"
            ) from None


@dataclass(frozen=True, slots=True)
class ConfigNames:
    """The control tag's ``name``, the image tag's ``name`` and the label values."""

    from_name: str
    to_name: str
    labels: tuple[str, ...]


def labelling_config(
    classes: Sequence[str], colors: Sequence[str], *, from_name: str = "label"
) -> str:
    """A polygon labelling config with one ``<Label>`` per class (its colour)."""
    lines = ["<View>", '  <Image name="image" value="$image" zoom="true"/>']
    lines.append(
        f'  <PolygonLabels name={quoteattr(from_name)} toName="image" strokeWidth="2">'
    )
    lines += [
        f"    <Label value={quoteattr(n)} background={quoteattr(c)}/>"
        for n, c in zip(classes, colors, strict=True)
    ]
    lines += ["  </PolygonLabels>", "</View>"]
    return "\n".join(lines) + "\n"


def config_names(config: str, where: str = "label config") -> ConfigNames:
    """The ``PolygonLabels`` tag of a labelling config (the first one).

    Raises:
        ConfigError: not XML, or no ``PolygonLabels`` tag with ``name``/``toName``.
    """
    if re.search(r"<!(DOCTYPE|ENTITY)", config):
        raise ConfigError(f"{where}: DTDs and entities are not accepted")
    try:
        root = ET.fromstring(config)
    except ET.ParseError as err:
        raise ConfigError(f"{where}: not XML: {err}") from None
    for tag in root.iter("PolygonLabels"):
        name, to = tag.get("name"), tag.get("toName")
        if name and to:
            values = tuple(
                str(lab.get("value")) for lab in tag.iter("Label") if lab.get("value")
            )
            return ConfigNames(name, to, values)
    raise ConfigError(f"{where}: no <PolygonLabels name=... toName=...> tag")


def polygon_result(
    ring: npt.NDArray[np.float64],
    *,
    width: int,
    height: int,
    label: str,
    score: float | None,
    region_id: str,
    names: ConfigNames,
) -> dict[str, Any]:
    """A ``polygonlabels`` result for a ring of chip pixel ``(col, row)`` vertices.

    The closing vertex (equal to the first) is dropped, as Label Studio keeps rings open.
    """
    pts = np.asarray(ring, dtype=np.float64)
    if len(pts) > 1 and np.array_equal(pts[0], pts[-1]):
        pts = pts[:-1]
    pct = np.column_stack([pts[:, 0] * 100.0 / width, pts[:, 1] * 100.0 / height])
    out: dict[str, Any] = {
        "id": region_id,
        "from_name": names.from_name,
        "to_name": names.to_name,
        "type": "polygonlabels",
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {
            "points": pct.tolist(),
            "closed": True,
            "polygonlabels": [label],
        },
    }
    if score is not None:
        out["score"] = float(score)
    return out


def result_geometry(
    result: dict[str, Any], ref: ChipRef, where: str
) -> tuple[shapely.Geometry, str] | None:
    """Map geometry and label of a polygon or rectangle result (others: ``None``).

    Raises:
        ConfigError: a malformed result of a known type.
    """
    kind = result.get("type")
    if kind not in RESULT_TYPES:
        return None
    value = result.get("value")
    try:
        assert isinstance(value, dict)
        labels = value[kind]
        assert isinstance(labels, list) and labels
        label = str(labels[0])
        w = float(result.get("original_width") or ref.width)
        h = float(result.get("original_height") or ref.height)
        # a chip shown at another size (resized PNG) still spans the whole window
        sx, sy = ref.width / w, ref.height / h
        if kind == "polygonlabels":
            pct = np.asarray(value["points"], dtype=np.float64)
            assert pct.ndim == 2 and pct.shape[1] == 2 and len(pct) >= 3
        else:
            x, y = float(value["x"]), float(value["y"])
            bw, bh = float(value["width"]), float(value["height"])
            assert float(value.get("rotation") or 0.0) == 0.0, "rotated rectangle"
            pct = np.array([[x, y], [x + bw, y], [x + bw, y + bh], [x, y + bh]])
    except (AssertionError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(
            f"{where}: malformed {kind} result: {err or 'bad value'}"
        ) from None
    cols = pct[:, 0] * w / 100.0 * sx
    rows = pct[:, 1] * h / 100.0 * sy
    xs, ys = apply_affine(ref.transform, cols, rows)
    poly = shapely.Polygon(np.column_stack([xs, ys]))
    if not poly.is_valid:
        poly = shapely.make_valid(poly)
    return poly, label
