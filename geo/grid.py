"""One frozen target grid per AOI: a UTM CRS, a fixed resolution, snapped edges.

Pure: pyproj and shapely only, no file I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import shapely
from affine import Affine
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry

from geo.errors import AoiError, CrsMismatchError
from geo.types import BBox

__all__ = ["Grid", "check_same_grid", "grid_for_aoi", "to_crs", "utm_epsg_for",
           "utm_epsg_for_bounds"]


@dataclass(frozen=True, slots=True)
class Grid:
    """A north-up raster grid in a projected metric CRS.

    Parameters
    ----------
    crs : str
        The CRS as ``"EPSG:nnnnn"``.
    transform : Affine
        ``transform * (col, row) -> (x, y)`` of pixel corners.
    shape : tuple of int
        ``(rows, cols)``.
    """

    crs: str
    transform: Affine
    shape: tuple[int, int]

    @property
    def res_m(self) -> float:
        """Pixel size in metres (square pixels)."""
        return float(self.transform.a)

    @property
    def pixel_area_m2(self) -> float:
        """Area of one pixel in m²."""
        return float(abs(self.transform.a * self.transform.e))

    @property
    def bounds(self) -> BBox:
        """``(left, bottom, right, top)`` in the grid CRS."""
        left, top = self.transform.c, self.transform.f
        right = left + self.transform.a * self.shape[1]
        bottom = top + self.transform.e * self.shape[0]
        return (left, bottom, right, top)

    @property
    def epsg(self) -> int:
        """The EPSG code of the grid CRS."""
        return int(self.crs.split(":")[1])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (for grid.json and run.json)."""
        t = self.transform
        return {
            "crs": self.crs,
            "crs_wkt": CRS.from_user_input(self.crs).to_wkt(),
            "transform": [t.a, t.b, t.c, t.d, t.e, t.f],
            "shape": list(self.shape),
            "res_m": self.res_m,
            "bounds": list(self.bounds),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Grid:
        """Inverse of :meth:`to_dict`."""
        a, b, c, dd, e, f = d["transform"]
        rows, cols = d["shape"]
        return cls(crs=d["crs"], transform=Affine(a, b, c, dd, e, f), shape=(int(rows), int(cols)))


def check_same_grid(a: Grid, b: Grid, *, same_shape: bool = True, what: str = "") -> None:
    """Raise :class:`CrsMismatchError` unless ``a`` and ``b`` are comparable.

    Called wherever arrays of two dates meet (change maps, co-registration, normalisation),
    as odc-geo does. ``what`` names the two inputs in the message (``"b.tif vs a.tif"``).

    Examples
    --------
    >>> from affine import Affine
    >>> g = Grid(crs="EPSG:32652", transform=Affine(10, 0, 0, 0, -10, 0), shape=(4, 4))
    >>> check_same_grid(g, g)
    >>> other = Grid(crs="EPSG:32651", transform=g.transform, shape=(4, 4))
    >>> check_same_grid(g, other, what="b.tif vs a.tif")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    geo.errors.CrsMismatchError: b.tif vs a.tif: grids are in EPSG:32652 and EPSG:32651; ...
    """
    pre = f"{what}: " if what else ""
    if a.crs != b.crs:
        raise CrsMismatchError(f"{pre}grids are in {a.crs} and {b.crs}; resample onto one AOI "
                               "grid")
    if not math.isclose(a.res_m, b.res_m):
        raise CrsMismatchError(f"{pre}grids have {a.res_m} m and {b.res_m} m pixels; resample "
                               "onto one AOI grid")
    if same_shape and (a.shape != b.shape or a.transform != b.transform):
        raise CrsMismatchError(f"{pre}grids differ in extent; resample onto one AOI grid")


def utm_epsg_for(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 UTM zone containing ``(lon, lat)``.

    Examples
    --------
    >>> utm_epsg_for(126.585, 40.969)   # Kanggye
    32652
    >>> utm_epsg_for(-97.98, 30.21)     # Austin
    32614
    >>> utm_epsg_for(30.0, -3.0)        # southern hemisphere
    32736
    """
    if not (-180 <= lon <= 180 and -80 <= lat <= 84):
        raise AoiError(f"point ({lon}, {lat}) is outside the UTM range; is it (lat, lon)?")
    zone = min(int((lon + 180) // 6) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def utm_epsg_for_bounds(bounds: BBox) -> int:
    """EPSG code of the WGS 84 UTM zone of the centre of lon/lat ``bounds`` (w, s, e, n).

    The zone the AOI grids use (:func:`utm_epsg_for`); computed, not looked up in the PROJ
    database (``GeoDataFrame.estimate_utm_crs`` queries it, about 90 ms a call).

    Examples
    --------
    >>> utm_epsg_for_bounds((126.58, 40.96, 126.59, 40.97))
    32652
    """
    w, s, e, n = (float(v) for v in bounds)
    return utm_epsg_for((w + e) / 2.0, (s + n) / 2.0)


def to_crs(geom: BaseGeometry, src: str, dst: str) -> BaseGeometry:
    """Reproject a shapely geometry between CRSs (always x/y, lon/lat order)."""
    tr = Transformer.from_crs(src, dst, always_xy=True)

    def fn(x: Any, y: Any) -> Any:
        return tr.transform(x, y)

    transform_fn: Any = fn  # shapely's stubs (types-shapely) and its own hints disagree here
    out: BaseGeometry = shapely.transform(geom, transform_fn, interleaved=False)
    return out


def grid_for_aoi(
    geometry_4326: BaseGeometry,
    resolution_m: float,
    *,
    buffer_m: float = 0.0,
    epsg: int | None = None,
) -> Grid:
    """Build the frozen UTM grid that covers an AOI.

    Parameters
    ----------
    geometry_4326 : shapely geometry
        The AOI in EPSG:4326 (lon/lat).
    resolution_m : float
        Pixel size in metres.
    buffer_m : float, optional
        Grow the bounds by this many metres before snapping.
    epsg : int, optional
        A projected CRS to use instead of the UTM zone of the centroid.

    Returns
    -------
    Grid
        Edges snapped outward to whole multiples of ``resolution_m`` in the
        projected CRS, so that every AOI grid at a given resolution aligns with
        every other one in the same zone.

    Raises
    ------
    AoiError
        If the geometry is empty or the CRS is not projected in metres.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> g = grid_for_aoi(box(126.58, 40.96, 126.59, 40.97), 10.0)
    >>> g.crs, g.res_m, g.transform.c % 10 == 0
    ('EPSG:32652', 10.0, True)
    """
    if geometry_4326.is_empty:
        raise AoiError("AOI geometry is empty; draw a polygon around the site")
    if epsg is None:
        c = geometry_4326.centroid
        epsg = utm_epsg_for(c.x, c.y)
    crs = CRS.from_epsg(epsg)
    if not crs.is_projected or crs.axis_info[0].unit_name not in ("metre", "meter"):
        raise AoiError(f"EPSG:{epsg} is not a projected CRS in metres; use a UTM zone")
    g = to_crs(geometry_4326, "EPSG:4326", f"EPSG:{epsg}")
    minx, miny, maxx, maxy = g.buffer(buffer_m).bounds if buffer_m else g.bounds
    r = float(resolution_m)
    left, bottom = math.floor(minx / r) * r, math.floor(miny / r) * r
    right, top = math.ceil(maxx / r) * r, math.ceil(maxy / r) * r
    cols = max(1, round((right - left) / r))
    rows = max(1, round((top - bottom) / r))
    transform = Affine(r, 0.0, left, 0.0, -r, top)
    return Grid(crs=f"EPSG:{epsg}", transform=transform, shape=(rows, cols))
