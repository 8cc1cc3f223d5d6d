"""Construction timeline from a loopback STAC API: a SYNTHETIC S2-like series over a hall.

The hall is cleared, built and roofed on known dates (:data:`HALL`); the scenes are COGs read
by GDAL with HTTP range requests from a server on 127.0.0.1, each masked by its own SCL.
"""

from __future__ import annotations

import json
from collections import Counter
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
        summary = json.loads(r.stdout)
        served = _bytes_per_scene(srv, set(summary["dates"]))
    finally:
        srv.close()
    return {"run": root / "run", "dates": dates, "summary": summary, "bytes": served}


def _bytes_per_scene(srv: StacServer, run_dates: set[str]) -> dict[str, float]:
    """Mean asset bytes answered per scene: the run's scenes and the timeline's extra ones."""
    per_item: Counter[str] = Counter()
    with srv.state.lock:
        for path, a, b in srv.state.ranges:
            item = [p for p in path.split("/") if p.startswith("S2A_33TUN_")]
            per_item[item[0] if item else path] += b - a + 1

    def date(item_id: str) -> str:
        d = item_id.split("_")[2] if item_id.startswith("S2A_33TUN_") else "?" * 8
        return f"{d[:4]}-{d[4:6]}-{d[6:]}"
    run = [n for i, n in per_item.items() if date(i) in run_dates]
    extra = [n for i, n in per_item.items() if date(i) not in run_dates]
    return {"run_scene": sum(run) / max(len(run), 1), "extra_scene": sum(extra) /
            max(len(extra), 1), "n_run": len(run), "n_extra": len(extra)}


def _hall(run: Path) -> Any:
    sites = gpd.read_file(run / "sites.geojson")
    return sites.loc[sites.to_crs(32633).geometry.intersection(ts.outline()).area.idxmax()]


def test_stac_series_dates_the_hall(stac_run: dict[str, Any]) -> None:
    run = stac_run["run"]
    n_run = len(stac_run["summary"]["dates"])
    assert n_run >= 15  # one scene a month, cloudy months missing
    hall = _hall(run)
    # every usable acquisition, not only the best one per month: the extra ones by window
    assert hall["timeline_scenes"] > n_run + 10, (hall["timeline_scenes"], n_run)
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


def test_extra_scenes_cost_only_their_building_windows(stac_run: dict[str, Any]) -> None:
    """Bytes answered per scene: an extra scene (its QA window for the selection and the
    hall's window) against a run scene (QA window and every band over the whole AOI)."""
    b = stac_run["bytes"]
    print(f"bytes per scene: run {b['run_scene']:.0f} ({b['n_run']} scenes), extra "
          f"{b['extra_scene']:.0f} ({b['n_extra']} scenes)")
    assert b["n_extra"] >= 10
    assert b["extra_scene"] < b["run_scene"]


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
