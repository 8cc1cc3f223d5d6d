"""The report's construction-timeline figure: a building's series with its phases shaded."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from geo.export.furniture import PNG_OPTIONS

__all__ = ["TIMELINE_PNG", "timeline_figure_html"]

TIMELINE_PNG = "timeline.png"
"""The figure's file name in the report folder."""

_COLOURS = {"vegetated": "#cfe8c4", "cleared": "#e8d3b0", "construction": "#f2c48d",
            "roofed": "#c9d3e6", "unknown": "#eeeeee"}


def _num(d: object) -> float:
    """Matplotlib's date number (days since 1970-01-01, its default epoch) of an ISO date."""
    return float((pd.Timestamp(str(d)[:10]) - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1))


def _pick(series: pd.DataFrame, most: int = 6) -> list[str]:
    """The sites to draw: those with a change (≥ 2 phases) and ≥ 3 scenes, most phases first.

    Without any change, the one site with the most scenes (a flat timeline is still a
    finding); at most ``most`` sites.
    """
    n = series.groupby("site_id").agg(scenes=("date", "size"), phases=("phase", "nunique"))
    n = n[n["scenes"] >= 3].sort_values(["phases", "scenes"], ascending=False, kind="stable")
    changed = n[n["phases"] >= 2]
    return [str(s) for s in (changed if len(changed) else n).index[:most]]


def _intervals(sites: pd.DataFrame | None, sid: str) -> list[tuple[str, str, str, float]]:
    """``(event, lo, hi, confidence)`` of the site's dated events (both bounds known)."""
    if sites is None or "site_id" not in sites.columns:
        return []
    row = sites[sites["site_id"] == sid]
    out = []
    for ev in ("cleared", "roofed"):
        lo, hi = row.get(f"{ev}_date_lo"), row.get(f"{ev}_date_hi")
        if lo is None or hi is None or not len(row) or pd.isna(lo.iloc[0]) \
                or pd.isna(hi.iloc[0]):
            continue
        conf = row.get(f"{ev}_confidence")
        c = float(conf.iloc[0]) if conf is not None and pd.notna(conf.iloc[0]) else 0.0
        out.append((ev, str(lo.iloc[0])[:10], str(hi.iloc[0])[:10], c))
    return out


def _panel(ax: Any, g: pd.DataFrame, sid: str, sites: pd.DataFrame | None) -> None:
    """One site's series: phases shaded, index contrasts, event intervals in grey."""
    x = np.array([_num(d) for d in g["date"]])
    starts = [0] + [i for i in range(1, len(g)) if g["phase"].iloc[i] != g["phase"].iloc[i - 1]]
    for k, a in enumerate(starts):
        b = starts[k + 1] if k + 1 < len(starts) else len(g) - 1
        ph = str(g["phase"].iloc[a])
        ax.axvspan(float(x[a]), float(x[b]), color=_COLOURS.get(ph, "#eeeeee"), alpha=0.8, lw=0)
        ax.text(float(x[a]), 1.02, ph, transform=ax.get_xaxis_transform(), fontsize=8)
    rgb = bool(g["rgb"].any()) if "rgb" in g.columns else False
    curves = ((("ndvi_contrast", "C2", "excess green inside − ring"),
               ("bright_contrast", "C0", "brightness inside − ring")) if rgb else
              (("ndvi_contrast", "C2", "NDVI inside − ring"),
               ("bsi_contrast", "C1", "BSI inside − ring")))
    fine = (g["res_m"] <= 10).to_numpy()
    for col, colour, label in curves:
        y = g[col].to_numpy(dtype="float64")
        ax.plot(x, y, color=colour, lw=0.8, alpha=0.6)
        ax.scatter(x[fine], y[fine], color=colour, s=14, marker="o", label=label)
        ax.scatter(x[~fine], y[~fine], color=colour, s=18, marker="s")
    spans = _intervals(sites, sid)
    for _, lo, hi, _c in spans:
        ax.axvspan(_num(lo), _num(hi), color="black", alpha=0.25, lw=0)
    ax.xaxis_date()
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_ylabel("index contrast")
    ax.legend(fontsize=8, loc="lower left")
    told = "; ".join(f"{ev} {lo} – {hi} (confidence {c:.2f})" for ev, lo, hi, c in spans)
    told = told or "no cleared or roofed date in the series"
    ax.set_title(f"{sid}{' (RGB)' if rgb else ''}: {told}", pad=14, fontsize=10)


def timeline_figure_html(timeline_csv: Path, sites: pd.DataFrame | None, out: Path,
                         *, dpi: int = 110) -> str:
    """``<figure>`` HTML of the buildings' timelines, or ``""`` without ``timeline.csv``.

    One panel per building with a change (:func:`_pick`): inside − ring NDVI and BSI per
    scene (RGB series: excess green and brightness; circles: 10 m or finer, squares: coarser
    sensors), the phases shaded and the ``cleared``/``roofed`` 95 % intervals from ``sites``.
    """
    if not timeline_csv.is_file():
        return ""
    series = pd.read_csv(timeline_csv)
    sids = _pick(series) if len(series) else []
    if not sids:
        return ""
    fig = Figure(figsize=(11, 3.4 * len(sids) + 0.6))
    axes = fig.subplots(len(sids), 1, squeeze=False)[:, 0]
    for ax, sid in zip(axes, sids, strict=True):
        _panel(ax, series[series["site_id"] == sid].sort_values("date"), sid, sites)
    fig.suptitle("Construction timeline", fontsize=12)
    fig.subplots_adjust(left=0.07, right=0.98, top=1 - 0.9 / (3.4 * len(sids) + 0.6),
                        bottom=0.35 / (3.4 * len(sids) + 0.6), hspace=0.45)
    FigureCanvasAgg(fig)
    name = TIMELINE_PNG
    fig.savefig(out / name, dpi=dpi, facecolor="white", pil_kwargs=PNG_OPTIONS)
    names = ", ".join(html.escape(s) for s in sids)
    cap = (f"{names}: inside-minus-ring indices on every usable scene (multispectral: NDVI and "
           "BSI; RGB: excess green and brightness; circles 10 m or finer, squares coarser "
           "sensors such as Landsat 30 m), phases shaded, grey bands: the 95 % intervals of "
           "the cleared and roofed dates. An RGB series cannot tell a roof from a paved yard: "
           "its roofed dates stay below the confidence a date claim needs.")
    return (f'<figure><img src="{name}" alt="construction timeline">'
            f"<figcaption>{cap}</figcaption></figure>")
