"""Map furniture for report figures: scale bar, north arrow, legend, attribution, mask note.

Helpers on matplotlib ``Axes`` whose data coordinates are metres of a projected CRS (the
run's UTM grid), plus the imagery attribution each date needs:

* Sentinel-2 (Copernicus): "Contains modified Copernicus Sentinel data YYYY";
* Landsat: "Landsat imagery courtesy of the U.S. Geological Survey";
* local GeoTIFFs: the file name (and SYNTHETIC for the demo's generated scenes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrow, Patch, Rectangle
from numpy.typing import NDArray
from pyproj import Transformer

from geo.export.qml import category_colour

PNG_OPTIONS: dict[str, Any] = {"compress_level": 1}
"""Pillow options of every report PNG: zlib level 1 encodes about 4x faster than the default 6
for files about a third larger; the report is read from disk, not served."""

__all__ = ["MASK_RGBA", "add_north_arrow", "add_scale_bar", "attribution", "attributions",
           "decorate_panel", "legend_handles", "mask_overlay", "nice_length", "north_angle_deg"]

MASK_RGBA = (0.55, 0.2, 0.75, 0.55)
"""Colour of the overlay where clouds or nodata mask the scene (also the legend swatch)."""


def nice_length(span_m: float, frac: float = 0.2) -> float:
    """A round scale-bar length (1, 2 or 5 × 10^k m) close to ``frac`` of ``span_m``.

    >>> nice_length(460), nice_length(12_000)
    (50.0, 2000.0)
    """
    target = max(span_m * frac, 1e-9)
    k = 10.0 ** math.floor(math.log10(target))
    return float(max((m * k for m in (1, 2, 5) if m * k <= target), default=k))


def _label_m(length: float) -> str:
    return f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"


def add_scale_bar(ax: Any, extent: Sequence[float]) -> str:
    """Draw a black/white scale bar in the lower left; return its label (``"100 m"``).

    ``extent`` is ``(left, right, bottom, top)`` in metres.
    """
    left, right, bottom, top = (float(v) for v in extent)
    length = nice_length(right - left)
    h = (top - bottom) * 0.012
    x0, y0 = left + (right - left) * 0.04, bottom + (top - bottom) * 0.05
    ax.add_patch(Rectangle((x0 - length * 0.06, y0 - h * 1.5), length * 1.12, h * 6.2,
                           fc="white", ec="none", alpha=0.8, zorder=9))
    for i in range(2):
        ax.add_patch(Rectangle((x0 + i * length / 2, y0), length / 2, h, zorder=10,
                               fc="black" if i == 0 else "white", ec="black", lw=0.8))
    label = _label_m(length)
    ax.text(x0 + length / 2, y0 + h * 1.6, label, ha="center", va="bottom", fontsize=8,
            zorder=10)
    return label


def north_angle_deg(crs: str | None, extent: Sequence[float]) -> float:
    """Angle of true north from the grid's +y axis at the centre, degrees (clockwise +)."""
    if not crs:
        return 0.0
    left, right, bottom, top = (float(v) for v in extent)
    cx, cy = (left + right) / 2, (bottom + top) / 2
    try:
        to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        to_xy = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        lon, lat = to_ll.transform(cx, cy)
        x2, y2 = to_xy.transform(lon, lat + 0.001)
    except Exception:  # an unknown CRS: draw grid north
        return 0.0
    return float(math.degrees(math.atan2(x2 - cx, y2 - cy)))


def add_north_arrow(ax: Any, extent: Sequence[float], crs: str | None) -> float:
    """Draw a north arrow (true north) in the upper right; return its angle from grid north."""
    left, right, bottom, top = (float(v) for v in extent)
    ang = north_angle_deg(crs, extent)
    size = min(right - left, top - bottom) * 0.08
    cx, cy = right - (right - left) * 0.07, top - (top - bottom) * 0.16
    dx, dy = math.sin(math.radians(ang)) * size, math.cos(math.radians(ang)) * size
    ax.add_patch(FancyArrow(cx - dx / 2, cy - dy / 2, dx, dy, width=size * 0.12,
                            head_width=size * 0.42, head_length=size * 0.4,
                            length_includes_head=True, fc="black", ec="white", lw=1.2,
                            zorder=10))
    ax.text(cx + dx * 0.75, cy + dy * 0.75, "N", ha="center", va="bottom", fontsize=10,
            fontweight="bold", color="black", zorder=10,
            bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})
    return ang


def mask_overlay(valid: NDArray[np.bool_]) -> NDArray[np.float64]:
    """RGBA image that tints the pixels where ``valid`` is False (cloud, nodata)."""
    img = np.zeros((*valid.shape, 4))
    img[~valid] = MASK_RGBA
    return img


def legend_handles(statuses: Sequence[str], events: Sequence[str], *,
                   masked: bool, change_ramp: bool) -> list[Any]:
    """Legend entries: outline colour per status and per change event, mask, change ramp."""
    handles: list[Any] = [Line2D([], [], color=category_colour(s), lw=2.5,
                                 label=f"footprint: {s}") for s in statuses]
    handles += [Line2D([], [], color=category_colour(e), lw=2.5, ls="--",
                       label=f"change event: {e}") for e in events]
    if masked:
        handles.append(Patch(fc=MASK_RGBA, ec="none", label="masked: cloud / nodata"))
    if change_ramp:
        handles.append(Patch(fc="#f03b20", ec="none", alpha=0.85,
                             label="change probability (colour bar)"))
    return handles


def attribution(inp: Mapping[str, Any] | None, source: Mapping[str, Any], date: str,
                *, synthetic: bool = False) -> str:
    """The imagery credit for one date.

    Parameters
    ----------
    inp : mapping, optional
        The date's record in ``run.json`` ``inputs`` (``id``, ``properties``...).
    source : mapping
        ``run.json`` ``config.source`` (``kind``, ``collections``...).
    date : str
        ``YYYY-MM-DD``; its year goes into the Copernicus credit.
    synthetic : bool
        The run uses the generated demo imagery.

    Examples
    --------
    >>> attribution({"id": "S2B_52TDK"}, {"kind": "stac",
    ...             "collections": ["sentinel-2-l2a"]}, "2024-05-01")
    'Contains modified Copernicus Sentinel data 2024'
    >>> attribution({"id": "plant_2023.tif"}, {"kind": "local"}, "2023-06-01")
    'Imagery: plant_2023.tif'
    """
    inp = inp or {}
    raw = inp.get("properties")
    props: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    ident = str(inp.get("id") or "")
    if synthetic:
        return f"SYNTHETIC imagery (factorywatch demo): {ident or date}"
    if str(source.get("kind", "")) == "local":
        return f"Imagery: {ident or 'local file'}"
    text = " ".join([ident, str(props.get("platform", "")), str(props.get("collection", "")),
                     " ".join(map(str, source.get("collections") or []))]).lower()
    if "sentinel" in text or ident.startswith(("S2", "s2")):
        return f"Contains modified Copernicus Sentinel data {date[:4]}"
    if "landsat" in text or ident.startswith(("LC0", "LE0", "LT0", "LC9", "LC8")):
        return "Landsat imagery courtesy of the U.S. Geological Survey"
    return f"Imagery: {ident or 'unknown source'}"


def attributions(run: Mapping[str, Any], dates: Sequence[str]) -> dict[str, str]:
    """:func:`attribution` for each date, from a ``run.json`` mapping."""
    raw_cfg = run.get("config")
    cfg: Mapping[str, Any] = raw_cfg if isinstance(raw_cfg, Mapping) else {}
    raw_src = cfg.get("source")
    source: Mapping[str, Any] = raw_src if isinstance(raw_src, Mapping) else {}
    by_date = {str(i.get("date")): i for i in (run.get("inputs") or [])
               if isinstance(i, Mapping)}
    synth = bool(run.get("synthetic")) and str(run.get("synthetic")).lower() not in ("false",
                                                                                      "0")
    return {d: attribution(by_date.get(d), source, d, synthetic=synth) for d in dates}


def decorate_panel(ax: Any, extent: Sequence[float], crs: str | None, credit: str,
                   valid: NDArray[np.bool_] | None) -> float:
    """Scale bar, north arrow, attribution and mask tint on one image panel.

    Returns the masked fraction of the panel (0 when ``valid`` is None).
    """
    masked = 0.0
    if valid is not None and valid.size and not valid.all():
        masked = float((~valid).mean())
        ax.imshow(mask_overlay(valid), extent=tuple(extent), interpolation="nearest",
                  zorder=3)
        ax.text(0.5, 0.98, f"{masked:.0%} masked by cloud / nodata", transform=ax.transAxes,
                ha="center", va="top", fontsize=8, color="white", zorder=11,
                bbox={"boxstyle": "round,pad=0.2", "fc": MASK_RGBA[:3], "ec": "none"})
    add_scale_bar(ax, extent)
    add_north_arrow(ax, extent, crs)
    ax.text(0.99, 0.01, credit, transform=ax.transAxes, ha="right", va="bottom", fontsize=6.5,
            zorder=11, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                             "alpha": 0.8})
    return masked
