"""Claim-verdict study: how often does automatic mode give a confidently WRONG verdict?

SYNTHETIC scenes (geo.factory_scene, labelled synthetic): the factory of issue 12 (a 120 x 80 m
neighbour A and a new hall B of 90 x 60 -> 150 x 90 -> 200 x 110 m, 50 m apart on a gravel yard
among bare fields), rendered Sentinel-2-like (area-weighted edge pixels, Gaussian PSF of
0.5 px, noise, per-date sub-pixel shifts and gains) at 3, 10, 20 and 30 m, with a grey or a blue
roof on B, several random seeds. Each date is run through the pipeline's own compute stages,
as `factorywatch run` calls them (no co-registration: shifts are under 0.3 px):
``building_mask`` (auto) -> ``polygonize`` -> ``gate_footprints`` -> ``track_footprints`` ->
``adjacent_spread`` -> ``measure_sites`` -> ``check_claim``, with B's reference named (the
site at A's centre) and as ``neighbour`` (whatever check_claim picks). On each date the claims
"B > F x A" for F in 0.5, 1, 1.5, 2, 3 and "B < F x A" for F in 1, 2 are checked against the
true ratios 0.56, 1.41, 2.29.

A verdict is WRONG when it says supported for a false claim or contradicted for a true one.
Undecidable is allowed and counted, as are claims that cannot be asked (B or A not found
as its own building: "not separated").

    python benchmarks/claim_study.py [--seeds 4] [--detector auto|builtup] [--no-gates]
                                     [--json out.json]

``--detector builtup --no-gates`` is close to the former 10 m behaviour (scene-wide built-up
threshold, no plausibility gates; the small-building blocker in check_claim stays on).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from affine import Affine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geo.claims import check_claim  # noqa: E402
from geo.config import DetectParams, MatchParams, MeasureParams  # noqa: E402
from geo.detect import building_mask  # noqa: E402
from geo.factory_scene import BANDS, FactoryLayout, issue12_factory, render_factory  # noqa: E402
from geo.footprints import polygonize  # noqa: E402
from geo.geoarray import GeoArray  # noqa: E402
from geo.grid import Grid  # noqa: E402
from geo.match import track_footprints  # noqa: E402
from geo.measure import measure_sites  # noqa: E402
from geo.plausibility import adjacent_spread, gate_footprints  # noqa: E402

CLAIMS = [(">", 0.5), (">", 1.0), (">", 1.5), (">", 2.0), (">", 3.0), ("<", 1.0), ("<", 2.0)]
X0, Y0 = 600000.0, 4500000.0


def _truth(rel: str, factor: float, ratio: float) -> bool:
    return ratio > factor if rel == ">" else ratio < factor


def run_series(lay: FactoryLayout, res_m: float, seed: int, detector: str, *, gates: bool = True
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pipeline's compute stages on one rendered series; returns (sites, footprints)."""
    imgs = render_factory(lay, res_m=res_m, seed=seed)
    grid = Grid("EPSG:32652", Affine(res_m, 0, X0, 0, -res_m, Y0), imgs[0].shape[1:])
    det = DetectParams(method=detector)  # type: ignore[arg-type]
    fps = []
    for d, im in zip(lay.dates, imgs, strict=True):
        ga = GeoArray(data=im, valid=np.ones(grid.shape, bool), grid=grid, date=d, bands=BANDS)
        bm = building_mask(ga, det)
        fp = polygonize(bm.mask, grid, date=d, aoi_name="f", min_area_m2=det.min_area_m2,
                        alt_mask=bm.alt_mask, invalid=~ga.valid)
        if gates:
            fp = gate_footprints(fp, valid_area_m2=float(ga.valid.sum()) * grid.pixel_area_m2,
                                 params=det)
        fps.append(fp)
    allfp = pd.concat(fps, ignore_index=True)
    import geopandas as gpd

    allfp = gpd.GeoDataFrame(allfp, geometry="geometry", crs=grid.crs)
    tracks = track_footprints(allfp, dates=list(lay.dates), aoi_name="f", params=MatchParams())
    fp2 = gpd.GeoDataFrame(adjacent_spread(tracks.footprints, tracks.events),
                           geometry="geometry", crs=grid.crs)
    tracks = measure_sites(type(tracks)(footprints=fp2, sites=tracks.sites,
                                        events=tracks.events), MeasureParams())
    return tracks.sites, tracks.footprints


def _site_at(fps: pd.DataFrame, date: str, xy: tuple[float, float]) -> str | None:
    pt = shapely.Point(X0 + xy[0], Y0 - xy[1])
    hit = fps[(fps["date"] == date) & fps.geometry.contains(pt)]
    return None if hit.empty else str(hit["site_id"].iloc[0])


def _judge(verdict: str, truth: bool) -> str:
    if (verdict == "supported" and not truth) or (verdict == "contradicted" and truth):
        return "WRONG"
    return "undecidable" if verdict == "undecidable" else "right"


def study(seeds: int, detector: str, *, gates: bool = True,
          resolutions: tuple[float, ...] = (3.0, 10.0, 20.0, 30.0)) -> list[dict[str, object]]:
    """Every claim on every date of every series; one row per claim and reference mode.

    Reference ``A``: the site at A's centre, named. Reference ``neighbour``: whatever
    ``check_claim`` picks as B's neighbour, judged against the truth about A (what the
    published claim means).
    """
    rows: list[dict[str, object]] = []
    for res in resolutions:
        for roof in ("roof_grey", "roof_blue"):
            lay = issue12_factory(new_hall_roof=roof)
            for seed in range(seeds):
                sites, fps = run_series(lay, res, seed, detector, gates=gates)
                for d in lay.dates:
                    rows += _claims_on(lay, d, sites, fps, {"res_m": res, "roof": roof,
                                                           "seed": seed, "date": d})
    return rows


def _claims_on(lay: FactoryLayout, d: str, sites: pd.DataFrame, fps: pd.DataFrame,
               key: dict[str, object]) -> list[dict[str, object]]:
    from geo.claims import ClaimError

    ratio = lay.truth_area_m2("B", d) / lay.truth_area_m2("A", d)
    sb = _site_at(fps, d, lay.centre("B", d))
    sa = _site_at(fps, d, lay.centre("A", d))
    rows: list[dict[str, object]] = []
    for mode in ("A", "neighbour"):
        for rel, f in CLAIMS:
            truth = _truth(rel, f, ratio)
            row = {**key, "reference": mode, "true_ratio": round(ratio, 3), "relation": rel,
                   "factor": f, "claim_true": truth}
            ref = sa if mode == "A" else "neighbour"
            if sb is None or ref is None or sb == ref:
                rows.append({**row, "outcome": "not separated"})
                continue
            try:
                r = check_claim(sites, fps, subject=sb, reference=ref, relation=rel,
                                factor=f, date=d, params=MeasureParams())
            except ClaimError:
                rows.append({**row, "outcome": "not separated"})
                continue
            rows.append({**row, "outcome": _judge(r.verdict, truth), "verdict": r.verdict,
                         "estimate": r.estimate, "lo": r.lo, "hi": r.hi,
                         "blocked": "; ".join(r.reasons)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--detector", default="auto", choices=["auto", "builtup", "rgb-objects",
                                                            "contrast-objects"])
    ap.add_argument("--no-gates", action="store_true",
                    help="skip gate_footprints (no region / unstable flags), for comparison")
    ap.add_argument("--res", type=float, nargs="+", default=[3.0, 10.0, 20.0, 30.0])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = study(args.seeds, args.detector, gates=not args.no_gates,
                 resolutions=tuple(args.res))
    df = pd.DataFrame(rows)
    print(f"SYNTHETIC claim-verdict study, detector={args.detector}, gates={not args.no_gates}, "
          f"seeds={args.seeds}, {len(df)} claims, {time.perf_counter() - t0:.0f} s")
    print(f"{'res_m':>5s} {'reference':>9s} {'claims':>6s} {'right':>6s} {'WRONG':>6s} "
          f"{'undecidable':>11s} {'not separated':>13s}")
    for (res, mode), g in df.groupby(["res_m", "reference"]):
        c = Counter(g["outcome"])
        print(f"{res:5g} {mode:>9s} {len(g):6d} {c['right']:6d} {c['WRONG']:6d} "
              f"{c['undecidable']:11d} {c['not separated']:13d}")
    c = Counter(df["outcome"])
    print(f"{'all':>5s} {'':>9s} {len(df):6d} {c['right']:6d} {c['WRONG']:6d} {c['undecidable']:11d} "
          f"{c['not separated']:13d}")
    wrong = df[df["outcome"] == "WRONG"]
    if len(wrong):
        print(wrong[["res_m", "roof", "seed", "date", "reference", "true_ratio", "relation",
                     "factor",
                     "verdict", "estimate", "lo", "hi"]].to_string(index=False))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
