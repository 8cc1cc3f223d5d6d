"""A small, hand-built run directory with the documented layout (DESIGN.md "Run directory").

Used by the export tests until/unless a real demo run is available. Geometry: four halls near
Kanggye on a 1 m UTM grid, three dates. s1 grows 20x30 → 45x30 m (2.25x its neighbour s2),
s3 is new on the second date, s4 is demolished after the first. Everything is labelled
SYNTHETIC.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from affine import Affine
from shapely.geometry import box

from geo.export.gpkg import write_gpkg
from geo.export.qml import write_qml
from geo.export.rasters import write_cog
from geo.grid import Grid

AOI = "kanggye"
DATES = ("2021-06-03", "2022-06-08", "2023-06-13")
# 200 x 160 m at 1 m, at the Kanggye AOI centre (126.585 E, 40.969 N) in UTM 52N
GRID = Grid(crs="EPSG:32652", transform=Affine(1.0, 0.0, 296240.0, 0.0, -1.0, 4537890.0),
            shape=(160, 200))
BANDS = ("blue", "green", "red", "nir")

# (site, status, {date: (col0, row0, w, h) in pixels})
HALLS: list[tuple[str, str, dict[str, tuple[int, int, int, int]]]] = [
    ("s1", "grown", {DATES[0]: (30, 40, 20, 30), DATES[1]: (30, 40, 30, 30),
                     DATES[2]: (30, 40, 45, 30)}),
    ("s2", "unchanged", {d: (100, 40, 20, 30) for d in DATES}),
    ("s3", "new", {DATES[1]: (40, 100, 25, 20), DATES[2]: (40, 100, 25, 20)}),
    ("s4", "demolished", {DATES[0]: (140, 100, 30, 25)}),
]
N_FOOTPRINTS = sum(len(d) for _s, _st, d in HALLS)


def _poly(c0: int, r0: int, w: int, h: int) -> Any:
    t = GRID.transform
    x0, y0 = t @ (c0, r0)
    x1, y1 = t @ (c0 + w, r0 + h)
    return box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _interval(a: float, sd: float) -> tuple[float, float]:
    return a - 1.96 * sd, a + 1.96 * sd


def build_tables() -> dict[str, gpd.GeoDataFrame | pd.DataFrame]:
    """Footprints, sites, changes (GeoDataFrames, UTM) and events (DataFrame)."""
    fp_rows: list[dict[str, Any]] = []
    for site, status, sightings in HALLS:
        for n, (date, (c0, r0, w, h)) in enumerate(sightings.items()):
            area = float(w * h)
            sd = 0.5 * 2 * (w + h)
            lo, hi = _interval(area, sd)
            fp_rows.append({
                "footprint_id": f"{AOI}:{date}:{n}", "date": date, "area_m2": area,
                "perimeter_m": float(2 * (w + h)), "n_px": w * h, "res_m": 1.0,
                "boundary_sd_m": 0.5, "coreg_residual_m": 0.2, "area_alt_m2": area * 1.03,
                "occluded": False, "site_id": f"{AOI}:{site}", "status": status,
                "area_m2_sd": sd, "area_m2_lo": lo, "area_m2_hi": hi,
                "geometry": _poly(c0, r0, w, h),
            })
    footprints = gpd.GeoDataFrame(fp_rows, crs=GRID.crs)

    site_rows: list[dict[str, Any]] = []
    for site, status, sightings in HALLS:
        dates = list(sightings)
        last = sightings[dates[-1]]
        first = sightings[dates[0]]
        area, first_area = float(last[2] * last[3]), float(first[2] * first[3])
        sd = 0.5 * 2 * (last[2] + last[3])
        site_rows.append({
            "site_id": f"{AOI}:{site}", "status": status, "first_seen_date": dates[0],
            "last_seen_date": dates[-1], "n_dates": len(dates), "dates": ";".join(dates),
            "area_m2": area, "area_m2_sd": sd, "area_m2_lo": _interval(area, sd)[0],
            "area_m2_hi": _interval(area, sd)[1], "first_area_m2": first_area,
            "growth_ratio": area / first_area, "growth_ratio_lo": area / first_area * 0.95,
            "growth_ratio_hi": area / first_area * 1.05,
            "geometry": _poly(*last),
        })
    sites = gpd.GeoDataFrame(site_rows, crs=GRID.crs)
    s2_area = float(sites.loc[sites.site_id == f"{AOI}:s2", "area_m2"].iloc[0])
    s1 = sites.site_id == f"{AOI}:s1"
    sites["neighbour_id"] = None
    sites["neighbour_area_ratio"] = np.nan
    sites["neighbour_area_ratio_lo"] = np.nan
    sites["neighbour_area_ratio_hi"] = np.nan
    ratio = float(sites.loc[s1, "area_m2"].iloc[0]) / s2_area
    sites.loc[s1, "neighbour_id"] = f"{AOI}:s2"
    sites.loc[s1, "neighbour_area_ratio"] = ratio
    sites.loc[s1, "neighbour_area_ratio_lo"] = ratio * 0.93
    sites.loc[s1, "neighbour_area_ratio_hi"] = ratio * 1.07
    sites["sentence"] = ""
    sites.loc[s1, "sentence"] = (
        f"{AOI}:s1 is {ratio:.2f}x the area of its neighbour {AOI}:s2 "
        f"(95% interval {ratio * 0.93:.2f}–{ratio * 1.07:.2f})"
    )

    ev_rows: list[dict[str, Any]] = []
    for site, _status, sightings in HALLS:
        dates = list(sightings)
        for d0, d1 in itertools.pairwise(DATES):
            a0 = sightings.get(d0)
            a1 = sightings.get(d1)
            if a0 is None and a1 is None:
                continue
            area0 = float(a0[2] * a0[3]) if a0 else 0.0
            area1 = float(a1[2] * a1[3]) if a1 else 0.0
            event = ("new" if a0 is None else "demolished" if a1 is None
                     else "grown" if area1 > area0 * 1.05 else "unchanged")
            ev_rows.append({"site_id": f"{AOI}:{site}", "date_from": d0, "date_to": d1,
                            "event": event, "area_from_m2": area0, "area_to_m2": area1,
                            "related_site_ids": "", "geometry": _poly(*(a1 or a0))})
        del dates
    events_geo = gpd.GeoDataFrame(ev_rows, crs=GRID.crs)
    changes = events_geo[events_geo.event != "unchanged"].reset_index(drop=True)
    events = pd.DataFrame(events_geo.drop(columns="geometry"))
    return {"footprints": footprints, "sites": sites, "changes": changes, "events": events}


def _write_geojson(gdf: gpd.GeoDataFrame, path: Path, id_field: str) -> None:
    out = gdf.to_crs("EPSG:4326").copy()
    out.insert(0, "id", out[id_field])  # id both top-level (moved by GDAL) and in properties
    out.to_file(path, driver="GeoJSON", RFC7946="YES", ID_FIELD="id",
                COORDINATE_PRECISION=7, engine="pyogrio")


def _scene(date: str) -> np.ndarray:
    rng = np.random.default_rng(abs(hash(date)) % 2**32)
    rows, cols = GRID.shape
    img = np.empty((4, rows, cols), dtype="float32")
    img[:] = np.array([0.04, 0.08, 0.05, 0.35], dtype="float32")[:, None, None]  # vegetation
    img[:, 75:85, :] = np.array([0.12, 0.12, 0.12, 0.15], dtype="float32")[:, None, None]  # road
    for _site, _st, sightings in HALLS:
        if date in sightings:
            c0, r0, w, h = sightings[date]
            img[:, r0:r0 + h, c0:c0 + w] = np.array([0.25, 0.26, 0.27, 0.28],
                                                     dtype="float32")[:, None, None]
    img += rng.normal(0, 0.01, img.shape).astype("float32")
    return img


def _mask(date: str) -> np.ndarray:
    m = np.zeros(GRID.shape, dtype="uint8")
    for _site, _st, sightings in HALLS:
        if date in sightings:
            c0, r0, w, h = sightings[date]
            m[r0:r0 + h, c0:c0 + w] = 1
    return m


def make_run_dir(run_dir: Path, *, claims: bool = True) -> Path:
    """Write a complete run directory (no report) and return it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tables = build_tables()
    for layer, id_field in (("footprints", "footprint_id"), ("sites", "site_id"),
                            ("changes", "site_id")):
        gdf = tables[layer]
        assert isinstance(gdf, gpd.GeoDataFrame)
        if layer == "changes":
            gdf = gdf.assign(change_id=[f"{r.site_id}:{r.date_to}" for r in gdf.itertuples()])
            id_field = "change_id"
        _write_geojson(gdf, run_dir / f"{layer}.geojson", id_field)
        write_qml(layer, run_dir / f"{layer}.qml")
    write_gpkg(tables, run_dir / "results.gpkg")
    tags = {"SYNTHETIC": "yes"}
    for date in DATES:
        write_cog(_scene(date), GRID, run_dir / "scenes" / f"{date}.tif", kind="scene",
                  band_names=BANDS, tags={**tags, "DATE": date})
        mask = _mask(date)
        mask[:5, :5] = 255
        write_cog(mask, GRID, run_dir / "masks" / f"{date}.tif", kind="mask", nodata=255,
                  tags={**tags, "DATE": date})
    for d0, d1 in itertools.pairwise(DATES):
        change = (_mask(d0) != _mask(d1))
        prob = np.clip(change.astype("float32") * 0.9 + 0.05, 0, 1).astype("float32")
        write_cog(prob, GRID, run_dir / "change" / f"{d0}_{d1}_prob.tif", kind="probability",
                  tags=tags)
        write_cog(change.astype("uint8"), GRID, run_dir / "change" / f"{d0}_{d1}_mask.tif",
                  kind="mask", nodata=255, tags=tags)
    (run_dir / "grid.json").write_text(json.dumps(GRID.to_dict(), indent=2))
    sites = tables["sites"]
    pd.DataFrame(sites.drop(columns="geometry")).to_csv(run_dir / "measurements.csv",
                                                        index=False)
    run: dict[str, Any] = {
        "factorywatch_version": "0.0.0-test",
        "synthetic": True,
        "aoi": {"name": AOI, "label": "Kanggye General Tractor Plant (synthetic test scene)",
                "geometry": json.loads(gpd.GeoSeries(
                    [box(*GRID.bounds).buffer(-10, join_style="mitre")], crs=GRID.crs
                ).to_crs(4326).to_json())["features"][0]["geometry"],
                "confidence": "approximate", "source": "test fixture"},
        "created": "2026-11-25T15:00:00Z",
        "status": "complete",
        "config": {"grid": {"resolution_m": 1.0}, "detect": {"method": "index"}},
        "dates": list(DATES),
        "scenes": [{"date": d, "source_id": f"synthetic-{d}", "path": f"input/{d}.tif",
                    "sha256": "0" * 64, "coreg_shift_m": [0.1, -0.2],
                    "coreg_residual_m": 0.2} for d in DATES],
        "versions": {"python": "3.11.7", "gdal": "3.10.0", "rasterio": "1.4.4"},
        "stages": [{"stage": "detect", "seconds": 0.8, "message": "3 dates"}],
        "warnings": ["a test warning"],
    }
    if claims:
        run["claims"] = [{
            "subject": f"{AOI}:s1", "reference": f"{AOI}:s2", "relation": ">", "factor": 2.0,
            "ratio": 2.25, "ratio_lo": 2.09, "ratio_hi": 2.41, "verdict": "supported",
            "text": "s1 is more than twice as large as its neighbour",
        }]
    (run_dir / "run.json").write_text(json.dumps(run, indent=2))
    return run_dir

