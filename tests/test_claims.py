from __future__ import annotations

import math

import pytest
from _measure_helpers import footprints_of
from shapely.geometry import box

from geo.claims import ClaimError, check_claim, claim_phrase, verdict_for
from geo.cli.measure_cmd import CLAIM_EXIT_CODES as CODES
from geo.config import MatchParams, MeasureParams
from geo.match import track_footprints
from geo.measure import measure_sites

P = MeasureParams(n_draws=4000)
D0, D1 = "2022-10-01", "2023-06-01"


def _run(by_date, *, res_m=0.0, sd_m=0.0, alt_frac=None, alt_shift_px=0.2):
    fp = footprints_of(by_date, res_m=res_m, alt_frac=alt_frac, alt_shift_px=alt_shift_px)
    if res_m == 0.0:
        fp["boundary_sd_m"] = sd_m
    tr = measure_sites(track_footprints(fp, dates=sorted(by_date), aoi_name="t",
                                        params=MatchParams()), P)
    return tr.sites, tr.footprints


def _pair(ratio, width=50.0, length=100.0):
    """Reference building length × width at x=0, subject ratio × as long just east of it."""
    ref = box(0, 0, length, width)
    subj = box(length + 20, 0, length + 20 + ratio * length, width)
    return subj, ref


def _claim(sites, fp, **kw):
    kw.setdefault("params", P)
    return check_claim(sites, fp, **kw)


def _ids(sites, fp, subj_geom):
    hit = fp[fp.geometry.intersects(subj_geom.centroid)]
    return hit.site_id.iloc[0]


@pytest.mark.parametrize(
    ("ratio", "relation", "expected"),
    [
        (2.02, ">", "supported"),  # just above
        (2.00, ">", "contradicted"),  # at: not *more* than twice
        (2.00, ">=", "supported"),
        (1.98, ">", "contradicted"),  # just below
        (1.98, ">=", "contradicted"),
        (1.98, "<", "supported"),
        (2.00, "<", "contradicted"),
        (2.00, "<=", "supported"),
        (2.02, "<=", "contradicted"),
        (2.00, "~", "supported"),
        (2.15, "~", "supported"),  # within ±10% of 2
        (2.30, "~", "contradicted"),
    ],
)
def test_verdicts_at_the_boundaries_with_exact_outlines(ratio, relation, expected):
    # digitising sd 0 → a degenerate interval [r, r]: the verdict is the plain comparison
    subj, ref = _pair(ratio)
    sites, fp = _run({D0: [subj, ref]}, sd_m=0.0)
    s = _ids(sites, fp, subj)
    r = _claim(sites, fp, subject=s, reference="neighbour", relation=relation, factor=2.0)
    assert r.estimate == pytest.approx(ratio)
    assert r.lo == pytest.approx(ratio) and r.hi == pytest.approx(ratio)
    assert r.verdict == expected


@pytest.mark.parametrize(("ratio", "expected"),
                         [(2.3, "supported"), (2.05, "undecidable"), (2.0, "undecidable"),
                          (1.95, "undecidable"), (1.8, "contradicted")])
def test_verdicts_when_the_interval_straddles(ratio, expected):
    # 3 m imagery of 5,000–11,500 m² halls: ratio interval about ±3.5%
    subj, ref = _pair(ratio, width=50.0, length=100.0)
    sites, fp = _run({D0: [subj, ref]}, res_m=3.0, alt_shift_px=0.2)
    s = _ids(sites, fp, subj)
    r = _claim(sites, fp, subject=s, reference="neighbour", relation=">", factor=2.0)
    assert r.lo <= r.estimate <= r.hi
    assert r.verdict == expected
    if expected == "undecidable":
        assert r.lo < 2.0 < r.hi
        assert "undecidable at this resolution" in r.sentence


def test_sentence_format():
    subj, ref = _pair(2.31)
    sites, fp = _run({D0: [subj, ref]}, sd_m=0.5)
    s = _ids(sites, fp, subj)
    r = _claim(sites, fp, subject=s, reference="neighbour", relation=">", factor=2.0)
    assert r.sentence.startswith(f"{s} more than twice as large as its neighbour {r.reference_id}"
                                 ": supported (2.31x, 95% interval ")
    assert r.sentence.endswith(")")
    assert claim_phrase(">=", 1.0) == "at least as large as"
    assert claim_phrase("~", 0.65) == "about 0.65 times as large as"


def test_reference_by_id_and_by_earlier_date():
    old = box(0, 0, 100, 50)
    grown = box(0, 0, 230, 50)
    other = box(300, 0, 400, 50)
    sites, fp = _run({D0: [old, other], D1: [grown, other]}, sd_m=0.5)
    s = _ids(sites, fp, old)
    o = _ids(sites, fp, other)
    r = _claim(sites, fp, subject=s, reference="earlier", relation=">", factor=2.0)
    assert r.estimate == pytest.approx(2.3) and r.verdict == "supported"
    assert r.reference_date == D0 and r.subject_date == D1
    assert "itself on 2022-10-01" in r.sentence
    r2 = _claim(sites, fp, subject=s, reference=D0, relation=">", factor=2.0)
    assert r2.estimate == r.estimate
    r3 = _claim(sites, fp, subject=s, reference=o, relation="~", factor=2.3, date=D1)
    assert r3.verdict == "supported"
    r4 = _claim(sites, fp, subject=s, reference=o, relation="~", factor=1.0, date=D0)
    assert r4.verdict == "supported" and r4.subject_date == D0


def test_errors_name_the_fix():
    subj, ref = _pair(2.0)
    sites, fp = _run({D0: [subj, ref]}, sd_m=0.5)
    s = _ids(sites, fp, subj)
    with pytest.raises(ClaimError, match="site_id"):
        _claim(sites, fp, subject="t:s99", reference="neighbour", relation=">", factor=2)
    with pytest.raises(ClaimError, match="not one of"):
        _claim(sites, fp, subject=s, reference="neighbour", relation="=>", factor=2)
    with pytest.raises(ClaimError, match="positive"):
        _claim(sites, fp, subject=s, reference="neighbour", relation=">", factor=0)
    with pytest.raises(ClaimError, match="was not seen on"):
        _claim(sites, fp, subject=s, reference="neighbour", relation=">", factor=2,
               date="1999-01-01")
    with pytest.raises(ClaimError, match="--date"):
        _claim(sites, fp, subject=s, reference="earlier", relation=">", factor=2)
    lonely, _ = _run({D0: [box(0, 0, 10, 10)]}, sd_m=0.5)
    with pytest.raises(ClaimError, match="neighbour"):
        _claim(lonely, _, subject="t:s1", reference="neighbour", relation=">", factor=2)


def test_verdict_for_about_band():
    assert verdict_for("~", 2.0, 1.85, 2.15) == "supported"
    assert verdict_for("~", 2.0, 1.7, 2.1) == "undecidable"
    assert verdict_for("~", 2.0, 2.25, 2.5) == "contradicted"
    with pytest.raises(ClaimError):
        verdict_for("!=", 2.0, 1.0, 3.0)


# --- fixtures from the site research (shared/sites.md §7) ---------------------------------

def test_feb11_ratio_direction():
    """New assembly building ≈ 60–70% the size of the existing one (Planet, Oct 2024)."""
    existing, new = _pair(1 / 0.65, width=60.0, length=100.0)  # existing is 1.54× new
    new, existing = box(0, 0, 65, 60), box(100, 0, 200, 60)
    sites, fp = _run({"2024-10-05": [new, existing]}, res_m=3.0, alt_shift_px=0.2)
    n = _ids(sites, fp, new)
    claim = {"subject": n, "reference": "neighbour"}
    assert _claim(sites, fp, **claim, relation=">", factor=2.0).verdict == "contradicted"
    # "60–70% larger" means ratio 1.6–1.7
    assert _claim(sites, fp, **claim, relation=">=", factor=1.6).verdict == "contradicted"
    assert _claim(sites, fp, **claim, relation="<", factor=1.0).verdict == "supported"
    # and the primary wording, "about 60–70% the size of", is not contradicted
    assert _claim(sites, fp, **claim, relation="~", factor=0.65).verdict != "contradicted"


def test_unit_trap_ft2_vs_m2():
    """176,000 m² and 176,000 ft² (16,351 m²) differ by 10.764: a checker must see it."""
    ft2 = 0.09290304
    side_m2 = math.sqrt(176_000.0)
    side_ft2 = math.sqrt(176_000.0 * ft2)
    big, small = box(0, 0, side_m2, side_m2), box(side_m2 + 50, 0, side_m2 + 50 + side_ft2,
                                                  side_ft2)
    sites, fp = _run({"2022-07-03": [big, small]}, res_m=3.0, alt_shift_px=0.2)
    b = _ids(sites, fp, big)
    r = _claim(sites, fp, subject=b, reference="neighbour", relation="~", factor=1 / ft2)
    assert r.estimate == pytest.approx(10.764, rel=1e-3)
    assert r.verdict == "supported"
    assert _claim(sites, fp, subject=b, reference="neighbour", relation="~",
                  factor=1.0).verdict == "contradicted"


@pytest.mark.parametrize(("res_m", "expected"), [(0.5, "supported"), (10.0, "undecidable")])
def test_kusong_new_hall_twice_existing(res_m, expected):
    """Kusong tank plant: new hall about twice the existing one (Oct 2022 → Jun 2023)."""
    existing, new = box(0, 0, 120, 60), box(160, 0, 400, 60)
    sites, fp = _run({"2023-06-01": [new, existing]}, res_m=res_m, alt_shift_px=0.2)
    n = _ids(sites, fp, new)
    r = _claim(sites, fp, subject=n, reference="neighbour", relation="~", factor=2.0)
    assert r.verdict == expected


def test_panghyon_40m_hangars_at_10m_cannot_be_told_apart():
    """Two 40 m wide hangars, one 10% longer: undecidable at 10 m, decidable at 0.5 m."""
    a, b = box(0, 0, 40, 66), box(60, 0, 100, 60)
    for res, expected in ((10.0, "undecidable"), (0.5, "supported")):
        sites, fp = _run({"2025-03-28": [a, b]}, res_m=res, alt_shift_px=0.2)
        s = _ids(sites, fp, a)
        r = _claim(sites, fp, subject=s, reference="neighbour", relation=">", factor=1.0)
        assert r.verdict == expected, (res, r.sentence)


# --- CLI ---------------------------------------------------------------------------------

def _vector_run(tmp_path, ratio, sd_m=0.5):
    import geopandas as gpd
    from click.testing import CliRunner

    from geo.cli import main

    subj, ref = _pair(ratio)
    subj, ref = (shapely_translate(g) for g in (subj, ref))
    p = tmp_path / f"plant_{D0}.geojson"
    gpd.GeoDataFrame(geometry=[ref, subj], crs=32652).to_crs(4326).to_file(p, driver="GeoJSON")
    run = tmp_path / "run"
    cfg = tmp_path / "plant.toml"
    cfg.write_text("[output]\nreport = false\n")  # the HTML report is not under test here
    r = CliRunner().invoke(main, ["measure", str(p), "-o", str(run), "--digitising-sd-m",
                                  str(sd_m), "--aoi-name", "plant", "--config", str(cfg), "-q"])
    assert r.exit_code == 0, r.output
    return run


def shapely_translate(g):
    from shapely import affinity

    return affinity.translate(g, 500000.0, 4400000.0)


@pytest.mark.parametrize(("ratio", "relation", "code", "verdict"), [
    (2.31, ">", 0, "supported"), (1.5, ">", 3, "contradicted"), (2.0, ">", 4, "undecidable")])
def test_claim_cli_exit_codes_sentence_and_json(tmp_path, ratio, relation, code, verdict):
    import json

    from click.testing import CliRunner

    from geo.cli import main

    run = _vector_run(tmp_path, ratio)
    args = ["claim", str(run), "--subject", "plant:s2", "--reference", "neighbour",
            "--relation", relation, "--factor", "2"]
    r = CliRunner().invoke(main, [*args, "-q"])
    assert r.exit_code == code, r.output
    line = r.stdout.strip()
    assert line.startswith("plant:s2 more than twice as large as its neighbour plant:s1: ")
    assert verdict in line and "95% interval" in line
    r = CliRunner().invoke(main, [*args, "--json", "-q"])
    assert r.exit_code == code
    obj = json.loads(r.stdout)
    assert obj["verdict"] == verdict and obj["exit_code"] == code
    assert obj["lo"] <= obj["estimate"] <= obj["hi"]
    assert obj["estimate"] == pytest.approx(ratio, rel=1e-6)


def test_claim_cli_reads_geojson_when_no_gpkg(tmp_path):
    from click.testing import CliRunner

    from geo.cli import main

    run = _vector_run(tmp_path, 2.31)
    (run / "results.gpkg").unlink()
    r = CliRunner().invoke(main, ["claim", str(run), "--subject", "plant:s2", "--reference",
                                  "plant:s1", "--relation", ">", "--factor", "2", "-q"])
    assert r.exit_code == 0, r.output
    assert "(2.31x" in r.stdout


def test_claim_cli_errors_and_usage(tmp_path):
    from click.testing import CliRunner

    from geo.cli import main

    run = _vector_run(tmp_path, 2.31)
    base = ["claim", str(run), "--subject", "plant:s2", "--reference", "neighbour"]
    r = CliRunner().invoke(main, [*base, "--relation", "=>", "--factor", "2"])
    assert r.exit_code == 2
    r = CliRunner().invoke(main, [*base, "--relation", ">", "--factor", "-1"])
    assert r.exit_code == 2
    r = CliRunner().invoke(main, ["claim", str(run), "--subject", "plant:s9", "--reference",
                                  "neighbour", "--relation", ">", "--factor", "2"])
    assert r.exit_code == 1 and r.stderr.startswith("Error: ") and "site_id" in r.stderr
    r = CliRunner().invoke(main, ["claim", str(tmp_path / "nope"), "--subject", "a",
                                  "--reference", "neighbour", "--relation", ">", "--factor", "2"])
    assert r.exit_code == 1 and "run directory" in r.stderr


def test_claim_cli_on_fixture_run_dir(tmp_path):
    """The lead's hand-built run directory (GPKG layers in UTM)."""
    from click.testing import CliRunner

    from geo.cli import main

    try:
        from _runfixture import AOI, make_run_dir
    except ImportError:  # pragma: no cover
        pytest.skip("no run fixture")
    import json

    import geopandas as gpd

    run = make_run_dir(tmp_path / "fx")
    r = CliRunner().invoke(main, ["claim", str(run), "--subject", f"{AOI}:s1", "--reference",
                                  f"{AOI}:s2", "--relation", ">", "--factor", "2", "--json",
                                  "-q"])
    fp = gpd.read_file(run / "results.gpkg", layer="footprints")
    last = fp[fp.date == fp.date.max()].set_index("site_id").area_m2
    obj = json.loads(r.stdout)
    assert obj["estimate"] == pytest.approx(last[f"{AOI}:s1"] / last[f"{AOI}:s2"])
    assert r.exit_code == CODES[obj["verdict"]]


def test_claim_interval_equals_the_sites_table_interval():
    subj, ref = _pair(2.31)
    sites, fp = _run({D0: [subj, ref]}, res_m=3.0)
    s = _ids(sites, fp, subj)
    r = _claim(sites, fp, subject=s, reference="neighbour", relation=">", factor=2.0)
    row = sites.set_index("site_id").loc[s]
    assert (r.estimate, r.lo, r.hi) == pytest.approx(
        (row.neighbour_area_ratio, row.neighbour_area_ratio_lo, row.neighbour_area_ratio_hi))


def test_silli_rectangle_areas_and_ratio():
    """Sil-li drive-through building 122 m × 43 m and its 37 m × 30 m high bay (CSIS 2020)."""
    hall, bay = box(0, 0, 122, 43), box(150, 0, 187, 30)
    sites, fp = _run({"2020-06-01": [hall, bay]}, sd_m=0.3)
    areas = sites.set_index("site_id").area_m2
    assert sorted(areas.round(1)) == [1110.0, 5246.0]
    h = _ids(sites, fp, hall)
    r = _claim(sites, fp, subject=h, reference="neighbour", relation="~", factor=4.73)
    assert r.estimate == pytest.approx(5246 / 1110) and r.verdict == "supported"


def test_small_buildings_get_a_caution():
    a, b = box(0, 0, 40, 40), box(60, 0, 80, 40)  # 16 and 8 pixels at 10 m
    sites, fp = _run({D0: [a, b]}, res_m=10.0)
    r = _claim(sites, fp, subject=_ids(sites, fp, a), reference="neighbour", relation=">",
               factor=1.0)
    assert "caution: a building covers only 8 pixels" in r.sentence
    sites, fp = _run({D0: [a, b]}, res_m=0.5)
    r = _claim(sites, fp, subject=_ids(sites, fp, a), reference="neighbour", relation=">",
               factor=1.0)
    assert "caution" not in r.sentence
