"""QGIS styles (QML) generated from templates and from the code's own vocabularies.

One set of templates in ``geo/export/templates/`` feeds both the ``.qml`` sidecars written
next to the GeoJSON files and the styles stored in the GeoPackage's ``layer_styles`` table,
so the two can never drift apart. The categories of the vector styles are generated from
:data:`geo.types.STATUSES` and :data:`geo.types.EVENTS` (plus an ``other`` catch-all), never
typed by hand.

QGIS loads ``<dir>/<base>.qml`` as the default style of a file-based layer ``<dir>/<base>.*``
(``QgsMapLayer::loadDefaultStyle``), so ``sites.geojson`` + ``sites.qml`` opens styled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Literal, get_args
from xml.sax.saxutils import escape, quoteattr

from geo._atomic import FILE_MODE, atomic_write_text
from geo.types import EVENTS, STATUSES

__all__ = [
    "FILE_MODE",
    "LAYERS",
    "OTHER_LABEL",
    "RASTER_KINDS",
    "RasterKind",
    "categories_for",
    "category_colour",
    "qml_for",
    "raster_qml",
    "write_qml",
    "write_raster_qml",
]

LAYERS: tuple[str, ...] = ("footprints", "sites", "changes", "events")
"""The vector layers that factorywatch writes (GeoJSON files and GPKG layers)."""

RasterKind = Literal["scene", "probability", "mask"]
RASTER_KINDS: tuple[str, ...] = get_args(RasterKind)

OTHER_LABEL = "other"
"""Legend label of the catch-all category (an empty category value in QGIS)."""

_TEMPLATES = Path(__file__).resolve().parent / "templates"


# Colours per vocabulary value (RGB). A value missing here (the vocabulary grew) still gets a
# category, drawn in _FALLBACK_RGB, so the style always covers the whole vocabulary.
_COLOURS: dict[str, tuple[int, int, int]] = {
    "new": (227, 26, 28),
    "grown": (255, 127, 0),
    "unchanged": (150, 150, 150),
    "shrunk": (31, 120, 180),
    "demolished": (106, 61, 154),
    "merged": (51, 160, 44),
    "split": (177, 89, 40),
}
_FALLBACK_RGB = (240, 2, 127)
_OTHER_RGB = (204, 204, 204)

# QgsWkbTypes::GeometryType: 2 = polygon, 4 = no geometry.
_POLYGON = 2
_NO_GEOMETRY = 4


def _num(field: str, places: int) -> str:
    return f'format_number("{field}",{places})'


def _interval_label(field: str, places: int, suffix: str) -> str:
    """``value<suffix> (lo–hi)``, falling back to ``value<suffix>``, then to ``''`` (QGIS expr).

    In QGIS expressions ``||`` with NULL gives NULL, so ``coalesce`` picks the longest part
    whose fields are all present.
    """
    value = f"{_num(field, places)} || '{suffix}'"
    with_interval = (
        f"{value} || ' (' || {_num(field + '_lo', places)} || '–' || "
        f"{_num(field + '_hi', places)} || ')'"
    )
    return f"coalesce('\\n' || {with_interval}, '\\n' || {value}, '')"


def _area_interval_label() -> str:
    """Area label for footprints: ``1234 m² (1180–1290)``; ``area_m2_lo``/``_hi`` optional."""
    value = f"{_num('area_m2', 0)} || ' m²'"
    with_interval = (
        f"{value} || ' (' || {_num('area_m2_lo', 0)} || '–' || {_num('area_m2_hi', 0)} || ')'"
    )
    return f"coalesce('\\n' || {with_interval}, '\\n' || {value}, '')"


@dataclass(frozen=True, slots=True, kw_only=True)
class _LayerStyle:
    attr: str
    """Attribute the categories are keyed on ('' for a table without a renderer)."""
    vocabulary: tuple[str, ...]
    vocabulary_source: str
    label: str
    """QGIS expression for the label ('' for no labels)."""
    display: str
    fill_alpha: int
    outline_width_mm: float
    geometry_type: int
    aliases: Mapping[str, str]
    label_priority: int = 5
    """0–10; where labels collide QGIS keeps the higher priority (sites > changes > footprints)."""


_ALIASES_COMMON: dict[str, str] = {
    "area_m2": "Area (m²)",
    "area_m2_sd": "Area 1σ (m²)",
    "area_m2_lo": "Area 95% low (m²)",
    "area_m2_hi": "Area 95% high (m²)",
    "growth_ratio": "Growth ratio (last / first)",
    "neighbour_area_ratio": "Area ratio to neighbour",
    "neighbour_area_ratio_lo": "Neighbour ratio 95% low",
    "neighbour_area_ratio_hi": "Neighbour ratio 95% high",
    "boundary_sd_m": "Outline 1σ (m)",
    "coreg_residual_m": "Co-registration residual (m)",
}

_STYLES: dict[str, _LayerStyle] = {
    "footprints": _LayerStyle(
        attr="status",
        vocabulary=STATUSES,
        vocabulary_source="geo.types.STATUSES",
        label=(
            "coalesce(\"site_id\", \"footprint_id\", '') || coalesce(' ' || \"date\", '') || "
            + _area_interval_label()
        ),
        display='coalesce("footprint_id", "site_id")',
        label_priority=2,
        fill_alpha=70,
        outline_width_mm=0.5,
        geometry_type=_POLYGON,
        aliases=_ALIASES_COMMON,
    ),
    "sites": _LayerStyle(
        attr="status",
        vocabulary=STATUSES,
        vocabulary_source="geo.types.STATUSES",
        label=(
            "coalesce(\"site_id\", '') || "
            + _interval_label("neighbour_area_ratio", 2, "x")
        ),
        display='"site_id"',
        label_priority=9,
        fill_alpha=110,
        outline_width_mm=0.6,
        geometry_type=_POLYGON,
        aliases=_ALIASES_COMMON,
    ),
    "changes": _LayerStyle(
        attr="event",
        vocabulary=EVENTS,
        vocabulary_source="geo.types.EVENTS",
        label=(
            "coalesce(\"site_id\", '') || coalesce(' ' || \"event\", '') || "
            "coalesce('\\n' || \"date_from\" || '→' || \"date_to\", '') || "
            "coalesce('\\n' || format_number(\"area_from_m2\", 0) || ' → ' || "
            "format_number(\"area_to_m2\", 0) || ' m²', '')"
        ),
        display="\"site_id\" || ' ' || \"event\"",
        fill_alpha=110,
        outline_width_mm=0.6,
        geometry_type=_POLYGON,
        aliases={"area_from_m2": "Area before (m²)", "area_to_m2": "Area after (m²)"},
    ),
    "events": _LayerStyle(
        attr="",
        vocabulary=EVENTS,
        vocabulary_source="geo.types.EVENTS",
        label="",
        display="\"site_id\" || ' ' || \"event\"",
        fill_alpha=0,
        outline_width_mm=0.0,
        geometry_type=_NO_GEOMETRY,
        aliases={"area_from_m2": "Area before (m²)", "area_to_m2": "Area after (m²)"},
    ),
}


def category_colour(value: str | None) -> str:
    """Return the ``#rrggbb`` colour of a status or event value, as drawn in QGIS.

    Examples
    --------
    >>> category_colour("new"), category_colour(None)
    ('#e31a1c', '#cccccc')
    """
    rgb = _OTHER_RGB if not value else _COLOURS.get(value, _FALLBACK_RGB)
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _template(name: str) -> Template:
    return Template((_TEMPLATES / name).read_text(encoding="utf-8"))


def _rgba(rgb: tuple[int, int, int], alpha: int) -> str:
    return f"{rgb[0]},{rgb[1]},{rgb[2]},{alpha}"


def categories_for(layer: str) -> tuple[str, ...]:
    """Return a layer's category values in legend order (``''`` = catch-all ``other``).

    Parameters
    ----------
    layer : str
        One of :data:`LAYERS`.

    Returns
    -------
    tuple of str
        The vocabulary tuple (``STATUSES`` or ``EVENTS``) followed by ``''``; empty for
        ``events`` (a table without geometry has no renderer).

    Examples
    --------
    >>> categories_for("sites")[:2], categories_for("sites")[-1]
    (('new', 'grown'), '')
    """
    style = _style(layer)
    if not style.attr:
        return ()
    return (*style.vocabulary, "")


def _style(layer: str) -> _LayerStyle:
    try:
        return _STYLES[layer]
    except KeyError:
        raise ValueError(f"unknown layer {layer!r}; use one of {', '.join(LAYERS)}") from None


def _renderer(style: _LayerStyle) -> str:
    symbol_t = _template("fill_symbol.qml")
    cats: list[str] = []
    symbols: list[str] = []
    values = [*style.vocabulary, ""]
    for i, value in enumerate(values):
        rgb = _OTHER_RGB if value == "" else _COLOURS.get(value, _FALLBACK_RGB)
        label = OTHER_LABEL if value == "" else value
        cats.append(
            f"   <category value={quoteattr(value)} label={quoteattr(label)} "
            f'symbol="{i}" render="true"/>'
        )
        symbols.append(
            symbol_t.substitute(
                name=str(i),
                fill_rgba=_rgba(rgb, style.fill_alpha),
                fill_style="solid",
                outline_rgba=_rgba(rgb, 255),
                outline_width=f"{style.outline_width_mm:g}",
            ).rstrip("\n")
        )
    return (
        _template("renderer.qml")
        .substitute(attr=escape(style.attr), categories="\n".join(cats),
                    symbols="\n".join(symbols))
        .rstrip("\n")
    )


def qml_for(layer: str) -> str:
    """Return the QGIS 3 QML style of a vector layer.

    Parameters
    ----------
    layer : str
        One of :data:`LAYERS`: ``footprints`` and ``sites`` are categorised on ``status``
        (:data:`geo.types.STATUSES`), ``changes`` on ``event`` (:data:`geo.types.EVENTS`),
        each with an ``other`` catch-all category; ``events`` is a table without geometry
        and gets field aliases only.

    Returns
    -------
    str
        The QML document. Polygon layers have labels with the id and the measured ratio
        (sites), area (footprints) or event (changes) with its 95% interval where the
        fields exist; missing (NULL) values drop out of the label instead of blanking it.

    Raises
    ------
    ValueError
        If ``layer`` is not one of :data:`LAYERS`.

    Examples
    --------
    >>> 'attr="status"' in qml_for("sites") and "neighbour_area_ratio_lo" in qml_for("sites")
    True
    """
    style = _style(layer)
    renderer = _renderer(style) if style.attr else ""
    labeling = (
        _template("labeling.qml")
        .substitute(expression=escape(style.label, {'"': "&quot;"}),
                    priority=style.label_priority)
        .rstrip("\n")
        if style.label
        else ""
    )
    aliases = "\n".join(
        f"  <alias field={quoteattr(f)} name={quoteattr(a)} index=\"{i}\"/>"
        for i, (f, a) in enumerate(style.aliases.items())
    )
    return _template("vector.qml").substitute(
        layer=layer,
        vocabulary_source=style.vocabulary_source if style.attr else "none (table)",
        labels_enabled="1" if style.label else "0",
        renderer=renderer,
        labeling=labeling,
        aliases=aliases,
        display_expression=escape(style.display),
        map_tip="",
        geometry_type=str(style.geometry_type),
    )


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def raster_qml(
    kind: RasterKind,
    *,
    band_names: Sequence[str] | None = None,
    value_ranges: Sequence[tuple[float, float]] | None = None,
) -> str:
    """Return the QGIS 3 QML style of a raster output.

    Parameters
    ----------
    kind : {"scene", "probability", "mask"}
        ``scene``: true colour (bands ``red``, ``green``, ``blue`` found in ``band_names``,
        else bands 3, 2, 1 or a grey single band) stretched to ``value_ranges``;
        ``probability``: a transparent → yellow → red ramp on 0–1; ``mask``: a paletted
        style with 0 transparent and 1 red (nodata 255 is left to the file's nodata).
    band_names : sequence of str, optional
        Band roles in file order (``("blue", "green", "red", "nir")``), for ``scene``.
    value_ranges : sequence of (float, float), optional
        Per-band display range (for example the 2nd and 98th percentiles), in file order;
        defaults to 0–1 (reflectance) for ``scene``.

    Returns
    -------
    str
        The QML document.

    Raises
    ------
    ValueError
        If ``kind`` is not a known raster kind.
    """
    if kind not in RASTER_KINDS:
        raise ValueError(f"unknown raster kind {kind!r}; use one of {', '.join(RASTER_KINDS)}")
    if kind == "scene":
        names = [n.lower() for n in (band_names or ())]
        n_bands = max(len(names), len(value_ranges or ()), 1)

        def rng(i: int) -> tuple[str, str]:
            lo, hi = (0.0, 1.0)
            if value_ranges is not None and i - 1 < len(value_ranges):
                lo, hi = value_ranges[i - 1]
            if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
                lo, hi = (0.0, 1.0) if not math.isfinite(lo) else (lo, lo + 1.0)
            return _fmt(lo), _fmt(hi)

        if all(c in names for c in ("red", "green", "blue")):
            r, g, b = (names.index(c) + 1 for c in ("red", "green", "blue"))
        elif n_bands >= 3:
            r, g, b = 3, 2, 1
        else:
            r = g = b = 0
        if r:
            renderer = _template("raster_rgb.qml").substitute(
                red=r, green=g, blue=b,
                red_min=rng(r)[0], red_max=rng(r)[1],
                green_min=rng(g)[0], green_max=rng(g)[1],
                blue_min=rng(b)[0], blue_max=rng(b)[1],
            )
        else:
            band = names.index("pan") + 1 if "pan" in names else 1
            vmin, vmax = rng(band)
            renderer = _template("raster_gray.qml").substitute(band=band, vmin=vmin, vmax=vmax)
    elif kind == "probability":
        stops = [(0.0, "#ffffb2", 0), (0.25, "#fecc5c", 90), (0.5, "#fd8d3c", 170),
                 (0.75, "#f03b20", 220), (1.0, "#bd0026", 255)]
        items = "\n".join(
            f'     <item value="{v:g}" color="{c}" alpha="{a}" label="{v:g}"/>'
            for v, c, a in stops
        )
        renderer = _template("raster_probability.qml").substitute(items=items)
    else:
        entries = "\n".join(
            [
                '    <paletteEntry value="0" color="#000000" alpha="0" label="no building"/>',
                '    <paletteEntry value="1" color="#e31a1c" alpha="200" label="building"/>',
            ]
        )
        renderer = _template("raster_mask.qml").substitute(entries=entries)
    return _template("raster.qml").substitute(kind=kind, renderer=renderer.rstrip("\n"))


def write_qml(layer: str, path: str | Path) -> Path:
    """Write the QML style of ``layer`` to ``path`` atomically (temp file + ``os.replace``).

    Parameters
    ----------
    layer : str
        One of :data:`LAYERS`.
    path : str or Path
        Usually ``<run_dir>/<layer>.qml``, the sidecar of ``<run_dir>/<layer>.geojson``.

    Returns
    -------
    Path
        ``path``.
    """
    return atomic_write_text(path, qml_for(layer))


def write_raster_qml(
    kind: RasterKind,
    path: str | Path,
    *,
    band_names: Sequence[str] | None = None,
    value_ranges: Sequence[tuple[float, float]] | None = None,
) -> Path:
    """Write :func:`raster_qml` to ``path`` atomically (the sidecar of ``<name>.tif``)."""
    return atomic_write_text(
        path, raster_qml(kind, band_names=band_names, value_ranges=value_ranges)
    )
