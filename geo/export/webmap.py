"""The report's interactive map: footprints over scene previews with a date slider, offline.

I/O layer (writes into the report folder). :func:`write_viewer` writes

* ``viewer.js``: a small vanilla-JavaScript SVG viewer shipped in the package
  (``geo/export/templates/viewer.js``), no library, no CDN;
* ``viewer-data.js``: ``window.FW_VIEW = {...}`` with the dates, the footprints in the
  grid's metres, the legend and the imagery credit per date (a script, not JSON, so the
  page works from ``file://`` where browsers refuse ``fetch``);
* ``view_<date>.png``: one preview image per date, masked pixels tinted.

The same folder opens in a notebook with ``IPython.display.IFrame("run/report/index.html")``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
from matplotlib.image import imsave
from numpy.typing import NDArray

from geo.export.furniture import PNG_OPTIONS
from geo.export.qml import category_colour

__all__ = ["VIEWER_JS", "viewer_data", "write_viewer"]

VIEWER_JS = Path(__file__).resolve().parent / "templates" / "viewer.js"
"""The viewer script copied into every report folder."""


def _fmt_area(row: Mapping[str, Any]) -> str:
    a, lo, hi = row.get("area_m2"), row.get("area_m2_lo"), row.get("area_m2_hi")
    if not isinstance(a, (int, float)) or not np.isfinite(a):
        return ""
    if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and np.isfinite(lo) \
            and np.isfinite(hi):
        return f"{a:,.0f} m² (95% {lo:,.0f}–{hi:,.0f})"
    return f"{a:,.0f} m²"


def _features(fp: gpd.GeoDataFrame, places: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for _i, row in fp.iterrows():
        g = row.geometry
        if g is None or g.is_empty:
            continue
        rings = []
        for poly in getattr(g, "geoms", [g]):
            for ring in (poly.exterior, *poly.interiors):
                rings.append([[round(x, places), round(y, places)] for x, y in ring.coords])
        sid = str(row.get("site_id") or row.get("footprint_id") or "")
        name = row.get("name") if isinstance(row.get("name"), str) else ""
        status = str(row.get("status") or "")
        p = g.representative_point()
        out.append({
            "date": str(row.get("date")), "id": sid.rsplit(":", 1)[-1], "rings": rings,
            "colour": category_colour(status or None), "label": [p.x, p.y],
            "tip": " · ".join(t for t in (sid, name, status, _fmt_area(row)) if t),
        })
    return out


def viewer_data(footprints: gpd.GeoDataFrame | None, dates: Sequence[str], *,
                extent: Sequence[float] | None, scenes: Mapping[str, str],
                credits: Mapping[str, str], masked: Mapping[str, float],
                north_deg: float = 0.0) -> dict[str, Any]:
    """The ``FW_VIEW`` object: everything the viewer draws (coordinates in metres).

    ``footprints`` must be in a projected CRS; ``extent`` ``(left, right, bottom, top)``
    defaults to the footprints' bounds plus a margin.
    """
    fp = footprints if footprints is not None else gpd.GeoDataFrame(geometry=[])
    if extent is None:
        if len(fp) == 0:
            extent = (0.0, 1.0, 0.0, 1.0)
        else:
            x0, y0, x1, y1 = (float(v) for v in fp.total_bounds)
            m = max(x1 - x0, y1 - y0) * 0.1 + 10.0
            extent = (x0 - m, x1 + m, y0 - m, y1 + m)
    statuses = sorted({str(s) for s in fp.get("status", []) if isinstance(s, str)})
    legend = [[category_colour(s), f"footprint: {s}"] for s in statuses]
    return {"dates": list(dates), "extent": [float(v) for v in extent],
            "scenes": dict(scenes), "credits": dict(credits), "masked": dict(masked),
            "north_deg": float(north_deg), "legend": legend,
            "features": _features(fp, 2) if len(fp) else []}


def write_viewer(out_dir: Path, data: Mapping[str, Any],
                 previews: Mapping[str, NDArray[np.float64]] | None = None) -> str:
    """Write the viewer files into ``out_dir``; return the HTML that embeds the map.

    ``previews`` maps a date to an RGBA image (floats 0–1) saved as ``view_<date>.png``;
    ``data["scenes"]`` should name those files.
    """
    for d, rgba in (previews or {}).items():
        imsave(out_dir / f"view_{d}.png", np.clip(rgba, 0, 1), pil_kwargs=PNG_OPTIONS)
    shutil.copyfile(VIEWER_JS, out_dir / "viewer.js")
    blob = json.dumps(data, separators=(",", ":"), allow_nan=False, default=str)
    (out_dir / "viewer-data.js").write_text(
        "// factorywatch report map data (generated)\nwindow.FW_VIEW = " + blob + ";\n",
        encoding="utf-8")
    return ('<div class="fwv" data-fw-viewer="1"></div>'
            '<noscript><p>The interactive map needs JavaScript (bundled in this folder, no '
            'network); the figures below show the same footprints.</p></noscript>'
            '<script src="viewer-data.js"></script><script src="viewer.js"></script>')
