"""Issue 12 section 2: automatic mode that fails safe (regions, unstable outlines, band roles)."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from shapely.geometry import box

from geo.claims import check_claim
from geo.config import DetectParams, MeasureParams, SourceConfig, load_config
from geo.errors import ConfigError, SourceError
from geo.factory_scene import issue12_factory, render_factory
from geo.grid import to_crs
from geo.pipeline import run_aoi
from geo.plausibility import REGION, claim_blockers, gate_footprints
from geo.reading import read_to_grid
from geo.vector import read_run_tables

EPSG = 32652
X0, Y0 = 600000.0, 4500000.0
S2_NAMES = ("B02", "B03", "B04", "B08", "B11")


def _write(path: Path, data: np.ndarray, *, names: tuple[str, ...] | None, res: float = 10.0,
           date: str | None = None) -> None:
    prof = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1],
            "count": data.shape[0], "dtype": "float32", "crs": f"EPSG:{EPSG}",
            "transform": Affine(res, 0, X0, 0, -res, Y0)}
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(data.astype("float32"))
        for i, n in enumerate(names or (), 1):
            dst.set_band_description(i, n)
        if date:
            dst.update_tags(ACQUISITIONDATETIME=date)


def _aoi(tmp: Path, size_m: tuple[float, float], name: str) -> Path:
    w, h = size_m
    poly = to_crs(box(X0 + 20, Y0 - h + 20, X0 + w - 20, Y0 - 20), f"EPSG:{EPSG}", "EPSG:4326")
    fc = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"coord_source": "SYNTHETIC factory of issue 12",
                                          "coord_confidence": "high", "synthetic": True},
        "geometry": shapely.geometry.mapping(poly)}]}
    p = tmp / f"{name}.geojson"
    p.write_text(json.dumps(fc))
    return p


def _factory_run(tmp: Path, extra_toml: str = "") -> tuple[dict[str, Any], Any]:
    lay = issue12_factory()
    img = tmp / "imagery"
    img.mkdir()
    for d, arr in zip(lay.dates, render_factory(lay, seed=3), strict=True):
        _write(img / f"factory_{d}.tif", arr, names=S2_NAMES)
    _aoi(tmp, lay.size_m, "factory")
    (tmp / "factory.toml").write_text('[source]\nkind = "local"\npath = "imagery"\n'
                                      '[grid]\nresolution_m = 10.0\n' + extra_toml)
    cfg = load_config(tmp / "factory.toml")
    cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, report=False))
    return run_aoi(cfg, tmp / "run"), lay


def _site_at(fps: gpd.GeoDataFrame, date: str, x: float, y: float) -> str | None:
    pt = shapely.Point(X0 + x, Y0 - y)
    hit = fps[(fps["date"] == date) & fps.geometry.contains(pt)]
    return None if hit.empty else str(hit["site_id"].iloc[0])


def test_factory_scene_no_confident_wrong_verdict(tmp_path: Path) -> None:
    """SYNTHETIC issue-12 factory, automatic mode, through `run`: "new hall > 2x neighbour".

    Truth: 0.56, 1.41, 2.29. No date may say supported while false or contradicted while true
    (main's built-up threshold merges halls, yard and fields: contradicted on the last date).
    """
    summary, lay = _factory_run(tmp_path)
    sites, fps, measure = read_run_tables(summary.run_dir)
    params = MeasureParams(**{k: v for k, v in measure.items()
                              if k in {f.name for f in dataclasses.fields(MeasureParams)}})
    verdicts = []
    for d in lay.dates:
        subject = _site_at(fps, d, *lay.centre("B", d))
        assert subject is not None, d
        truth = lay.truth_area_m2("B", d) / lay.truth_area_m2("A", d)
        res = check_claim(sites, fps, subject=subject, reference="neighbour", relation=">",
                          factor=2.0, date=d, params=params)
        verdicts.append(res.verdict)
        if truth < 2:
            assert res.verdict != "supported", (d, res.sentence)
        else:
            assert res.verdict != "contradicted", (d, res.sentence)
    # the halls are separated from the yard: the clear cases (0.56, 1.41) are decided right;
    # 2.29 against 2 is within the 10 m interval (undecidable is the honest answer there)
    assert verdicts[:2] == ["contradicted", "contradicted"], verdicts
    b = fps[fps["site_id"] == _site_at(fps, lay.dates[0], *lay.centre("B", lay.dates[0]))]
    for d in lay.dates:
        row = b[b["date"] == d].iloc[0]
        assert row["area_m2_lo"] <= lay.truth_area_m2("B", d) <= row["area_m2_hi"], d


def test_region_gate_on_real_sentinel2_bercy(tmp_path: Path) -> None:
    """Real S2 Paris-Bercy with the scene-wide built-up threshold: the km² blob is a region."""
    from common import write_bercy_inputs
    from conftest import DATA

    write_bercy_inputs(tmp_path, DATA, 'method = "builtup"\nmin_area_m2 = 800.0\n')
    cfg = load_config(tmp_path / "bercy.toml")
    cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, report=False))
    summary = run_aoi(cfg, tmp_path / "run")
    sites, fps, _ = read_run_tables(summary.run_dir)
    big = sites.sort_values("area_m2").iloc[-1]
    assert big["area_m2"] > 1e6 and big["site_kind"] == REGION
    assert np.isnan(big["neighbour_area_ratio"]) and np.isnan(big["site_share_frac"])
    regions = set(sites.loc[sites["site_kind"] == REGION, "site_id"])
    assert not regions & set(sites["neighbour_id"].dropna())
    assert any("built-up region" in w for w in summary.warnings)
    res = check_claim(sites, fps, subject=str(big["site_id"]), reference="neighbour",
                      relation=">", factor=2.0, params=MeasureParams())
    assert res.verdict == "undecidable" and "built-up region" in res.sentence
    assert any("built-up region" in r for r in res.reasons)
    # the CLI: exit 4 (undecidable) with the reason, in --json too
    from click.testing import CliRunner

    from geo.cli import main

    r = CliRunner().invoke(main, ["claim", summary.run_dir, "--subject", str(big["site_id"]),
                                  "--reference", "neighbour", "--relation", ">", "--factor", "2",
                                  "--json"])
    assert r.exit_code == 4, r.output
    out = json.loads(r.stdout)
    assert out["verdict"] == "undecidable" and any("region" in x for x in out["reasons"])


def _pair(**cols: Any) -> gpd.GeoDataFrame:
    base = {"footprint_id": ["x:2021-01-01:1", "x:2021-01-01:2"], "site_id": ["s1", "s2"],
            "date": ["2021-01-01"] * 2, "area_m2": [30000.0, 10000.0],
            "perimeter_m": [700.0, 400.0], "res_m": [10.0, 10.0], "boundary_sd_m": [np.nan] * 2,
            "coreg_residual_m": [0.0, 0.0], "area_alt_m2": [30000.0, 10000.0],
            "occluded": [False, False]}
    base.update(cols)
    return gpd.GeoDataFrame(base, geometry=[box(0, 0, 200, 150), box(250, 0, 350, 100)],
                            crs=f"EPSG:{EPSG}")


@pytest.mark.parametrize(("cols", "word"), [
    ({}, None),
    ({"occluded": [True, False]}, "lower bound"),
    ({"area_alt_m2": [15000.0, 10000.0]}, "unstable outline"),
    ({"alt_parts": [3, 1]}, "unstable outline"),
])
def test_unstable_or_occluded_is_undecidable(cols: dict[str, Any], word: str | None) -> None:
    fps = gate_footprints(_pair(**cols), valid_area_m2=1e6, params=DetectParams())
    sites = fps[["site_id"]].assign(last_seen_date="2021-01-01")
    res = check_claim(sites, fps, subject="s1", reference="s2", relation=">", factor=2.0,
                      params=MeasureParams())
    if word is None:
        assert res.verdict == "supported" and res.reasons == ()
    else:
        assert res.verdict == "undecidable" and word in res.sentence, res.sentence
        assert claim_blockers(fps.iloc[0])


def test_scatter_between_unchanged_dates_widens_the_interval() -> None:
    """An outline that moves between two unchanged dates gets a wider interval than one that does
    not (the scatter beyond the modelled error is added)."""
    from geo.measure import footprint_errors
    from geo.plausibility import adjacent_spread

    fp = _pair(site_id=["s1", "s1"], date=["2021-01-01", "2022-01-01"],
               area_m2=[10000.0, 12000.0], area_alt_m2=[10000.0, 12000.0])
    ev = gpd.pd.DataFrame({"site_id": ["s1"], "date_from": ["2021-01-01"],
                           "date_to": ["2022-01-01"], "event": ["unchanged"]})
    out = adjacent_spread(fp, ev)
    assert list(out["area_adj_spread_m2"]) == [2000.0, 2000.0]
    wide, narrow = footprint_errors(out).total, footprint_errors(fp).total
    assert (wide > narrow).all()
    # a small scatter, inside the modelled error, adds nothing
    near = fp.assign(area_m2=[10000.0, 10050.0], area_alt_m2=[10000.0, 10050.0])
    assert np.allclose(footprint_errors(adjacent_spread(near, ev)).total,
                       footprint_errors(near).total)


def test_gates_region_by_area_share_and_compactness() -> None:
    fp = _pair(area_m2=[30000.0, 10000.0])
    assert list(gate_footprints(fp, valid_area_m2=1e6, params=DetectParams())
                ["footprint_kind"]) == ["building", "building"]
    by_size = gate_footprints(fp, valid_area_m2=1e6, params=DetectParams(max_building_m2=20000))
    assert list(by_size["footprint_kind"]) == [REGION, "building"]
    by_share = gate_footprints(fp, valid_area_m2=50000.0, params=DetectParams())
    assert list(by_share["footprint_kind"]) == [REGION, "building"]
    ring = box(0, 0, 300, 300).difference(box(20, 20, 280, 280))
    thin = fp.set_geometry([ring, fp.geometry.iloc[1]])
    out = gate_footprints(thin, valid_area_m2=1e6, params=DetectParams())
    assert out["footprint_kind"].iloc[0] == REGION and "compact" in out["gate_reason"].iloc[0]


def test_guessed_band_roles_warn_and_source_bands_are_honoured(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A Landsat-like SWIR1/NIR/Red/Green file without band names: guessed (warned) vs set."""
    lay = issue12_factory(dates=("2021-04-10",))
    b, g, r, n, s = render_factory(lay, seed=1)[0]
    f = tmp_path / "landsat_2021-04-10.tif"
    _write(f, np.stack([s, n, r, g]), names=None)
    from geo.grid import Grid

    grid = Grid(f"EPSG:{EPSG}", Affine(10, 0, X0, 0, -10, Y0), b.shape)
    ga = read_to_grid(str(f), grid, date="2021-04-10")
    assert ga.roles_guessed and ga.bands == ("red", "green", "blue", "nir")
    ga2 = read_to_grid(str(f), grid, date="2021-04-10", roles=["swir16", "nir", "red", "green"])
    assert not ga2.roles_guessed and np.allclose(ga2.band("nir"), n, atol=1e-6)
    with pytest.raises(SourceError, match="one role per band"):
        read_to_grid(str(f), grid, date="2021-04-10", roles=["nir", "red"])
    with pytest.raises(ConfigError, match="not a band role"):
        SourceConfig(bands=("swir1x",))
    # through `run`: a warning when guessed, none and the right roles with [source] bands
    _aoi(tmp_path, lay.size_m, "ls")
    (tmp_path / "imagery").mkdir()
    f.rename(tmp_path / "imagery" / f.name)
    base = '[source]\nkind = "local"\npath = "imagery"\n{bands}[grid]\nresolution_m = 10.0\n'
    for bands, warned in (("", True), ('bands = ["swir16", "nir", "red", "green"]\n', False)):
        (tmp_path / "ls.toml").write_text(base.format(bands=bands))
        cfg = load_config(tmp_path / "ls.toml")
        cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, report=False,
                                                                  gpkg=False, rasters=False))
        with caplog.at_level(logging.WARNING):
            summary = run_aoi(cfg, tmp_path / f"run{int(warned)}")
        guessed = [w for w in summary.warnings if "band roles guessed" in w]
        assert bool(guessed) is warned, summary.warnings
        m = json.loads((Path(summary.run_dir) / "run.json").read_text())
        assert m["config"]["source"]["bands"] == ([] if warned else
                                                  ["swir16", "nir", "red", "green"])
