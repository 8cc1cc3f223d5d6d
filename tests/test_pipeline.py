"""End to end on the SYNTHETIC demo series (1 m GSD): areas and the neighbour ratio within 5 %."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from click.testing import CliRunner
from common import assert_rfc7946, write_bercy_inputs

from geo.cli import main
from geo.config import load_config
from geo.pipeline import run_aoi


def _lean(config_path: Path) -> Any:
    """The demo config without the report and the GeoPackage: for tests that compare the
    GeoJSON tables only (the session's demo run writes and tests both)."""
    import dataclasses

    c = load_config(config_path)
    return dataclasses.replace(c, output=dataclasses.replace(c.output, report=False, gpkg=False))


def test_growing_hall_area_within_5pct(demo_run: dict[str, Any]) -> None:
    halls = {h["hall"]: h for h in demo_run["cmp"]["halls"]}
    for name in ("A", "B", "C"):
        assert "area_m2" in halls[name], f"hall {name} not found"
        assert abs(halls[name]["area_error_frac"]) < 0.05, halls[name]


def test_neighbour_ratio_within_5pct_and_interval_contains_truth(demo_run: dict[str, Any]) -> None:
    pair = demo_run["cmp"]["pair"]
    assert pair["neighbour_is_A"], pair
    assert abs(pair["ratio_error_frac"]) < 0.05, pair
    assert pair["contains_truth"], pair
    assert pair["ratio_lo"] <= pair["ratio"] <= pair["ratio_hi"]


def test_claim_on_demo_pair(demo_run: dict[str, Any]) -> None:
    claim = demo_run["cmp"]["pair"].get("claim")
    if claim is None:
        pytest.skip("geo.claims not available")
    assert claim["verdict"] == "supported", claim  # truth 2.25 > 2


def test_outputs_are_rfc7946_with_sidecars(demo_run: dict[str, Any]) -> None:
    run = Path(demo_run["summary"].run_dir)
    for name in ("footprints", "sites", "changes"):
        fc = assert_rfc7946(run / f"{name}.geojson")
        assert (run / f"{name}.qml").is_file()
        assert fc["name"] == name
    sites = json.loads((run / "sites.geojson").read_text())["features"]
    assert all(f["properties"]["site_id"] == f["id"] for f in sites)
    statuses = {f["properties"]["status"] for f in sites}
    assert {"new", "unchanged", "demolished"} <= statuses | {"grown"}, statuses


def test_run_json_provenance(demo_run: dict[str, Any]) -> None:
    run = Path(demo_run["summary"].run_dir)
    m = json.loads((run / "run.json").read_text())
    assert m["synthetic"] is True and m["status"] == "complete"
    assert len(m["inputs"]) == 4 and all(len(i["sha256"]) == 64 for i in m["inputs"])
    assert {"gdal", "proj", "geos", "rasterio", "numpy"} <= set(m["versions"])
    assert {s["stage"] for s in m["stages"]} >= {"read+coregister", "detect+footprints", "export"}
    assert m["config"]["grid"]["resolution_m"] == 1.0
    # the 2021 date was shifted by (-0.8, +1.6) px: the estimate must see it
    co = {c["date"]: c for c in m["coregistration"]}
    assert co["2021-05-28"]["shift_m"] == pytest.approx(1.79, abs=0.3)
    assert all(c["residual_m"] is not None for c in m["coregistration"])
    assert not (run.parent / (run.name + ".partial")).exists()


def test_demo_cli(demo_cli: dict[str, Any]) -> None:
    """``factorywatch demo FOLDER --json`` (the session's run) prints the comparison, and the
    same command again refuses to touch the demo FOLDER without --overwrite."""
    out = demo_cli["json"]
    assert out["comparison"]["synthetic"] is True
    assert Path(out["summary"]["run_dir"]) == demo_cli["folder"] / "run"
    before = sorted(p.stat().st_mtime_ns for p in demo_cli["folder"].rglob("*"))
    r2 = CliRunner().invoke(main, ["demo", str(demo_cli["folder"])])
    assert r2.exit_code == 1 and "--overwrite" in r2.stderr
    assert sorted(p.stat().st_mtime_ns for p in demo_cli["folder"].rglob("*")) == before


class _Interrupting:
    """Wraps a source and raises KeyboardInterrupt on the n-th read (a Ctrl-C mid-run)."""

    def __init__(self, inner: Any, fail_at: int) -> None:
        self.inner, self.fail_at, self.reads = inner, fail_at, 0

    def search(self, *a: Any, **k: Any) -> Any:
        return self.inner.search(*a, **k)

    def read(self, scene: Any, grid: Any) -> Any:
        self.reads += 1
        if self.reads == self.fail_at:
            raise KeyboardInterrupt
        return self.inner.read(scene, grid)


@pytest.mark.slow
def test_interrupted_run_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 demo_run: dict[str, Any]) -> None:
    import geo.pipeline as pipeline
    from geo.sources import open_source

    config = _lean(demo_run["files"].config)
    holder: dict[str, _Interrupting] = {}

    def fake_open(cfg: Any, offline: bool = False) -> _Interrupting:
        holder["src"] = _Interrupting(open_source(cfg), fail_at=3)
        return holder["src"]

    monkeypatch.setattr(pipeline, "open_source", fake_open)
    with pytest.raises(KeyboardInterrupt):
        run_aoi(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    assert len(list((tmp_path / "run.partial" / "scenes").glob("*.tif"))) == 2

    def counting_open(cfg: Any, offline: bool = False) -> _Interrupting:
        holder["src"] = _Interrupting(open_source(cfg), fail_at=10**9)
        return holder["src"]

    monkeypatch.setattr(pipeline, "open_source", counting_open)
    summary = run_aoi(config, tmp_path / "run")
    assert holder["src"].reads == 2  # only the two dates that were not done
    assert not (tmp_path / "run.partial").exists()
    a = gpd.read_file(Path(summary.run_dir) / "sites.geojson")
    b = gpd.read_file(Path(demo_run["summary"].run_dir) / "sites.geojson")
    assert sorted(a["area_m2"].round(1)) == sorted(b["area_m2"].round(1))


def test_overwrite_replaces_only_when_complete(tmp_path: Path, demo_run: dict[str, Any]) -> None:
    import dataclasses
    import shutil

    from geo.errors import RunDirError

    # two of the demo's four dates make a complete run to replace the old one with
    files = demo_run["files"]
    dates = json.loads((Path(demo_run["summary"].run_dir) / "run.json").read_text())["dates"]
    imagery = tmp_path / "imagery"
    imagery.mkdir()
    for tif in sorted(Path(files.imagery).glob("*.tif"))[:2]:
        shutil.copy2(tif, imagery / tif.name)
    config = _lean(files.config)  # the report is not the point here
    config = dataclasses.replace(config, source=dataclasses.replace(config.source,
                                                                    path=str(imagery)))
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "old.txt").write_text("x")
    with pytest.raises(RunDirError, match="not a factorywatch run directory"):
        run_aoi(config, foreign, overwrite=True)  # a folder factorywatch did not make
    assert (foreign / "old.txt").read_text() == "x"
    out = tmp_path / "run"
    shutil.copytree(demo_run["summary"].run_dir, out)  # a run of ours (it has the marker)
    (out / "old.txt").write_text("x")
    assert (out / "report").is_dir() and len(dates) == 4
    summary = run_aoi(config, out, overwrite=True)
    assert Path(summary.run_dir).resolve() == out.resolve() and not (out / "old.txt").exists()
    assert not (out / "report").exists()  # replaced as a whole, not merged into
    new_dates = json.loads((out / "run.json").read_text())["dates"]
    assert len(new_dates) == 2 and set(new_dates) < set(dates)


@pytest.mark.slow
def test_dask_workers_give_the_same_result(tmp_path: Path, demo_run: dict[str, Any]) -> None:
    """--workers 2 runs the per-date and per-pair stages on a local Dask distributed cluster."""
    config = _lean(demo_run["files"].config)
    summary = run_aoi(config, tmp_path / "run", workers=2)
    m = json.loads((Path(summary.run_dir) / "run.json").read_text())
    assert m["workers"] == 2
    a = gpd.read_file(Path(summary.run_dir) / "footprints.geojson")
    b = gpd.read_file(Path(demo_run["summary"].run_dir) / "footprints.geojson")
    assert sorted(a["footprint_id"]) == sorted(b["footprint_id"])
    assert sorted(a["area_m2"].round(1)) == sorted(b["area_m2"].round(1))


@pytest.mark.slow
def test_real_sentinel2_oscd_bercy(tmp_path: Path) -> None:
    """A real Sentinel-2 pair (OSCD Paris-Bercy, EPSG:4326 band files) through the whole run."""
    import dataclasses

    from conftest import DATA

    write_bercy_inputs(tmp_path, DATA, "min_area_m2 = 800.0\n")
    cfg = load_config(tmp_path / "bercy.toml")
    cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, report=False))
    summary = run_aoi(cfg, tmp_path / "run")
    m = json.loads((Path(summary.run_dir) / "run.json").read_text())
    assert m["grid"]["crs"] == "EPSG:32631" and m["grid"]["res_m"] == 10.0
    assert [c["detect_method"] for c in m["coregistration"]] == ["contrast-objects"] * 2
    assert m["coregistration"][1]["residual_m"] < 5.0  # same S2 tile: well aligned
    sites = gpd.read_file(Path(summary.run_dir) / "sites.geojson")
    assert len(sites) > 10 and (sites["area_m2_lo"] <= sites["area_m2"]).all()
    assert_rfc7946(Path(summary.run_dir) / "sites.geojson")
