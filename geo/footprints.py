"""Building masks → footprint polygons with areas in m² (pure).

Areas come from pixel counts on the AOI's UTM grid, which equal the areas of
the unsimplified polygons that :func:`rasterio.features.shapes` traces.
Simplification is for display only and never feeds a measurement.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from rasterio import features
from scipy import ndimage
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from skimage.measure import label

from geo.grid import Grid

__all__ = ["FOOTPRINT_COLUMNS", "edge_corr_len_m", "empty_footprints", "polygonize",
           "valid_geometry"]

log = logging.getLogger(__name__)

FOOTPRINT_COLUMNS = (
    "footprint_id", "date", "area_m2", "perimeter_m", "n_px", "res_m", "boundary_sd_m",
    "coreg_residual_m", "area_alt_m2", "occluded", "edge_corr_len_m", "alt_parts",
)


def edge_corr_len_m(geom: BaseGeometry, res_m: float) -> float:
    """Length over which the outline's pixel-quantisation error stays correlated, in metres.

    An edge at an angle ``phi`` to the pixel grid crosses a pixel row every
    ``res / sin(phi)`` metres, so its rounding error decorrelates over about that length;
    an edge parallel to the grid rounds the same way along its whole side. Taken from the
    footprint's minimum rotated rectangle, bounded by two pixels and the mean side length.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> from shapely import affinity
    >>> edge_corr_len_m(box(0, 0, 100, 40), 1.0)      # grid-aligned: a whole mean side
    70.0
    >>> round(edge_corr_len_m(affinity.rotate(box(0, 0, 100, 40), 30), 1.0), 1)
    2.0
    """
    perimeter = float(geom.length)
    side = perimeter / 4.0
    if res_m <= 0 or geom.is_empty:
        return side
    rect = shapely.minimum_rotated_rectangle(geom)
    xy = np.asarray(rect.exterior.coords) if rect.geom_type == "Polygon" else np.zeros((2, 2))
    if len(xy) < 3:
        return side
    d = np.diff(xy[:3], axis=0)
    longest = d[int(np.argmax(np.hypot(d[:, 0], d[:, 1])))]
    phi = abs(float(np.arctan2(longest[1], longest[0]))) % (np.pi / 2)
    off = min(phi, np.pi / 2 - phi)
    length = res_m / max(np.sin(off), 1e-9)
    return float(min(side, max(2.0 * res_m, length)))


def empty_footprints(crs: str) -> gpd.GeoDataFrame:
    """An empty footprints table with the documented columns."""
    df = pd.DataFrame({c: pd.Series(dtype="object") for c in FOOTPRINT_COLUMNS})
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def _kept_labels(mask: NDArray[np.bool_], conn: int, px_area: float,
                 min_area_m2: float) -> tuple[NDArray[np.int32], int]:
    """Components of at least ``min_area_m2`` relabelled 1..k, and ``k``.

    Labels follow the row-major order of first appearance, so footprint ids are stable.
    """
    labels, n = label(mask, connectivity=conn, return_num=True)
    if n == 0:
        return np.zeros(mask.shape, dtype=np.int32), 0
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    keep = counts * px_area >= min_area_m2
    keep[0] = False
    remap = np.zeros(n + 1, dtype=np.int32)
    remap[np.flatnonzero(keep)] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return remap[labels], int(keep.sum())


def _rows(geoms: list[BaseGeometry], per_comp: dict[str, NDArray[Any]], grid: Grid, *,
          date: str, aoi_name: str, sd: float, coreg_residual_m: float) -> list[dict[str, Any]]:
    """One footprint record per component (``per_comp`` arrays are indexed by label)."""
    cnt, alt_area = per_comp["n_px"], per_comp["area_alt_m2"]
    touching, alt_parts = per_comp["occluded"], per_comp["alt_parts"]
    px_area = grid.pixel_area_m2
    rows = []
    for comp, geom in enumerate(geoms, start=1):
        rows.append({
            "footprint_id": f"{aoi_name}:{date}:{comp}",
            "date": date,
            "area_m2": float(cnt[comp] * px_area),
            "perimeter_m": float(geom.length),
            "n_px": int(cnt[comp]),
            "res_m": grid.res_m,
            "boundary_sd_m": sd,
            "coreg_residual_m": coreg_residual_m,
            "area_alt_m2": float(alt_area[comp]),
            "occluded": bool(touching[comp]),
            "edge_corr_len_m": edge_corr_len_m(geom, grid.res_m),
            "alt_parts": int(alt_parts[comp]),
            "geometry": geom,
        })
    return rows


def _component_outlines(lab: NDArray[np.int32], k: int, grid: Grid,
                        connectivity: int) -> list[BaseGeometry]:
    """The traced, valid outline of each component 1..k (parts of one label unioned)."""
    geoms: dict[int, list[BaseGeometry]] = {}
    for geom, value in features.shapes(lab, mask=lab > 0, transform=grid.transform,
                                       connectivity=connectivity):
        geoms.setdefault(int(value), []).append(shape(geom))
    out = []
    for comp in range(1, k + 1):
        parts = geoms.get(comp, [])
        geom = parts[0] if len(parts) == 1 else shapely.union_all(parts)
        out.append(shapely.make_valid(geom))
    return out


def _touching(lab: NDArray[np.int32], k: int,
              invalid: NDArray[np.bool_] | None) -> NDArray[np.bool_]:
    """Per component, True where it touches the grid edge or an invalid pixel's neighbour."""
    touching = np.zeros(k + 1, dtype=bool)
    edge = np.zeros(lab.shape, dtype=bool)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    bad = edge if invalid is None else (edge | ndimage.binary_dilation(invalid, iterations=1))
    touching[np.unique(lab[bad])] = True
    return touching


def _alt_overlap(lab: NDArray[np.int32], k: int, alt_mask: NDArray[np.bool_] | None, conn: int,
                 px_area: float, min_area_m2: float) -> tuple[NDArray[np.float64],
                                                              NDArray[np.int64]]:
    """Area of the alternative components overlapping each footprint, and how many of them.

    Only alternative parts of at least ``max(min_area_m2, 4 px)`` count as parts (a
    stricter threshold that splits a footprint in two says its outline is unstable).
    """
    alt_area = np.full(k + 1, np.nan)
    parts = np.zeros(k + 1, dtype=np.int64)
    if alt_mask is None:
        return alt_area, parts
    alab, an = label(alt_mask, connectivity=conn, return_num=True)
    acnt = np.bincount(alab.ravel(), minlength=an + 1)
    both = (lab > 0) & (alab > 0)
    # one int64 key per (footprint, alternative) pair present: a 1-D unique over the
    # overlapping pixels only (a 2-row unique over every pixel was a third of detection)
    keys = np.unique(lab[both].astype(np.int64) * (an + 1) + alab[both])
    comp, acomp = keys // (an + 1), keys % (an + 1)
    big = acnt * px_area >= max(min_area_m2, 4 * px_area)
    alt_area[:] = np.bincount(comp, weights=acnt[acomp] * px_area, minlength=k + 1)
    parts[:] = np.bincount(comp, weights=big[acomp], minlength=k + 1).astype(np.int64)
    return alt_area, parts


def valid_geometry(valid: NDArray[np.bool_], grid: Grid) -> BaseGeometry:
    """The valid-data area of a date as one (multi)polygon in the grid CRS."""
    if valid.all():
        return shapely.box(*grid.bounds)
    polys = [shape(g) for g, v in features.shapes(valid.astype("uint8"), mask=valid,
                                                 transform=grid.transform) if v]
    return shapely.union_all(polys) if polys else shapely.Polygon()


def polygonize(
    mask: NDArray[np.bool_],
    grid: Grid,
    *,
    date: str,
    aoi_name: str,
    min_area_m2: float = 0.0,
    connectivity: Literal[4, 8] = 4,
    alt_mask: NDArray[np.bool_] | None = None,
    invalid: NDArray[np.bool_] | None = None,
    boundary_sd_m: float | None = None,
    coreg_residual_m: float = 0.0,
) -> gpd.GeoDataFrame:
    """Trace building footprints from a boolean mask on ``grid``.

    Parameters
    ----------
    mask : ndarray of bool, shape ``grid.shape``
        True on building pixels.
    grid : Grid
        The AOI grid (projected, metres).
    date : str
        Date of the mask, ``YYYY-MM-DD``; goes into ``footprint_id``.
    aoi_name : str
        AOI name for ids ``"{aoi}:{date}:{n}"``.
    min_area_m2 : float, optional
        Components smaller than this are dropped (sieved before tracing).
    connectivity : {4, 8}
        Used both by :func:`skimage.measure.label` and :func:`rasterio.features.shapes`
        so that labels and polygons agree.
    alt_mask : ndarray of bool, optional
        The same detection at another threshold. ``area_alt_m2`` of a footprint is
        the area of the alternative components that overlap it (boundary ambiguity).
    invalid : ndarray of bool, optional
        Cloud / nodata pixels. A footprint touching them (or the grid edge) is
        ``occluded``: its area is a lower bound.
    boundary_sd_m : float, optional
        1-sigma outline uncertainty; default half a pixel over √3 (a uniform
        ±½-pixel edge position).
    coreg_residual_m : float, optional
        The date's co-registration residual, recorded per footprint.

    Returns
    -------
    GeoDataFrame
        Columns :data:`FOOTPRINT_COLUMNS` + ``geometry``, in ``grid.crs``, one row
        per connected component, ordered by row-major position (stable ids).

    Examples
    --------
    >>> import numpy as np
    >>> from affine import Affine
    >>> g = Grid("EPSG:32652", Affine(10, 0, 300000, 0, -10, 4500000), (6, 6))
    >>> m = np.zeros((6, 6), bool); m[1:3, 1:4] = True
    >>> fp = polygonize(m, g, date="2021-06-03", aoi_name="x")
    >>> fp.loc[0, "footprint_id"], float(fp.loc[0, "area_m2"]), int(fp.loc[0, "n_px"])
    ('x:2021-06-03:1', 600.0, 6)
    >>> len(polygonize(np.zeros((6, 6), bool), g, date="2021-06-03", aoi_name="x"))
    0
    """
    if mask.shape != grid.shape:
        raise ValueError(f"mask shape {mask.shape} does not match grid shape {grid.shape}")
    conn = 1 if connectivity == 4 else 2
    lab, k = _kept_labels(mask, conn, grid.pixel_area_m2, min_area_m2)
    if k == 0:
        return empty_footprints(grid.crs)
    px_area = grid.pixel_area_m2
    cnt = np.bincount(lab.ravel(), minlength=k + 1)
    geoms = _component_outlines(lab, k, grid, connectivity)
    alt_area, alt_parts = _alt_overlap(lab, k, alt_mask, conn, px_area, min_area_m2)
    touching = _touching(lab, k, invalid)
    sd = grid.res_m / 2 / np.sqrt(3) if boundary_sd_m is None else boundary_sd_m
    per_comp = {"n_px": cnt, "area_alt_m2": alt_area, "occluded": touching, "alt_parts": alt_parts}
    rows = _rows(geoms, per_comp, grid, date=date, aoi_name=aoi_name, sd=float(sd),
                 coreg_residual_m=float(coreg_residual_m))
    log.debug("footprints: %s → %d polygons", date, k)
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=grid.crs)
