"""Compare a SYNTHETIC demo run with its truth footprints (I/O: reads the run directory)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd

from geo._convert import finite_or_none
from geo.rundir import RunDir

__all__ = ["compare_to_truth", "format_comparison"]


def _read(path: Path, crs: str) -> gpd.GeoDataFrame:
    gdf = gpd.read_file(path)
    return gdf.set_crs("EPSG:4326", allow_override=True).to_crs(crs)




def compare_to_truth(run_dir: Path, truth_path: Path) -> dict[str, Any]:
    """Match truth halls to measured sites (best IoU on the last date) and compare.

    Returns a JSON-ready dict with ``halls`` (truth vs measured area per hall)
    and ``pair`` (hall B against its neighbour A: truth ratio, measured ratio and
    95% interval, whether the interval contains the truth).
    """
    rd = RunDir(run_dir)
    grid = json.loads(rd.grid_json.read_text())
    crs = grid["crs"]
    truth = _read(truth_path, crs)
    sites = _read(rd.layer("sites"), crs)
    fps = _read(rd.layer("footprints"), crs)
    last = str(truth["date"].max())
    halls: list[dict[str, Any]] = []
    site_of: dict[str, str] = {}
    for hall in sorted(truth["hall"].unique()):
        t = truth[truth["hall"] == hall].sort_values("date")
        t_last = t.iloc[-1]
        cand = fps[fps["date"] == t_last["date"]]
        best, best_iou = None, 0.0
        for _, f in cand.iterrows():
            inter = f.geometry.intersection(t_last.geometry).area
            iou = inter / f.geometry.union(t_last.geometry).area
            if iou > best_iou:
                best, best_iou = f, iou
        row: dict[str, Any] = {"hall": str(hall), "date": str(t_last["date"]),
                               "truth_area_m2": round(float(t_last["area_m2"]), 1),
                               "demolished": str(t_last["date"]) < last}
        if best is not None and best_iou > 0.25:
            site_of[str(hall)] = str(best["site_id"])
            area = float(best["area_m2"])
            row.update(site_id=str(best["site_id"]), iou=round(best_iou, 3),
                       area_m2=round(area, 1), area_m2_lo=finite_or_none(best.get("area_m2_lo")),
                       area_m2_hi=finite_or_none(best.get("area_m2_hi")),
                       area_error_frac=round(area / float(t_last["area_m2"]) - 1, 4))
            lo_, hi_ = row["area_m2_lo"], row["area_m2_hi"]
            row["contains_truth"] = (None if lo_ is None or hi_ is None else
                                     bool(lo_ <= float(t_last["area_m2"]) <= hi_))
        halls.append(row)
    pair: dict[str, Any] = {}
    if "A" in site_of and "B" in site_of:
        b = sites[sites["site_id"] == site_of["B"]].iloc[0]
        ta = float(truth[(truth["hall"] == "A") & (truth["date"] == last)]["area_m2"].iloc[0])
        tb = float(truth[(truth["hall"] == "B") & (truth["date"] == last)]["area_m2"].iloc[0])
        tb0 = float(truth[truth["hall"] == "B"].sort_values("date")["area_m2"].iloc[0])
        ratio, lo, hi = (finite_or_none(b.get(k)) for k in (
            "neighbour_area_ratio", "neighbour_area_ratio_lo", "neighbour_area_ratio_hi"))
        pair = {"subject": site_of["B"], "neighbour": str(b.get("neighbour_id")),
                "neighbour_is_A": str(b.get("neighbour_id")) == site_of["A"],
                "truth_ratio": round(tb / ta, 4), "ratio": ratio, "ratio_lo": lo, "ratio_hi": hi,
                "contains_truth": (lo is not None and hi is not None and lo <= tb / ta <= hi),
                "ratio_error_frac": None if ratio is None else round(ratio / (tb / ta) - 1, 4),
                "truth_growth_ratio": round(tb / tb0, 4),
                "growth_ratio": finite_or_none(b.get("growth_ratio")),
                "growth_ratio_lo": finite_or_none(b.get("growth_ratio_lo")),
                "growth_ratio_hi": finite_or_none(b.get("growth_ratio_hi")),
                "sentence": b.get("sentence")}
        try:
            from geo.claims import check_claim
            from geo.config import MeasureParams
            from geo.export.claims_record import claim_record

            res = check_claim(sites, fps, subject=site_of["B"], reference="neighbour",
                              relation=">", factor=2.0, params=MeasureParams())
            pair["claim"] = {"text": "more than twice as large as its neighbour",
                             "verdict": res.verdict, "sentence": res.sentence,
                             "record": claim_record(res, reference="neighbour")}
        except ImportError:  # pragma: no cover - claims module not installed
            pass
    return {"synthetic": True, "halls": halls, "pair": pair}


def _f(v: Any, fmt: str = ".0f") -> str:
    return "—" if v is None else format(v, fmt)


def format_comparison(result: dict[str, Any]) -> str:
    """Human-readable table of :func:`compare_to_truth` (SYNTHETIC data)."""
    lines = ["SYNTHETIC demo — measured vs truth (areas on the last date each hall exists)", "",
             f"{'hall':<5} {'site':<18} {'truth m²':>9} {'measured m²':>12} {'95% interval':>17} "
             f"{'error':>7}  truth in interval"]
    missed = []
    for h in result["halls"]:
        iv = f"{_f(h.get('area_m2_lo'))}–{_f(h.get('area_m2_hi'))}"
        err = h.get("area_error_frac")
        inside = h.get("contains_truth")
        mark = "—" if inside is None else "yes" if inside else "NO  <-- truth outside interval"
        if inside is False:
            missed.append(h["hall"])
        lines.append(f"{h['hall']:<5} {h.get('site_id', 'not found'):<18} "
                     f"{h['truth_area_m2']:>9.0f} {_f(h.get('area_m2')):>12} {iv:>17} "
                     f"{'—' if err is None else f'{err:+.1%}':>7}  {mark}")
    if missed:
        lines.append(f"Hall(s) {', '.join(missed)}: the true area lies outside the 95% "
                     "interval, so those intervals are too narrow here.")
    p = result.get("pair") or {}
    if p:
        lines += ["", "Neighbour pair (hall B vs its neighbour A):",
                  f"  truth ratio    {p['truth_ratio']:.3f}",
                  f"  measured ratio {_f(p['ratio'], '.3f')} (95% interval "
                  f"{_f(p['ratio_lo'], '.3f')}–{_f(p['ratio_hi'], '.3f')}); interval contains "
                  f"truth: {'yes' if p['contains_truth'] else 'NO'}; neighbour found is A: "
                  f"{'yes' if p['neighbour_is_A'] else 'NO'}",
                  f"  growth of B    truth {p['truth_growth_ratio']:.3f}, measured "
                  f"{_f(p['growth_ratio'], '.3f')} ({_f(p['growth_ratio_lo'], '.3f')}–"
                  f"{_f(p['growth_ratio_hi'], '.3f')})"]
        if p.get("sentence"):
            lines.append(f"  report: {p['sentence']}")
        if p.get("claim"):
            lines.append(f"  claim check: {p['claim']['sentence']}")
    return "\n".join(lines)
