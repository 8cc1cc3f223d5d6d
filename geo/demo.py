"""Write the SYNTHETIC demo series to disk: GeoTIFFs, AOI, config and truth.

Everything written here says it is synthetic: file names, GeoTIFF tags, AOI
properties and the truth file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, reproject
from shapely.geometry import box

from geo._atomic import atomic_write_text
from geo.export.geojson import write_geojson
from geo.grid import to_crs
from geo.synthetic import SceneSpec, SyntheticScene, default_spec, render_series

__all__ = ["DEMO_EPSG", "DEMO_ORIGIN", "DemoFiles", "write_demo"]

DEMO_EPSG = 32652
DEMO_ORIGIN = (296600.0, 4538400.0)
"""Top-left corner (UTM 52N) near the Kanggye town centre: a SYNTHETIC scene placed there."""


@dataclass(frozen=True)
class DemoFiles:
    """Paths of the written demo inputs."""

    config: Path
    aoi: Path
    imagery: Path
    truth: Path


def _write_tif(path: Path, data: np.ndarray, transform: Affine, crs: str, *, tags: dict[str, str],
               mask: np.ndarray | None) -> None:
    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1],
               "count": data.shape[0], "dtype": "uint8", "crs": crs, "transform": transform,
               "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
    tmp = path.with_name(f".{path.name}.tmp")
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(tmp, "w", **profile) as dst:
        dst.write(data)
        for i, d in enumerate(("red", "green", "blue"), 1):
            dst.set_band_description(i, d)
        dst.update_tags(**tags)
        if mask is not None:
            dst.write_mask(np.where(mask, 255, 0).astype("uint8"))
    tmp.replace(path)


def _write_imagery(img_dir: Path, scenes: list[SyntheticScene], transform: Affine,
                   crs: str) -> None:
    """One GeoTIFF per date: one dated by a TIFF tag, the last one in Web Mercator."""
    base_tags = {"SYNTHETIC": "yes", "SOURCE": "factorywatch synthetic demo (not real imagery)"}
    for i, sc in enumerate(scenes):
        dn = np.clip(np.round(sc.rgb * 255.0), 0, 255).astype("uint8")
        valid = ~sc.cloud
        if i == 1:  # date from a TIFF tag, not the file name
            _write_tif(img_dir / "synthetic_scene_b.tif", dn, transform, crs,
                       tags={**base_tags,
                             "TIFFTAG_DATETIME": sc.date.replace("-", ":") + " 02:10:00"},
                       mask=valid)
        elif i == len(scenes) - 1:  # another CRS (Web Mercator), as a provider might deliver
            dst_crs = CRS.from_epsg(3857)
            h, w = dn.shape[1:]
            left, top = transform @ (0, 0)
            right, bottom = transform @ (w, h)
            t2, w2, h2 = calculate_default_transform(crs, dst_crs, w, h, left=left, bottom=bottom,
                                                     right=right, top=top)
            out = np.zeros((3, h2, w2), dtype="uint8")
            outm = np.zeros((h2, w2), dtype="uint8")
            for b in range(3):
                reproject(dn[b], out[b], src_transform=transform, src_crs=crs, dst_transform=t2,
                          dst_crs=dst_crs, resampling=Resampling.cubic)
            reproject(np.full((h, w), 255, "uint8"), outm, src_transform=transform, src_crs=crs,
                      dst_transform=t2, dst_crs=dst_crs, resampling=Resampling.nearest)
            _write_tif(img_dir / f"synthetic_{sc.date}_webmercator.tif", out, t2, "EPSG:3857",
                       tags=base_tags, mask=outm > 0)
        else:
            _write_tif(img_dir / f"synthetic_{sc.date}.tif", dn, transform, crs, tags=base_tags,
                       mask=valid if sc.cloud.any() else None)


def _write_truth(path: Path, scenes: list[SyntheticScene], crs: str) -> Path:
    """The true footprints (local y-down metres → UTM map coordinates) as GeoJSON."""
    x0, y0 = DEMO_ORIGIN
    # truth footprints in UTM (local y-down metres → map coordinates)
    rows = []
    for sc in scenes:
        for name, poly in sc.truth.items():
            g = shapely.transform(poly, lambda xy: np.column_stack([x0 + xy[:, 0], y0 - xy[:, 1]]))
            g = shapely.orient_polygons(g, exterior_cw=False)
            rows.append({"truth_id": f"{name}:{sc.date}", "hall": name, "date": sc.date,
                         "area_m2": float(g.area), "synthetic": True, "geometry": g})
    truth = gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)
    return write_geojson(truth, path, layer_name="truth",
                               id_field="truth_id")


def _write_aoi(path: Path, spec: SceneSpec, crs: str) -> Path:
    """The AOI, the scene minus a 10 m margin, as a one-feature GeoJSON in WGS 84."""
    x0, y0 = DEMO_ORIGIN
    # AOI: the scene minus a 10 m margin
    w_m, h_m = spec.size_m
    aoi_utm = box(x0 + 10, y0 - h_m + 10, x0 + w_m - 10, y0 - 10)
    aoi_ll = shapely.orient_polygons(
        shapely.set_precision(to_crs(aoi_utm, crs, "EPSG:4326"), 1e-7), exterior_cw=False)
    aoi = {"type": "FeatureCollection", "name": "kanggye_demo", "features": [{
        "type": "Feature", "id": "kanggye_demo",
        "properties": {
            "site_id": "kanggye_demo", "name": "SYNTHETIC demo near Kanggye (not real imagery)",
            "synthetic": True, "point_kind": "synthetic", "coord_confidence": "low",
            "coord_source": "synthetic scene placed near the GeoNames Kanggye town centre; "
                            "it says nothing about the real plant",
        },
        "geometry": shapely.geometry.mapping(aoi_ll)}]}
    return atomic_write_text(path, json.dumps(aoi, indent=1))


def write_demo(folder: str | Path, spec: SceneSpec | None = None) -> DemoFiles:
    """Render the SYNTHETIC demo and write it under ``folder``.

    Layout: ``imagery/`` (one GeoTIFF per date: mixed CRSs, dates from file
    names or tags, a cloud flagged in an internal mask), ``demo.geojson`` (the
    AOI), ``demo.toml`` (the run config) and ``truth.geojson`` (true footprints).
    """
    spec = spec or default_spec()
    root = Path(folder)
    img_dir = root / "imagery"
    img_dir.mkdir(parents=True, exist_ok=True)
    scenes = render_series(spec)
    crs = f"EPSG:{DEMO_EPSG}"
    x0, y0 = DEMO_ORIGIN
    transform = Affine(spec.res_m, 0, x0, 0, -spec.res_m, y0)
    _write_imagery(img_dir, scenes, transform, crs)
    truth_path = _write_truth(root / "truth.geojson", scenes, crs)
    aoi_path = _write_aoi(root / "demo.geojson", spec, crs)
    toml = f"""# SYNTHETIC demo: factorywatch's generated series near Kanggye (not real imagery).
[aoi]
geometry = "demo.geojson"
name = "kanggye_demo"

[source]
kind = "local"
path = "imagery"

[grid]
resolution_m = {spec.res_m}

[coreg]
max_residual_m = 1.0

[detect]
min_area_m2 = 300.0

[match]
iou_threshold = 0.25
min_dates = 1
"""
    cfg = atomic_write_text(root / "demo.toml", toml)
    return DemoFiles(config=cfg, aoi=aoi_path, imagery=img_dir, truth=truth_path)
