from __future__ import annotations

import json
import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Geod
from shapely import wkt
from shapely.geometry import box

from geo.errors import CrsMismatchError, SourceError
from geo.footprints import FOOTPRINT_COLUMNS
from geo.sources.local import date_from_name
from geo.vector import read_footprints


def _shared_data() -> Path:
    here = Path(__file__).resolve()
    for cand in (os.environ.get("FACTORYWATCH_SHARED_DATA"), here.parents[1].parent / "shared"
                 / "data", here.parents[2] / "shared" / "data", Path("/work/shared/data")):
        if cand and Path(cand).is_dir():
            return Path(cand)
    pytest.skip("shared real data not available")


GEOD = Geod(ellps="WGS84")


def _geodesic_areas(gdf: gpd.GeoDataFrame) -> np.ndarray:
    ll = gdf.to_crs(4326)
    return np.array([abs(GEOD.geometry_area_perimeter(g)[0]) for g in ll.geometry])


def _check_against_geodesic(fp: gpd.GeoDataFrame, tol: float) -> None:
    assert fp.crs.is_projected and fp.crs.utm_zone is not None
    geo = _geodesic_areas(fp)
    rel = np.abs(fp.area_m2.to_numpy() - geo) / geo
    assert rel.max() < tol, rel.max()


def test_spacenet_atlanta_areas_match_geodesic():
    path = _shared_data() / "spacenet" / "sn4_atlanta" / "geotiff_labels.geojson"
    fp = read_footprints([path], aoi_name="atl", dates=["2016-12-22"])
    assert fp.crs.to_epsg() == 32616
    assert len(fp) == 43
    _check_against_geodesic(fp, 1e-3)  # UTM scale error near the zone centre: < 0.1%
    # the README's clipped total: 8459.4 m²
    assert fp.area_m2.sum() == pytest.approx(8459.4, abs=0.5)


def test_opengeos_alexandria_lonlat_footprints_match_geodesic():
    path = _shared_data() / "geotiff_io" / "opengeos_elevation" / "buildings.geojson"
    fp = read_footprints([path], aoi_name="alx", dates=["2020-01-01"])
    assert fp.crs.to_epsg() == 32618
    assert len(fp) == 84
    _check_against_geodesic(fp, 1e-3)
    assert fp.area_m2.sum() == pytest.approx(25665, rel=2e-3)  # README: 25665 m² in UTM 18N


def test_xbd_lnglat_polygons_match_geodesic(tmp_path):
    src = _shared_data() / "xbd" / "labels" / "joplin-tornado_00000000_pre_disaster.json"
    feats = json.loads(src.read_text())["features"]["lng_lat"]
    geoms = [wkt.loads(f["wkt"]) for f in feats]
    out = tmp_path / "joplin_2009-08-08.geojson"
    gpd.GeoDataFrame({"uid": [f["properties"]["uid"] for f in feats]}, geometry=geoms,
                     crs=4326).to_file(out, driver="GeoJSON")
    fp = read_footprints([out], aoi_name="jop")
    assert set(fp.date) == {"2009-08-08"}
    assert len(fp) == 185
    assert fp.crs.to_epsg() == 32615
    _check_against_geodesic(fp, 1e-3)


def test_schema_date_field_and_crs(tmp_path):
    g = [box(126.0, 40.0, 126.001, 40.0005), box(126.002, 40.0, 126.003, 40.001)]
    gdf = gpd.GeoDataFrame({"seen": ["2023-06-01", "2024/10/05"], "name": ["a", "b"]},
                           geometry=g, crs=4326).to_crs(3857)
    p = tmp_path / "plant.gpkg"
    gdf.to_file(p, driver="GPKG")
    fp = read_footprints([p], aoi_name="x", date_field="seen", digitising_sd_m=2.5)
    assert list(fp.columns) == [*FOOTPRINT_COLUMNS, "name", "geometry"]  # names kept (#14)
    assert fp.name.tolist() == ["a", "b"]
    assert fp.crs.to_epsg() == 32652
    assert fp.date.tolist() == ["2023-06-01", "2024-10-05"]
    assert fp.footprint_id.tolist() == ["x:2023-06-01:1", "x:2024-10-05:1"]
    assert (fp.boundary_sd_m == 2.5).all() and (fp.res_m == 0).all() and (fp.n_px == 0).all()
    assert fp.area_alt_m2.isna().all() and not fp.occluded.any()
    np.testing.assert_allclose(fp.area_m2, fp.geometry.area)
    np.testing.assert_allclose(fp.perimeter_m, fp.geometry.length)
    fp2 = read_footprints([p], aoi_name="x", date_field="seen", epsg=32651)
    assert fp2.crs.to_epsg() == 32651


def test_one_file_per_date_shapefile_and_names(tmp_path):
    g = gpd.GeoDataFrame(geometry=[box(500000, 4400000, 500100, 4400050)], crs=32652)
    a = tmp_path / "site_2020-01-01.shp"
    b = tmp_path / "site_20210101.geojson"
    g.to_file(a)
    g.to_crs(4326).to_file(b, driver="GeoJSON")
    fp = read_footprints([b, a], aoi_name="s")
    assert fp.date.tolist() == ["2020-01-01", "2021-01-01"]
    np.testing.assert_allclose(fp.area_m2, 5000.0, rtol=1e-6)
    assert date_from_name("x_2024-13-01_20240102.gpkg") == "2024-01-02"


def test_invalid_and_non_polygon_features_are_repaired_or_dropped(tmp_path):
    bowtie = shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
    gdf = gpd.GeoDataFrame(geometry=[bowtie, shapely.Point(5, 5), box(20, 0, 30, 10)],
                           crs=32652)
    gdf = gdf.set_geometry(gdf.geometry.translate(500000, 4400000))
    p = tmp_path / "2022-02-02.gpkg"
    gdf.to_file(p, driver="GPKG")
    fp = read_footprints([p], aoi_name="v", epsg=32652)
    assert len(fp) == 2 and fp.geometry.is_valid.all()
    np.testing.assert_allclose(sorted(fp.area_m2), [50.0, 100.0], rtol=1e-6)


def test_errors_name_the_fix(tmp_path):
    with pytest.raises(SourceError, match="no such footprint file"):
        read_footprints([tmp_path / "nope.geojson"], aoi_name="x")
    g = gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)], crs=4326)
    p = tmp_path / "undated.geojson"
    g.to_file(p, driver="GeoJSON")
    with pytest.raises(SourceError, match="--date-field"):
        read_footprints([p], aoi_name="x")
    with pytest.raises(SourceError, match="no field 'when'"):
        read_footprints([p], aoi_name="x", date_field="when")
    with pytest.raises(SourceError, match="one date per file"):
        read_footprints([p], aoi_name="x", dates=["2020-01-01", "2021-01-01"])
    with pytest.raises(CrsMismatchError, match="projected"):
        read_footprints([p], aoi_name="x", dates=["2020-01-01"], epsg=4326)
    shp = tmp_path / "noprj_2020-01-01.shp"
    with pytest.warns(UserWarning, match="crs"):
        gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)]).to_file(shp)
    with pytest.raises(CrsMismatchError, match="no CRS"):
        read_footprints([shp], aoi_name="x")
    bad = tmp_path / "2020-01-01.geojson"
    bad.write_text("{not json")
    with pytest.raises(SourceError, match="cannot read"):
        read_footprints([bad], aoi_name="x")


def test_measure_cli_writes_a_run_like_an_imagery_run(tmp_path):
    from click.testing import CliRunner

    from geo.cli import main

    g0 = [box(500000, 4400000, 500100, 4400050), box(500150, 4400000, 500200, 4400050)]
    g1 = [box(500000, 4400000, 500100, 4400050), box(500150, 4400000, 500250, 4400050)]
    for d, g in (("2022-10-01", g0), ("2023-06-01", g1)):
        gpd.GeoDataFrame({"when": [d] * 2}, geometry=g, crs=32652).to_crs(4326).to_file(
            tmp_path / f"kusong_{d}.geojson", driver="GeoJSON")
    cfg = tmp_path / "kusong.toml"
    cfg.write_text("[output]\nreport = false\n")
    files = sorted(str(p) for p in tmp_path.glob("kusong_*.geojson"))
    run = tmp_path / "run"
    args = ["measure", *files, "-o", str(run), "--digitising-sd-m", "1.5", "--config", str(cfg),
            "--json", "-q"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["n_sites"] == 2 and summary["dates"] == ["2022-10-01", "2023-06-01"]
    for name in ("sites.geojson", "footprints.geojson", "measurements.csv", "results.gpkg"):
        assert (run / name).is_file(), name
    sites = gpd.read_file(run / "results.gpkg", layer="sites").set_index("site_id")
    assert sites.crs.to_epsg() == 32652
    grown = sites.loc["kusong:s2"]
    assert grown.status == "grown"
    assert grown.growth_ratio == pytest.approx(2.0, rel=1e-6)
    assert grown.growth_ratio_lo < 2.0 < grown.growth_ratio_hi
    assert grown.neighbour_id == "kusong:s1"
    fp = gpd.read_file(run / "results.gpkg", layer="footprints")
    assert (fp.boundary_sd_m == 1.5).all()
    # refuses to overwrite without --overwrite; the same input with it is fine
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and "--overwrite" in r.stderr
    r = CliRunner().invoke(main, [*args, "--overwrite"])
    assert r.exit_code == 0, r.output
    # the date field works too, with a default aoi name from the file name
    r = CliRunner().invoke(main, ["measure", files[0], "--date-field", "when", "-o",
                                  str(tmp_path / "r2"), "--config", str(cfg), "--json", "-q"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["aoi"] == "kusong"


def test_measure_cli_date_option_for_undated_files(tmp_path):
    from click.testing import CliRunner

    from geo.cli import main

    src = _shared_data() / "spacenet" / "sn4_atlanta" / "geotiff_labels.geojson"
    cfg = tmp_path / "atl.toml"
    cfg.write_text("[output]\nreport = false\n")
    base = ["measure", str(src), "-o", str(tmp_path / "run"), "--config", str(cfg), "--json",
            "-q"]
    r = CliRunner().invoke(main, base)
    assert r.exit_code == 1 and "--date" in r.stderr
    r = CliRunner().invoke(main, [*base, "--date", "2016-12-22", "--aoi-name", "atl"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["n_sites"] == 43 and s["dates"] == ["2016-12-22"] and s["aoi"] == "atl"
