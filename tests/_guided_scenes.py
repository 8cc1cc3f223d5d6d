"""SYNTHETIC Sentinel-2-like factory series on disk for the guided-mode tests.

A 120x80 m neighbour hall "Building A" and a new hall "Building B" growing beside it on a
gravel yard (90x60 → 150x90 → 200x110 m), bare cleared ground before B; 10 m, four bands,
float32 GeoTIFFs in UTM 52N near Kanggye. One date has a cloud (nodata) over B.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from shapely.geometry import Point, box, mapping

from geo.grid import to_crs
from geo.synthetic_s2 import S2Spec, factory_layout, render_s2

CRS = "EPSG:32652"
ORIGIN = (296600.0, 4538400.0)
DATES = ("2019-04-02", "2019-09-10", "2020-04-15", "2020-10-01", "2021-04-20", "2021-09-28",
         "2022-04-11", "2022-10-03", "2023-04-18")
STAGES: tuple[tuple[float, float] | None, ...] = (
    None, None, (90.0, 60.0), (90.0, 60.0), (150.0, 90.0), (150.0, 90.0), (200.0, 110.0),
    (200.0, 110.0), (200.0, 110.0))
CLOUDY = "2021-09-28"
"""On this date a cloud (nodata) covers hall B."""


@dataclass(frozen=True)
class Series:
    config: Path
    priors: Path
    imagery: Path
    truth: dict[str, dict[str, float]]
    """``truth[date][name]`` = true area in m² (0 where absent)."""


_RENDERED: dict[tuple[int, tuple[float, float]],
                tuple[list[np.ndarray], Affine, list[dict[str, object]]]] = {}
"""Rendered series by ``(seed, ORIGIN)``: rendering at 1 m costs about a second of CPU, and
the same series is asked for by several tests (and twice by ``_guided_stac.serve_factory``)."""


def render_scenes(seed: int = 0) -> tuple[list[np.ndarray], Affine, list[dict[str, object]]]:
    """The SYNTHETIC dates as ``(4, 60, 60)`` float32 arrays, their transform and truth.

    Deterministic in ``(seed, ORIGIN)``, so each is rendered once per process; every call
    gets its own copies of the arrays and truth dicts.
    """
    key = (seed, ORIGIN)
    if key not in _RENDERED:
        _RENDERED[key] = _render_scenes(seed)
    scenes, transform, truth = _RENDERED[key]
    return [s.copy() for s in scenes], transform, [dict(t) for t in truth]


def _render_scenes(seed: int) -> tuple[list[np.ndarray], Affine, list[dict[str, object]]]:
    rng = np.random.default_rng(seed)
    layers, truth = factory_layout(ORIGIN, STAGES)
    spec = S2Spec(size_m=(600, 600))
    cache: dict[int, np.ndarray] = {}
    scenes, transform = [], None
    for i, lay in enumerate(layers):
        sc = render_s2(lay, origin=ORIGIN, spec=spec, rng=rng, cache=cache)
        data = sc.data.copy()
        if DATES[i] == CLOUDY:
            data[:, 15:35, 28:55] = np.nan
        scenes.append(data)
        transform = sc.transform
    assert transform is not None
    return scenes, transform, [dict(t) for t in truth]


def write_series(root: Path, *, seed: int = 0, point_prior: bool = False) -> Series:
    """Write imagery, AOI, config, perturbed priors; return paths and truth areas."""
    img = root / "imagery"
    img.mkdir(parents=True, exist_ok=True)
    scenes, transform, truth = render_scenes(seed)
    for d, data in zip(DATES, scenes, strict=True):
        prof = {"driver": "GTiff", "width": 60, "height": 60, "count": 4, "dtype": "float32",
                "crs": CRS, "transform": transform, "nodata": float("nan")}
        with rasterio.open(img / f"synthetic_s2_{d}.tif", "w", **prof) as dst:
            dst.write(data)
            for b, name in enumerate(("blue", "green", "red", "nir"), 1):
                dst.set_band_description(b, name)
            dst.update_tags(SYNTHETIC="yes")
    x0, y0 = ORIGIN
    aoi = box(x0 + 20, y0 - 580, x0 + 580, y0 - 20)
    aoi_ll = to_crs(aoi, CRS, "EPSG:4326")
    (root / "plant.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"synthetic": True, "coord_confidence": "high",
                                          "coord_source": "SYNTHETIC test scene"},
        "geometry": mapping(aoi_ll)}]}))
    (root / "plant.toml").write_text('[source]\nkind = "local"\npath = "imagery"\n'
                                     '[grid]\nresolution_m = 10.0\n'
                                     '[output]\nreport = false\nrasters = false\n')
    # priors: A traced roughly (shifted 4 m, 10 % too large); B traced on a late basemap
    a_true, b_final = truth[0]["A"], truth[-1]["B"]
    a_prior = shapely.affinity.translate(shapely.affinity.scale(a_true, 1.05, 1.05), 4.0, -3.0)
    b_prior: object = (Point(b_final.centroid.x + 5, b_final.centroid.y - 4) if point_prior
                       else shapely.affinity.translate(shapely.affinity.scale(b_final, 0.9, 0.95),
                                                       -3.0, 4.0))
    feats = []
    for name, g, props in (("Building A", a_prior, {}),
                           ("Building B", b_prior, {"size_m2": 18000.0} if point_prior else {})):
        feats.append({"type": "Feature", "properties": {"name": name, **props},
                      "geometry": mapping(to_crs(g, CRS, "EPSG:4326"))})
    pri = root / "priors.geojson"
    pri.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    areas = {d: {"Building A": float(t["A"].area),
                 "Building B": float(t["B"].area) if t["B"] is not None else 0.0}
             for d, t in zip(DATES, truth, strict=True)}
    return Series(config=root / "plant.toml", priors=pri, imagery=img, truth=areas)
