"""SYNTHETIC multi-date scenes with known building footprints (the demo and tests).

Pure: numpy and shapely only. Everything made here is synthetic and is labelled
so by the code that writes it (:mod:`geo.demo`).

The scene is a north-up RGB image at ``res_m`` (default 1 m) in local metre
coordinates: ``x`` east from the left edge, ``y`` south from the top edge.
Halls are axis-aligned rectangles (or unions of them) rendered with exact
partial-pixel coverage, so the truth area of each hall is known exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from shapely.geometry import Polygon, box
from shapely.ops import unary_union

__all__ = ["Hall", "SceneSpec", "SyntheticScene", "default_spec", "render_series"]

Rect = tuple[float, float, float, float]  # x0, y0, x1, y1 in metres (local, y down)


@dataclass(frozen=True, kw_only=True)
class Hall:
    """One building: its rectangles per date (None = not there)."""

    name: str
    """Truth id (``A``, ``B``, ...)."""
    rects_by_date: dict[str, tuple[Rect, ...] | None]
    """Rectangles (local metres) on each date; None where the building is absent."""
    roof_rgb: tuple[float, float, float] = (0.55, 0.55, 0.56)
    """Roof reflectance (red, green, blue)."""
    height_m: float = 10.0
    """Height, for the shadow length."""

    def polygon(self, date: str) -> Polygon | None:
        """The truth footprint on ``date`` in local metres (y down), or None."""
        rects = self.rects_by_date.get(date)
        if not rects:
            return None
        geom = unary_union([box(x0, y0, x1, y1) for x0, y0, x1, y1 in rects])
        return geom if isinstance(geom, Polygon) else None


@dataclass(frozen=True, kw_only=True)
class SceneSpec:
    """Everything needed to render a SYNTHETIC series."""

    size_m: tuple[float, float] = (480.0, 480.0)
    """Scene size ``(width, height)`` in metres."""
    res_m: float = 1.0
    """Pixel size in metres."""
    dates: tuple[str, ...] = ("2019-05-20", "2020-06-02", "2021-05-28", "2022-06-10")
    halls: tuple[Hall, ...] = ()
    roads: tuple[Rect, ...] = ()
    """Road rectangles (local metres)."""
    soil: tuple[Rect, ...] = ()
    """Bare-soil / construction-yard rectangles."""
    gain: dict[str, float] = field(default_factory=dict)
    """Per-date illumination gain (1 = none)."""
    offset: dict[str, float] = field(default_factory=dict)
    """Per-date additive offset (reflectance units)."""
    shift_px: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per-date misregistration ``(dy, dx)`` in pixels: content moved by this much."""
    cloud: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    """Per-date cloud ``(x, y, radius)`` in metres; cloud pixels are flagged invalid."""
    noise_sd: float = 0.015
    """Gaussian noise standard deviation (reflectance units)."""
    sun_shadow_m: float = 0.6
    """Shadow length per metre of height (north-east of each hall)."""
    seed: int = 42


@dataclass(frozen=True, kw_only=True)
class SyntheticScene:
    """One rendered date."""

    date: str
    rgb: NDArray[np.float32]
    """``(3, rows, cols)`` reflectance 0..1."""
    cloud: NDArray[np.bool_]
    """True where the scene's cloud mask flags cloud."""
    truth: dict[str, Polygon]
    """Truth footprints on this date, local metres (y down), by hall name."""


def _cover_1d(lo: float, hi: float, n: int, res: float, shift: float) -> NDArray[np.float64]:
    """Fraction of each of ``n`` pixels (of size ``res``) covered by [lo, hi]."""
    edges = (np.arange(n + 1) - shift) * res
    overlap = np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo)
    cov: NDArray[np.float64] = np.clip(overlap, 0, None)
    return cov / res


def _cover(rects: tuple[Rect, ...], shape: tuple[int, int], res: float,
           shift: tuple[float, float]) -> NDArray[np.float64]:
    out = np.zeros(shape)
    for x0, y0, x1, y1 in rects:
        cy = _cover_1d(y0, y1, shape[0], res, shift[0])
        cx = _cover_1d(x0, x1, shape[1], res, shift[1])
        out += np.outer(cy, cx)
    clipped: NDArray[np.float64] = np.clip(out, 0.0, 1.0)
    return clipped


def default_spec() -> SceneSpec:
    """The demo's SYNTHETIC site: halls A and B (B grows to 2.25x A), and more.

    - ``A``: existing 60 × 40 m hall (2,400 m²), unchanged;
    - ``B``: absent in 2019, a 40 × 40 m hall (1,600 m²) in 2020, extended to
      90 × 60 m (5,400 m² = 2.25 × A) in 2021, unchanged in 2022;
    - ``C``: 120 × 50 m hall, unchanged (an older big neighbour);
    - ``D``: 45 × 30 m shed demolished after 2020;
    - ``E``: L-shaped hall, new in 2022;
    - ``F``: 50 × 36 m hall partly under the 2020 cloud.
    """
    d = ("2019-05-20", "2020-06-02", "2021-05-28", "2022-06-10")
    a = ((60.3, 250.2, 120.3, 290.2),)
    b_small = ((150.6, 240.4, 190.6, 280.4),)
    b_big = ((150.6, 230.4, 240.6, 290.4),)
    halls = (
        Hall(name="A", rects_by_date=dict.fromkeys(d, a), roof_rgb=(0.58, 0.58, 0.60)),
        Hall(name="B", rects_by_date={d[0]: None, d[1]: b_small, d[2]: b_big, d[3]: b_big},
             roof_rgb=(0.60, 0.30, 0.26), height_m=14.0),
        Hall(name="C", rects_by_date=dict.fromkeys(d, ((300.5, 60.5, 420.5, 110.5),)),
             roof_rgb=(0.50, 0.55, 0.62), height_m=16.0),
        Hall(name="D", rects_by_date={d[0]: ((70.2, 70.7, 115.2, 100.7),),
                                      d[1]: ((70.2, 70.7, 115.2, 100.7),), d[2]: None, d[3]: None},
             roof_rgb=(0.62, 0.60, 0.55), height_m=8.0),
        Hall(name="E", rects_by_date={d[0]: None, d[1]: None, d[2]: None,
                                      d[3]: ((300.4, 330.6, 380.4, 360.6),
                                             (300.4, 360.6, 330.4, 420.6))},
             roof_rgb=(0.30, 0.42, 0.62), height_m=12.0),
        Hall(name="F", rects_by_date=dict.fromkeys(d, ((180.3, 380.3, 230.3, 416.3),)),
             roof_rgb=(0.57, 0.57, 0.57), height_m=9.0),
    )
    roads = ((0.0, 190.0, 480.0, 198.0), (262.0, 0.0, 270.0, 480.0), (20.0, 300.0, 28.0, 480.0))
    soil = ((140.0, 215.0, 255.0, 300.0), (290.0, 320.0, 395.0, 430.0))
    return SceneSpec(
        dates=d, halls=halls, roads=roads, soil=soil,
        gain={d[0]: 1.0, d[1]: 1.12, d[2]: 0.88, d[3]: 1.05},
        offset={d[0]: 0.0, d[1]: 0.02, d[2]: -0.01, d[3]: 0.01},
        shift_px={d[2]: (-0.8, 1.6)},
        cloud={d[1]: (215.0, 420.0, 40.0)},
    )


def _texture(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> NDArray[np.float64]:
    t: NDArray[np.float64] = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    out: NDArray[np.float64] = t / (t.std() + 1e-9)
    return out


def render_series(spec: SceneSpec) -> list[SyntheticScene]:
    """Render every date of a SYNTHETIC series.

    Returns
    -------
    list of SyntheticScene
        One per date, in date order. Reflectances are 0..1; the truth
        polygons are in local metres (x east, y south from the top-left).
    """
    res = spec.res_m
    shape = (round(spec.size_m[1] / res), round(spec.size_m[0] / res))
    rng = np.random.default_rng(spec.seed)
    # static land cover (same every date, modulo phenology)
    veg_tex = _texture(rng, shape, 6.0 / res)
    fine_tex = _texture(rng, shape, 1.0)
    out: list[SyntheticScene] = []
    for i, date in enumerate(spec.dates):
        shift = spec.shift_px.get(date, (0.0, 0.0))
        season = 1.0 + 0.08 * np.sin(i * 1.7)
        # a misregistration moves the whole image, textures included
        vt = ndimage.shift(veg_tex, shift, order=1, mode="reflect") if any(shift) else veg_tex
        ft = ndimage.shift(fine_tex, shift, order=1, mode="reflect") if any(shift) else fine_tex
        veg = np.stack([0.07 + 0.015 * vt, (0.13 + 0.02 * vt) * season,
                        0.05 + 0.01 * vt]) + 0.01 * ft
        img = veg
        soil = _cover(spec.soil, shape, res, shift)
        img = img * (1 - soil) + soil * np.array([0.26, 0.22, 0.17])[:, None, None]
        road = _cover(spec.roads, shape, res, shift)
        img = img * (1 - road) + road * np.array([0.33, 0.33, 0.34])[:, None, None]
        truth: dict[str, Polygon] = {}
        # shadows first (north-east of each hall), then roofs
        for hall in spec.halls:
            rects = hall.rects_by_date.get(date)
            if not rects:
                continue
            s = hall.height_m * spec.sun_shadow_m
            shadow_rects = tuple((x0 + s, y0 - s, x1 + s, y1 - s) for x0, y0, x1, y1 in rects)
            sh = _cover(shadow_rects, shape, res, shift)
            img = img * (1 - 0.6 * sh)
        for hall in spec.halls:
            rects = hall.rects_by_date.get(date)
            if not rects:
                continue
            cov = _cover(rects, shape, res, shift)
            roof = np.array(hall.roof_rgb)[:, None, None] * (1 + 0.03 * ft)
            img = img * (1 - cov) + cov * roof
            poly = hall.polygon(date)
            if poly is not None:
                truth[hall.name] = poly
        img = img * spec.gain.get(date, 1.0) + spec.offset.get(date, 0.0)
        cloud = np.zeros(shape, dtype=bool)
        if date in spec.cloud:
            cx, cy, r = spec.cloud[date]
            yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
            d2 = ((xx + 0.5) * res - cx) ** 2 + ((yy + 0.5) * res - cy) ** 2
            wisp = np.exp(-d2 / (2 * (r * 0.6) ** 2)) * (1 + 0.2 * vt)
            alpha = np.clip(wisp * 1.4, 0, 1)
            img = img * (1 - alpha) + alpha * 0.85
            cloud = alpha > 0.15
        img = img + rng.normal(0.0, spec.noise_sd, img.shape)
        out.append(SyntheticScene(date=date, rgb=np.clip(img, 0, 1).astype(np.float32),
                                  cloud=cloud, truth=truth))
    return out
