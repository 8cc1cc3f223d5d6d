"""Guided mode (issue 12 §1): named priors fitted per date; intervals, states, claims by name.

The imagery is SYNTHETIC (tests/_guided_scenes.py, geo/synthetic_s2.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from _guided_scenes import CLOUDY, DATES, write_series
from click.testing import CliRunner
from shapely.geometry import box

from geo.cli import main
from geo.errors import ConfigError
from geo.fit import Rect, fit_rectangle, rect_image
from geo.guided import resolve_site
from geo.priors import read_priors
from geo.synthetic_s2 import S2Spec, render_s2


def _invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def test_rect_image_conserves_flux() -> None:
    yy, xx = np.mgrid[0:30, 0:30] + 0.5
    for psf in (0.3, 0.5, 1.0):
        img = rect_image(Rect(cx=15.2, cy=14.7, w=9.3, length=5.1, angle=0.4), psf, xx, yy)
        assert img.sum() == pytest.approx(9.3 * 5.1, rel=1e-3)
        assert 0.0 <= img.min() and img.max() <= 1.0


def _hall_dates(n: int, seed: int) -> tuple[list[np.ndarray], Rect]:
    """A SYNTHETIC 6,000 m² hall (100x60 m) on a gravel yard, ``n`` dates."""
    rng = np.random.default_rng(seed)
    hall = box(203, -300, 303, -240)
    layers = [("gravel", [hall.buffer(90)]), ("roof", [hall])]
    cache: dict[int, np.ndarray] = {}
    scenes = [render_s2(layers, origin=(0, 0), spec=S2Spec(size_m=(500, 500)), rng=rng,
                        cache=cache) for _ in range(n)]
    imgs = [s.data[:, 20:36, 16:35].astype(float) for s in scenes]
    return imgs, Rect(cx=25.3 - 16 + 0.6, cy=27.0 - 20 - 0.4, w=11.0, length=5.4, angle=0.05)


def test_joint_fit_covers_truth_and_narrows_with_dates() -> None:
    imgs, init = _hall_dates(10, seed=3)
    masks = [np.ones(imgs[0].shape[1:], bool)] * len(imgs)
    one = fit_rectangle(imgs[:1], masks[:1], init, fit_psf=False, fit_shifts=False)
    ten = fit_rectangle(imgs, masks, init)
    for f in (one, ten):
        assert abs(f.area_px * 100 - 6000.0) <= 1.96 * f.area_sd_px * 100 + 1e-6
    assert ten.area_sd_px < 0.6 * one.area_sd_px
    assert abs(ten.area_px * 100 - 6000.0) / 6000.0 < 0.02
    assert ten.psf_px == pytest.approx(0.5, abs=0.1)


def test_read_priors_errors(tmp_path: Path) -> None:
    def write(feats: list[dict[str, object]]) -> Path:
        p = tmp_path / "p.geojson"
        p.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
        return p

    pt = {"type": "Point", "coordinates": [126.6, 40.97]}
    with pytest.raises(ConfigError, match="'name'"):
        read_priors(write([{"type": "Feature", "properties": {}, "geometry": pt}]), "EPSG:32652")
    with pytest.raises(ConfigError, match="size_m2"):
        read_priors(write([{"type": "Feature", "properties": {"name": "A"}, "geometry": pt}]),
                    "EPSG:32652")
    with pytest.raises(ConfigError, match="used twice"):
        f = {"type": "Feature", "properties": {"name": "A", "size_m2": 900}, "geometry": pt}
        read_priors(write([f, f]), "EPSG:32652")
    ok = read_priors(write([{"type": "Feature", "properties": {"name": "A", "size_m2": 900},
                             "geometry": pt}]), "EPSG:32652")
    assert ok[0].prior_id == "b1" and ok[0].geometry.x > 200000  # reprojected to UTM


def test_resolve_site_by_name_and_short_id() -> None:
    s = pd.DataFrame({"site_id": ["p:b1", "p:b2"], "name": ["Building A", "Building B"]})
    assert resolve_site(s, "building b") == "p:b2"
    assert resolve_site(s, "b1") == "p:b1"
    assert resolve_site(s, "p:b2") == "p:b2"
    assert resolve_site(s, "2022-04-11") == "2022-04-11"


@pytest.fixture(scope="module")
def factory_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, float]]]:
    root = tmp_path_factory.mktemp("guided")
    s = write_series(root)
    code, _, err = _invoke("run", str(s.config), "-o", str(root / "run"), "--priors",
                             str(s.priors), "-q")
    assert code == 0, err
    return root / "run", s.truth


def test_guided_run_intervals_contain_truth(
        factory_run: tuple[Path, dict[str, dict[str, float]]]) -> None:
    run, truth = factory_run
    tab = pd.read_csv(run / "buildings.csv", dtype={"date": str})
    assert set(tab["name"]) == {"Building A", "Building B"}
    assert len(tab) == 2 * len(DATES)
    for r in tab.itertuples():
        true = truth[r.date][r.name]
        if r.date == CLOUDY and r.name == "Building B":
            assert r.state == "not observed" and np.isnan(r.area_m2)  # never the prior's area
            assert "cloud" in r.note
        elif true == 0:
            assert r.state in ("absent", "cleared ground"), r
            assert np.isnan(r.area_m2)
        else:
            if r.state == "not observed":
                continue
            assert r.state == "roofed", r
            assert r.area_lo_m2 <= true <= r.area_hi_m2, r
            assert (r.area_hi_m2 - r.area_lo_m2) / 2 / true < 0.05  # ±5 % or better
    # names in every table
    sites = gpd.read_file(run / "sites.geojson")
    assert set(sites["name"]) == {"Building A", "Building B"}
    assert sites["sentence"].str.startswith("Building B (").any()  # the report quotes these
    fps = gpd.read_file(run / "results.gpkg", layer="footprints")
    assert {"name", "state", "fit_quality"} <= set(fps.columns)
    assert "name" in pd.read_csv(run / "measurements.csv").columns


def test_guided_claim_by_name(factory_run: tuple[Path, dict[str, dict[str, float]]]) -> None:
    run, truth = factory_run
    args = ["claim", str(run), "--subject", "Building B", "--reference", "Building A",
            "--relation", ">", "--factor", "2", "--json"]
    early, late = "2020-10-01", "2023-04-18"
    assert truth[early]["Building B"] / truth[early]["Building A"] < 2
    assert truth[late]["Building B"] / truth[late]["Building A"] > 2.2
    code, out, _ = _invoke(*args, "--date", early)
    assert json.loads(out)["verdict"] == "contradicted" and code == 3
    code, out, _ = _invoke(*args, "--date", late)
    assert json.loads(out)["verdict"] == "supported" and code == 0
    code, out, _ = _invoke(*args[:5], "b1", *args[6:], "--date", late)  # short id
    assert json.loads(out)["reference_id"].endswith(":b1")


@pytest.mark.slow
def test_demo_guided_mode_with_perturbed_truth_priors(tmp_path: Path) -> None:
    """The SYNTHETIC 1 m demo in guided mode: priors = truth outlines shifted and scaled."""
    import shapely

    from geo.demo import DEMO_EPSG, write_demo

    files = write_demo(tmp_path / "inputs")
    with open(files.config, "a") as f:  # buildings.csv is the point here, not the HTML report
        f.write("\n[output]\nreport = false\nrasters = false\n")  # nor the change rasters
    truth = gpd.read_file(files.truth).to_crs(DEMO_EPSG)
    truth["date"] = truth["date"].astype(str).str[:10]
    last = truth.sort_values("date").groupby("hall").last()
    rows = [{"name": f"Hall {h}", "geometry": shapely.affinity.translate(
        shapely.affinity.scale(r.geometry, 1.1, 0.9), 3.0, -2.0)} for h, r in last.iterrows()]
    gpd.GeoDataFrame(rows, geometry="geometry", crs=truth.crs).to_crs(4326).to_file(
        tmp_path / "priors.geojson")
    code, _, err = _invoke("run", str(files.config), "-o", str(tmp_path / "run"), "--priors",
                           str(tmp_path / "priors.geojson"), "-q")
    assert code == 0, err
    tab = pd.read_csv(tmp_path / "run" / "buildings.csv", dtype={"date": str})
    area = {(f"Hall {h}", d): a for h, d, a in zip(truth.hall, truth.date, truth.area_m2,
                                                   strict=True)}
    measured = tab[tab["state"] == "roofed"]
    assert len(measured) >= 14  # of 24 building-dates; 17 have a building
    for r in measured.itertuples():
        true = area.get((r.name, r.date), 0.0)
        assert r.area_lo_m2 <= true <= r.area_hi_m2, r
    for r in tab[tab["state"] != "roofed"].itertuples():
        assert np.isnan(r.area_m2) and isinstance(r.note, str) and r.note


@pytest.mark.slow
def test_guided_run_over_stac(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12 §3: a STAC series on 127.0.0.1, a new hall growing beside its neighbour on a
    gravel yard, through ``factorywatch run --priors``."""
    from _guided_stac import serve_factory
    from _stac_server import StacServer

    srv = StacServer(tmp_path / "assets")
    try:
        monkeypatch.setenv("CPL_VSIL_CURL_NON_CACHED", f"/vsicurl/{srv.url}")
        f = serve_factory(srv, tmp_path)
        code, _, err = _invoke("run", str(f["config"]), "-o", str(tmp_path / "run"),
                               "--priors", str(f["priors"]), "-q")
        assert code == 0, err
    finally:
        srv.close()
    run, truth = tmp_path / "run", f["truth"]
    tab = pd.read_csv(run / "buildings.csv", dtype={"date": str})
    measured = tab[tab["state"] == "roofed"]
    assert len(measured) >= 12
    for r in tab.itertuples():
        true = truth[r.date][r.name]
        if r.state == "roofed":
            assert r.area_lo_m2 <= true <= r.area_hi_m2, r
        elif true > 0:
            assert r.state == "not observed" and r.date == CLOUDY, r  # B under the cloud
    args = ["claim", str(run), "--subject", "Building B", "--reference", "Building A",
            "--relation", ">", "--factor", "2", "--json"]
    verdicts = {}
    for d in sorted(set(measured[measured["name"] == "Building B"]["date"])):
        code, out, _ = _invoke(*args, "--date", d)
        ratio = truth[d]["Building B"] / truth[d]["Building A"]
        verdicts[d] = (ratio, json.loads(out)["verdict"])
    assert all(v == "contradicted" for r, v in verdicts.values() if r < 2), verdicts
    assert all(v == "supported" for r, v in verdicts.values() if r > 2.2), verdicts
    assert {v for _, v in verdicts.values()} == {"contradicted", "supported"}


def test_point_priors_at_10m_measure_within_intervals() -> None:
    """Point priors (centre off by 5 m, size_m2 off by 15–20 %): intervals still hold."""
    from shapely.geometry import Point

    from geo.guided import Prior, guided_measure

    gas, _grid, truth = _factory_dates(1)
    a, b = truth[0]["A"].centroid, truth[-1]["B"].centroid
    priors = [Prior(prior_id="b1", name="A", geometry=Point(a.x + 4, a.y - 3), size_m2=11000),
              Prior(prior_id="b2", name="B", geometry=Point(b.x - 3, b.y + 4), size_m2=18000)]
    tab = guided_measure(gas, priors, aoi_name="t").table
    roofed = tab[tab["state"] == "roofed"]
    assert (roofed["name"] == "A").sum() == len(DATES)
    assert (roofed["name"] == "B").sum() >= 2
    for r in roofed.itertuples():
        true = truth[DATES.index(r.date)][r.name]
        assert true is not None and r.area_lo_m2 <= true.area <= r.area_hi_m2, r


def test_bad_priors_fail_in_one_line_before_any_output(tmp_path: Path) -> None:
    s = write_series(tmp_path)
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"label": "x"},
        "geometry": {"type": "Point", "coordinates": [126.6, 40.97]}}]}))
    for path, needle in ((bad, "'name'"), (tmp_path / "missing.geojson", "no such priors")):
        code, _, err = _invoke("run", str(s.config), "-o", str(tmp_path / "run"), "--priors",
                               str(path))
        assert code == 1 and needle in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()


def test_a_prior_too_small_for_the_pixels_is_not_a_measurement() -> None:
    """A prior under 16 px at 10-30 m is not fitted: not observed on every date, with why."""
    from shapely.geometry import Point

    from geo.guided import Prior, guided_measure

    gas, grid, truth = _factory_dates(1)
    a = truth[0]["A"].centroid
    px = grid.pixel_area_m2
    tiny = Prior(prior_id="b1", name="tiny", geometry=Point(a.x, a.y), size_m2=10 * px)
    tab = guided_measure(gas, [tiny], aoi_name="t").table
    assert (tab["state"] != "roofed").all() and tab["note"].str.contains("too small").all()


def _factory_dates(seed: int) -> tuple[list[Any], Any, list[Any]]:
    """The SYNTHETIC factory series of ``_guided_scenes`` as GeoArrays on its 60x60 grid."""
    from _guided_scenes import CRS, render_scenes

    from geo.geoarray import GeoArray
    from geo.grid import Grid

    scenes, t, truth = render_scenes(seed)
    grid = Grid(CRS, t, (60, 60))
    gas = [GeoArray(data=np.nan_to_num(s), valid=~np.isnan(s).any(axis=0), grid=grid, date=d,
                    bands=("blue", "green", "red", "nir")) for s, d in zip(scenes, DATES,
                                                                           strict=True)]
    return gas, grid, truth
