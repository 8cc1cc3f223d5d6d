"""Helpers for the measurement tests: footprint tables built from shapely boxes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import geopandas as gpd
import numpy as np
from hypothesis import strategies as st
from shapely import affinity
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

CRS = 32652


def footprints_of(
    by_date: dict[str, Sequence[BaseGeometry]],
    *,
    aoi: str = "t",
    res_m: float = 10.0,
    coreg_residual_m: float = 0.0,
    alt_frac: float | None = 0.03,
    alt_shift_px: float | None = None,
    crs: int = CRS,
) -> gpd.GeoDataFrame:
    rows = []
    for date, geoms in by_date.items():
        for i, g in enumerate(geoms):
            rows.append({
                "footprint_id": f"{aoi}:{date}:{i + 1}",
                "date": date,
                "area_m2": float(g.area),
                "perimeter_m": float(g.length),
                "n_px": round(g.area / res_m**2) if res_m else 0,
                "res_m": res_m,
                "boundary_sd_m": res_m / (2 * np.sqrt(3)) if res_m else 1.0,
                "coreg_residual_m": coreg_residual_m,
                "area_alt_m2": _alt_area(g, res_m, alt_frac, alt_shift_px),
                "occluded": False,
                "geometry": g,
            })
    cols = ["footprint_id", "date", "area_m2", "perimeter_m", "n_px", "res_m", "boundary_sd_m",
            "coreg_residual_m", "area_alt_m2", "occluded", "geometry"]
    return gpd.GeoDataFrame(rows, columns=cols, geometry="geometry", crs=crs)


def _alt_area(g: BaseGeometry, res_m: float, frac: float | None, shift_px: float | None) -> float:
    """Area at another threshold: the outline moved out by ``shift_px`` pixels, or scaled."""
    if shift_px is not None:
        return float(g.buffer(shift_px * res_m, join_style="mitre").area)
    return np.nan if frac is None else float(g.area) * (1 + frac)


def translated(geoms: Iterable[BaseGeometry], dx: float, dy: float) -> list[BaseGeometry]:
    return [affinity.translate(g, dx, dy) for g in geoms]


@st.composite
def building_sets(draw: st.DrawFn, *, min_size: int = 1, max_size: int = 6) -> list[BaseGeometry]:
    """Non-overlapping axis-aligned buildings on 10 m pixels, one per 200 m slot."""
    n = draw(st.integers(min_size, max_size))
    slots = draw(st.lists(st.integers(0, 15), min_size=n, max_size=n, unique=True))
    out = []
    for s in slots:
        w = draw(st.integers(2, 15)) * 10.0
        h = draw(st.integers(2, 15)) * 10.0
        x0 = 300000.0 + (s % 4) * 200.0 + draw(st.integers(0, 3)) * 10.0
        y0 = 4400000.0 + (s // 4) * 200.0 + draw(st.integers(0, 3)) * 10.0
        out.append(box(x0, y0, x0 + w, y0 + h))
    return out
