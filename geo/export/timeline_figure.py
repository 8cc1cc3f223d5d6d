"""The report's construction-timeline figure: a building's series with its phases shaded."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["timeline_figure_html"]

_COLOURS = {"vegetated": "#cfe8c4", "cleared": "#e8d3b0", "construction": "#f2c48d",
            "roofed": "#c9d3e6", "unknown": "#eeeeee"}


def _num(d: object) -> float:
    """Matplotlib's date number (days since 1970-01-01, its default epoch) of an ISO date."""
    return float((pd.Timestamp(str(d)[:10]) - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1))


def _pick(series: pd.DataFrame) -> str | None:
    """The site with the most phases (then the most scenes), among those with ≥ 3 scenes."""
    n = series.groupby("site_id").agg(scenes=("date", "size"), phases=("phase", "nunique"))
    n = n[n["scenes"] >= 3]
    if not len(n):
        return None
    return str(n.sort_values(["phases", "scenes"], ascending=False).index[0])


def timeline_figure_html(timeline_csv: Path, sites: pd.DataFrame | None, out: Path,
                         *, dpi: int = 110) -> str:
    """``<figure>`` HTML of one building's timeline, or ``""`` without ``timeline.csv``.

    Draws inside − ring NDVI and BSI per scene (circles: 10 m, squares: coarser sensors),
    shades the phases and marks the ``cleared``/``roofed`` 95 % intervals from ``sites``.
    """
    if not timeline_csv.is_file():
        return ""
    series = pd.read_csv(timeline_csv)
    sid = _pick(series) if len(series) else None
    if sid is None:
        return ""
    g = series[series["site_id"] == sid].sort_values("date")
    x = np.array([_num(d) for d in g["date"]])
    fig = Figure(figsize=(11, 4.2))
    ax = fig.subplots()
    starts = [0] + [i for i in range(1, len(g)) if g["phase"].iloc[i] != g["phase"].iloc[i - 1]]
    for k, a in enumerate(starts):
        b = starts[k + 1] if k + 1 < len(starts) else len(g) - 1
        ph = str(g["phase"].iloc[a])
        ax.axvspan(float(x[a]), float(x[b]), color=_COLOURS.get(ph, "#eeeeee"), alpha=0.8, lw=0)
        ax.text(float(x[a]), 1.02, ph, transform=ax.get_xaxis_transform(), fontsize=8)
    fine = (g["res_m"] <= 10).to_numpy()
    for col, colour, label in (("ndvi_contrast", "C2", "NDVI inside − ring"),
                               ("bsi_contrast", "C1", "BSI inside − ring")):
        y = g[col].to_numpy(dtype="float64")
        ax.plot(x, y, color=colour, lw=0.8, alpha=0.6)
        ax.scatter(x[fine], y[fine], color=colour, s=14, marker="o", label=label)
        ax.scatter(x[~fine], y[~fine], color=colour, s=18, marker="s")
    if sites is not None and "site_id" in sites.columns:
        row = sites[sites["site_id"] == sid]
        for ev in ("cleared", "roofed"):
            lo, hi = (row.get(f"{ev}_date_lo"), row.get(f"{ev}_date_hi"))
            if lo is not None and hi is not None and len(row) and pd.notna(lo.iloc[0]) \
                    and pd.notna(hi.iloc[0]):
                ax.axvspan(_num(lo.iloc[0]),
                           _num(hi.iloc[0]),
                           color="black", alpha=0.25, lw=0)
    ax.xaxis_date()
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_ylabel("index contrast")
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(f"Construction timeline of {sid}", pad=14)
    fig.tight_layout()
    FigureCanvasAgg(fig)
    name = "timeline.png"
    fig.savefig(out / name, dpi=dpi, facecolor="white")
    cap = (f"{html.escape(sid)}: inside-minus-ring NDVI and BSI on every usable scene (circles "
           "Sentinel-2 10 m, squares coarser sensors such as Landsat 30 m), phases shaded, "
           "grey bands: the 95 % intervals of the cleared and roofed dates.")
    return (f'<figure><img src="{name}" alt="construction timeline">'
            f"<figcaption>{cap}</figcaption></figure>")
