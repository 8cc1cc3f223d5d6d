"""Calibration study of the area-uncertainty model (SYNTHETIC buildings).

Do the 95% intervals of :mod:`geo.measure` contain the truth 95% of the time?

Each trial images a pair of rectangular buildings (random size 500–20,000 m², aspect 1–3,
orientation and sub-pixel phase) on two dates and measures them the way an imagery run does:

* imaging: exact pixel coverage (supersampled), Gaussian PSF with sigma 0.5–1 px, Gaussian
  noise (contrast-to-noise 6–20), a smooth background texture, a misregistration of up to 1 px
  in a random direction that co-registration removes up to a residual (0–0.2 px), with
  bilinear resampling;
* detection: a half-maximum threshold (half-way between the ground and roof levels, which are
  estimated from an Otsu split), off by a random per-date error of sd 10% of the contrast
  (real detectors are unsure of the boundary: materials, shadows, index choice); holes filled;
  the alternative mask (``area_alt_m2``) at the threshold moved by that sd, 10% of contrast;
* measurement: pixel count × pixel area, perimeter of the pixel outline, ``boundary_sd_m =
  res / (2√3)``, ``coreg_residual_m`` = the residual → :func:`geo.measure.area_errors`.

Coverage is counted for the areas, for the neighbour ratio (two buildings, same date,
correlated errors) and for growth (one building on two dates, independent errors). Trials
where detection lost a building or fused the pair are counted and reported, not scored.

Usage::

    python benchmarks/calibration.py            # about 2 minutes on 2 cores
    python benchmarks/calibration.py --quick    # about 30 seconds

Prints a markdown table and writes ``benchmarks/out/calibration.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage
from shapely.geometry import Polygon
from skimage.filters import threshold_otsu
from skimage.measure import label

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geo.config import MeasureParams
from geo.footprints import edge_corr_len_m
from geo.measure import area_errors, area_interval, ratio_interval

RESOLUTIONS_M = (0.5, 3.0, 10.0)
SIZE_BINS_M2 = ((500.0, 2000.0), (2000.0, 6000.0), (6000.0, 20000.0))
LABEL = "SYNTHETIC"
THRESHOLD_SD_FRAC = 0.1
"""1-sigma threshold error of the simulated detector, as a fraction of roof/ground contrast;
the alternative mask (``area_alt_m2``) is taken at this offset."""


def _rect_corners(cx: float, cy: float, length: float, width: float, theta: float):
    c, s = math.cos(theta), math.sin(theta)
    hl, hw = length / 2, width / 2
    pts = [(-hl, -hw), (hl, -hw), (hl, hw), (-hl, hw)]
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]


def _coverage(shape: tuple[int, int], res: float, rects: list[tuple[float, ...]],
              offset: tuple[float, float], ss: int) -> np.ndarray:
    """Fraction of each pixel covered by the rectangles (supersampled ss×ss)."""
    rows, cols = shape
    sub = (np.arange(ss) + 0.5) / ss
    xs = ((np.arange(cols)[:, None] + sub[None, :]).ravel()) * res + offset[0]
    ys = ((np.arange(rows)[:, None] + sub[None, :]).ravel()) * res + offset[1]
    cov = np.zeros((rows * ss, cols * ss), dtype=np.float32)
    for cx, cy, length, width, theta in rects:
        c, s = math.cos(theta), math.sin(theta)
        # bounding box in sub-pixel indices, for speed
        ext = (length + width) / 2 + res
        c0 = max(0, int((cx - ext - offset[0]) / res * ss))
        c1 = min(cols * ss, int((cx + ext - offset[0]) / res * ss) + 1)
        r0 = max(0, int((cy - ext - offset[1]) / res * ss))
        r1 = min(rows * ss, int((cy + ext - offset[1]) / res * ss) + 1)
        dx = xs[None, c0:c1] - cx
        dy = ys[r0:r1, None] - cy
        u = dx * c + dy * s
        v = -dx * s + dy * c
        inside = (np.abs(u) <= length / 2) & (np.abs(v) <= width / 2)
        cov[r0:r1, c0:c1] = np.maximum(cov[r0:r1, c0:c1], inside)
    return cov.reshape(rows, ss, cols, ss).mean(axis=(1, 3))


def _image(rng: np.random.Generator, shape: tuple[int, int], res: float,
           rects: list[tuple[float, ...]]) -> tuple[np.ndarray, float]:
    """One date: coverage → PSF → misregistration + co-registration → noise. Returns residual."""
    ss = 8 if res >= 3 else 4
    mis = rng.uniform(0, 1.0) * res
    ang = rng.uniform(0, 2 * math.pi)
    shift = (mis * math.cos(ang), mis * math.sin(ang))
    cov = _coverage(shape, res, rects, shift, ss)
    psf_px = rng.uniform(0.5, 1.0)
    contrast = rng.uniform(0.25, 0.6)
    img = 0.15 + contrast * ndimage.gaussian_filter(cov.astype(np.float64), psf_px)
    tex = ndimage.gaussian_filter(rng.standard_normal(shape), 6.0)
    img += 0.02 * tex / max(float(tex.std()), 1e-9)
    # co-registration: estimate the shift up to a residual, resample bilinearly
    resid_px = rng.uniform(0, 0.2)
    ang2 = rng.uniform(0, 2 * math.pi)
    est = (shift[0] / res + resid_px * math.cos(ang2), shift[1] / res + resid_px * math.sin(ang2))
    img = ndimage.shift(img, (est[1], est[0]), order=1, mode="nearest")
    cnr = rng.uniform(6, 20)
    img += rng.standard_normal(shape) * contrast / cnr
    return img, resid_px * res


def _perimeter_px(mask: np.ndarray) -> int:
    m = np.pad(mask, 1)
    return int((m[1:, :] != m[:-1, :]).sum() + (m[:, 1:] != m[:, :-1]).sum())


def _measure(img: np.ndarray, res: float, centres: list[tuple[float, float]],
             threshold_err: float):
    # adaptive half-maximum detector: Otsu separates roof from ground, then the threshold is
    # set half-way between the ground level (median outside the dilated Otsu mask) and the
    # roof level (median of interior pixels, or the brightest pixels of small buildings)
    t0 = float(threshold_otsu(img))
    rough = img > t0
    ground = float(np.median(img[~ndimage.binary_dilation(rough, iterations=2)]))
    inner = ndimage.binary_erosion(rough, iterations=2)
    roof = float(np.median(img[inner])) if inner.sum() >= 4 else float(np.percentile(img, 99.9))
    # real detectors are less sure of the roof/ground boundary (materials, shadows, index
    # choice): the threshold is off by ``threshold_err`` × contrast, drawn per date
    t = (ground + roof) / 2 + threshold_err * (roof - ground)
    t_alt = t + THRESHOLD_SD_FRAC * (roof - ground)
    # footprints have no holes: noise specks inside a roof are filled (both thresholds)
    mask = ndimage.binary_fill_holes(img > t)
    alt = ndimage.binary_fill_holes(img > t_alt)
    lab = label(mask, connectivity=1)
    alab = label(alt, connectivity=1)
    out = []
    seen: set[int] = set()
    for cx, cy in centres:
        r, c = int(cy / res), int(cx / res)
        k = int(lab[r, c]) if 0 <= r < lab.shape[0] and 0 <= c < lab.shape[1] else 0
        if k == 0:
            # the centre pixel may miss on tiny buildings: take the largest label nearby
            win = lab[max(0, r - 2):r + 3, max(0, c - 2):c + 3]
            vals = win[win > 0]
            k = int(np.bincount(vals).argmax()) if len(vals) else 0
        if k == 0 or k in seen:
            return None  # lost or fused with its neighbour
        seen.add(k)
        comp = lab == k
        n_px = int(comp.sum())
        ak = np.unique(alab[comp & (alab > 0)])
        alt_px = int(np.isin(alab, ak).sum()) if len(ak) else 0
        out.append({
            "area_m2": n_px * res * res,
            "perimeter_m": _perimeter_px(comp) * res,
            "area_alt_m2": alt_px * res * res,
        })
    return out


def _trial(args: tuple[int, float]) -> dict[str, Any] | None:
    seed, res = args
    rng = np.random.default_rng(seed)
    lo_a, hi_a = math.log(500.0), math.log(20000.0)
    a1 = math.exp(rng.uniform(lo_a, hi_a))
    b1 = math.exp(rng.uniform(lo_a, hi_a))
    asp_a, asp_b = rng.uniform(1, 3), rng.uniform(1, 3)
    growth = math.exp(rng.uniform(math.log(1.0), math.log(2.5)))
    theta = rng.uniform(0, math.pi / 2)
    la, wa = math.sqrt(a1 * asp_a), math.sqrt(a1 / asp_a)
    lb, wb = math.sqrt(b1 * asp_b), math.sqrt(b1 / asp_b)
    la2 = la * growth  # grows along its length
    gap = max(3 * res, 10.0) + rng.uniform(0, 2) * res
    nx, ny = -math.sin(theta), math.cos(theta)  # across A's width
    ux, uy = math.cos(theta), math.sin(theta)  # along A's length
    off = wa / 2 + gap + wb / 2
    ca = (0.0, 0.0)
    along = rng.uniform(-0.3, 0.3) * la
    cb = (off * nx + along * ux, off * ny + along * uy)
    ca2 = ((la2 - la) / 2 * ux, (la2 - la) / 2 * uy)  # grows away from one end
    corners = (_rect_corners(*ca2, la2, wa, theta) + _rect_corners(*cb, lb, wb, theta))
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    margin = 6 * res + 10.0
    ncol = math.ceil((max(xs) - min(xs) + 2 * margin) / res)
    nrow = math.ceil((max(ys) - min(ys) + 2 * margin) / res)
    dx = -min(xs) + margin + rng.uniform(0, res)
    dy = -min(ys) + margin + rng.uniform(0, res)
    ca, cb, ca2 = ((c[0] + dx, c[1] + dy) for c in (ca, cb, ca2))
    shape = (nrow, ncol)
    img1, r1 = _image(rng, shape, res, [(*ca, la, wa, theta), (*cb, lb, wb, theta)])
    img2, r2 = _image(rng, shape, res, [(*ca2, la2, wa, theta), (*cb, lb, wb, theta)])
    m1 = _measure(img1, res, [ca, cb], THRESHOLD_SD_FRAC * rng.standard_normal())
    m2 = _measure(img2, res, [ca2, cb], THRESHOLD_SD_FRAC * rng.standard_normal())
    base = {"res_m": res, "area_a_m2": a1, "area_b_m2": b1, "growth": growth}
    if m1 is None or m2 is None:
        return {**base, "ok": False}
    feats = [m1[0], m1[1], m2[0]]
    truth = np.array([la * wa, lb * wb, la2 * wa])
    e = area_errors(
        np.array([f["area_m2"] for f in feats]), np.array([f["perimeter_m"] for f in feats]),
        res_m=res, boundary_sd_m=res / (2 * math.sqrt(3)),
        coreg_residual_m=np.array([r1, r1, r2]),
        area_alt_m2=np.array([f["area_alt_m2"] for f in feats]),
        # as the pipeline does (geo.footprints.polygonize): from the outline's orientation
        edge_corr_len_m=np.array([
            edge_corr_len_m(Polygon(_rect_corners(*c, ln, wd, theta)), res)
            for c, ln, wd in ((ca, la, wa), (cb, lb, wb), (ca2, la2, wa))]),
    )
    area = np.array([f["area_m2"] for f in feats])
    alo, ahi = area_interval(area, e.total)
    p = MeasureParams()
    _, nlo, nhi = ratio_interval(area[0], (e.independent[0], e.common[0]), area[1],
                                 (e.independent[1], e.common[1]), common_corr=p.same_date_corr,
                                 n_draws=p.n_draws, seed=seed)
    _, glo, ghi = ratio_interval(area[2], (e.independent[2], e.common[2]), area[0],
                                 (e.independent[0], e.common[0]), common_corr=0.0,
                                 n_draws=p.n_draws, seed=seed + 1)
    return {
        **base, "ok": True,
        "area_true_m2": truth.tolist(), "area_m2": area.tolist(),
        "area_in": ((alo <= truth) & (truth <= ahi)).tolist(),
        "area_rel_err": ((area - truth) / truth).tolist(),
        "area_rel_sd": (e.total / area).tolist(),
        "ratio_true": truth[0] / truth[1],
        "ratio_in": bool(nlo[0] <= truth[0] / truth[1] <= nhi[0]),
        "ratio_rel_halfwidth": float((nhi[0] - nlo[0]) / 2 / (area[0] / area[1])),
        "growth_in": bool(glo[0] <= growth <= ghi[0]),
        "ind_m2": e.independent.tolist(), "com_m2": e.common.tolist(),
        "alt_rel": ((np.array([f["area_alt_m2"] for f in feats]) - area) / area).tolist(),
    }


def _bin_of(a: float) -> int:
    for i, (lo, hi) in enumerate(SIZE_BINS_M2):
        if lo <= a < hi or (i == len(SIZE_BINS_M2) - 1 and a >= lo):
            return i
    return 0


def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for res in RESOLUTIONS_M:
        for bi, (blo, bhi) in enumerate((*SIZE_BINS_M2, (500.0, 20000.0))):
            all_bins = bi == len(SIZE_BINS_M2)
            rs = [r for r in results if r["res_m"] == res]
            ok = [r for r in rs if r["ok"]]
            a_in: list[bool] = []
            w: list[float] = []
            for r in ok:
                for k in range(3):
                    if all_bins or _bin_of(r["area_true_m2"][k]) == bi:
                        a_in.append(r["area_in"][k])
                        w.append(r["area_rel_sd"][k])
            pairs = [r for r in ok if all_bins or _bin_of(min(r["area_true_m2"][:2])) == bi]
            tried = [r for r in rs
                     if all_bins or _bin_of(min(r["area_a_m2"], r["area_b_m2"])) == bi]
            rows.append({
                "res_m": res,
                "size_m2": "500–20,000 (all)" if all_bins else f"{blo:,.0f}–{bhi:,.0f}",
                "n_areas": len(a_in),
                "area_coverage": float(np.mean(a_in)) if a_in else float("nan"),
                "median_area_rel_sd": float(np.median(w)) if w else float("nan"),
                "n_pairs": len(pairs),
                "ratio_coverage": float(np.mean([r["ratio_in"] for r in pairs]))
                if pairs else float("nan"),
                "growth_coverage": float(np.mean([r["growth_in"] for r in pairs]))
                if pairs else float("nan"),
                "median_ratio_rel_halfwidth": float(np.median(
                    [r["ratio_rel_halfwidth"] for r in pairs])) if pairs else float("nan"),
                "n_failed": len(tried) - len([r for r in tried if r["ok"]]),
            })
    return rows


def markdown(rows: list[dict[str, Any]], n_trials: int) -> str:
    lines = [
        f"Calibration of 95% intervals on {LABEL} buildings ({n_trials} trials per resolution; "
        "target coverage 93–97%)",
        "",
        "| res (m) | building size (m²) | areas | area coverage | median area ± (1σ) | pairs "
        "| neighbour-ratio coverage | growth coverage | median ratio ± (95%) | lost/fused |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['res_m']:g} | {r['size_m2']} | {r['n_areas']} | {r['area_coverage']:.1%} "
            f"| {r['median_area_rel_sd']:.1%} | {r['n_pairs']} | {r['ratio_coverage']:.1%} "
            f"| {r['growth_coverage']:.1%} | {r['median_ratio_rel_halfwidth']:.1%} "
            f"| {r['n_failed']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 trials per resolution")
    ap.add_argument("--trials", type=int, default=None, help="trials per resolution (400)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"))
    a = ap.parse_args(argv)
    n = a.trials or (100 if a.quick else 400)
    jobs = [(a.seed + 1000 * i + k, res) for i, res in enumerate(RESOLUTIONS_M) for k in range(n)]
    t0 = time.perf_counter()
    if a.workers > 1:
        with ProcessPoolExecutor(a.workers) as ex:
            results = [r for r in ex.map(_trial, jobs, chunksize=8) if r is not None]
    else:
        results = [r for r in map(_trial, jobs) if r is not None]
    rows = summarise(results)
    md = markdown(rows, n)
    print(md)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"label": LABEL, "trials_per_resolution": n, "seed": a.seed,
               "seconds": round(time.perf_counter() - t0, 1), "rows": rows,
               "command": "python benchmarks/calibration.py" + (" --quick" if a.quick else "")}
    tmp = out / ".calibration.json.tmp"
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, out / "calibration.json")
    print(f"\n({payload['seconds']} s; wrote {out / 'calibration.json'})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
