"""GeoPackage export: layers in UTM, styles in layer_styles as defaults, atomic."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from _runfixture import GRID, build_tables
from shapely.geometry import box

from geo.errors import CrsMismatchError
from geo.export import qml
from geo.export.gpkg import write_gpkg


@pytest.fixture(scope="module")
def tables() -> dict[str, gpd.GeoDataFrame | pd.DataFrame]:
    return build_tables()


def test_layers_crs_counts_and_styles(tmp_path: Path, tables: dict) -> None:
    out = write_gpkg(tables, tmp_path / "results.gpkg")
    assert out == tmp_path / "results.gpkg"
    assert out.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.gpkg"]  # no temp left
    layers = dict(pyogrio.list_layers(out))
    assert layers == {"footprints": "Polygon", "sites": "Polygon", "changes": "Polygon",
                      "events": None, "layer_styles": None}
    for name in ("footprints", "sites", "changes"):
        back = gpd.read_file(out, layer=name)
        assert back.crs.to_epsg() == GRID.epsg
        assert len(back) == len(tables[name])
        assert back["area_m2" if name != "changes" else "area_to_m2"].tolist() == pytest.approx(
            tables[name]["area_m2" if name != "changes" else "area_to_m2"].tolist())
    events = pyogrio.read_dataframe(out, layer="events", read_geometry=False)
    assert len(events) == len(tables["events"])
    with sqlite3.connect(out) as con:
        rows = con.execute(
            "SELECT f_table_name, f_geometry_column, useAsDefault, styleQML FROM layer_styles"
        ).fetchall()
    assert {r[0] for r in rows} == set(qml.LAYERS)
    for name, geom_col, default, style in rows:
        assert default == 1
        assert style == qml.qml_for(name)  # the same templates as the sidecars
        assert geom_col == ("" if name == "events" else "geom")


def test_list_cells_are_joined(tmp_path: Path, tables: dict) -> None:
    sites = tables["sites"].copy()
    sites["dates"] = [d.split(";") for d in sites["dates"]]
    out = write_gpkg({"sites": sites}, tmp_path / "r.gpkg")
    back = pyogrio.read_dataframe(out, layer="sites")
    assert back["dates"].iloc[0] == ";".join(sites["dates"].iloc[0])


def test_geographic_crs_refused(tmp_path: Path, tables: dict) -> None:
    with pytest.raises(CrsMismatchError, match="to_crs"):
        write_gpkg({"sites": tables["sites"].to_crs(4326)}, tmp_path / "r.gpkg")
    assert list(tmp_path.iterdir()) == []


def test_mixed_crs_refused(tmp_path: Path, tables: dict) -> None:
    other = tables["changes"].to_crs("EPSG:32651")
    with pytest.raises(CrsMismatchError, match="different CRSs"):
        write_gpkg({"sites": tables["sites"], "changes": other}, tmp_path / "r.gpkg")


def test_missing_crs_refused(tmp_path: Path) -> None:
    gdf = gpd.GeoDataFrame({"site_id": ["a"]}, geometry=[box(0, 0, 1, 1)])
    with pytest.raises(CrsMismatchError, match="no CRS"):
        write_gpkg({"sites": gdf}, tmp_path / "r.gpkg")


def test_empty_layer_and_overwrite(tmp_path: Path, tables: dict) -> None:
    path = tmp_path / "r.gpkg"
    write_gpkg(tables, path)
    empty = tables["changes"].iloc[0:0]
    write_gpkg({"sites": tables["sites"], "changes": empty}, path)  # replaces atomically
    assert dict(pyogrio.list_layers(path)).keys() == {"sites", "changes", "layer_styles"}
    assert len(gpd.read_file(path, layer="changes")) == 0


def test_failed_write_leaves_old_file(tmp_path: Path, tables: dict,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "r.gpkg"
    write_gpkg(tables, path)
    before = path.read_bytes()

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("geo.export.gpkg._styles_frame", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_gpkg(tables, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.gpkg"]
