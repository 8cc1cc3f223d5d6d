"""The demo's report in headless Chromium: claim with verdict, legend, scale bar, attribution.

The session's SYNTHETIC demo run (``factorywatch demo --json``, conftest ``demo_cli``; ~17 s
CPU) is shared by every test here and the other demo tests.
The DOM is read after the bundled map script ran (``--dump-dom``), and a screenshot must show
a rendered page, not a blank one. Fails on main before issue 14: the demo's claim never
reached the report, and the figures had no scale bar, legend or attribution.
"""

from __future__ import annotations

import html
import importlib.util
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None,
                                reason="Debian chromium not installed")
TOOL = Path(__file__).resolve().parents[1] / "tools" / "screenshot_report.py"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("screenshot_report", TOOL)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _Dom(HTMLParser):
    """Text of every element with a given class or id (nested text included)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[set[str]] = []
        self.text: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        keys = {f".{c}" for c in (a.get("class") or "").split()}
        if a.get("id"):
            keys.add(f"#{a['id']}")
        if tag in ("img", "input", "br", "meta", "link", "image", "path"):
            return
        self.stack.append(keys)
        for k in keys:
            self.text.setdefault(k, []).append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("img", "input", "br", "meta", "link", "image", "path"):
            return
        if self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        for keys in self.stack:
            for k in keys:
                self.text[k][-1] += data


@pytest.fixture(scope="module")
def demo(demo_cli: dict[str, Any]) -> Path:
    """The session's ``factorywatch demo`` run (conftest ``demo_cli``): read only."""
    return Path(demo_cli["folder"]) / "run"


def test_demo_table_marks_truth_outside_interval(demo: Path, demo_cli: dict[str, Any]) -> None:
    """Rows whose true area is outside the 95% interval say so; the others say yes."""
    from geo.demo_report import compare_to_truth, format_comparison

    res = compare_to_truth(demo, demo.parent / "inputs" / "truth.geojson")
    # the table the command prints without --json, from the comparison it printed with --json
    table = format_comparison(demo_cli["json"]["comparison"])
    rows = {ln.split()[0]: ln for ln in table.splitlines()
            if ln[:1].isalpha() and len(ln.split()) > 5 and ln.split()[1].count(":")}
    outside = []
    for h in res["halls"]:
        if h.get("area_m2_lo") is None:
            continue
        inside = h["area_m2_lo"] <= h["truth_area_m2"] <= h["area_m2_hi"]
        assert rows[h["hall"]].rstrip().endswith("yes") == inside, rows[h["hall"]]
        if not inside:
            outside.append(h["hall"])
            assert "truth outside interval" in rows[h["hall"]]
    if outside:
        assert f"Hall(s) {', '.join(outside)}: the true area lies outside" in table


@pytest.fixture(scope="module")
def dom(demo: Path) -> _Dom:
    p = _Dom()
    p.feed(_tool().dump_dom(demo / "report" / "index.html"))
    return p


def test_demo_claim_saved_in_run_json(demo: Path) -> None:
    run = json.loads((demo / "run.json").read_text())
    (claim,) = run["claims"]
    assert claim["verdict"] == "supported" and claim["relation"] == ">" and claim["factor"] == 2


def test_claims_section_shows_verdict(dom: _Dom, demo: Path) -> None:
    claims = " ".join(dom.text["#claims"])
    sentence = json.loads((demo / "run.json").read_text())["claims"][0]["sentence"]
    assert "supported" in claims and sentence in " ".join(claims.split())
    assert "supported" in " ".join(dom.text[".verdict-supported"])


def test_legend_scale_bar_and_attribution(dom: _Dom) -> None:
    legend = " ".join(dom.text[".legend"])
    for entry in ("footprint: new", "footprint: unchanged", "masked: cloud / nodata"):
        assert entry in legend
    # the viewer's scale bar was drawn by the bundled script: "<n> m"
    bars = [t.strip() for t in dom.text[".scalebar"]]
    assert bars and all(re.fullmatch(r"\d+(\.\d+)? k?m", b) for b in bars), bars
    credits = " ".join(dom.text[".attribution"])
    assert "SYNTHETIC imagery (factorywatch demo): synthetic_2019-05-20.tif" in credits
    assert "webmercator.tif" in credits  # every date credited, the last one in the viewer


def test_masked_scene_is_noted(demo: Path) -> None:
    text = (demo / "report" / "index.html").read_text(encoding="utf-8")
    assert re.search(r"2020-06-02: \d+% of the scene is masked by cloud or nodata", text)


def test_screenshot_is_not_blank(demo: Path, tmp_path: Path) -> None:
    from PIL import Image

    png = _tool().screenshot(demo / "report" / "index.html", tmp_path / "demo.png",
                             width=1300, height=2400)
    img = Image.open(png).convert("RGB")
    colours = img.resize((130, 240)).getcolors(maxcolors=100_000) or []
    assert len(colours) > 500  # figures and the map drawn, not a blank or an error page
    # the PNG stays in this test's tmp_path to look at (the shared demo folder is read-only)


def test_local_run_provenance_lists_only_the_local_source(demo: Path) -> None:
    text = (demo / "report" / "index.html").read_text(encoding="utf-8")
    prov = html.unescape(text.split('id="provenance"')[1].split("<details>")[0])
    assert '"kind": "local"' in prov and "imagery" in prov
    for stac_only in ("earth-search", "sentinel-2-l2a", "max_retries", "search_ttl_h"):
        assert stac_only not in prov, stac_only
