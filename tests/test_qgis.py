"""Open every output of a run in real, headless QGIS (Debian's python3-qgis) and render it.

The check itself runs in /usr/bin/python3 (tests/qgis_check.py), which has ``qgis.core`` but
not our dependencies; this side computes what QGIS must see (categories from the code's
vocabularies, feature counts, CRSs) and parses the JSON summary it prints.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pyogrio
import pytest

from geo.export import qml

SYSTEM_PYTHON = "/usr/bin/python3"
CHECK = Path(__file__).with_name("qgis_check.py")
RASTER_RENDERERS = {"scenes": "multibandcolor", "masks": "paletted"}


def _qgis_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "GDAL_DATA"))}
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.setdefault("XDG_RUNTIME_DIR", "/tmp")
    return env


def _qgis_missing() -> str | None:
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found (install Debian's python3-qgis)"
    r = subprocess.run([SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True,
                       text=True, env=_qgis_env(), timeout=120, check=False)
    if r.returncode:
        return f"{SYSTEM_PYTHON} cannot import qgis.core: {r.stderr.strip()[-200:]}"
    return None


pytestmark = [pytest.mark.qgis]


@pytest.fixture(autouse=True, scope="module")
def _needs_qgis() -> None:
    """Skip with the reason when QGIS cannot be imported (checked once, only where this
    module runs: starting the system Python at import cost every xdist worker 0.8 s)."""
    missing = _qgis_missing()
    if missing is not None:
        pytest.skip(f"real QGIS unavailable: {missing}")


def expectations(run_dir: Path) -> dict[str, Any]:
    grid_crs = json.loads((run_dir / "grid.json").read_text())["crs"]
    exp: dict[str, Any] = {"geojson": {}, "gpkg": {}, "rasters": {}}
    for name in ("footprints", "sites", "changes"):
        cats = list(qml.categories_for(name))
        attr = "event" if name == "changes" else "status"
        common = {"renderer": "categorizedSymbol", "categories": cats, "category_attr": attr,
                  "labels_enabled": True}
        n = pyogrio.read_info(run_dir / f"{name}.geojson")["features"]
        exp["geojson"][name] = {**common, "crs": "EPSG:4326", "feature_count": n}
        n = pyogrio.read_info(run_dir / "results.gpkg", layer=name)["features"]
        exp["gpkg"][name] = {**common, "crs": grid_crs, "feature_count": n}
    n = pyogrio.read_info(run_dir / "results.gpkg", layer="events")["features"]
    exp["gpkg"]["events"] = {"feature_count": n, "renderer": None}
    for folder in ("scenes", "masks", "change"):
        for tif in sorted((run_dir / folder).glob("*.tif")):
            renderer = RASTER_RENDERERS.get(folder) or (
                "singlebandpseudocolor" if tif.stem.endswith("_prob") else "paletted")
            exp["rasters"][f"{folder}/{tif.name}"] = {"crs": grid_crs, "renderer": renderer}
    return exp


@pytest.fixture(scope="module")
def qgis_summary(qgis_run_dir: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("qgis")
    exp = expectations(qgis_run_dir)
    (out / "expect.json").write_text(json.dumps(exp))
    png = out / "map.png"
    r = subprocess.run([SYSTEM_PYTHON, str(CHECK), str(qgis_run_dir), str(png),
                        str(out / "expect.json")],
                       capture_output=True, text=True, env=_qgis_env(), timeout=300, check=False)
    assert r.stdout.strip(), f"qgis_check printed nothing (rc {r.returncode}): {r.stderr[-2000:]}"
    summary: dict[str, Any] = json.loads(r.stdout)
    summary["_rc"] = r.returncode
    summary["_expect"] = exp
    return summary


def test_no_problems(qgis_summary: dict[str, Any]) -> None:
    assert qgis_summary["problems"] == []
    assert qgis_summary["_rc"] == 0


@pytest.mark.parametrize("source", ["geojson", "gpkg"])
@pytest.mark.parametrize("name", ["footprints", "sites", "changes"])
def test_vector_layers_open_styled(qgis_summary: dict[str, Any], source: str, name: str) -> None:
    info = qgis_summary[source][name]
    exp = qgis_summary["_expect"][source][name]
    assert info["valid"]
    assert info["renderer"] == "categorizedSymbol"
    assert info["categories"] == list(qml.categories_for(name))
    assert info["labels_enabled"]
    assert "site_id" in info["label_expression"]
    assert info["crs"] == exp["crs"]
    assert info["feature_count"] == exp["feature_count"] > 0
    if source == "gpkg":
        assert info["default_style_loaded"], info["style_message"]


@pytest.mark.parametrize("source", ["geojson", "gpkg"])
@pytest.mark.parametrize("name", ["footprints", "sites", "changes"])
def test_every_feature_gets_a_vocabulary_category(qgis_summary: dict[str, Any], source: str,
                                                  name: str) -> None:
    info = qgis_summary[source][name]
    assert info["attr_present"], f"{source} {name} lacks its '{info['category_attr']}' column"
    assert info["n_other"] == 0


def test_events_table(qgis_summary: dict[str, Any]) -> None:
    info = qgis_summary["gpkg"]["events"]
    assert info["valid"] and not info["spatial"]
    assert info["feature_count"] == qgis_summary["_expect"]["gpkg"]["events"]["feature_count"]


def test_rasters_open_styled(qgis_summary: dict[str, Any]) -> None:
    exp = qgis_summary["_expect"]["rasters"]
    assert exp, "the run has no rasters"
    assert set(qgis_summary["rasters"]) == set(exp)
    for key, info in qgis_summary["rasters"].items():
        assert info["valid"], key
        assert info["crs"] == exp[key]["crs"], key
        assert info["renderer"] == exp[key]["renderer"], key


def test_map_rendered(qgis_summary: dict[str, Any]) -> None:
    for key in ("geojson", "gpkg"):
        r = qgis_summary["renders"][key]
        assert r["saved"] and not r["errors"]
        assert Path(r["png"]).stat().st_size > 10_000
        assert r["drawn_samples"] > 1000  # most of the 100x80 sample lattice is not blank


def _run_dates(run_dir: Path) -> list[str]:
    import geopandas as gpd

    fp = gpd.read_file(run_dir / "footprints.geojson")
    return sorted({str(d)[:10] for d in fp["date"]})


@pytest.mark.parametrize("source", ["gpkg", "geojson"])
def test_time_controller_steps_through_dates(qgis_summary: dict[str, Any], qgis_run_dir: Path,
                                             source: str) -> None:
    """The footprints style's temporal properties load; each date's frame shows that date only."""
    import datetime as dt

    t = qgis_summary["temporal"][source]
    dates = _run_dates(qgis_run_dir)
    assert len(dates) >= 2
    assert t["active"] and t["mode"] == 4  # start and end from expressions on "date"
    # the controller's "project range": the first date to the end of the last date's day
    last_end = (dt.date.fromisoformat(dates[-1]) + dt.timedelta(days=1)).isoformat()
    assert t["project_range"] == [f"{dates[0]}T00:00:00", f"{last_end}T00:00:00"]
    assert sorted(t["frames"]) == dates
    for d, frame in t["frames"].items():
        assert frame["dates_shown"] == [d], (d, frame)
        assert frame["labels"], f"no labels on {d}"
        assert all(d in lab for lab in frame["labels"]), (d, frame["labels"])  # current only


def test_change_mask_legend_says_change(qgis_run_dir: Path) -> None:
    masks = sorted((qgis_run_dir / "change").glob("*_mask.qml"))
    assert masks, "the run has no change masks"
    for m in masks:
        text = m.read_text()
        assert 'label="change"' in text and 'label="no change"' in text
        assert "building" not in text


def test_project_opens_with_the_time_slider_on(qgis_summary: dict[str, Any],
                                              qgis_run_dir: Path) -> None:
    """factorywatch.qgs: styled layers, footprints temporal on, project range = run's dates.

    (Opening footprints.geojson on its own, QGIS resets the sidecar's temporal properties
    when it builds the layer; the project file is read after the layer is built.)
    """
    import datetime as dt

    p = qgis_summary["project"]
    dates = _run_dates(qgis_run_dir)
    grid_crs = json.loads((qgis_run_dir / "grid.json").read_text())["crs"]
    assert p["read"] and p["crs"] == grid_crs
    assert set(p["layers"]) == {"footprints", "sites", "changes"}
    for name, info in p["layers"].items():
        assert info["valid"] and info["renderer"] == "categorizedSymbol", name
        assert info["temporal"] == (name == "footprints"), name
    last_end = (dt.date.fromisoformat(dates[-1]) + dt.timedelta(days=1)).isoformat()
    assert p["time_range"] == [f"{dates[0]}T00:00:00", f"{last_end}T00:00:00"]
    assert p["time_step"] == [1.0, 4]  # one day (QgsUnitTypes.TemporalDays)
    frames = p["footprints_temporal"]["frames"]
    assert sorted(frames) == dates
    assert all(f["dates_shown"] == [d] for d, f in frames.items())
