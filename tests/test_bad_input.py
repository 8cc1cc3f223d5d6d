"""Every bad input fails up front: one line naming the input (and key), the right exit code,
no traceback without -v, and nothing changed in the sandbox (issue 10, "Bad input").

Each case builds a valid sandbox (AOI GeoJSON, config TOML, two tiny RGB GeoTIFFs), breaks
one thing, runs the real CLI in-process (click's CliRunner) with the sandbox as the working
folder, and compares a snapshot of the whole sandbox tree before and after.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin
from shapely.geometry import box, mapping

from geo.cli import main
from geo.grid import to_crs

ORIGIN = (300000.0, 4500000.0)  # UTM 52N, near Kanggye
AOI_4326 = to_crs(box(ORIGIN[0] + 20, ORIGIN[1] - 300, ORIGIN[0] + 300, ORIGIN[1] - 20),
                  "EPSG:32652", "EPSG:4326")
PROPS = {"coord_source": "test", "coord_confidence": "high", "point_kind": "plant_point"}
BASE: dict[str, dict[str, str]] = {
    "aoi": {"geometry": '"site.geojson"'},
    "source": {"kind": '"local"', "path": '"img"'},
    "grid": {"resolution_m": "10.0"},
}


def _tif(path: Path, bands: int = 3, *, crs: str = "EPSG:32652",
         transform: Any = None, shape: tuple[int, int] = (40, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((bands, *shape), 60, "uint8")
    with rasterio.open(path, "w", driver="GTiff", width=shape[1], height=shape[0], count=bands,
                       dtype="uint8", crs=crs,
                       transform=transform or from_origin(*ORIGIN, 10.0, 10.0)) as dst:
        dst.write(arr)
    return path


def _fc(geometry: Any = None, properties: Any = None, **extra: Any) -> dict[str, Any]:
    feat = {"type": "Feature", "properties": PROPS if properties is None else properties,
            "geometry": mapping(AOI_4326) if geometry is None else geometry}
    return {"type": "FeatureCollection", "features": [feat], **extra}


def _toml(sections: dict[str, dict[str, str]]) -> str:
    return "".join(f"[{s}]\n" + "".join(f"{k} = {v}\n" for k, v in kv.items())
                   for s, kv in sections.items())


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A valid AOI config with its AOI file and two dates of RGB imagery."""
    box_ = tmp_path / "sandbox"
    box_.mkdir()
    (box_ / "site.geojson").write_text(json.dumps(_fc()))
    (box_ / "site.toml").write_text(_toml(BASE))
    _tif(box_ / "img" / "2021-06-03.tif")
    _tif(box_ / "img" / "2022-06-08.tif")
    return box_


def _snapshot(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.fsdecode(os.path.relpath(p, os.fsencode(root)))
            if os.path.isdir(p):
                out[rel] = "dir"
            else:
                with open(p, "rb") as f:
                    out[rel] = hashlib.sha256(f.read()).hexdigest()
    return out


# --- case definitions -----------------------------------------------------------------------
Setup = Callable[[Path], None]


@dataclass(frozen=True)
class Case:
    """One bad input: how to break the sandbox, the command, what must be said."""

    id: str
    setup: Setup
    args: tuple[str, ...]
    names: tuple[str, ...]
    """Substrings the message must contain: the input file, the key, the value."""
    code: int = 1
    commands: tuple[str, ...] = ()
    """For config cases: run the same args under each of these commands."""


def _cfg(section: str, key: str, value: str, **more: str) -> Setup:
    def setup(box_: Path) -> None:
        sections = {s: dict(kv) for s, kv in BASE.items()}
        sections.setdefault(section, {}).update({key: value, **more})
        (box_ / "site.toml").write_text(_toml(sections))
    return setup


def _raw_cfg(text: str) -> Setup:
    """Top-level TOML text before the sections."""
    def setup(box_: Path) -> None:
        (box_ / "site.toml").write_text(text + _toml(BASE))
    return setup


def _aoi(doc: Any, raw: str | None = None) -> Setup:
    def setup(box_: Path) -> None:
        (box_ / "site.geojson").write_text(raw if raw is not None else json.dumps(doc))
    return setup


def _big_aoi(box_: Path) -> None:
    """A 380 km² AOI (19.5 km x 19.5 km) at 1 m with a 100 MiB budget (too small even for one
    streamed block; with 8 GiB it streams, geo/stream.py)."""
    big = to_crs(box(ORIGIN[0], ORIGIN[1] - 19_500, ORIGIN[0] + 19_500, ORIGIN[1]),
                 "EPSG:32652", "EPSG:4326")
    (box_ / "site.geojson").write_text(json.dumps(_fc(mapping(big))))
    sections = {s: dict(kv) for s, kv in BASE.items()}
    sections["grid"] = {"resolution_m": "1.0", "memory_budget_mb": "100"}
    (box_ / "site.toml").write_text(_toml(sections))


def _odd_band(bands: int) -> Setup:
    def setup(box_: Path) -> None:
        _tif(box_ / "img" / "2023-06-13.tif", bands)
    return setup


def _non_utf8(box_: Path) -> None:
    good = _tif(box_ / "img" / "tmp.tif")
    os.rename(os.fsencode(good), os.fsencode(box_ / "img") + b"/caf\xe9_2023-06-13.tif")


def _footprints(box_: Path, features: list[dict[str, Any]], name: str) -> None:
    (box_ / name).write_text(json.dumps({"type": "FeatureCollection", "features": features}))


def _empty_fc(box_: Path) -> None:
    _footprints(box_, [], "halls_2021-06-03.geojson")


def _null_dates(box_: Path) -> None:
    _footprints(box_, [{"type": "Feature", "properties": {"date": None},
                        "geometry": mapping(AOI_4326)}], "halls.geojson")


def _one_fp(box_: Path) -> None:
    _footprints(box_, [{"type": "Feature", "properties": {"date": "2021-06-03"},
                        "geometry": mapping(AOI_4326)}], "halls.geojson")


def _bench(a_bands: int, b_bands: int, label: str = "ok") -> Setup:
    def setup(box_: Path) -> None:
        for sub, n in (("A", a_bands), ("B", b_bands), ("label", 1)):
            _tif(box_ / "bench" / sub / "t1.tif", n, shape=(16, 16))
        if label == "empty":
            (box_ / "bench" / "label" / "t1.tif").write_bytes(b"")
    return setup


def _run_dir(break_it: str) -> Setup:
    def setup(box_: Path) -> None:
        from _runfixture import make_run_dir

        run = make_run_dir(box_ / "done")
        if break_it == "truncate":
            p = sorted((run / "scenes").glob("*.tif"))[0]
            p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])
        else:
            doc = json.loads((run / "run.json").read_text())
            doc[break_it] = {"dates": 5, "warnings": "none", "claims": {"a": 1}}[break_it]
            (run / "run.json").write_text(json.dumps(doc))
    return setup


BOTH = ("run", "validate")
ANTIMERIDIAN = {"type": "Polygon", "coordinates": [[[179.9, 60.0], [-179.9, 60.0],
                                                    [-179.9, 60.1], [179.9, 60.1],
                                                    [179.9, 60.0]]]}
POLAR = {"type": "Polygon", "coordinates": [[[10.0, 86.0], [10.2, 86.0], [10.2, 86.1],
                                             [10.0, 86.1], [10.0, 86.0]]]}
ODD_RING = {"type": "Polygon", "coordinates": [[[126.5, 40.9], [126.6, 40.9]]]}

CASES: list[Case] = [
    # 1. config values of the wrong type or range: file, [section] key, value, what is allowed
    Case("res-string", _cfg("grid", "resolution_m", '"ten"'), (), ("site.toml", "[grid]",
         "resolution_m", '"ten"', "number"), commands=BOTH),
    Case("res-bool", _cfg("grid", "resolution_m", "true"), (), ("site.toml", "resolution_m",
         "true", "number"), commands=BOTH),
    Case("res-inf", _cfg("grid", "resolution_m", "inf"), (), ("site.toml", "resolution_m",
         "inf", "finite"), commands=BOTH),
    Case("res-zero", _cfg("grid", "resolution_m", "0"), (), ("site.toml", "[grid]",
         "resolution_m", "= 0", "0.01"), commands=BOTH),
    Case("res-millimetre", _cfg("grid", "resolution_m", "0.001"), (), ("site.toml",
         "resolution_m", "0.001", "0.01"), commands=BOTH),
    Case("min-dates-string", _cfg("match", "min_dates", '"2"'), (), ("site.toml", "[match]",
         "min_dates", '"2"', "integer"), commands=BOTH),
    Case("threshold-string", _cfg("detect", "threshold", '"high"'), (), ("site.toml",
         "[detect]", "threshold", '"high"', "number"), commands=BOTH),
    Case("epsg-unknown", _cfg("aoi", "measure_epsg", "99999"), (), ("site.toml", "[aoi]",
         "measure_epsg", "99999", "EPSG"), commands=BOTH),
    Case("epsg-string", _cfg("aoi", "measure_epsg", '"rgb-objects"'), (), ("site.toml",
         "measure_epsg", '"rgb-objects"', "integer"), commands=BOTH),
    Case("epsg-geographic", _cfg("aoi", "measure_epsg", "4326"), (), ("site.toml",
         "measure_epsg", "4326", "projected"), commands=BOTH),
    Case("start-word", _cfg("source", "start", '"yesterday"'), (), ("site.toml", "[source]",
         "start", '"yesterday"', "YYYY-MM-DD"), commands=BOTH),
    Case("start-unquoted-date", _cfg("source", "start", "2020-01-01"), (), ("site.toml",
         "[source]", "start", "2020-01-01", "quote"), commands=BOTH),
    Case("n-draws-float", _cfg("measure", "n_draws", "2e9"), (), ("site.toml", "[measure]",
         "n_draws", "2000000000", "integer"), commands=BOTH),
    Case("n-draws-huge", _cfg("measure", "n_draws", "2000000000"), (), ("site.toml",
         "n_draws", "1000000"), commands=BOTH),
    Case("cloud-frac-range", _cfg("source", "max_cloud_frac", "1.5"), (), ("site.toml",
         "max_cloud_frac", "1.5", "1"), commands=BOTH),
    Case("connectivity", _cfg("detect", "connectivity", "6"), (), ("site.toml",
         "connectivity", "4 or 8"), commands=BOTH),
    Case("collections-string", _cfg("source", "collections", '"sentinel-2-l2a"'), (),
         ("site.toml", "collections", "array"), commands=BOTH),
    Case("unknown-key", _cfg("grid", "resolutoin_m", "10"), (), ("site.toml", "resolutoin_m",
         "resolution_m"), commands=BOTH),
    Case("section-not-table", _raw_cfg("output = 3\n"), (), ("site.toml", "[output]",
         "table"), commands=BOTH),
    Case("start-after-end", _cfg("source", "start", '"2023-01-01"', end='"2022-01-01"'), (),
         ("site.toml", "start", "end"), commands=BOTH),
    # 2. size preflight: the grid size and the fix, before anything is read
    Case("aoi-380km2-at-1m", _big_aoi, (), ("site.toml", "19,500 x 19,500 px", "1 m",
         "memory_budget_mb"), commands=BOTH),
    Case("buffer-1e7", _cfg("grid", "buffer_m", "1e7"), (), ("site.toml", "px",
         "buffer_m", "memory budget"), commands=BOTH),
    Case("res-1cm-default-budget", _cfg("grid", "resolution_m", "0.01", buffer_m="500"), (),
         ("site.toml", "px", "0.01 m", "resolution_m"), commands=BOTH),
    # 3. AOI files
    Case("aoi-top-level-list", _aoi([_fc()]), (), ("site.geojson", "array"), commands=BOTH),
    Case("aoi-properties-string", _aoi(_fc(properties="plant")), (), ("site.geojson",
         "properties", "string"), commands=BOTH),
    Case("aoi-crs-string", _aoi(_fc(crs="EPSG:4326")), (), ("site.geojson", "crs"),
         commands=BOTH),
    Case("aoi-geometry-list", _aoi(_fc(geometry=[1, 2])), (), ("site.geojson", "geometry",
         "array"), commands=BOTH),
    Case("aoi-features-object", _aoi({"type": "FeatureCollection", "features": {}}), (),
         ("site.geojson", "features"), commands=BOTH),
    Case("aoi-antimeridian", _aoi(_fc(geometry=ANTIMERIDIAN)), (), ("site.geojson",
         "antimeridian"), commands=BOTH),
    Case("aoi-polar", _aoi(_fc(geometry=POLAR)), (), ("site.geojson", "polar",
         "measure_epsg"), commands=BOTH),
    Case("aoi-odd-ring", _aoi(_fc(geometry=ODD_RING)), (), ("site.geojson", "geometry"),
         commands=BOTH),
    Case("aoi-not-json", _aoi(None, raw="{not json"), (), ("site.geojson", "GeoJSON"),
         commands=BOTH),
    Case("aoi-missing", lambda b: (b / "site.geojson").unlink(), (), ("site.geojson",
         "not found"), commands=BOTH),
    # 4. imagery (fail, naming the file: a date with other bands is never skipped silently)
    Case("imagery-1-band", _odd_band(1), (),
         ("2023-06-13.tif", "band", "3"), commands=BOTH),
    Case("imagery-16-band", _odd_band(16), (),
         ("2023-06-13.tif", "16 band"), commands=BOTH),
    Case("imagery-non-utf8-name", _non_utf8, (),
         ("2023-06-13.tif", "UTF-8", "rename"), commands=BOTH),
    Case("imagery-outside-dates", _cfg("source", "start", '"2030-01-01"'), (),
         ("img", "2030-01-01"), commands=BOTH),
    Case("imagery-folder-empty", lambda b: [p.unlink() for p in (b / "img").iterdir()],
         (), ("img", "GeoTIFF"), commands=BOTH),
    # 5. measure, benchmark, plan, report
    Case("measure-empty-fc", _empty_fc, ("measure", "halls_2021-06-03.geojson", "-o", "out"),
         ("halls_2021-06-03.geojson", "no features")),
    Case("measure-null-date", _null_dates, ("measure", "halls.geojson", "--date-field", "date",
         "-o", "out"), ("halls.geojson", "date")),
    Case("measure-epsg-unknown", _one_fp, ("measure", "halls.geojson", "--date-field", "date",
         "--epsg", "99999", "-o", "out"), ("--epsg", "99999"), code=2),
    Case("measure-epsg-geographic", _one_fp, ("measure", "halls.geojson", "--date-field",
         "date", "--epsg", "4326", "-o", "out"), ("--epsg", "4326", "projected"), code=2),
    Case("benchmark-band-mismatch", _bench(3, 1), ("benchmark", "bench"),
         ("t1.tif", "bands")),
    Case("benchmark-empty-label", _bench(3, 3, "empty"), ("benchmark", "bench"),
         ("label", "t1.tif")),
    Case("benchmark-res-zero", _bench(3, 3), ("benchmark", "bench", "--res-m", "0"),
         ("--res-m",), code=2),
    Case("plan-aspect-nan", lambda b: None, ("plan", "site.toml", "--building-area-m2",
         "1000", "--aspect-ratio", "nan"), ("--aspect-ratio", "nan"), code=2),
    Case("plan-area-inf", lambda b: None, ("plan", "site.toml", "--building-area-m2", "inf"),
         ("--building-area-m2", "inf"), code=2),
    Case("report-truncated-cog", _run_dir("truncate"), ("report", "done"),
         ("2021-06-03.tif", "truncated")),
    Case("report-run-json-dates", _run_dir("dates"), ("report", "done"),
         ("run.json", "dates")),
    Case("report-run-json-warnings", _run_dir("warnings"), ("report", "done"),
         ("run.json", "warnings")),
    Case("report-run-json-claims", _run_dir("claims"), ("report", "done"),
         ("run.json", "claims")),
]


def _expand(cases: list[Case]) -> list[Any]:
    out = []
    for c in cases:
        if c.commands:
            for cmd in c.commands:
                args = (cmd, "site.toml", "-o", "out") if cmd == "run" else (cmd, "site.toml")
                out.append(pytest.param(c, args, id=f"{c.id}-{cmd}"))
        else:
            out.append(pytest.param(c, c.args, id=c.id))
    return out


@pytest.mark.parametrize(("case", "args"), _expand(CASES))
def test_bad_input_fails_up_front(case: Case, args: tuple[str, ...], sandbox: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    case.setup(sandbox)
    monkeypatch.chdir(sandbox)
    before = _snapshot(sandbox)
    t0 = time.perf_counter()
    res = CliRunner().invoke(main, list(args))
    elapsed = time.perf_counter() - t0
    out = res.output
    assert res.exit_code == case.code, out
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    for s in case.names:
        assert s in out, f"{s!r} not in {out!r}"
    assert "Traceback" not in out
    assert "unexpected" not in out and "report it" not in out, out
    lines = [ln for ln in out.splitlines() if ln.startswith("Error")]
    assert len(lines) <= 1, out
    assert _snapshot(sandbox) == before, "the sandbox changed"
    assert not (sandbox / "out").exists() and not (sandbox / "out.partial").exists()
    assert elapsed < 10, f"took {elapsed:.1f} s"


def test_sandbox_is_valid(sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The unbroken sandbox passes validate, so each case fails for its one change only."""
    monkeypatch.chdir(sandbox)
    res = CliRunner().invoke(main, ["validate", "site.toml"])
    assert res.exit_code == 0, res.output


def test_size_preflight_is_fast(sandbox: Path) -> None:
    """A 380 km² AOI at 1 m is refused by validate in well under a second (no allocation)."""
    from geo.validate import validate_config

    _big_aoi(sandbox)
    t0 = time.perf_counter()
    problems = validate_config(sandbox / "site.toml")
    elapsed = time.perf_counter() - t0
    assert len(problems) == 1 and "memory budget" in problems[0]
    assert elapsed < 1.0, elapsed


def test_whole_world_raster_covers_the_aoi(tmp_path: Path) -> None:
    """A global EPSG:4326 raster overlaps a small UTM AOI grid (main said 'does not overlap')."""
    from geo.grid import grid_for_aoi
    from geo.reading import read_to_grid

    world = _tif(tmp_path / "world_2021-06-03.tif", 3, crs="EPSG:4326",
                 transform=from_origin(-180, 90, 1.0, 1.0), shape=(180, 360))
    grid = grid_for_aoi(AOI_4326, 10.0)
    ga = read_to_grid(str(world), grid, date="2021-06-03")
    assert ga.valid.all() and float(ga.data.mean()) == 60.0


def test_world_raster_elsewhere_still_does_not_overlap(tmp_path: Path) -> None:
    """The two-way bounds check still refuses a raster that is really elsewhere."""
    from geo.errors import NoImageryError
    from geo.grid import grid_for_aoi
    from geo.reading import read_to_grid

    far = _tif(tmp_path / "far_2021-06-03.tif", 3, crs="EPSG:4326",
               transform=from_origin(-10, 10, 0.1, 0.1), shape=(100, 100))
    with pytest.raises(NoImageryError, match="does not overlap"):
        read_to_grid(str(far), grid_for_aoi(AOI_4326, 10.0), date="2021-06-03")


def test_future_acquisition_date_warns(sandbox: Path, caplog: pytest.LogCaptureFixture) -> None:
    from geo.aoi import read_aoi
    from geo.sources.local import LocalGeoTiffSource

    _tif(sandbox / "img" / "2999-01-01.tif")
    with caplog.at_level(logging.WARNING, logger="geo.sources.local"):
        scenes = LocalGeoTiffSource(sandbox / "img").search(read_aoi(sandbox / "site.geojson"))
    assert [s.date for s in scenes][-1] == "2999-01-01"
    assert any("2999-01-01" in r.message and "future" in r.message for r in caplog.records)


def test_unexpected_errors_are_cut_at_a_word_boundary() -> None:
    """A long GDAL/urllib message is shortened between words, not mid-word."""
    import click

    from geo.cli._common import handles_errors, verbosity_options

    words = " ".join(f"word{i:03d}" for i in range(200))

    @click.command()
    @verbosity_options
    @handles_errors
    def boom(verbose: int, quiet: int) -> None:
        raise RuntimeError(words)

    res = CliRunner().invoke(boom, [])
    assert res.exit_code == 1
    shown = res.output.split("RuntimeError: ", 1)[1].split(" (run again")[0]
    assert shown.endswith(" …")
    assert all(w in words.split() for w in shown.removesuffix(" …").split())
