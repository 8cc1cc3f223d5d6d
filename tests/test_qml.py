"""QML styles: generated from the code's vocabularies, well-formed, written atomically."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from geo.export import qml
from geo.types import EVENTS, STATUSES


def _parse(text: str) -> ET.Element:
    return ET.fromstring(text.split("\n", 1)[1])  # drop the DOCTYPE line


@pytest.mark.parametrize(
    ("layer", "attr", "vocab"),
    [("footprints", "status", STATUSES), ("sites", "status", STATUSES),
     ("changes", "event", EVENTS)],
)
def test_categories_are_the_code_vocabulary(layer: str, attr: str, vocab: tuple[str, ...]) -> None:
    root = _parse(qml.qml_for(layer))
    renderer = root.find("renderer-v2")
    assert renderer is not None
    assert renderer.get("type") == "categorizedSymbol"
    assert renderer.get("attr") == attr
    values = [c.get("value") for c in renderer.iter("category")]
    assert tuple(values[:-1]) == vocab
    assert values[-1] == ""  # QGIS's "all other values" category
    labels = [c.get("label") for c in renderer.iter("category")]
    assert labels[-1] == qml.OTHER_LABEL
    assert qml.categories_for(layer) == (*vocab, "")
    # one symbol per category, referenced by name
    names = {s.get("name") for s in renderer.iter("symbol")}
    assert names == {c.get("symbol") for c in renderer.iter("category")}
    assert root.findtext("layerGeometryType") == "2"
    assert root.get("labelsEnabled") == "1"


def test_sites_label_shows_ratio_with_interval_and_survives_nulls() -> None:
    root = _parse(qml.qml_for("sites"))
    style = root.find("labeling/settings/text-style")
    assert style is not None and style.get("isExpression") == "1"
    expr = style.get("fieldName") or ""
    for field in ("site_id", "neighbour_area_ratio", "neighbour_area_ratio_lo",
                  "neighbour_area_ratio_hi"):
        assert f'"{field}"' in expr
    assert "coalesce(" in expr and "–" in expr


def test_footprints_label_shows_area_interval() -> None:
    expr = _parse(qml.qml_for("footprints")).find("labeling/settings/text-style")
    assert expr is not None
    assert '"area_m2_lo"' in (expr.get("fieldName") or "")


def test_events_table_has_no_renderer() -> None:
    root = _parse(qml.qml_for("events"))
    assert root.find("renderer-v2") is None
    assert root.get("labelsEnabled") == "0"
    assert root.findtext("layerGeometryType") == "4"
    assert qml.categories_for("events") == ()


def test_unknown_layer() -> None:
    with pytest.raises(ValueError, match="unknown layer 'roads'"):
        qml.qml_for("roads")


def test_write_qml_is_atomic_and_identical(tmp_path: Path) -> None:
    out = qml.write_qml("sites", tmp_path / "sites.qml")
    assert out.read_text(encoding="utf-8") == qml.qml_for("sites")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sites.qml"]  # no temp left


@pytest.mark.parametrize(
    ("kind", "kwargs", "renderer_type"),
    [
        ("scene", {"band_names": ["blue", "green", "red", "nir"],
                   "value_ranges": [(0, 1), (0, 2), (0.01, 0.3), (0, 4)]}, "multibandcolor"),
        ("scene", {"band_names": ["red", "green", "blue"]}, "multibandcolor"),
        ("scene", {"band_names": ["pan"]}, "singlebandgray"),
        ("probability", {}, "singlebandpseudocolor"),
        ("mask", {}, "paletted"),
    ],
)
def test_raster_qml(kind: qml.RasterKind, kwargs: dict, renderer_type: str) -> None:
    root = _parse(qml.raster_qml(kind, **kwargs))
    r = root.find("pipe/rasterrenderer")
    assert r is not None and r.get("type") == renderer_type


def test_raster_scene_picks_true_colour_bands() -> None:
    root = _parse(qml.raster_qml("scene", band_names=["blue", "green", "red", "nir"],
                                 value_ranges=[(0, 1), (0, 2), (0.01, 0.3), (0, 4)]))
    r = root.find("pipe/rasterrenderer")
    assert r is not None
    assert (r.get("redBand"), r.get("greenBand"), r.get("blueBand")) == ("3", "2", "1")
    assert r.findtext("redContrastEnhancement/maxValue") == "0.3"


def test_raster_qml_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown raster kind"):
        qml.raster_qml("dem")  # type: ignore[arg-type]
