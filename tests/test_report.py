"""HTML report: offline, one folder, every section present, rebuilt by the CLI."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from _runfixture import DATES, make_run_dir
from click.testing import CliRunner

from geo.cli import main
from geo.errors import SourceError
from geo.export.report import write_report


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "script":
            self.scripts += [v for k, v in attrs if k == "src" and v]
        for k, v in attrs:
            if k in ("src", "href") and v:
                self.refs.append(v)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run_dir(tmp_path_factory.mktemp("report") / "run")


@pytest.fixture(scope="module")
def report(run_dir: Path) -> tuple[Path, str]:
    index = write_report(run_dir)
    return index, index.read_text(encoding="utf-8")


def test_one_offline_folder(report: tuple[Path, str], run_dir: Path) -> None:
    index, text = report
    assert index == run_dir / "report" / "index.html"
    p = _Links()
    p.feed(text)
    # the only JavaScript is the bundled map viewer, loaded from the report folder (#14)
    assert set(p.scripts) == {"viewer.js", "viewer-data.js"}
    assert p.tags.count("script") == 2
    for ref in p.refs:
        if ref.startswith("#"):
            continue
        assert "://" not in ref and not ref.startswith("//"), f"external reference {ref}"
        assert (index.parent / ref).is_file(), f"{ref} is not in the report folder"
    assert not re.search(r"https?://", text.split("<details>")[0])  # (run.json may hold URLs)
    assert "@import" not in text and "url(" not in text
    names = {r for r in p.refs if r.endswith(".png") and not r.startswith("view_")}
    pairs = {f"pair_{a}_{b}.png" for a, b in itertools.pairwise(DATES)}
    assert names == {"locator.png", "areas.png", "neighbours.png", *pairs}
    # nothing half-written left behind in the run directory
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []


def test_sections_and_numbers(report: tuple[Path, str]) -> None:
    _index, text = report
    for anchor in ("map", "pairs", "areas", "neighbours", "sites", "provenance"):
        assert f'id="{anchor}"' in text
    assert "SYNTHETIC DATA" in text and "[SYNTHETIC]" in text
    # sites table: the neighbour ratio with its interval, and the claim verdict
    assert "2.25 (2.09–2.41)" in text
    assert 'class="verdict-supported">supported' in text
    assert "1,350 (1,203–1,497)" in text  # area with interval
    # provenance: scenes, processing, versions
    for needle in ("synthetic-2021-06-03", "Processing", "rasterio", "1.4.4", "a test warning"):
        assert needle in text
    assert "kanggye:s1 is 2.25x the area of its neighbour" in text


def _copy_with_report(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of the module's run with its report: the HTML is written anew, the figures whose
    inputs are unchanged are copied from the old report (the fresh drawing is the ``report``
    fixture's; test_rebuild_redraws_only_the_other_figures_whose_inputs_changed checks which
    are redrawn)."""
    run = Path(shutil.copytree(run_dir, tmp_path / "run"))
    assert (run / "report" / "index.html").is_file()
    return run


def test_not_synthetic_and_no_claims(report: tuple[Path, str], run_dir: Path,
                                     tmp_path: Path) -> None:
    run = _copy_with_report(run_dir, tmp_path)
    meta = json.loads((run / "run.json").read_text())
    del meta["claims"]  # as make_run_dir(claims=False) writes it
    meta["synthetic"] = False
    (run / "run.json").write_text(json.dumps(meta))
    text = write_report(run).read_text()
    assert "SYNTHETIC" not in text
    assert "claim verdict" not in text and "Claims checked" not in text


def test_claims_in_claimresult_vocabulary(report: tuple[Path, str], run_dir: Path,
                                          tmp_path: Path) -> None:
    run = _copy_with_report(run_dir, tmp_path)
    meta = json.loads((run / "run.json").read_text())
    meta["claims"] = [{"verdict": "undecidable", "estimate": 2.04, "lo": 1.93, "hi": 2.16,
                       "subject_id": "kanggye:s1", "reference_id": "kanggye:s2",
                       "relation": ">", "factor": 2.0,
                       "sentence": "s1 more than twice as large as s2: undecidable"}]
    (run / "run.json").write_text(json.dumps(meta))
    text = write_report(run).read_text()
    assert 'class="verdict-undecidable">undecidable' in text
    assert "1.93–2.16" in text and "s1 more than twice as large as s2: undecidable" in text


def test_missing_parts_are_noted_not_invented(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run")
    shutil.rmtree(run / "change")
    (run / "footprints.geojson").unlink()
    text = write_report(run).read_text()
    assert "footprints.geojson is missing" in text
    assert text.count("(no probability map)") == 2
    assert "No tracked footprints" in text
    assert (run / "report" / "pair_2021-06-03_2022-06-08.png").exists()  # from the scenes


def test_rebuild_replaces_old_report(report: tuple[Path, str], run_dir: Path,
                                    tmp_path: Path) -> None:
    run = Path(shutil.copytree(run_dir, tmp_path / "run"))  # a run with a report already
    assert (run / "report" / "index.html").is_file()
    (run / "report" / "stale.png").write_bytes(b"x")
    write_report(run)
    assert not (run / "report" / "stale.png").exists()
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        write_report(tmp_path / "nope")
    with pytest.raises(SourceError, match=r"no run\.json"):
        write_report(tmp_path)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(SourceError, match="not valid JSON"):
        write_report(tmp_path)


def test_cli(run_dir: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["report", str(run_dir), "--json", "-q"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["report"] == str(run_dir / "report" / "index.html")
    assert "areas.png" in out["figures"]
    r = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert r.exit_code == 1
    assert "no run.json" in r.stderr
    r = CliRunner().invoke(main, ["report", str(tmp_path / "missing")])
    assert r.exit_code == 2


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed")
def test_renders_in_headless_chromium(report: tuple[Path, str], tmp_path: Path) -> None:
    import sys

    png = tmp_path / "shot.png"
    tool = Path(__file__).resolve().parents[1] / "tools" / "screenshot_report.py"
    r = subprocess.run([sys.executable, str(tool), str(report[0]), str(png), "--height",
                        "2000"], capture_output=True, text=True, timeout=180, check=False)
    assert r.returncode == 0, r.stderr
    from PIL import Image

    img = Image.open(png).convert("RGB")
    assert img.size == (1400, 2000)
    colours = img.resize((140, 200)).getcolors(maxcolors=100_000) or []
    assert len(colours) > 500  # figures rendered, not a blank or an error page
    # the SYNTHETIC banner's amber is on the first screen
    top = img.crop((0, 0, 1400, 400)).getcolors(maxcolors=1_000_000) or []
    assert any(c == (255, 243, 205) and n > 10_000 for n, c in top)


def test_rebuild_redraws_only_the_figures_whose_inputs_changed(
        report: tuple[Path, str], run_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuilt report copies each figure (pairs, locator, areas, neighbour ratios, the map's
    scene previews) when nothing it draws changed (a saved claim, a watch run), and redraws it
    when something did: a claim's factor redraws the neighbour ratios only (their claim line),
    a site's status the locator and the areas, an outline of one date the pairs of that date
    and the areas, a rewritten scene its pair and the previews; a damaged index draws all."""
    import os

    from geo.export import report as rep
    from geo.export import report_figures as rf

    run = _copy_with_report(run_dir, tmp_path)
    mine = tmp_path / "analyst_notes.txt"  # the user's file beside the run: never touched
    mine.write_text("mine")
    before = (mine.read_bytes(), mine.stat().st_mtime_ns)
    drawn: list[str] = []

    def spy(module: object, attr: str, label: str) -> None:
        real = getattr(module, attr)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            drawn.append(label if label != "pair" else f"pair {args[1]} {args[2]}")
            return real(*args, **kwargs)
        monkeypatch.setattr(module, attr, wrapped)
    for attr, label in (("_locator_figure", "locator"), ("_areas_figure", "areas"),
                        ("_neighbour_figure", "neighbours"), ("_pair_figure", "pair")):
        spy(rf, attr, label)
    spy(rep, "_view_previews", "view")
    pairs = [f"pair {a} {b}" for a, b in itertools.pairwise(DATES)]

    def pngs() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in (run / "report").glob("*.png")}

    old = pngs()
    assert {"locator.png", "areas.png", "neighbours.png"} <= set(old)
    assert sum(n.startswith("view_") for n in old) == len(DATES)
    assert sum(n.startswith("pair_") for n in old) == len(pairs)
    text = write_report(run).read_text()
    assert drawn == [] and pngs() == old
    for name in old:
        assert name in text or (name.startswith("view_") and name in (
            run / "report" / "viewer-data.js").read_text())

    meta = json.loads((run / "run.json").read_text())
    meta["claims"][0]["factor"] = 1.5  # a claim checked again with another factor
    (run / "run.json").write_text(json.dumps(meta))
    write_report(run)
    assert drawn == ["neighbours"]
    new = pngs()
    assert new.pop("neighbours.png") != old.pop("neighbours.png") and new == old

    drawn.clear()
    sites = json.loads((run / "sites.geojson").read_text())
    s3 = next(f for f in sites["features"] if f["properties"]["site_id"] == "kanggye:s3")
    s3["properties"]["status"] = "grown"
    (run / "sites.geojson").write_text(json.dumps(sites))
    write_report(run)
    assert sorted(drawn) == ["areas", "locator"]

    drawn.clear()
    fc = json.loads((run / "footprints.geojson").read_text())
    feats = [f for f in fc["features"] if f["properties"]["date"] == DATES[-1]]
    fc["features"].remove(feats[-1])
    (run / "footprints.geojson").write_text(json.dumps(fc))
    write_report(run)
    assert sorted(drawn) == ["areas", *(p for p in pairs if DATES[-1] in p)]

    drawn.clear()
    scene = run / "scenes" / f"{DATES[0]}.tif"
    st = scene.stat()
    os.utime(scene, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # rewritten
    write_report(run)
    assert sorted(drawn) == [*(p for p in pairs if DATES[0] in p), "view"]

    drawn.clear()
    (run / "report" / rf.FIGURE_INDEX).write_text("{not json")  # a damaged index: draw all
    write_report(run)
    assert sorted(drawn) == sorted(["locator", "areas", "neighbours", "view", *pairs])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analyst_notes.txt", "run"]
    assert (mine.read_bytes(), mine.stat().st_mtime_ns) == before


def test_a_figure_index_naming_files_outside_the_report_is_not_followed(
        report: tuple[Path, str], run_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """figures.json is a file in the run: an entry whose files are not bare names inside the
    report folder (``../run.json``, an absolute path) is not copied from or to; the figure is
    drawn again and the files it named are left as they were."""
    from geo.export import report_figures as rf

    run = _copy_with_report(run_dir, tmp_path)
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"not a figure")
    index_p = run / "report" / rf.FIGURE_INDEX
    doc = json.loads(index_p.read_text())
    doc["figures"]["locator.png"]["files"] = ["../run.json"]
    doc["figures"]["areas.png"]["files"] = [str(outside)]
    index_p.write_text(json.dumps(doc))
    stamps = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (run / "run.json", outside)}
    drawn: list[str] = []
    for attr in ("_locator_figure", "_areas_figure"):
        real = getattr(rf, attr)
        monkeypatch.setattr(rf, attr, lambda *a, _r=real, _n=attr, **k: drawn.append(_n)
                            or _r(*a, **k))
    write_report(run)
    assert sorted(drawn) == ["_areas_figure", "_locator_figure"]
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in stamps} == stamps
    assert (run / "report" / "locator.png").stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside.png", "run"]


def test_pairs_drawn_on_one_reused_figure_are_those_drawn_on_new_ones(
        run_dir: Path, tmp_path: Path) -> None:
    """The pairs of a report are drawn on one figure, its panels cleared between pairs
    (report_figures.PairFigures): each PNG has the pixels of that pair drawn on a new figure
    with the same layout, and savefig draws each figure once."""
    import numpy as np
    from matplotlib.figure import Figure
    from PIL import Image

    from geo.export import report_figures as rf
    from geo.export.report import _pairs
    from geo.export.report_data import _load

    r = _load(run_dir)
    pairs = _pairs(r)
    assert len(pairs) >= 2
    reused, new = tmp_path / "reused", tmp_path / "new"
    reused.mkdir()
    new.mkdir()
    shared = rf.PairFigures()
    draws = 0
    real_draw = Figure.draw

    def counting(self: Figure, renderer: Any) -> None:
        nonlocal draws
        draws += 1
        real_draw(self, renderer)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Figure, "draw", counting)
        frames = set()
        for d0, d1 in pairs:
            rf._pair_figure(r, d0, d1, reused, shared)
            frames.add(id(shared.frames[(d0, d1) in r.probs].fig))
    assert draws == len(pairs)  # no layout-only draw left by tight_layout
    assert len(frames) < len(pairs)  # a figure was reused
    for d0, d1 in pairs:
        alone = rf.PairFigures()
        alone.layouts.update(shared.layouts)
        rf._pair_figure(r, d0, d1, new, alone)
        name = f"pair_{d0}_{d1}.png"
        a = np.asarray(Image.open(reused / name).convert("RGBA"))
        b = np.asarray(Image.open(new / name).convert("RGBA"))
        assert a.shape == b.shape and np.array_equal(a, b), name
