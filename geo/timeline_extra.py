"""Extra STAC scenes for the construction timeline, read building window by building window.

A STAC run keeps the best scene per period; the timeline wants every usable acquisition. For
each candidate the run did not choose (``not_best_in_period``, or above the scene-level cloud
threshold: clouds elsewhere in the AOI do not matter to one building), only the window of each
tracked building (outline, ring and margin: :func:`geo.timeline.building_window`) is read, with
the source's own reflectance scaling and cloud QA (SCL / QA_PIXEL), through the same window
cache as the run's reads (so a rerun, or ``--offline`` after it, fetches nothing).

These windows are not co-registered or radiometrically normalised: the series is the contrast
of the outline against its ring (which removes most of what a scene shares), and the change
points need a scene to be within a pixel (Sentinel-2's multi-temporal registration is
specified at < 0.5 px at 10 m; a scene off by more only widens an interval).
"""

from __future__ import annotations

import logging
from typing import Any

from shapely.geometry.base import BaseGeometry

from geo.aoi import Aoi
from geo.errors import FactoryWatchError
from geo.grid import Grid
from geo.timeline import (
    MaskCache,
    SceneStats,
    building_window,
    outline_shapes,
    scene_stats,
    window_grid,
)

__all__ = ["extra_series"]

log = logging.getLogger(__name__)


def _extra_scenes(source: Any, aoi: Aoi, start: str | None, end: str | None,
                  run_dates: set[str]) -> list[Any]:
    """Candidates of ``source`` on dates the run did not use (duplicates of an acquisition out)."""
    source.search(aoi, start, end)  # sets the selected scenes that read() compares against
    out = []
    for s in source.candidates(aoi, start, end):
        why = str(s.properties.get("reject_reason") or "")
        if s.properties.get("selected") or s.date in run_dates or why.startswith("duplicate_of"):
            continue
        if float(s.properties.get("valid_frac", 1.0)) <= 0.0:
            continue  # outside the swath over this AOI
        out.append(s)
    return out


def extra_series(source: Any, aoi: Aoi, grid: Grid, run_dates: set[str],
                 outlines: dict[str, BaseGeometry], *, start: str | None = None,
                 end: str | None = None) -> tuple[dict[str, list[SceneStats]], str | None]:
    """Per site, the statistics of the STAC scenes the run did not choose; and a warning.

    Parameters
    ----------
    source
        The run's :class:`geo.sources.stac.StacSource` (anything without ``candidates`` and
        ``read``, a local folder for one, gives nothing: all its dates are the run's).
    aoi, grid
        The run's AOI and grid; windows are pixel-aligned sub-grids of ``grid``.
    run_dates
        Dates the run already has (their co-registered scenes are used instead).
    outlines
        Site id → outline in the grid CRS.
    start, end
        The run's date range (``[source] start`` / ``end``).

    Returns
    -------
    (dict, str or None)
        Site id → extra :class:`SceneStats`; a warning when the extra scenes could not be
        had (offline without them in the cache, the API down): the timeline then uses the
        run's scenes only, and says so.
    """
    out: dict[str, list[SceneStats]] = {sid: [] for sid in outlines}
    if not (hasattr(source, "candidates") and hasattr(source, "read")):
        return out, None
    shapes = {sid: outline_shapes(g, grid.res_m) for sid, g in outlines.items()}
    wins = {sid: window_grid(grid, building_window(grid, sh)) for sid, sh in shapes.items()}
    wins = {sid: w for sid, w in wins.items() if 0 not in w.shape}
    try:
        extra = _extra_scenes(source, aoi, start, end, run_dates)
        caches: dict[str, MaskCache] = {sid: {} for sid in wins}
        for s in extra:
            for sid, sub in wins.items():
                ga = source.read(s, sub)
                same = ga.grid.res_m == grid.res_m
                st = scene_stats(ga, shapes[sid] if same else outlines[sid],
                                 mask_cache=caches[sid] if same else None)
                if st is not None:
                    out[sid].append(st)
    except FactoryWatchError as err:
        msg = (f"construction timeline: the extra STAC scenes could not be read ({err}); "
               "dated from the run's own scenes only")
        log.warning(msg)
        return {sid: [] for sid in outlines}, msg
    log.info("timeline: %d extra scenes read by building window (%d sites)", len(extra),
             len(wins))
    return out, None
