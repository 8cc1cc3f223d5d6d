"""CLI exit codes and one-line messages for each bad input (no traceback, nothing half-written)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import MakeGeoTiff
from shapely.geometry import box, mapping

from geo import __version__
from geo.cli import main
from geo.grid import to_crs

ORIGIN = (300000.0, 4500000.0)


def _aoi_file(path: Path, geom: object | None = None) -> Path:
    if geom is None:
        geom = to_crs(box(ORIGIN[0] + 20, ORIGIN[1] - 300, ORIGIN[0] + 300, ORIGIN[1] - 20),
                      "EPSG:32652", "EPSG:4326")
    fc = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {
        "coord_source": "test", "coord_confidence": "high", "point_kind": "plant_point"},
        "geometry": mapping(geom) if geom is not None else None}]}
    path.write_text(json.dumps(fc))
    return path


def _config(tmp_path: Path, extra: str = "", folder: str = "img") -> Path:
    _aoi_file(tmp_path / "site.geojson")
    p = tmp_path / "site.toml"
    p.write_text(f'[source]\nkind = "local"\npath = "{folder}"\n[grid]\nresolution_m = 10\n{extra}')
    return p


def _scene(make_geotiff: MakeGeoTiff, tmp_path: Path, date: str, **kw: object) -> Path:
    arr = np.full((3, 40, 40), 60, "uint8")
    arr[:, 10:20, 10:25] = 200
    return make_geotiff(arr, folder=tmp_path / "img", name=f"s_{date}.tif", **kw)


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def assert_one_line_error(stderr: str, *needles: str) -> None:
    lines = [ln for ln in stderr.strip().splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_version_and_help() -> None:
    code, out, _ = invoke("--version")
    assert code == 0 and __version__ in out
    code, out, _ = invoke("--help")
    assert code == 0 and "run" in out and "demo" in out


def test_usage_error_exit_2(tmp_path: Path) -> None:
    assert invoke("run")[0] == 2
    assert invoke("run", str(tmp_path / "x.toml"), "--bogus")[0] == 2


def test_missing_config(tmp_path: Path) -> None:
    code, _, err = invoke("run", str(tmp_path / "nope.toml"))
    assert code == 1
    assert_one_line_error(err, "nope.toml", "no such config")


def test_unknown_config_key(tmp_path: Path) -> None:
    p = _config(tmp_path, "[detect]\nmin_area = 3\n")
    code, _, err = invoke("run", str(p), "-o", str(tmp_path / "run"))
    assert code == 1
    assert_one_line_error(err, "site.toml", "unknown key detect.min_area", "min_area_m2")
    assert not (tmp_path / "run").exists()


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    p = _config(tmp_path)
    code, _, err = invoke("run", str(p), "-o", str(tmp_path / "run"))
    assert code == 1
    assert_one_line_error(err, "img", "no GeoTIFF")
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()


def test_corrupt_geotiff(tmp_path: Path, make_geotiff: MakeGeoTiff) -> None:
    _scene(make_geotiff, tmp_path, "2020-01-01")
    (tmp_path / "img" / "s_2021-01-01.tif").write_bytes(b"II*\x00" + b"\x00" * 100)
    p = _config(tmp_path)
    code, _, err = invoke("run", str(p), "-o", str(tmp_path / "run"))
    assert code == 1
    assert_one_line_error(err, "s_2021-01-01.tif", "re-export")
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()


def test_missing_geotiff_in_folder_config(tmp_path: Path) -> None:
    p = _config(tmp_path, folder="does_not_exist")
    code, _, err = invoke("run", str(p), "-o", str(tmp_path / "run"))
    assert code == 1
    assert_one_line_error(err, "does_not_exist", "[source] path")


def test_no_crs(tmp_path: Path, make_geotiff: MakeGeoTiff) -> None:
    _scene(make_geotiff, tmp_path, "2020-01-01", crs=None)
    p = _config(tmp_path)
    code, _, err = invoke("run", str(p), "-o", str(tmp_path / "run"))
    assert code == 1
    assert_one_line_error(err, "s_2020-01-01.tif", "no CRS", "a_srs")
    assert not (tmp_path / "run").exists()


def test_no_overlap(tmp_path: Path, make_geotiff: MakeGeoTiff) -> None:
    _scene(make_geotiff, tmp_path, "2020-01-01", origin=(700000.0, 4500000.0))
    p = _config(tmp_path)
    code, _, err = invoke("run", str(p), "-o", str(tmp_path / "run"))
    assert code == 1
    assert_one_line_error(err, "s_2020-01-01.tif", "does not overlap the AOI")
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()


@pytest.mark.parametrize("geom", ["empty", "bowtie", "none"])
def test_invalid_or_empty_aoi(tmp_path: Path, make_geotiff: MakeGeoTiff, geom: str) -> None:
    from shapely.geometry import Polygon

    _scene(make_geotiff, tmp_path, "2020-01-01")
    p = _config(tmp_path)
    if geom == "empty":
        (tmp_path / "site.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    elif geom == "none":
        (tmp_path / "site.geojson").write_text(
            '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, '
            '"geometry": null}]}')
    else:
        _aoi_file(tmp_path / "site.geojson",
                  Polygon([(126.0, 40.0), (126.01, 40.01), (126.01, 40.0), (126.0, 40.01)]))
    code, _, err = invoke("run", str(p), "-o", str(tmp_path / "run"))
    assert code == 1
    assert_one_line_error(err, "site.geojson")
    assert not (tmp_path / "run").exists()
    vcode, _, verr = invoke("validate", str(p))
    assert vcode == 1 and "site.geojson" in verr


def test_existing_run_dir_needs_overwrite(tmp_path: Path, make_geotiff: MakeGeoTiff) -> None:
    _scene(make_geotiff, tmp_path, "2020-01-01")
    p = _config(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    code, _, err = invoke("run", str(p), "-o", str(tmp_path / "run"))
    assert code == 1
    assert_one_line_error(err, "run", "--overwrite")
    assert (tmp_path / "run" / "keep.txt").read_text() == "mine"


def test_traceback_only_with_verbose(tmp_path: Path) -> None:
    code, _, err = invoke("run", str(tmp_path / "nope.toml"), "-v")
    assert code == 1 and "Traceback" in err


def test_validate_seed_aois() -> None:
    root = Path(__file__).resolve().parents[1] / "aoi"
    for toml in sorted(root.glob("*.toml")):
        code, _, err = invoke("validate", str(toml))
        assert code == 0, err
    code, _, err = invoke("validate", str(root / "kanggye_tractor_plant.toml"))
    assert "re-centre" in err  # town-centre AOI warned about, not an error


def test_output_claims_are_not_checkable_from_imagery(tmp_path: Path) -> None:
    """'Production quadrupled' (sites.md §7.7) is about output, not floor area: exit 4."""
    code, out, _ = invoke("claim", str(tmp_path), "--subject", "k:s1", "--reference", "earlier",
                          "--relation", ">=", "--factor", "4", "--quantity", "production")
    assert code == 4 and "not checkable from imagery" in out
    code, _, err = invoke("claim", str(tmp_path / "nope"), "--subject", "k:s1", "--reference",
                          "earlier", "--relation", ">=", "--factor", "4", "--quantity", "output")
    assert code == 1 and "no such run directory" in err
