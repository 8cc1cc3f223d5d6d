"""geo.timeline: phases and phase dates of a building, and date claims (SYNTHETIC stacks)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from _runfixture import make_run_dir
from click.testing import CliRunner

from geo import timeline as tl
from geo import timeline_synth as ts
from geo.cli import main
from geo.config import load_config
from geo.export.timeline_figure import timeline_figure_html
from geo.geoarray import GeoArray
from geo.grid import Grid
from geo.pipeline import run_aoi
from geo.rundir import RunDir

HALL = ts.History(cleared="2021-03-10", construction="2021-06-01", roofed="2021-11-20")


def _days(a: str, b: str) -> int:
    return abs((dt.date.fromisoformat(a) - dt.date.fromisoformat(b)).days)


@pytest.fixture(scope="module")
def hall() -> tl.Timeline:
    rng = np.random.default_rng(16)
    return tl.fit_timeline(tl.build_series(ts.stack(rng, HALL), ts.outline()))


def test_phases_and_intervals_contain_the_truth(hall: tl.Timeline) -> None:
    for name, truth in (("cleared", HALL.cleared), ("roofed", HALL.roofed)):
        ev = hall.event(name)
        assert ev.lo is not None and ev.hi is not None and ev.estimate is not None, name
        assert ev.lo < truth <= ev.hi, (name, ev)
        assert _days(ev.estimate, truth) <= 31, (name, ev)
        assert ev.confidence > tl.MIN_CONFIDENCE, (name, ev)
    phase = dict(zip(hall.dates, hall.phases, strict=True))
    assert all(p == "vegetated" for d, p in phase.items() if d < "2021-02-15")
    assert all(p == "roofed" for d, p in phase.items() if d > "2021-12-31")
    assert "demolished" not in hall.events


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_seasonality_alone_gives_no_phase(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = tl.fit_timeline(tl.build_series(ts.stack(rng, None), ts.outline()))
    assert t.change_points == ()
    assert set(t.phases) == {"vegetated"}
    assert t.events == {}


def test_each_scene_masked_by_its_own_clouds() -> None:
    """A cloud over the hall drops the scene; the same scene clear is used."""
    rng = np.random.default_rng(0)
    clear = ts.scene(rng, HALL, "2021-08-01")
    cloudy = ts.scene(rng, HALL, "2021-08-01")
    cloudy.valid[8:22, 6:24] = False
    assert tl.scene_stats(clear, ts.outline()) is not None
    assert tl.scene_stats(cloudy, ts.outline()) is None


def test_outline_shapes_once_give_the_same_statistics_as_per_scene() -> None:
    """Buffers computed once per building (OutlineShapes) change no statistic, and shapes made
    for another pixel size are refused rather than silently misused."""
    rng = np.random.default_rng(3)
    scenes = ts.stack(rng, HALL)
    out = ts.outline().buffer(7.0, join_style="mitre")  # not pixel-aligned
    res = scenes[0].grid.res_m
    shapes = tl.outline_shapes(out, res)
    same = [ga for ga in scenes if ga.grid.res_m == res]
    assert len(same) >= 10
    cache: tl.MaskCache = {}
    for ga in same[:12]:
        a = tl.scene_stats(ga, out)
        b = tl.scene_stats(ga, shapes, mask_cache=cache)  # masks reused after the first scene
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            assert a.n_inside == b.n_inside and np.array_equal(a.inside, b.inside)
            assert np.array_equal(a.contrast, b.contrast) and np.array_equal(a.se, b.se)
        assert tl.building_window(ga.grid, out) == tl.building_window(ga.grid, shapes)
    assert len(cache) == len({(tuple(g.grid.transform), g.grid.shape) for g in same[:12]})
    with pytest.raises(ValueError, match="pixels"):
        tl.scene_stats(same[0], tl.outline_shapes(out, 3 * res))


def _blank(grid: Grid) -> GeoArray:
    return GeoArray(data=np.zeros((2, *grid.shape), np.float32), valid=np.ones(grid.shape, bool),
                    grid=grid, date="2021-08-01", bands=("red", "nir"))


def test_pixel_edged_outline_masks_match_the_buffered_ones() -> None:
    """A polygonised outline's masks from its own pixels (no buffers) are the buffers' pixels:
    holes, one-pixel necks, pixels touching at a corner, several parts, outlines too thin for
    a 3 x 3 block, windows cut by the grid edge, and rings whose outer edge falls on a pixel
    centre (those take the buffers)."""
    import rasterio.features
    import shapely
    from affine import Affine
    from shapely.geometry import shape

    rng = np.random.default_rng(11)
    t = Affine(10.0, 0.0, 452970.0, 0.0, -10.0, 5412830.0)
    grid = Grid("EPSG:32631", t, (24, 24))
    kinds = {"lattice": 0, "buffers": 0}
    for trial in range(6):
        blob = rng.random((24, 24)) < (0.6 if trial % 3 else 0.25)
        blob[:, :2] = blob[:2, :] = False
        lab = blob.astype("uint8")
        outlines = [shape(g) for g, v in rasterio.features.shapes(lab, transform=t) if v == 1]
        outlines.append(shapely.union_all(outlines))  # many parts, holes
        for out in outlines[-3:]:
            for ring_m in (30.0, 45.0, 10.0):
                sh = tl.outline_shapes(out, 10.0, ring_m=ring_m)
                assert sh.lattice is not None
                for win in (tl.building_window(grid, sh, ring_m=ring_m),
                            (slice(0, 12), slice(10, 24))):
                    g = tl.window_grid(grid, win)
                    ga = _blank(g)
                    fast = tl._lattice_masks(sh, ga)
                    slow = tl._buffer_masks(tl.outline_shapes(out, 10.0, ring_m=ring_m), ga)
                    kinds["buffers" if fast is None else "lattice"] += 1
                    if fast is not None:
                        assert np.array_equal(fast[0], slow[0]), (trial, ring_m)
                        assert np.array_equal(fast[1], slow[1]), (trial, ring_m)
    assert kinds["lattice"] >= 60 and kinds["buffers"] >= 30  # ring_m = 45: 5.5 px, on a centre
    # a one-pixel strip: its shrunk outline is empty, so the core is the strip itself
    strip = tl.outline_shapes(shapely.box(453000.0, 5412500.0, 453010.0, 5412700.0), 10.0)
    masks = tl._lattice_masks(strip, _blank(Grid("EPSG:32631", t, (60, 60))))
    assert masks is not None and masks[0].sum() == 20
    # a vertex off the lattice, or a grid of another origin, take the buffers
    sq = shapely.box(453000.0, 5412500.0, 453200.0, 5412700.0)
    assert tl.outline_shapes(shapely.box(453000.0, 5412500.0, 453205.0, 5412700.0), 10.0
                             ).lattice is None
    assert tl._lattice_masks(tl.outline_shapes(sq, 10.0), _blank(grid)) is not None
    shifted = Grid("EPSG:32631", Affine(10.0, 0.0, 452975.0, 0.0, -10.0, 5412830.0), (60, 60))
    assert tl._lattice_masks(tl.outline_shapes(sq, 10.0), _blank(shifted)) is None


def test_landsat_and_s2_scenes_agree_on_the_roof() -> None:
    rng = np.random.default_rng(5)
    s2 = tl.scene_stats(ts.scene(rng, HALL, "2022-07-01", sensor="s2"), ts.outline())
    ls = tl.scene_stats(ts.scene(rng, HALL, "2022-07-02", sensor="landsat"), ts.outline())
    assert s2 is not None and ls is not None
    assert ls.res_m == 30.0 and ls.n_inside < s2.n_inside
    assert abs(s2.inside[1] - ls.inside[1]) < 0.05  # BSI of the roof


def test_date_claims(hall: tl.Timeline) -> None:
    roofed = hall.event("roofed")
    assert tl.check_date_claim(roofed, "before", "2022-03-01").verdict == "supported"
    assert tl.check_date_claim(roofed, "before", "2021-08-01").verdict == "contradicted"
    assert tl.check_date_claim(roofed, "after", "2021-08-01").verdict == "supported"
    assert tl.check_date_claim(roofed, "after", "2022-03-01").verdict == "contradicted"
    assert roofed.hi is not None
    inside = tl.check_date_claim(roofed, "before", roofed.hi)  # the date inside the interval
    assert inside.verdict == "undecidable" and "straddles" in inside.sentence


def test_date_claim_undecidable_when_unsure_or_unseen() -> None:
    weak = tl.PhaseDate("roofed", "2021-06-01", "2021-05-20", "2021-06-10", 0.6)
    res = tl.check_date_claim(weak, "before", "2022-01-01")
    assert res.verdict == "undecidable" and "confidence" in res.sentence
    unseen = tl.fit_timeline(()).event("roofed")  # a site with no usable scene
    assert tl.check_date_claim(unseen, "before", "2022-01-01").verdict == "undecidable"
    not_yet = tl.PhaseDate("roofed", None, "2022-12-20", None, 0.99)  # not roofed by the end
    assert tl.check_date_claim(not_yet, "before", "2022-12-01").verdict == "contradicted"
    assert tl.check_date_claim(not_yet, "before", "2023-06-01").verdict == "undecidable"
    already = tl.PhaseDate("roofed", None, None, "2020-01-05", 0.99)  # roofed in scene one
    assert tl.check_date_claim(already, "before", "2020-06-01").verdict == "supported"


def test_a_roof_there_from_the_first_scene_is_not_a_confident_date() -> None:
    """No change seen: the event rests on the spectral label only, so claims are undecidable."""
    rng = np.random.default_rng(7)
    built = ts.History(cleared="2018-01-01", construction="2018-06-01", roofed="2019-01-01")
    t = tl.fit_timeline(tl.build_series(ts.stack(rng, built, years=1.0), ts.outline()))
    assert set(t.phases) == {"roofed"}
    ev = t.event("roofed")
    assert ev.lo is None and ev.hi == t.dates[0] and ev.confidence < tl.MIN_CONFIDENCE
    assert tl.check_date_claim(ev, "before", "2021-01-01").verdict == "undecidable"


def _write_run_inputs(root: Path, h: ts.History) -> Path:
    """A local folder of SYNTHETIC 5-band S2-like GeoTIFFs (own cloud masks), AOI and config."""
    img = root / "imagery"
    img.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for ga in ts.stack(rng, h, years=2.5, s2_days=15, landsat=False):
        prof = {"driver": "GTiff", "width": ga.grid.shape[1], "height": ga.grid.shape[0],
                "count": 5, "dtype": "float32", "crs": ga.grid.crs, "transform": ga.grid.transform}
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), \
                rasterio.open(img / f"synthetic_s2_{ga.date}.tif", "w", **prof) as dst:
            dst.write(ga.data)
            for i, b in enumerate(ts.BANDS, 1):
                dst.set_band_description(i, b)
            dst.write_mask(np.where(ga.valid, 255, 0).astype("uint8"))
    aoi = gpd.GeoDataFrame({"name": ["hall"], "coord_source": ["SYNTHETIC"],
                            "coord_confidence": ["high"]},
                           geometry=[ts.outline().buffer(70, join_style="mitre")],
                           crs="EPSG:32633").to_crs(4326)
    aoi.to_file(root / "aoi.geojson", driver="GeoJSON")
    cfg = root / "aoi.toml"
    cfg.write_text('[aoi]\ngeometry = "aoi.geojson"\nname = "hall"\n[source]\nkind = "local"\n'
                   'path = "imagery"\n[grid]\nresolution_m = 10.0\n[detect]\n'
                   # the stack is aligned by construction; co-registration stays on: on
                   # this featureless 300 m patch it must refuse its noise peaks
                   # change rasters (output.rasters) are not looked at here: not written
                   'min_area_m2 = 2000.0\n[output]\nreport = false\nrasters = false\n'
                   '[coreg]\n'
                   'enabled = true\n')
    return cfg


def test_a_run_gets_the_timeline_columns_and_date_claims(tmp_path: Path) -> None:
    """End to end on a local folder of many dates: sites carry the dates, claim reads them."""
    cfg = load_config(_write_run_inputs(tmp_path, HALL))
    run = Path(run_aoi(cfg, tmp_path / "run").run_dir)
    sites = gpd.read_file(run / "sites.geojson")
    for col in ("cleared_date", "cleared_date_lo", "cleared_date_hi", "roofed_date",
                "roofed_date_lo", "roofed_date_hi", "roofed_confidence", "phase"):
        assert col in sites.columns, col
    assert "phase" in gpd.read_file(run / "footprints.geojson").columns
    assert "roofed_date_hi" in pd.read_csv(run / "measurements.csv").columns
    hall = sites.loc[sites.to_crs(32633).geometry.intersection(ts.outline()).area.idxmax()]
    assert hall["phase"] == "roofed"
    for ev, truth in (("cleared", HALL.cleared), ("roofed", HALL.roofed)):
        lo, hi = str(hall[f"{ev}_date_lo"])[:10], str(hall[f"{ev}_date_hi"])[:10]
        assert lo < truth <= hi, (ev, lo, hi)
    manifest = json.loads((run / "run.json").read_text())
    applied = [s for s in manifest["coregistration"]
               if s.get("coreg_ok") and float(s.get("shift_m") or 0.0) > 0]
    assert not applied, applied  # aligned by construction: no shift is significant
    tl_json = manifest["timeline"][hall["site_id"]]
    assert tl_json["roofed"]["hi"] == str(hall["roofed_date_hi"])[:10]
    assert tl_json["scenes"] == hall["timeline_scenes"]
    series = pd.read_csv(RunDir(run).timeline_csv)
    assert set(series["site_id"]) == set(sites["site_id"])
    assert (series["site_id"] == hall["site_id"]).sum() == hall["timeline_scenes"] >= 30
    fig = timeline_figure_html(RunDir(run).timeline_csv, sites, tmp_path)
    assert "construction timeline" in fig and (tmp_path / "timeline.png").stat().st_size > 10_000
    hi = str(hall["roofed_date_hi"])[:10]
    res = CliRunner().invoke(main, ["claim", str(run), "--subject", hall["site_id"],
                                    "--roofed-before", "2022-03-01"])
    assert res.exit_code == 0 and "supported" in res.output, res.output
    res = CliRunner().invoke(main, ["claim", str(run), "--subject", hall["site_id"],
                                    "--roofed-before", "2021-06-01"])
    assert res.exit_code == 3 and "contradicted" in res.output, res.output
    res = CliRunner().invoke(main, ["claim", str(run), "--subject", hall["site_id"],
                                    "--roofed-before", hi])
    assert res.exit_code == 4 and "undecidable" in res.output, res.output


def test_date_claim_on_a_run_without_timeline_is_one_line(tmp_path: Path) -> None:
    make_run_dir(tmp_path / "run")
    res = CliRunner().invoke(main, ["claim", str(tmp_path / "run"), "--subject", "kanggye:s1",
                                    "--roofed-before", "2022-03-01"])
    assert res.exit_code == 1 and "no construction timeline" in res.output, res.output
    assert "Traceback" not in res.output


def test_the_report_draws_the_timeline(tmp_path: Path, hall: tl.Timeline,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """write_report picks up timeline.csv (a SYNTHETIC series attached to fixture site s1); a
    rebuild copies the figure until the series changes."""
    import shutil

    from geo.export import report_figures as rf
    from geo.export.report import write_report
    from geo.export.tables import write_csv
    from geo.timeline_stage import series_table

    run = make_run_dir(tmp_path / "run")
    for raster_dir in ("scenes", "masks", "change"):  # no pair figures: not looked at here
        shutil.rmtree(run / raster_dir)
    csv = RunDir(run).timeline_csv
    write_csv(series_table({"kanggye:s1": hall}), csv)
    index = write_report(run)
    text = index.read_text()
    assert 'alt="construction timeline"' in text and "kanggye:s1" in text
    png = (index.parent / "timeline.png").read_bytes()
    drawn: list[Path] = []
    real = rf.timeline_figure_html
    monkeypatch.setattr(rf, "timeline_figure_html", lambda path, *a, **k: (
        drawn.append(path), real(path, *a, **k))[1])
    again = write_report(run).read_text()
    assert drawn == [] and (index.parent / "timeline.png").read_bytes() == png
    assert 'alt="construction timeline"' in again
    series = pd.read_csv(csv)
    write_csv(series.iloc[: len(series) // 2], csv)  # the second half of the series is gone
    write_report(run)
    assert drawn == [csv] and (index.parent / "timeline.png").read_bytes() != png


def test_window_reads_equal_one_box_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Far-apart buildings are read window by window (memory follows the windows, not the
    AOI); the pixels, valid masks and grids equal those cut from one bounding-box read."""
    from affine import Affine

    from geo import timeline_stage as ts
    from geo.grid import Grid
    from geo.records import DateRecord, SceneRef

    grid = Grid("EPSG:32652", Affine(10.0, 0, 500000.0, 0, -10.0, 4500000.0), (300, 300))
    rng = np.random.default_rng(0)
    data = rng.random((3, 300, 300)).astype("float32")
    data[:, 5:9, 5:9] = np.nan  # no data inside one window
    prof = {"driver": "GTiff", "width": 300, "height": 300, "crs": grid.crs,
            "transform": grid.transform, "tiled": True, "blockxsize": 64, "blockysize": 64}
    scene, mask = tmp_path / "s.tif", tmp_path / "m.tif"
    with rasterio.open(scene, "w", count=3, dtype="float32", nodata=float("nan"), **prof) as d:
        d.write(data)
    vm = np.ones((1, 300, 300), "uint8")
    vm[0, 280:, 280:] = 0  # a cloud inside the other window
    with rasterio.open(mask, "w", count=1, dtype="uint8", **prof) as d:
        d.write(vm)
    wins = {"a": (slice(0, 20), slice(0, 20)), "b": (slice(270, 300), slice(265, 300))}
    meta = DateRecord(date="2024-01-01", source_id="s", bands=("red", "green", "blue"),
                      kind="rgb", valid_frac=1.0,
                      scene=SceneRef(id="s", date="2024-01-01", properties={}))
    assert len(ts._boxes(wins)) == 2  # far apart: one read per window
    apart = dict(ts._read_windows(scene, mask, meta, grid, wins))
    monkeypatch.setattr(ts, "MAX_BOX_FACTOR", float("inf"))
    assert len(ts._boxes(wins)) == 1
    boxed = dict(ts._read_windows(scene, mask, meta, grid, wins))
    monkeypatch.setattr(ts, "READ_BLOCK_PX", 64)  # and grouped by 64-px block: same pixels
    assert len(ts._reads(wins)) == 2
    blocked = dict(ts._read_windows(scene, mask, meta, grid, wins))
    for sid in wins:
        for other in (boxed, blocked):
            np.testing.assert_array_equal(apart[sid].data, other[sid].data)
            np.testing.assert_array_equal(apart[sid].valid, other[sid].valid)
            assert apart[sid].grid == other[sid].grid
    assert not apart["a"].valid[5:9, 5:9].any() and not apart["b"].valid[10:, 15:].any()
