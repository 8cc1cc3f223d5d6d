"""Hypothesis fuzzing of config and AOI loading (issue 10).

Generated TOML and GeoJSON text goes through the loaders in-process. Two properties:

- nothing but :class:`FactoryWatchError` escapes (no "unexpected X ... report it");
- ``validate`` and ``run``'s pre-pixel checks agree: a config passes
  :func:`geo.validate.validate_config` exactly when ``run``'s steps before reading pixels
  (load_config, :func:`geo.preflight.preflight`, the imagery source's search) pass.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rasterio.transform import from_origin
from shapely.geometry import box, mapping

from geo.config import RunConfig, load_config
from geo.errors import FactoryWatchError
from geo.grid import to_crs
from geo.preflight import preflight, preflight_problems
from geo.sources import open_source
from geo.validate import validate_config

N_EXAMPLES = int(os.environ.get("FW_FUZZ_EXAMPLES", "500"))
ORIGIN = (300000.0, 4500000.0)
AOI_4326 = to_crs(box(ORIGIN[0] + 20, ORIGIN[1] - 300, ORIGIN[0] + 300, ORIGIN[1] - 20),
                  "EPSG:32652", "EPSG:4326")
PROPS = {"coord_source": "test", "coord_confidence": "high"}

KEYS: dict[str, list[str]] = {
    "aoi": ["geometry", "name", "measure_epsg"],
    "source": ["kind", "path", "start", "end", "period", "max_cloud_frac", "min_valid_frac",
               "aoi_buffer_m", "collections", "max_retries", "timeout_s"],
    "grid": ["resolution_m", "buffer_m", "memory_budget_mb"],
    "coreg": ["enabled", "max_residual_m", "on_excess", "max_shift_m"],
    "detect": ["method", "change_method", "min_area_m2", "connectivity", "opening_m",
               "threshold"],
    "match": ["iou_threshold", "min_dates", "growth_tolerance", "cover_frac"],
    "measure": ["neighbour", "neighbour_max_distance_m", "digitising_sd_m", "n_draws", "seed",
                "same_date_corr", "about_tolerance"],
    "output": ["rasters", "report", "gpkg"],
}
BASE: dict[str, dict[str, Any]] = {
    "aoi": {"geometry": "site.geojson"},
    "source": {"kind": "local", "path": "img"},
    "grid": {"resolution_m": 10.0},
}
PLAUSIBLE: list[Any] = [10.0, 1, 0, 4, 8, 0.5, 100, 4000, 32652, 3413, "rgb-objects", "local",
                        "stac", "2021-06-03", "2022-01-01", "quarter", "warn", "nearest",
                        "site.geojson", "img", "missing.geojson", True, False, 1e7, 0.01, -1.0]


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def _toml(doc: dict[str, Any]) -> str:
    top = "".join(f"{k} = {_toml_value(v)}\n" for k, v in doc.items()
                  if not isinstance(v, dict))
    tables = "".join(f"[{k}]\n" + "".join(f"{kk} = {_toml_value(vv)}\n" for kk, vv in v.items())
                     for k, v in doc.items() if isinstance(v, dict))
    return top + tables


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
SCALARS = st.one_of(
    st.sampled_from(PLAUSIBLE),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    TEXT,
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2999, 12, 31)),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3),
                   st.dictionaries(st.sampled_from(["a", "b"]), SCALARS, max_size=2))


@st.composite
def configs(draw: st.DrawFn) -> str:
    """TOML text: the valid base config with a few keys changed, added or broken."""
    doc: dict[str, Any] = {s: dict(kv) for s, kv in BASE.items()}
    for _ in range(draw(st.integers(0, 4))):
        section = draw(st.sampled_from([*KEYS, "gird"]))
        key = draw(st.sampled_from([*KEYS.get(section, ["x"]), "resolutoin_m"]))
        value = draw(st.one_of(st.sampled_from(PLAUSIBLE), VALUES))
        doc.setdefault(section, {})[key] = value
    if draw(st.integers(0, 20)) == 0:
        doc[draw(st.sampled_from(list(KEYS)))] = draw(SCALARS)  # a section that is a value
    text = _toml(doc)
    if draw(st.integers(0, 20)) == 0:
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(TEXT) + text[cut:]  # broken syntax
    return text


def _tif(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=40, height=40, count=3, dtype="uint8",
                       crs="EPSG:32652", transform=from_origin(*ORIGIN, 10.0, 10.0)) as dst:
        dst.write(np.full((3, 40, 40), 60, "uint8"))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": PROPS, "geometry": mapping(AOI_4326)}]}
    (root / "site.geojson").write_text(json.dumps(fc))
    _tif(root / "img" / "2021-06-03.tif")
    _tif(root / "img" / "2022-06-08.tif")
    return root


def _run_pre_pixel(path: Path) -> str | None:
    """What ``run`` does before reading a pixel; the error line, or None if all pass."""
    try:
        config = load_config(path)
        aoi, _grid = preflight(config)
        if config.source.kind == "stac":
            return None  # the search needs the network; validate does not search STAC either
        open_source(config).search(aoi, config.source.start or None,
                                   config.source.end or None)
    except FactoryWatchError as err:
        return str(err)
    return None


@settings(max_examples=N_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=configs())
def test_config_fuzz_validate_agrees_with_run(sandbox: Path, text: str) -> None:
    path = sandbox / "site.toml"
    path.write_text(text, encoding="utf-8")
    problems = validate_config(path)  # only FactoryWatchError may be raised inside
    run_error = _run_pre_pixel(path)
    event("valid" if not problems else "refused: " + problems[0].split(": ", 2)[-1][:25])
    assert (problems == []) == (run_error is None), (problems, run_error)
    if run_error is not None:
        assert run_error == problems[0]


# --- AOI files ------------------------------------------------------------------------------
COORD = st.one_of(st.floats(-200, 200), st.floats(allow_nan=True, allow_infinity=True),
                  st.sampled_from([0.0, 180.0, -180.0, 90.0, 85.0, 126.58, 40.96]))
POINT = st.lists(COORD, min_size=0, max_size=3)
RING = st.lists(POINT, min_size=0, max_size=6)
JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10, 10), TEXT,
                                 st.floats(allow_nan=True)),
                       lambda c: st.one_of(st.lists(c, max_size=3),
                                           st.dictionaries(TEXT, c, max_size=3)),
                       max_leaves=8)


@st.composite
def geometries(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["Polygon"] * 4 + ["MultiPolygon"] * 3
                                + ["Point", "LineString", "Nope"]))
    if draw(st.integers(0, 3)):  # near-valid: a box, maybe far away, huge, polar or bow-tied
        x, y = draw(st.floats(-185, 185)), draw(st.floats(-95, 95))
        w = draw(st.sampled_from([0.0, 0.001, 0.01, 1.0, 359.0]))
        ring = [[x, y], [x + w, y], [x + w, y + w], [x, y + w], [x, y]]
        if draw(st.integers(0, 5)) == 0:
            ring[1], ring[2] = ring[2], ring[1]  # a self-intersecting bow tie
        coords: Any = [ring] if kind != "MultiPolygon" else [[ring]]
    else:
        coords = draw(st.one_of(st.lists(RING, max_size=2), JSONISH))
    return {"type": kind, "coordinates": coords}


@st.composite
def aoi_docs(draw: st.DrawFn) -> Any:
    shape = draw(st.sampled_from(["fc"] * 4 + ["feature", "geometry", "junk"]))
    if shape == "junk":
        return draw(JSONISH)
    geom = draw(st.one_of(geometries(), JSONISH))
    props = PROPS if draw(st.integers(0, 3)) else draw(JSONISH)
    feat: dict[str, Any] = {"type": "Feature", "properties": props, "geometry": geom}
    if shape == "geometry":
        return geom
    if shape == "feature":
        return feat
    doc: dict[str, Any] = {"type": "FeatureCollection",
                           "features": [feat] if draw(st.integers(0, 4)) else draw(JSONISH)}
    if draw(st.integers(0, 8)) == 0:
        doc["crs"] = draw(st.one_of(JSONISH, st.just(
            {"type": "name", "properties": {"name": "EPSG:32652"}})))
    return doc


@settings(max_examples=N_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(doc=aoi_docs())
def test_aoi_fuzz_only_factorywatch_errors(sandbox: Path, doc: Any) -> None:
    path = sandbox / "fuzz.geojson"
    path.write_text(json.dumps(doc), encoding="utf-8")
    config = RunConfig()
    from dataclasses import replace

    config = replace(config, aoi=replace(config.aoi, geometry=str(path)),
                     source=replace(config.source, kind="stac"))
    problems, _aoi, grid = preflight_problems(config)  # any other exception fails the test
    event("valid" if not problems else "refused: " + problems[0].split(": ", 1)[-1][:25])
    assert all(isinstance(p, str) and p for p in problems)
    assert (problems == []) == (grid is not None)
    if problems:
        assert str(path) in problems[0]
