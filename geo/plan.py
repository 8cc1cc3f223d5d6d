"""Feasibility before processing: how sure a measurement can be at each resolution.

Pure compute. For a building of a given area, :func:`plan_feasibility` applies the same
uncertainty model as :mod:`geo.measure` to a typical footprint at each imagery resolution and
reports the expected ± on the area and the smallest ratio difference it can decide, before
any image is read.

Assumptions (typical values; the calibration study measured them on SYNTHETIC scenes):

* the building is a rectangle of aspect ratio ``aspect_ratio`` (default 2); its pixel outline
  is ``4/π`` times longer than the true outline (the mean staircase factor over orientations);
* boundary ambiguity: the area at the alternative threshold differs by the outline moved
  ``threshold_shift_px`` pixels (default 0.2 px, the calibration median);
* co-registration residual ``coreg_residual_px`` pixels (default 0.1 px);
* neighbour ratios compare two buildings of that size on the same date
  (``MeasureParams.same_date_corr``); growth compares the building on two dates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from geo.config import MeasureParams
from geo.errors import ConfigError
from geo.measure import Z95, area_errors, ratio_interval

__all__ = ["IMAGERY_KINDS", "MIN_PIXELS", "plan_feasibility"]

IMAGERY_KINDS: dict[float, str] = {
    0.5: "very-high-resolution (user GeoTIFF: SkySat, WorldView, Pléiades Neo, aerial)",
    3.0: "PlanetScope",
    10.0: "Sentinel-2 (bands 2/3/4/8)",
    30.0: "Landsat 8/9",
}
"""Imagery kinds by nominal pixel size in metres."""
MIN_PIXELS = 16
"""Below this many pixels a building is not reliably detected or outlined at all."""
STAIRCASE_FACTOR = 4.0 / math.pi


def plan_feasibility(
    building_area_m2: float,
    *,
    resolutions_m: Sequence[float] = (0.5, 3.0, 10.0, 30.0),
    aspect_ratio: float = 2.0,
    threshold_shift_px: float = 0.2,
    coreg_residual_px: float = 0.1,
    params: MeasureParams | None = None,
    labels: dict[float, str] | None = None,
) -> list[dict[str, Any]]:
    """Estimate the ± on an area and the smallest decidable ratio difference per resolution.

    Parameters
    ----------
    building_area_m2 : float
        Area of the building to be measured, m² (> 0).
    resolutions_m : sequence of float
        Pixel sizes to evaluate, metres.
    aspect_ratio : float
        Length / width of the (rectangular) building.
    threshold_shift_px : float
        Outline shift between the two detection thresholds, pixels.
    coreg_residual_px : float
        Co-registration residual, pixels.
    params : MeasureParams, optional
        Monte Carlo draws, seed and same-date correlation.
    labels : dict, optional
        Extra or overriding imagery-kind labels by resolution (e.g. the AOI grid).

    Returns
    -------
    list of dict
        One row per resolution, finest first: ``res_m``, ``kind``, ``n_px`` (pixels on the
        building), ``area_m2``, ``area_sd_m2``, ``area_rel_sd``, ``area_ci95_rel`` (half-width
        of the 95% interval / area), ``neighbour_ratio_min_diff`` and
        ``growth_ratio_min_diff`` (the smallest relative difference between a true ratio and a
        claimed factor that the 95% interval can decide, e.g. 0.1 = a claim of ">2x" is
        decidable only if the true ratio is below 1.8 or above 2.2; None when not
        detectable), ``detectable``
        (at least :data:`MIN_PIXELS` pixels) and ``note``.

    Examples
    --------
    >>> rows = plan_feasibility(6000.0, resolutions_m=(0.5, 10.0))
    >>> [r["res_m"] for r in rows], rows[0]["area_ci95_rel"] < rows[1]["area_ci95_rel"]
    ([0.5, 10.0], True)
    """
    if not (building_area_m2 > 0 and math.isfinite(building_area_m2)):
        raise ConfigError(f"building_area_m2={building_area_m2!r} must be a positive number of m²")
    if aspect_ratio < 1:
        aspect_ratio = 1.0 / aspect_ratio
    p = params or MeasureParams()
    names = {**IMAGERY_KINDS, **(labels or {})}
    length = math.sqrt(building_area_m2 * aspect_ratio)
    width = building_area_m2 / length
    perim = STAIRCASE_FACTOR * 2.0 * (length + width)
    return [_plan_row(building_area_m2, perim, res, names.get(res, "user imagery"),
                      threshold_shift_px, coreg_residual_px, p)
            for res in sorted({float(r) for r in resolutions_m})]


def _plan_row(a: float, perim: float, res: float, kind: str, threshold_shift_px: float,
              coreg_residual_px: float, p: MeasureParams) -> dict[str, Any]:
    """One row of :func:`plan_feasibility`: a building of area ``a`` at pixel size ``res``."""
    e = area_errors(
        a, perim, res_m=res, boundary_sd_m=res / (2.0 * math.sqrt(3.0)),
        coreg_residual_m=coreg_residual_px * res,
        area_alt_m2=a + perim * threshold_shift_px * res,
    )
    ind, com = float(e.independent[0]), float(e.common[0])
    sd = float(e.total[0])
    _, nlo, nhi = ratio_interval(a, (ind, com), a, (ind, com), common_corr=p.same_date_corr,
                                 n_draws=p.n_draws, seed=p.seed)
    _, glo, ghi = ratio_interval(a, (ind, com), a, (ind, com), common_corr=0.0,
                                 n_draws=p.n_draws, seed=p.seed)
    n_px = a / (res * res)
    ok = n_px >= MIN_PIXELS
    return {
        "res_m": res,
        "kind": kind,
        "n_px": round(n_px, 1),
        "area_m2": a,
        "area_sd_m2": sd,
        "area_rel_sd": sd / a,
        "area_ci95_rel": Z95 * sd / a,
        "neighbour_ratio_min_diff": float(max(nhi[0] - 1.0, 1.0 - nlo[0])) if ok else None,
        "growth_ratio_min_diff": float(max(ghi[0] - 1.0, 1.0 - glo[0])) if ok else None,
        "detectable": bool(ok),
        "note": "" if ok else (f"only {n_px:.0f} pixels: below {MIN_PIXELS}, expect the "
                               "building to be missed or merged; use finer imagery"),
    }

