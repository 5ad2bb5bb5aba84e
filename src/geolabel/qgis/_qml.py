"""QGIS style XML (QML) built with ElementTree: raster renderers, vector renderers, labels.

The same elements serve two purposes: wrapped in a ``<qgis>`` root they are a ``.qml``
style (a sidecar file or a row of a GeoPackage's ``layer_styles`` table); appended to a
``<maplayer>`` they style that layer inside a ``.qgs`` project. Everything here is plain
XML in the schema QGIS 3.22 writes and reads; no PyQGIS is imported.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

__all__ = [
    "QGIS_VERSION",
    "Category",
    "Range",
    "RAMPS",
    "categorized_renderer",
    "graduated_renderer",
    "multiband_renderer",
    "paletted_renderer",
    "pseudocolor_renderer",
    "qml_document",
    "score_labeling",
]

#: The QGIS version these documents are written for (Debian bookworm's QGIS).
QGIS_VERSION = "3.22.16-Białowieża"

RGBA = tuple[int, int, int, int]

#: Colour ramps as stops ``(position 0-1, (r, g, b))``.
RAMPS: dict[str, tuple[tuple[float, tuple[int, int, int]], ...]] = {
    # viridis: probabilities (dark = unlikely, yellow = likely)
    "viridis": (
        (0.0, (68, 1, 84)),
        (0.25, (59, 82, 139)),
        (0.5, (33, 145, 140)),
        (0.75, (94, 201, 98)),
        (1.0, (253, 231, 37)),
    ),
    # red-yellow-green: confidence (red = low)
    "rdylgn": (
        (0.0, (215, 25, 28)),
        (0.25, (253, 174, 97)),
        (0.5, (255, 255, 191)),
        (0.75, (166, 217, 106)),
        (1.0, (26, 150, 65)),
    ),
    # magma: uncertainty (bright = uncertain)
    "magma": (
        (0.0, (0, 0, 4)),
        (0.25, (81, 18, 124)),
        (0.5, (183, 55, 121)),
        (0.75, (252, 137, 97)),
        (1.0, (252, 253, 191)),
    ),
    # yellow-orange-red: rank (red = label first) and tile uncertainty
    "ylorrd": (
        (0.0, (255, 255, 178)),
        (0.33, (254, 204, 92)),
        (0.66, (253, 141, 60)),
        (1.0, (189, 0, 38)),
    ),
}


@dataclass(frozen=True, slots=True)
class Category:
    """One value of a categorised (vector) or paletted (raster) style.

    ``render=False`` lists the category in the legend, switched off.
    """

    value: str | int
    label: str
    rgba: RGBA
    render: bool = True


@dataclass(frozen=True, slots=True)
class Range:
    """One class of a graduated style: ``lower <= value <= upper``."""

    lower: float
    upper: float
    label: str
    rgba: RGBA


def _sub(
    parent: ET.Element, tag: str, text: str | None = None, **attrs: str
) -> ET.Element:
    el = ET.SubElement(parent, tag, {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def _hex(rgba: RGBA) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgba[:3])


def _rgba(rgba: RGBA) -> str:
    return ",".join(str(int(c)) for c in rgba)


def ramp_color(name: str, t: float) -> RGBA:
    """The colour at ``t`` (0–1) of the named ramp, linearly interpolated."""
    stops = RAMPS[name]
    t = min(max(t, 0.0), 1.0)
    for (p0, c0), (p1, c1) in pairwise(stops):
        if t <= p1:
            f = 0.0 if p1 == p0 else (t - p0) / (p1 - p0)
            r, g, b = (round(a + f * (b_ - a)) for a, b_ in zip(c0, c1, strict=True))
            return (r, g, b, 255)
    r, g, b = stops[-1][1]
    return (r, g, b, 255)


def qml_document(children: Sequence[ET.Element], *, labels: bool = False) -> str:
    """A complete ``.qml`` document holding ``children`` (renderer, pipe, labeling)."""
    root = ET.Element(
        "qgis",
        {
            "version": QGIS_VERSION,
            "styleCategories": "AllStyleCategories",
            "hasScaleBasedVisibilityFlag": "0",
            "minScale": "1e+08",
            "maxScale": "0",
            "labelsEnabled": "1" if labels else "0",
        },
    )
    root.extend(children)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + body + "\n"


# ---------------------------------------------------------------- raster renderers
def _pipe(renderer: ET.Element, *, resampling: str) -> list[ET.Element]:
    pipe = ET.Element("pipe")
    prov = _sub(pipe, "provider")
    _sub(
        prov,
        "resampling",
        enabled="false" if resampling == "nearest" else "true",
        zoomedInResamplingMethod="nearestNeighbour"
        if resampling == "nearest"
        else "bilinear",
        zoomedOutResamplingMethod="nearestNeighbour"
        if resampling == "nearest"
        else "bilinear",
        maxOversampling="2",
    )
    pipe.append(renderer)
    _sub(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    _sub(
        pipe,
        "huesaturation",
        saturation="0",
        colorizeOn="0",
        colorizeRed="255",
        colorizeGreen="128",
        colorizeBlue="128",
        colorizeStrength="100",
        grayscaleMode="0",
    )
    _sub(pipe, "rasterresampler", maxOversampling="2")
    _sub(pipe, "resamplingStage", "resamplingFilter")
    blend = ET.Element("blendMode")
    blend.text = "0"
    return [pipe, blend]


def _min_max_origin(parent: ET.Element, limits: str = "None") -> None:
    mmo = _sub(parent, "minMaxOrigin")
    for tag, text in (
        ("limits", limits),
        ("extent", "WholeRaster"),
        ("statAccuracy", "Estimated"),
        ("cumulativeCutLower", "0.02"),
        ("cumulativeCutUpper", "0.98"),
        ("stdDevFactor", "2"),
    ):
        _sub(mmo, tag, text)


def paletted_renderer(
    categories: Sequence[Category], *, band: int = 1, opacity: float = 1.0
) -> list[ET.Element]:
    """A paletted renderer (class masks): one colour and label per value.

    Values not listed (nodata) are not drawn.
    """
    r = ET.Element(
        "rasterrenderer",
        {
            "type": "paletted",
            "band": str(band),
            "opacity": f"{opacity:g}",
            "alphaBand": "-1",
            "nodataColor": "",
        },
    )
    _sub(r, "rasterTransparency")
    _min_max_origin(r)
    pal = _sub(r, "colorPalette")
    for c in categories:
        _sub(
            pal,
            "paletteEntry",
            value=str(c.value),
            color=_hex(c.rgba),
            alpha=str(c.rgba[3]),
            label=c.label,
        )
    return _pipe(r, resampling="nearest")


def pseudocolor_renderer(
    ramp: str,
    vmin: float,
    vmax: float,
    *,
    band: int = 1,
    opacity: float = 1.0,
    steps: int = 5,
) -> list[ET.Element]:
    """A singleband pseudocolor renderer: ``ramp`` interpolated over ``[vmin, vmax]``."""
    r = ET.Element(
        "rasterrenderer",
        {
            "type": "singlebandpseudocolor",
            "band": str(band),
            "opacity": f"{opacity:g}",
            "alphaBand": "-1",
            "nodataColor": "",
            "classificationMin": repr(float(vmin)),
            "classificationMax": repr(float(vmax)),
        },
    )
    _sub(r, "rasterTransparency")
    _min_max_origin(r)
    shader = _sub(r, "rastershader")
    crs = _sub(
        shader,
        "colorrampshader",
        colorRampType="INTERPOLATED",
        classificationMode="1",
        clip="0",
        minimumValue=repr(float(vmin)),
        maximumValue=repr(float(vmax)),
        labelPrecision="2",
    )
    for i in range(steps):
        t = i / (steps - 1)
        v = vmin + t * (vmax - vmin)
        c = ramp_color(ramp, t)
        _sub(
            crs,
            "item",
            value=repr(float(v)),
            color=_hex(c),
            alpha="255",
            label=f"{v:.2f}",
        )
    return _pipe(r, resampling="bilinear")


def multiband_renderer(
    bands: tuple[int, int, int],
    ranges: Sequence[tuple[float, float]],
    *,
    opacity: float = 1.0,
) -> list[ET.Element]:
    """An RGB renderer stretching each of ``bands`` (1-based) over its ``(min, max)``."""
    r = ET.Element(
        "rasterrenderer",
        {
            "type": "multibandcolor",
            "redBand": str(bands[0]),
            "greenBand": str(bands[1]),
            "blueBand": str(bands[2]),
            "opacity": f"{opacity:g}",
            "alphaBand": "-1",
            "nodataColor": "",
        },
    )
    _sub(r, "rasterTransparency")
    _min_max_origin(r, limits="CumulativeCut")
    for tag, (lo, hi) in zip(("red", "green", "blue"), ranges, strict=True):
        ce = _sub(r, f"{tag}ContrastEnhancement")
        _sub(ce, "minValue", repr(float(lo)))
        _sub(ce, "maxValue", repr(float(hi)))
        _sub(ce, "algorithm", "StretchToMinimumMaximum")
    return _pipe(r, resampling="bilinear")


# ---------------------------------------------------------------- vector renderers
def _options(parent: ET.Element, props: dict[str, str]) -> None:
    opt = _sub(parent, "Option", type="Map")
    for k, v in props.items():
        _sub(opt, "Option", type="QString", name=k, value=v)


def _symbol(
    parent: ET.Element, name: str, geometry: str, rgba: RGBA, *, fill_alpha: int
) -> None:
    """A fill / line / marker symbol coloured ``rgba``."""
    kind = {"polygon": "fill", "line": "line", "point": "marker"}[geometry]
    sym = _sub(
        parent,
        "symbol",
        type=kind,
        name=name,
        alpha="1",
        clip_to_extent="1",
        force_rhr="0",
    )
    fill = (*rgba[:3], fill_alpha)
    if kind == "fill":
        lay = _sub(
            sym,
            "layer",
            None,
            **{"class": "SimpleFill"},
            enabled="1",
            locked="0",
            pass_="0",
        )
        dark: RGBA = (
            round(rgba[0] * 0.6),
            round(rgba[1] * 0.6),
            round(rgba[2] * 0.6),
            255,
        )
        _options(
            lay,
            {
                "color": _rgba(fill),
                "style": "solid" if fill_alpha else "no",
                "outline_color": _rgba(dark),
                "outline_style": "solid",
                "outline_width": "0.3",
                "outline_width_unit": "MM",
                "joinstyle": "bevel",
            },
        )
    elif kind == "line":
        lay = _sub(
            sym,
            "layer",
            None,
            **{"class": "SimpleLine"},
            enabled="1",
            locked="0",
            pass_="0",
        )
        _options(
            lay,
            {
                "line_color": _rgba((*rgba[:3], 255)),
                "line_width": "0.6",
                "line_width_unit": "MM",
                "line_style": "solid",
                "capstyle": "square",
                "joinstyle": "bevel",
            },
        )
    else:
        lay = _sub(
            sym,
            "layer",
            None,
            **{"class": "SimpleMarker"},
            enabled="1",
            locked="0",
            pass_="0",
        )
        _options(
            lay,
            {
                "name": "circle",
                "color": _rgba(fill if fill_alpha else rgba),
                "outline_color": "35,35,35,255",
                "outline_width": "0.2",
                "outline_width_unit": "MM",
                "size": "2.4",
                "size_unit": "MM",
            },
        )


def categorized_renderer(
    field: str, categories: Sequence[Category], *, geometry: str, fill_alpha: int = 40
) -> ET.Element:
    """Categorised by ``field``: one symbol per category (``fill_alpha`` 0-255)."""
    r = ET.Element(
        "renderer-v2",
        {
            "type": "categorizedSymbol",
            "attr": field,
            "symbollevels": "0",
            "enableorderby": "0",
            "forceraster": "0",
            "referencescale": "-1",
        },
    )
    cats = _sub(r, "categories")
    syms = _sub(r, "symbols")
    for i, c in enumerate(categories):
        vtype = "integer" if isinstance(c.value, int) else "string"
        _sub(
            cats,
            "category",
            render="true" if c.render else "false",
            symbol=str(i),
            value=str(c.value),
            label=c.label,
            type=vtype,
        )
        _symbol(syms, str(i), geometry, c.rgba, fill_alpha=fill_alpha)
    src = _sub(r, "source-symbol")
    _symbol(src, "0", geometry, (128, 128, 128, 255), fill_alpha=fill_alpha)
    _sub(r, "rotation")
    _sub(r, "sizescale")
    return r


def graduated_renderer(
    field: str,
    ranges: Sequence[Range],
    *,
    geometry: str,
    ramp: str,
    precision: int = 2,
    fill_alpha: int = 150,
) -> ET.Element:
    """Graduated colour by ``field`` over ``ranges`` (low to high) from ``ramp``."""
    r = ET.Element(
        "renderer-v2",
        {
            "type": "graduatedSymbol",
            "attr": field,
            "graduatedMethod": "GraduatedColor",
            "symbollevels": "0",
            "enableorderby": "0",
            "forceraster": "0",
            "referencescale": "-1",
        },
    )
    rg = _sub(r, "ranges")
    syms = _sub(r, "symbols")
    for i, c in enumerate(ranges):
        _sub(
            rg,
            "range",
            render="true",
            symbol=str(i),
            lower=f"{c.lower:.{precision}f}",
            upper=f"{c.upper:.{precision}f}",
            label=c.label,
        )
        _symbol(syms, str(i), geometry, c.rgba, fill_alpha=fill_alpha)
    src = _sub(r, "source-symbol")
    _symbol(src, "0", geometry, (128, 128, 128, 255), fill_alpha=fill_alpha)
    cr = _sub(r, "colorramp", type="gradient", name="[source]")
    stops = RAMPS[ramp]
    _options(
        cr,
        {
            "color1": _rgba((*stops[0][1], 255)),
            "color2": _rgba((*stops[-1][1], 255)),
            "discrete": "0",
            "rampType": "gradient",
            "stops": ":".join(f"{p:g};{_rgba((*c, 255))}" for p, c in stops[1:-1]),
        },
    )
    cm = _sub(r, "classificationMethod", id="EqualInterval")
    _sub(cm, "symmetricMode", enabled="0", symmetrypoint="0", astride="0")
    _sub(
        cm,
        "labelFormat",
        format="%1 - %2",
        trimtrailingzeroes="1",
        labelprecision=str(precision),
    )
    _sub(cm, "parameters")
    _sub(cm, "extraInformation")
    _sub(r, "rotation")
    _sub(r, "sizescale")
    return r


def score_labeling(
    expression: str, *, geometry: str, min_size_mm: float = 5.0
) -> ET.Element:
    """Simple labels showing ``expression`` (e.g. the score), haloed, collision-avoiding.

    Polygons are labelled once ``sqrt(area)`` is at least ``min_size_mm`` on screen, so
    labels appear as the user zooms in instead of covering a whole scene.
    """
    lab = ET.Element("labeling", type="simple")
    st = _sub(lab, "settings", calloutType="simple")
    ts = _sub(
        st,
        "text-style",
        fieldName=expression,
        isExpression="1",
        fontSize="7",
        fontSizeUnit="Point",
        textColor="20,20,20,255",
        textOpacity="1",
        fontWeight="50",
        fontItalic="0",
        namedStyle="Regular",
        multilineHeight="1",
        blendMode="0",
        previewBkgrdColor="255,255,255,255",
        allowHtml="0",
        capitalization="0",
    )
    _sub(
        ts,
        "text-buffer",
        bufferDraw="1",
        bufferSize="0.7",
        bufferSizeUnits="MM",
        bufferColor="255,255,255,255",
        bufferOpacity="0.8",
        bufferNoFill="1",
        bufferJoinStyle="128",
        bufferBlendMode="0",
    )
    _sub(
        st,
        "text-format",
        wrapChar="",
        autoWrapLength="0",
        multilineAlign="3",
        formatNumbers="0",
        decimals="3",
        plussign="0",
    )
    # polygons: horizontal label inside the shape (OverPoint); points: around the point
    placement = {"polygon": "1", "line": "2", "point": "0"}[geometry]
    _sub(
        st,
        "placement",
        placement=placement,
        placementFlags="10",
        dist="0",
        distUnits="MM",
        centroidInside="1",
        centroidWhole="0",
        fitInPolygonOnly="0",
        priority="5",
        overlapHandling="PreventOverlap",
        xOffset="0",
        yOffset="0",
        offsetUnits="MM",
        rotationAngle="0",
        quadOffset="4",
        repeatDistance="0",
        repeatDistanceUnits="MM",
        maxCurvedCharAngleIn="25",
        maxCurvedCharAngleOut="-25",
        layerType={
            "polygon": "PolygonGeometry",
            "line": "LineGeometry",
            "point": "PointGeometry",
        }[geometry],
    )
    _sub(
        st,
        "rendering",
        drawLabels="1",
        obstacle="1",
        obstacleFactor="1",
        obstacleType="1",
        scaleVisibility="0",
        scaleMin="0",
        scaleMax="0",
        fontLimitPixelSize="0",
        fontMinPixelSize="3",
        fontMaxPixelSize="10000",
        displayAll="0",
        upsidedownLabels="0",
        labelPerPart="0",
        mergeLines="0",
        minFeatureSize=str(min_size_mm),
        limitNumLabels="0",
        maxNumLabels="2000",
        zIndex="0",
        unplacedVisibility="0",
    )
    return lab
