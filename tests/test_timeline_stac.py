"""Construction timeline from a loopback STAC API: a SYNTHETIC S2-like series over a hall.

The hall is cleared, built and roofed on known dates (:data:`HALL`); the scenes are COGs read
by GDAL with HTTP range requests from a server on 127.0.0.1, each masked by its own SCL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from _stac_server import StacServer
from _stac_timeline import serve_history, write_config
from click.testing import CliRunner

from geo import timeline_synth as ts
from geo.cli import main

HALL = ts.History(cleared="2021-03-10", construction="2021-06-01", roofed="2021-11-20")


@pytest.fixture(scope="module")
def stac_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("stac_timeline")
    srv = StacServer(root / "assets")
    try:
        dates = serve_history(srv, root / "assets", HALL)
        cfg = write_config(root, srv.url, start="2020-01-01", end="2022-06-30")
        r = CliRunner().invoke(main, ["run", str(cfg), "-o", str(root / "run"), "--json", "-q"])
        assert r.exit_code == 0, r.output
        served = srv.answered_bytes()
    finally:
        srv.close()
    return {"run": root / "run", "dates": dates, "summary": json.loads(r.stdout),
            "bytes": served}


def _hall(run: Path) -> Any:
    sites = gpd.read_file(run / "sites.geojson")
    return sites.loc[sites.to_crs(32633).geometry.intersection(ts.outline()).area.idxmax()]


def test_stac_series_dates_the_hall(stac_run: dict[str, Any]) -> None:
    run = stac_run["run"]
    assert len(stac_run["summary"]["dates"]) >= 15  # one scene a month, cloudy months missing
    hall = _hall(run)
    assert hall["phase"] == "roofed"
    for ev, truth in (("cleared", HALL.cleared), ("roofed", HALL.roofed)):
        lo, hi = str(hall[f"{ev}_date_lo"])[:10], str(hall[f"{ev}_date_hi"])[:10]
        assert lo < truth <= hi, (ev, lo, hi)
    tl = json.loads((run / "run.json").read_text())["timeline"][hall["site_id"]]
    assert tl["roofed"]["lo"] < HALL.roofed <= tl["roofed"]["hi"]
    # not vacuous: a claim three months off the truth is decided, and rightly
    r = CliRunner().invoke(main, ["claim", str(run), "--subject", hall["site_id"],
                                  "--roofed-before", "2022-03-01"])
    assert r.exit_code == 0 and "supported" in r.output, r.output


@pytest.mark.parametrize(("flag", "date"), [
    ("--roofed-before", "2022-03-01"), ("--roofed-before", "2021-06-01"),
    ("--roofed-after", "2021-06-01"), ("--cleared-before", "2021-01-01"),
    ("--cleared-after", "2021-01-01"), ("--roofed-before", HALL.roofed),
])
def test_date_claims_on_the_stac_run_are_right_or_undecidable(stac_run: dict[str, Any],
                                                              flag: str, date: str) -> None:
    """Never wrong: a verdict is either the truth or undecidable (exit 4)."""
    hall = _hall(stac_run["run"])
    event, relation = flag.strip("-").split("-")
    truth_date = HALL.cleared if event == "cleared" else HALL.roofed
    true = truth_date < date if relation == "before" else truth_date >= date
    r = CliRunner().invoke(main, ["claim", str(stac_run["run"]), "--subject", hall["site_id"],
                                  flag, date])
    assert r.exit_code in (0, 3, 4), r.output
    if r.exit_code != 4:
        assert (r.exit_code == 0) == true, (flag, date, r.output)
