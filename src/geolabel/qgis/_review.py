"""Guided review in QGIS: edit widgets, derived fields and score-aware drawing.

What the default style of a suggestions layer (``predictions``, ``detections``) adds
for a reviewer:

* ``status`` is a drop-down of the values ``accept`` knows (:data:`REVIEW_STATUSES`),
  not free text;
* ``label`` is a drop-down of the model's classes, and ``class_name``/``class_id``
  are default expressions of ``label`` applied on every update, so a relabelled
  feature keeps them in step (``accept`` derives them again);
* score labels are drawn only for the uncertain features (score below
  :data:`UNCERTAIN_BELOW`), where a reviewer has to look;
* detections are drawn by score band (:data:`BANDS`): confident boxes solid, the
  ambiguous band dashed, low scores listed but switched off; each band is a rule that
  can be toggled in the layer panel, and each holds one rule per class.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from geolabel.qgis._qml import RGBA, _symbol

__all__ = [
    "BANDS",
    "REVIEW_STATUSES",
    "UNCERTAIN_BELOW",
    "class_expression",
    "review_form",
    "score_band_renderer",
    "show_only",
]

#: The status values ``geolabel accept`` understands, in review order.
REVIEW_STATUSES = ("suggested", "accepted", "rejected", "edited")
#: Score labels are shown below this score (the uncertain features).
UNCERTAIN_BELOW = 0.7
#: Detection score bands ``(label, low, high, drawn by default, line style)``.
BANDS = (
    ("confident (score >= 0.7)", 0.7, None, True, "solid"),
    ("ambiguous (0.3 - 0.7)", 0.3, 0.7, True, "dash"),
    ("low (score < 0.3)", None, 0.3, False, "dot"),
)


def _sub(parent: ET.Element, tag: str, **attrs: str) -> ET.Element:
    return ET.SubElement(parent, tag, attrs)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _value_map(parent: ET.Element, field: str, values: Sequence[str]) -> None:
    """A ``ValueMap`` (drop-down) edit widget for ``field``."""
    fld = _sub(parent, "field", name=field, configurationFlags="None")
    widget = _sub(fld, "editWidget", type="ValueMap")
    config = _sub(widget, "config")
    top = _sub(config, "Option", type="Map")
    lst = _sub(top, "Option", type="List", name="map")
    for v in values:
        entry = _sub(lst, "Option", type="Map")
        _sub(entry, "Option", type="QString", name=v, value=v)


def class_expression(classes: Sequence[tuple[str, str, int]], target: str) -> str:
    """A QGIS expression giving ``class_name`` or ``class_id`` from ``"label"``.

    Args:
        classes: ``(label, class name, class id)`` per class; the first row of a label
            wins (labels compare case-insensitively).
        target: ``class_name`` or ``class_id``.

    Unknown labels keep the field's current value.
    """
    seen: set[str] = set()
    whens = []
    for label, name, cid in classes:
        key = label.lower()
        if key in seen:
            continue
        seen.add(key)
        value = _quote(name) if target == "class_name" else str(cid)
        whens.append(f'WHEN lower("label") = {_quote(key)} THEN {value}')
    return "CASE " + " ".join(whens) + f' ELSE "{target}" END'


def review_form(
    fields: Sequence[str], classes: Sequence[tuple[str, str, int]]
) -> list[ET.Element]:
    """``fieldConfiguration`` and ``defaults`` elements of a suggestions layer's style.

    Args:
        fields: the layer's fields (only those present are configured).
        classes: ``(label, class name, class id)`` per class (see
            :func:`class_expression`).
    """
    form = ET.Element("fieldConfiguration")
    if "status" in fields:
        _value_map(form, "status", REVIEW_STATUSES)
    labels = list(dict.fromkeys(label for label, _, _ in classes))
    if "label" in fields and labels:
        _value_map(form, "label", labels)
    defaults = ET.Element("defaults")
    if "label" in fields and classes:
        for target in ("class_name", "class_id"):
            if target in fields:
                _sub(
                    defaults,
                    "default",
                    field=target,
                    expression=class_expression(classes, target),
                    applyOnUpdate="1",
                )
    return [form, defaults]


def show_only(labeling: ET.Element, expression: str) -> ET.Element:
    """Give a ``simple`` labeling a data-defined *Show* expression (in place)."""
    settings = labeling.find("settings")
    if settings is None:
        raise ValueError("not a simple labeling element (no <settings>)")
    dd = _sub(settings, "dd_properties")
    coll = _sub(dd, "Option", type="Map")
    _sub(coll, "Option", type="QString", name="name", value="")
    props = _sub(coll, "Option", type="Map", name="properties")
    show = _sub(props, "Option", type="Map", name="Show")
    _sub(show, "Option", type="bool", name="active", value="true")
    _sub(show, "Option", type="QString", name="expression", value=expression)
    _sub(show, "Option", type="int", name="type", value="3")
    _sub(coll, "Option", type="QString", name="type", value="collection")
    return labeling


def _band_filter(low: float | None, high: float | None) -> str:
    parts = []
    if low is not None:
        parts.append(f'"score" >= {low}')
    if high is not None:
        parts.append(f'"score" < {high}')
    return " AND ".join(parts)


def score_band_renderer(
    class_colours: Sequence[tuple[str, RGBA]], *, geometry: str
) -> ET.Element:
    """A rule-based renderer: one rule per score band (:data:`BANDS`), classes inside.

    The low band's rule is inactive (unchecked), so boxes below 0.3 are hidden until
    the reviewer switches them on.
    """
    rend = ET.Element(
        "renderer-v2",
        type="RuleRenderer",
        symbollevels="0",
        enableorderby="0",
        forceraster="0",
    )
    rules = _sub(rend, "rules", key=str(uuid.uuid5(uuid.NAMESPACE_URL, "rules")))
    symbols = _sub(rend, "symbols")
    n = 0
    for label, low, high, active, line in BANDS:
        band = _sub(
            rules,
            "rule",
            key=str(uuid.uuid5(uuid.NAMESPACE_URL, label)),
            filter=_band_filter(low, high),
            label=label,
        )
        if not active:
            band.set("checkstate", "0")
        for name, rgba in class_colours:
            _sub(
                band,
                "rule",
                key=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{label}/{name}")),
                filter=f'"class_name" = {_quote(name)}',
                label=name,
                symbol=str(n),
            )
            _symbol(symbols, str(n), geometry, rgba, fill_alpha=0)
            for opt in symbols[-1].iter("Option"):
                if opt.get("name") in ("outline_style", "line_style"):
                    opt.set("value", line)
            n += 1
    return rend
