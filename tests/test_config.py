from __future__ import annotations

from pathlib import Path

import pytest

from geo.config import DetectParams, load_config
from geo.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["kanggye_tractor_plant", "huichon_ryonha", "ryongsong_feb11_plant"])
def test_seed_configs_load(name: str) -> None:
    c = load_config(ROOT / "aoi" / f"{name}.toml")
    assert c.aoi.name == name
    assert Path(c.aoi.geometry).is_file()
    assert c.aoi.measure_epsg == 32652


def test_unknown_key_rejected(tmp_path: Path) -> None:
    p = tmp_path / "x.toml"
    p.write_text('[grid]\nresolutoin_m = 3\n')
    with pytest.raises(ConfigError, match=r"unknown key grid\.resolutoin_m.*resolution_m"):
        load_config(p)


def test_unknown_section_rejected(tmp_path: Path) -> None:
    p = tmp_path / "x.toml"
    p.write_text('[gird]\nresolution_m = 3\n')
    with pytest.raises(ConfigError, match=r"unknown section \[gird\]"):
        load_config(p)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[grid]\nresolution_m = -1\n", "resolution_m"),
        ("[detect]\nconnectivity = 6\n", "connectivity"),
        ("[match]\niou_threshold = 0\n", "iou_threshold"),
        ("[source]\nkind = 'ftp'\n", r"\[source\] kind"),
        ("[grid\n", "not valid TOML"),
    ],
)
def test_bad_values(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "x.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(p)


def test_relative_paths_resolved(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    p = tmp_path / "sub" / "site.toml"
    p.write_text('[source]\npath = "img"\n')
    c = load_config(p)
    assert c.source.path == str((tmp_path / "sub" / "img").resolve())
    assert c.aoi.geometry == str(tmp_path / "sub" / "site.geojson")
    assert c.aoi.name == "site"


def test_dataclasses_frozen() -> None:
    d = DetectParams()
    with pytest.raises(AttributeError):
        d.min_area_m2 = 3  # type: ignore[misc]
