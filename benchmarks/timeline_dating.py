"""Dating construction phases from dense stacks (SYNTHETIC), beside a per-pixel baseline.

SYNTHETIC data (geo.timeline_synth, not real imagery): a 120 x 80 m hall on a 300 m cropland
patch, 3 years of scenes with seasonal greenness, per-scene haze and gain, pixel noise,
cloud blobs in the mask, ~3 % unmasked thin veils, winter-heavy overcast (dropped scenes),
Sentinel-2 at 10 m and Landsat at 30 m (block-averaged, own gain). Each trial draws a history
(clearing in the first half, 1-6 months of bare soil, 3-12 months of construction, a metal,
dark or white roof). Per setting it reports, for the ``cleared`` and ``roofed`` dates:

- ``±1 mo``: share of trials whose estimate is within 31 days of the truth (missed = wrong);
- ``cover``: share whose 95 % interval ``(lo, hi]`` holds the truth; ``width``: its median
  length in days;
- ``wrong claims``: share of confident wrong verdicts on "EVENT before D" claims with D drawn
  within ±90 days of the truth (the worst bug: must be 0), and ``undecidable`` share;
- ``baseline ±1 mo``: a per-pixel LandTrendr-style baseline (monthly median composites per
  10 m pixel, Landsat repeated onto the 10 m grid, the largest NDVI drop = cleared, the
  largest later BSI drop = roofed, building date = median over the hall's pixels; no
  seasonal model, no intervals).

Settings: ``s2+landsat`` (S2 every 5 days + Landsat every 16, the S2 cadence target),
``weekly`` (S2 every 7 days), ``monthly`` (one S2 acquisition a month), ``landsat`` (Landsat only, every 16 days), ``cloudy``
(s2+landsat under persistent cloud), ``soil-roof`` (s2+landsat, roof the colour of soil).
Run:

    python benchmarks/timeline_dating.py [--trials 40] [--seed 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
import warnings
from typing import Any

import numpy as np

from geo import timeline as tl
from geo import timeline_synth as ts
from geo.geoarray import GeoArray

LABEL = "SYNTHETIC"
SETTINGS: dict[str, dict[str, Any]] = {
    "s2+landsat": {},
    "weekly": {"s2_days": 7.0, "landsat": False},
    "monthly": {"s2_days": 30.0, "landsat": False},
    "landsat": {"s2_days": 0.0, "landsat": True},
    "cloudy": {"cloudiness": 0.8, "winter_cloud": 0.15},
    "soil-roof": {"roofs": ("soil_roof",)},
}


def _ord(d: str) -> int:
    return dt.date.fromisoformat(d).toordinal()


def _baseline(stack: list[GeoArray]) -> dict[str, str | None]:
    """Per-pixel LandTrendr-style dates of the largest NDVI drop and later BSI drop."""
    rows, cols = slice(11, 19), slice(9, 21)  # the hall on the 10 m grid
    months: dict[str, list[np.ndarray]] = {}
    for ga in stack:
        rep = 3 if ga.grid.res_m == 30 else 1
        d = np.repeat(np.repeat(ga.data, rep, 1), rep, 2)[:, rows, cols]
        v = np.repeat(np.repeat(ga.valid, rep, 0), rep, 1)[rows, cols]
        nir, red, blue, swir = d[3], d[2], d[0], d[4]
        ndvi = (nir - red) / (nir + red)
        bsi = ((swir + red) - (nir + blue)) / ((swir + red) + (nir + blue))
        months.setdefault(ga.date[:7], []).append(np.where(v, np.stack([ndvi, bsi]), np.nan))
    keys = sorted(months)
    with warnings.catch_warnings():  # all-cloud months and pixels: NaN, skipped below
        warnings.simplefilter("ignore", RuntimeWarning)
        return _baseline_dates(months, keys)


def _baseline_dates(months: dict[str, list[np.ndarray]], keys: list[str]
                    ) -> dict[str, str | None]:
    comp = np.stack([np.nanmedian(np.stack(months[k]), axis=0) for k in keys])  # (m, 2, r, c)
    out: dict[str, str | None] = {}
    ndvi = comp[:, 0].reshape(len(keys), -1)
    bsi = comp[:, 1].reshape(len(keys), -1)
    t_clear = _largest_step(ndvi, sign=-1, start=np.zeros(ndvi.shape[1], int))
    t_roof = _largest_step(bsi, sign=-1, start=t_clear)
    for name, t in (("cleared", t_clear), ("roofed", t_roof)):
        m = int(np.median(t))
        out[name] = f"{keys[m]}-01" if 0 < m < len(keys) else None
    return out


def _largest_step(x: np.ndarray, *, sign: int, start: np.ndarray) -> np.ndarray:
    """Per pixel (column), the index where mean(after) - mean(before) is most ``sign``."""
    m = x.shape[0]
    best = np.zeros(x.shape[1], int)
    score = np.full(x.shape[1], -np.inf)
    for t in range(2, m - 1):
        before = np.array([np.nanmean(x[s:t, p]) if t - s >= 1 else np.nan
                           for p, s in enumerate(np.minimum(start, t - 1))])
        after = np.nanmean(x[t:], axis=0)
        sc = sign * (after - before)
        upd = np.nan_to_num(sc, nan=-np.inf) > score
        best[upd], score[upd] = t, sc[upd]
    return best


def _days(w: float | None) -> str:
    return "-" if w is None else f"{w:.0f} d"


def _trial(rng: np.random.Generator, setting: dict[str, Any]) -> dict[str, Any]:
    opts = dict(setting)
    roofs = opts.pop("roofs", ("metal_roof", "dark_roof", "white_roof"))
    h = ts.draw_history(rng, "2020-01-01", 3.0, roofs=roofs)
    stack = ts.stack(rng, h, **opts)
    t = tl.fit_timeline(tl.build_series(stack, ts.outline()))
    base = _baseline(stack)
    res: dict[str, Any] = {"n_scenes": len(t.dates)}
    for name, truth in (("cleared", h.cleared), ("roofed", h.roofed)):
        ev = t.event(name)
        res[f"{name}_within"] = ev.estimate is not None and abs(_ord(ev.estimate)
                                                                 - _ord(truth)) <= 31
        lo = ev.lo or "0000-00-00"
        res[f"{name}_cover"] = ev.hi is not None and lo < truth <= ev.hi
        res[f"{name}_width"] = (_ord(ev.hi) - _ord(ev.lo)) if ev.lo and ev.hi else None
        b = base[name]
        res[f"{name}_base"] = b is not None and abs(_ord(b) - _ord(truth)) <= 31
        verdicts = []
        for off in rng.uniform(-90, 90, 4):
            d = (dt.date.fromisoformat(truth) + dt.timedelta(days=float(off))).isoformat()
            v = tl.check_date_claim(ev, "before", d).verdict
            right = "supported" if truth < d else "contradicted"
            verdicts.append("undecidable" if v == "undecidable" else
                            "right" if v == right else "wrong")
        res[f"{name}_claims"] = verdicts
    return res


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"trials": len(rows),
                           "scenes": float(np.median([r["n_scenes"] for r in rows]))}
    for name in ("cleared", "roofed"):
        out[f"{name}_within_1mo"] = float(np.mean([r[f"{name}_within"] for r in rows]))
        out[f"{name}_coverage"] = float(np.mean([r[f"{name}_cover"] for r in rows]))
        out[f"{name}_baseline_1mo"] = float(np.mean([r[f"{name}_base"] for r in rows]))
        widths = [r[f"{name}_width"] for r in rows if r[f"{name}_width"] is not None]
        out[f"{name}_width_days"] = float(np.median(widths)) if widths else None
        claims = [v for r in rows for v in r[f"{name}_claims"]]
        out[f"{name}_wrong_claims"] = claims.count("wrong") / len(claims)
        out[f"{name}_undecidable"] = claims.count("undecidable") / len(claims)
    return out


def main() -> None:
    """Run every setting and print the table (SYNTHETIC)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--settings", nargs="*", default=list(SETTINGS))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    table: dict[str, Any] = {"label": LABEL, "trials": args.trials, "seed": args.seed}
    print(f"{LABEL} construction-dating benchmark, {args.trials} histories per setting, "
          f"seed {args.seed}")
    print(f"{'setting':<11} {'scenes':>6} | {'event':<7} {'±1 mo':>6} {'cover':>6} "
          f"{'width':>6} {'wrong':>6} {'undec':>6} | {'baseline ±1 mo':>14}")
    for name in args.settings:
        rng = np.random.default_rng(args.seed)
        t0 = time.perf_counter()
        s = _summary([_trial(rng, SETTINGS[name]) for _ in range(args.trials)])
        s["seconds"] = round(time.perf_counter() - t0, 1)
        table[name] = s
        for ev in ("cleared", "roofed"):
            print(f"{name:<11} {s['scenes']:>6.0f} | {ev:<7} {s[f'{ev}_within_1mo']:>6.0%} "
                  f"{s[f'{ev}_coverage']:>6.0%} {_days(s[f'{ev}_width_days']):>6} "
                  f"{s[f'{ev}_wrong_claims']:>6.1%} "
                  f"{s[f'{ev}_undecidable']:>6.0%} | {s[f'{ev}_baseline_1mo']:>14.0%}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(table, f, indent=2)


if __name__ == "__main__":
    main()
