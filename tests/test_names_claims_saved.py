"""Names from the input survive to every output; ``claim`` accepts them and saves its verdict."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from click.testing import CliRunner
from shapely.geometry import box

from geo.cli import main
from geo.names import SiteNameError, detect_name_field, resolve_site

# two halls in Pyongyang's UTM zone (52N), 40 m apart; "Hall B" grows from 30x40 to 60x40 m
X0, Y0 = 330000.0, 4320000.0


def _write(path: Path, b_width: float, name_col: str = "name") -> Path:
    gdf = gpd.GeoDataFrame(
        {name_col: ["Hall A", "Hall B"]},
        geometry=[box(X0, Y0, X0 + 40, Y0 + 30), box(X0 + 80, Y0, X0 + 80 + b_width, Y0 + 40)],
        crs="EPSG:32652")
    gdf.to_file(path, driver="GeoJSON")
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("names")
    f1 = _write(d / "plant_2021-06-01.geojson", 30)
    f2 = _write(d / "plant_2023-06-01.geojson", 60)
    out = d / "run"
    r = CliRunner().invoke(main, ["measure", str(f1), str(f2), "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    return out


def test_names_reach_sites_gpkg_csv_and_report(run_dir: Path) -> None:
    sites = gpd.read_file(run_dir / "sites.geojson")
    assert sorted(sites["name"]) == ["Hall A", "Hall B"]
    assert sorted(gpd.read_file(run_dir / "results.gpkg", layer="sites")["name"]) == [
        "Hall A", "Hall B"]
    assert sorted(pd.read_csv(run_dir / "measurements.csv")["name"]) == ["Hall A", "Hall B"]
    html = (run_dir / "report" / "index.html").read_text(encoding="utf-8")
    assert "Hall B" in html
    # a vector-only run was given no location confidence and must not claim one (#14)
    assert "confidence: <b>high" not in html and "confidence: <b>not given" in html
    # provenance shows the source used (vector files), not the unused STAC defaults
    prov = html.split('id="provenance"')[1].split("<details>")[0]
    assert "earth-search" not in prov and "vector files (no imagery)" in prov


def test_claim_by_name_prints_once_and_saves(run_dir: Path) -> None:
    before = json.loads((run_dir / "run.json").read_text())
    assert not before.get("claims")
    r = CliRunner().invoke(main, ["claim", str(run_dir), "--subject", "Hall B", "--reference",
                                  "hall a", "--relation", ">", "--factor", "1.5"])
    assert r.exit_code == 0, r.output
    assert r.stdout.count("supported") == 1 and r.stdout.count("\n") == 1, r.stdout
    assert "supported" not in r.stderr  # the verdict is not repeated as a log line
    run = json.loads((run_dir / "run.json").read_text())
    (c,) = run["claims"]
    sites = gpd.read_file(run_dir / "sites.geojson")
    b_id = sites.loc[sites["name"] == "Hall B", "site_id"].item()
    assert c["subject_id"] == b_id and c["verdict"] == "supported" and c["factor"] == 1.5
    assert c["sentence"] == r.stdout.strip()
    csv = pd.read_csv(run_dir / "measurements.csv", keep_default_na=False)
    assert csv.loc[csv["site_id"] == b_id, "claim_verdict"].item() == "supported"
    html = (run_dir / "report" / "index.html").read_text(encoding="utf-8")
    assert "Claims checked" in html and c["sentence"].split(":")[0] in html
    # the same claim again replaces its record; the short id from the map works too
    short = b_id.rsplit(":", 1)[-1]
    r2 = CliRunner().invoke(main, ["claim", str(run_dir), "--subject", short, "--reference",
                                   "earlier", "--relation", ">=", "--factor", "3"])
    assert r2.exit_code == 3, r2.output  # 2x growth: "at least 3x" is contradicted
    r3 = CliRunner().invoke(main, ["claim", str(run_dir), "--subject", short, "--reference",
                                   "earlier", "--relation", ">=", "--factor", "3"])
    assert r3.exit_code == 3
    run = json.loads((run_dir / "run.json").read_text())
    assert [x["verdict"] for x in run["claims"]] == ["supported", "contradicted"]


def test_no_save_leaves_run_untouched(run_dir: Path) -> None:
    text = (run_dir / "run.json").read_text()
    r = CliRunner().invoke(main, ["claim", str(run_dir), "--subject", "Hall A", "--reference",
                                  "Hall B", "--relation", "<", "--factor", "1", "--no-save"])
    assert r.exit_code == 0, r.output
    assert (run_dir / "run.json").read_text() == text


def test_unknown_name_is_one_line_error(run_dir: Path) -> None:
    r = CliRunner().invoke(main, ["claim", str(run_dir), "--subject", "Hall Z", "--reference",
                                  "neighbour", "--relation", ">", "--factor", "2"])
    assert r.exit_code == 1 and "Hall Z" in r.stderr and "Traceback" not in r.stderr


def test_name_field_option(tmp_path: Path) -> None:
    f1 = _write(tmp_path / "p_2021-06-01.geojson", 30, name_col="bldg")
    f2 = _write(tmp_path / "p_2023-06-01.geojson", 60, name_col="bldg")
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["measure", str(f1), str(f2), "-o", str(out), "-q",
                                  "--name-field", "bldg"])
    assert r.exit_code == 0, r.output
    assert sorted(gpd.read_file(out / "sites.geojson")["name"]) == ["Hall A", "Hall B"]
    bad = CliRunner().invoke(main, ["measure", str(f1), "-o", str(tmp_path / "r2"),
                                    "--name-field", "nope"])
    assert bad.exit_code == 1 and "nope" in bad.stderr and "bldg" in bad.stderr


def test_resolve_site_rules() -> None:
    ids = ["a:s1", "a:s2", "b:s2"]
    assert resolve_site("a:s1", ids, {}) == "a:s1"
    assert resolve_site("s1", ids, {}) == "a:s1"
    with pytest.raises(SiteNameError, match="a:s2, b:s2"):
        resolve_site("s2", ids, {})
    assert resolve_site("unknown", ids, {}) == "unknown"
    assert detect_name_field(["uid", "date"]) == "uid"
