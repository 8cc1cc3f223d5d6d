"""Plausibility gates (pure): whether a footprint is a building and its outline is stable.

Automatic detection at 10 m can return an outline that is not a building at all (a whole
built-up block, a yard with its halls, a bare field) or one that moves a lot between two
thresholds. Such an outline must never carry a confident ratio or claim verdict.

:func:`gate_footprints` adds to a footprints table

``footprint_kind``
    ``building`` or ``built-up region``: a region is larger than
    ``DetectParams.max_building_m2``, covers more than ``max_aoi_frac`` of the valid AOI, or is
    not compact (solidity, area over convex-hull area, below ``min_solidity``).
``gate_reason``
    Why it is a region (empty for buildings).
``outline_unstable`` and ``unstable_reason``
    The outline moves by more than ``max_outline_spread`` of its area between the two
    detection thresholds (``area_alt_m2``), or the stricter threshold splits it into several
    parts (``alt_parts`` > 1).

:func:`adjacent_spread` adds ``area_adj_spread_m2``: the largest area difference between a
footprint and the same site on an adjacent date where tracking saw no change; the
measurement model counts it as outline scatter (:func:`geo.measure.area_errors`).

Regions get no ratios (:func:`geo.measure.measure_sites`); :func:`claim_blockers` lists why
:func:`geo.claims.check_claim` must answer ``undecidable`` for a footprint.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.config import DetectParams
from geo.types import FOOTPRINT_KINDS

__all__ = ["BUILDING", "FOOTPRINT_KINDS", "REGION", "adjacent_spread", "claim_blockers",
           "gate_footprints", "gate_warnings", "is_region"]

BUILDING, REGION = FOOTPRINT_KINDS
"""The two values of ``footprint_kind`` (:data:`geo.types.FOOTPRINT_KINDS`)."""


def _region_reasons(area: float, share: float, solidity: float, p: DetectParams) -> list[str]:
    out = []
    if area > p.max_building_m2:
        out.append(f"area {area:,.0f} m² > max_building_m2 {p.max_building_m2:,.0f} m²")
    if share > p.max_aoi_frac:
        out.append(f"covers {share:.0%} of the valid AOI (> max_aoi_frac {p.max_aoi_frac:g})")
    if solidity < p.min_solidity:
        out.append(f"not compact (solidity {solidity:.2f} < min_solidity {p.min_solidity:g})")
    return out


def _unstable_reasons(area: float, alt: float, parts: float, p: DetectParams) -> list[str]:
    out = []
    if np.isfinite(alt) and area > 0 and abs(area - alt) / area > p.max_outline_spread:
        out.append(f"outline moves {abs(area - alt) / area:.0%} between detection thresholds "
                   f"(> max_outline_spread {p.max_outline_spread:g})")
    if np.isfinite(parts) and parts > 1:
        out.append(f"a stricter threshold splits it into {int(parts)} parts")
    return out


def gate_footprints(footprints: gpd.GeoDataFrame, *, valid_area_m2: float,
                    params: DetectParams) -> gpd.GeoDataFrame:
    """Classify footprints as buildings or built-up regions and flag unstable outlines.

    Parameters
    ----------
    footprints : GeoDataFrame
        One date's footprints (projected CRS) with ``area_m2`` and optionally
        ``area_alt_m2`` and ``alt_parts``.
    valid_area_m2 : float
        Area of the date's valid pixels inside the AOI grid, m² (0: no share gate).
    params : DetectParams
        ``max_building_m2``, ``max_aoi_frac``, ``min_solidity``, ``max_outline_spread``.

    Returns
    -------
    GeoDataFrame
        A copy with ``footprint_kind``, ``gate_reason``, ``outline_unstable`` and
        ``unstable_reason``.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> fp = gpd.GeoDataFrame({"area_m2": [9600.0, 150000.0]},
    ...     geometry=[box(0, 0, 120, 80), box(200, 0, 700, 300)], crs="EPSG:32652")
    >>> out = gate_footprints(fp, valid_area_m2=1e6, params=DetectParams())
    >>> list(out["footprint_kind"])
    ['building', 'built-up region']
    """
    out = footprints.copy()
    n = len(out)
    area = out["area_m2"].to_numpy(dtype=float) if n else np.zeros(0)
    alt = (pd.to_numeric(out["area_alt_m2"], errors="coerce").to_numpy(dtype=float)
           if "area_alt_m2" in out.columns else np.full(n, np.nan))
    parts = (pd.to_numeric(out["alt_parts"], errors="coerce").to_numpy(dtype=float)
             if "alt_parts" in out.columns else np.full(n, np.nan))
    geoms = np.asarray(out.geometry.values, dtype=object)
    hull = shapely.area(shapely.convex_hull(geoms)) if n else np.zeros(0)
    solidity = np.where(hull > 0, shapely.area(geoms) / np.maximum(hull, 1e-9), 1.0)
    share = area / valid_area_m2 if valid_area_m2 > 0 else np.zeros(n)
    kinds, reasons, unstable, why = [], [], [], []
    for i in range(n):
        r = _region_reasons(area[i], share[i], float(solidity[i]), params)
        u = _unstable_reasons(area[i], alt[i], parts[i], params)
        kinds.append(REGION if r else BUILDING)
        reasons.append("; ".join(r))
        unstable.append(bool(u))
        why.append("; ".join(u))
    out["footprint_kind"] = pd.Series(kinds, index=out.index, dtype=object)
    out["gate_reason"] = pd.Series(reasons, index=out.index, dtype=object)
    out["outline_unstable"] = pd.Series(unstable, index=out.index, dtype=bool)
    out["unstable_reason"] = pd.Series(why, index=out.index, dtype=object)
    return out


def is_region(df: pd.DataFrame) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """True for rows whose ``footprint_kind`` (or ``site_kind``) is a built-up region."""
    for col in ("footprint_kind", "site_kind"):
        if col in df.columns:
            return np.asarray(df[col].astype(str).to_numpy() == REGION, dtype=bool)
    return np.zeros(len(df), dtype=bool)


def adjacent_spread(footprints: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Add ``area_adj_spread_m2``: outline scatter between adjacent unchanged sightings.

    For each footprint, the largest ``|A - A'|`` over the same site's sightings on the
    previous and next date when the event between them is ``unchanged`` (0 otherwise).
    """
    out = footprints.copy()
    spread = np.zeros(len(out))
    if len(out) and len(events):
        area = {(str(s), str(d)): float(a) for s, d, a in
                zip(out["site_id"], out["date"], out["area_m2"], strict=True)}
        pos = {k: i for i, k in enumerate(zip(out["site_id"].astype(str),
                                              out["date"].astype(str), strict=True))}
        unchanged = events[events["event"].astype(str) == "unchanged"]
        for ev in unchanged.itertuples(index=False):
            a = (str(ev.site_id), str(ev.date_from))
            b = (str(ev.site_id), str(ev.date_to))
            if a in area and b in area:
                d = abs(area[a] - area[b])
                spread[pos[a]] = max(spread[pos[a]], d)
                spread[pos[b]] = max(spread[pos[b]], d)
    out["area_adj_spread_m2"] = spread
    return out


def claim_blockers(row: pd.Series) -> list[str]:
    """Why a footprint cannot carry a supported or contradicted verdict (empty: it can).

    A built-up region, an unstable outline and an occluded footprint (its area is a lower
    bound) each block a confident verdict.
    """
    out = []
    label = str(row.get("footprint_id", "a footprint"))
    if str(row.get("footprint_kind", BUILDING)) == REGION:
        out.append(f"{label} is a built-up region, not a building ({row.get('gate_reason', '')})")
    if bool(row.get("outline_unstable", False)) is True:
        out.append(f"{label} has an unstable outline ({row.get('unstable_reason', '')})")
    occ = row.get("occluded", False)
    if occ is not None and not (isinstance(occ, float) and np.isnan(occ)) and bool(occ):
        out.append(f"{label} touches cloud, nodata or the image edge (its area is a lower bound)")
    return out


def gate_warnings(footprints: pd.DataFrame, params: DetectParams) -> list[str]:
    """Run warnings for built-up regions and unstable outlines (empty when there are none)."""
    out = []
    if "footprint_kind" in footprints.columns:
        reg = footprints[is_region(footprints)]
        if len(reg):
            big = float(reg["area_m2"].max())
            out.append(
                f"{len(reg)} footprint(s) are built-up regions, not buildings (larger than "
                f"{params.max_building_m2:,.0f} m², more than {params.max_aoi_frac:.0%} of the AOI "
                f"or not compact; largest {big:,.0f} m²): they get no ratios and no claim "
                "verdicts; use finer imagery or name the buildings")
    if "outline_unstable" in footprints.columns:
        k = int(footprints["outline_unstable"].fillna(False).astype(bool).sum())
        if k:
            out.append(f"{k} footprint(s) have unstable outlines (they move between detection "
                       "thresholds): claims on them are undecidable")
    return out
