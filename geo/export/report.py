"""The HTML report of a run: one offline folder, figures as PNG beside ``index.html``.

Built only from the files of a run directory (DESIGN.md "Run directory"), so
``factorywatch report RUN_DIR`` can rebuild it at any time: ``run.json``, ``grid.json``,
``footprints.geojson``, ``sites.geojson``, ``changes.geojson``, ``scenes/<date>.tif``,
``masks/<date>.tif`` and ``change/<d0>_<d1>_prob.tif``. Anything missing is left out of the
report with a note, never invented. No JavaScript, no CDN, no web fonts: the folder works
from a USB stick. Figures use matplotlib's Agg canvas directly (no pyplot state).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
from numpy.typing import NDArray

from geo import __version__
from geo._atomic import atomic_dir
from geo.export.furniture import (
    attributions,
    mask_overlay,
    north_angle_deg,
)
from geo.export.qml import category_colour
from geo.export.report_data import (
    _aoi_label,
    _claim_list,
    _display_name,
    _e,
    _fmt,
    _interval,
    _isnum,
    _load,
    _present,
    _read_small,
    _records,
    _rgb_bands,
    _Run,
    _stretch,
    _to_rgba,
)
from geo.export.report_figures import (
    FigureCache,
    PairFigures,
    areas_figure,
    locator_figure,
    neighbour_figure,
    pair_figure,
    timeline_figure,
    view_digest,
)
from geo.export.webmap import viewer_data, write_viewer
from geo.rundir import RunDir
from geo.vector import utm_crs_of

__all__ = ["REPORT_DIR", "write_report"]

log = logging.getLogger(__name__)
MAX_FINDINGS = 20
"""At most this many finding sentences in the summary; the sites table has them all."""

REPORT_DIR = RunDir(Path()).report_dir.name
"""Folder of the report inside a run directory."""

Progress = Callable[[Sequence[Any], str], Iterator[Any]]
_TEMPLATE = Path(__file__).resolve().parent / "templates" / "report.html"


def _table(rows: Sequence[Mapping[str, Any]], cols: Sequence[tuple[str, str]],
           num_cols: Iterable[str] = (), cls: Mapping[str, str] | None = None) -> str:
    nums = set(num_cols)
    head = "".join(f"<th>{_e(label)}</th>" for _k, label in cols)
    body = []
    for r in rows:
        cells = []
        for k, _label in cols:
            v = r.get(k)
            attrs = ' class="num"' if k in nums else ""
            if cls and k in cls and v:
                attrs = f' class="{cls[k]}-{_e(str(v).lower())}"'
            cells.append(f"<td{attrs}>{_e(v if isinstance(v, str) else _fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _figure(src: str, caption: str, alt: str) -> str:
    return (f'<figure><img src="{_e(src)}" alt="{_e(alt)}">'
            f"<figcaption>{caption}</figcaption></figure>")


# --------------------------------------------------------------------------------------------
# HTML sections
# --------------------------------------------------------------------------------------------
def _pairs(r: _Run) -> list[tuple[str, str]]:
    if r.probs:
        return sorted(r.probs)
    dates = sorted(r.scenes)
    return list(itertools.pairwise(dates))


def _summary(r: _Run) -> str:
    run = r.run
    aoi_name = _aoi_label(run)
    dates = sorted(set(r.scenes) | set(run.get("dates") or []))
    rows: list[tuple[str, str]] = [
        ("AOI", _e(aoi_name or "?")),
        ("Dates", _e(", ".join(dates) or "none")),
        ("Grid", _e(f"{r.grid.crs}, {r.grid.res_m:g} m pixels, {r.grid.shape[1]}×"
                    f"{r.grid.shape[0]} px") if r.grid else "–"),
        ("Run status", _e(run.get("status", "?"))),
        ("Created", _e(run.get("created") or run.get("created_utc") or run.get("finished") or "?")),
    ]
    if r.sites is not None and "status" in r.sites.columns:
        counts = r.sites["status"].value_counts()
        rows.append(("Tracked buildings", _e(f"{len(r.sites)} (" + ", ".join(
            f"{n} {k}" for k, n in counts.items()) + ")")))
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    sentences: list[str] = []
    n_more = 0
    if r.sites is not None and "sentence" in r.sites.columns:
        # the story is in what was built or extended: new and grown sites first, largest first
        s = r.sites[r.sites["sentence"].notna()]
        if "status" in s.columns:
            changed = s[s["status"].isin(["new", "grown"])]
            s = changed if len(changed) else s
        if "area_m2" in s.columns:
            s = s.sort_values("area_m2", ascending=False)
        all_sent = [t for t in s["sentence"].astype(str) if t.strip()]
        sentences, n_more = all_sent[:MAX_FINDINGS], max(0, len(all_sent) - MAX_FINDINGS)
    more = (f"<p class='note'>{n_more} more in the sites table below.</p>" if n_more else "")
    sent = ("<h3>Findings (new and grown buildings, largest first)</h3><ul class='sentences'>"
            + "".join(f"<li>{_e(t)}</li>" for t in sentences) + "</ul>" + more
            ) if sentences else ""
    return f"<table>{body}</table>{sent}"


_SITE_COLS: list[tuple[str, str]] = [
    ("site_id", "site"), ("name", "name"), ("status", "status"), ("first_seen_date", "first seen"),
    ("last_seen_date", "last seen"), ("n_dates", "dates"), ("area", "area m² (95% CI)"),
    ("growth", "growth × (95% CI)"), ("neighbour_id", "neighbour"),
    ("neighbour", "neighbour ratio × (95% CI)"), ("verdict", "claim verdict"),
]


def _claims_by_subject(run: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for c in _claim_list(run):
        if c.get("subject") and c.get("verdict"):
            out[str(c["subject"])] = str(c["verdict"])
    return out


def _sites_table(r: _Run) -> str:
    recs = _records(r.sites)
    if not recs:
        return "<p>No sites in this run.</p>"
    verdicts = _claims_by_subject(r.run)
    rows = []
    for rec in sorted(recs, key=lambda x: str(x.get("site_id"))):
        rows.append({
            **rec,
            "area": _interval(rec, "area_m2", 0) if _isnum(rec.get("area_m2_lo"))
            else _fmt(rec.get("area_m2"), 0),
            "growth": _interval(rec, "growth_ratio"),
            "neighbour": _interval(rec, "neighbour_area_ratio"),
            "verdict": verdicts.get(str(rec.get("site_id")), ""),
        })
    named = any(isinstance(rec.get("name"), str) and rec["name"] for rec in recs)
    cols = [c for c in _SITE_COLS if (c[0] != "verdict" or verdicts) and (c[0] != "name" or named)]
    return _table(rows, cols, num_cols=("n_dates", "area", "growth", "neighbour"),
                  cls={"verdict": "verdict"})


def _claims(run: Mapping[str, Any]) -> str:
    claims = _claim_list(run)
    if not claims:
        return ("<p>No claims checked for this run yet. Check one with <code>factorywatch claim "
                "RUN_DIR --subject s5 --reference neighbour --relation '&gt;' --factor 2</code>; "
                "its verdict is saved here.</p>")
    rows = []
    for c in claims:
        rec = dict(c)
        rec["interval"] = (f"{_fmt(c.get('ratio_lo'))}–{_fmt(c.get('ratio_hi'))}"
                           if _isnum(c.get("ratio_lo")) and _isnum(c.get("ratio_hi")) else "–")
        rec["claim"] = c.get("text") or c.get("sentence") or (
            f"{c.get('subject', '?')} {c.get('relation', '?')} {_fmt(c.get('factor'))} × "
            f"{c.get('reference', '?')}")
        rows.append(rec)
    cols = [("claim", "claim"), ("subject", "subject"), ("reference", "reference"),
            ("relation", "relation"), ("factor", "factor"), ("ratio", "measured ratio"),
            ("interval", "95% interval"), ("verdict", "verdict")]
    extra = [(k, k) for k in ("probability", "p_value", "reason", "explanation")
             if any(k in c for c in claims)]
    return "<h3>Claims checked</h3>" + _table(rows, [*cols, ("sentence", "sentence"), *extra],
                                               num_cols=("factor", "ratio", "interval"),
                                               cls={"verdict": "verdict"})


def _dict_table(d: Mapping[str, Any]) -> str:
    return "<table>" + "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(v if isinstance(v, str) else json.dumps(v))}</td></tr>"
        for k, v in d.items()) + "</table>"


def _flatten(rec: Mapping[str, Any]) -> dict[str, Any]:
    """One level of nesting flattened (``properties.crs``), dropping exact duplicates."""
    out: dict[str, Any] = {}
    for k, v in rec.items():
        if isinstance(v, Mapping):
            for k2, v2 in v.items():
                if rec.get(k2) != v2:
                    out[f"{k}.{k2}"] = v2
        else:
            out[k] = v
    return out


def _list_table(items: Sequence[Any]) -> str:
    recs = [_flatten(i) for i in items if isinstance(i, Mapping)]
    if not recs:
        return "<ul>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"
    keys: list[str] = []
    for rec in recs:
        keys += [k for k in rec if k not in keys]
    first = ("stage", "date", "date_from", "date_to", "id", "seconds")
    keys = [k for k in first if k in keys] + [k for k in keys if k not in first]
    rows = []
    for rec in recs:
        row = {}
        for k in keys:
            v = rec.get(k)
            if isinstance(v, str) and k.startswith("sha") and len(v) > 16:
                v = v[:12] + "…"
            if isinstance(v, (list, tuple)) and all(_isnum(x) for x in v):
                v = _fmt(v)
            row[k] = v if isinstance(v, (str, int, float)) or v is None else json.dumps(v)
        rows.append(row)
    return _table(rows, [(k, k) for k in keys])


_SOURCE_KEYS: dict[str, tuple[str, ...]] = {
    "local": ("kind", "path", "min_valid_frac"),
    "vector": (),
}
"""``[source]`` settings that matter per source kind; the rest (STAC settings for a local run)
are defaults that were never used, and the report does not list them."""


def _used_config(run: Mapping[str, Any]) -> dict[str, Any]:
    """``run.json``'s config with only the settings of the source actually used."""
    cfg = dict(run.get("config") or {})
    src = cfg.get("source")
    if not isinstance(src, Mapping):
        return cfg
    kind = "vector" if run.get("mode") == "vector" else str(src.get("kind", ""))
    keep = _SOURCE_KEYS.get(kind)
    if keep is not None:
        cfg["source"] = ({k: v for k, v in src.items() if k in keep} if keep else
                         {"kind": "vector files (no imagery)"})
    else:  # stac: everything but the local folder
        cfg["source"] = {k: v for k, v in src.items() if k != "path"}
    return cfg


def _provenance(r: _Run) -> str:
    run = r.run
    parts: list[str] = []
    scenes = run.get("scenes") or run.get("inputs")
    if isinstance(scenes, Mapping):
        scenes = [{"name": k, **v} if isinstance(v, Mapping) else {"name": k, "value": v}
                  for k, v in scenes.items()]
    parts.append("<h3>Scenes and inputs</h3>")
    parts.append(_list_table(scenes) if scenes else "<p>run.json lists no scenes.</p>")
    files = [f"{p.parent.name}/{p.name}" for p in [*r.scenes.values(), *r.masks.values(),
                                                      *r.probs.values()]]
    if files:
        parts.append("<p>Rasters in this run: " + _e(", ".join(files)) + "</p>")
    for key, title in (("coregistration", "Co-registration and detection per date"),
                       ("change_maps", "Change maps")):
        val = run.get(key)
        if isinstance(val, list) and val:
            parts.append(f"<h3>{_e(title)}</h3>" + _list_table(val))
    parts.append("<h3>Processing</h3>")
    cfg = _used_config(run)
    if cfg:
        parts.append("<pre>" + _e(json.dumps(cfg, indent=2, sort_keys=True, default=str))
                     + "</pre>")
    stages = run.get("stages") or run.get("timings")
    if isinstance(stages, Mapping):
        parts.append(_dict_table(stages))
    elif isinstance(stages, list) and stages:
        parts.append(_list_table(stages))
    if run.get("warnings"):
        parts.append("<h3>Warnings</h3>" + _list_table(list(run["warnings"])))
    versions = run.get("versions")
    parts.append("<h3>Versions</h3>")
    parts.append(_dict_table(versions) if isinstance(versions, Mapping)
                 else "<p>run.json records no versions.</p>")
    parts.append("<details><summary>run.json (complete)</summary><pre>"
                 + _e(json.dumps(run, indent=2, sort_keys=True, default=str))
                 + "</pre></details>")
    return "\n".join(parts)


def _view_previews(r: _Run) -> tuple[dict[str, NDArray[np.float64]], dict[str, float],
                                      tuple[float, float, float, float] | None]:
    """The map viewer's scene previews, their masked fractions and the first scene's extent.

    The previews are RGBA with one stretch for all dates.
    """
    previews: dict[str, NDArray[np.float64]] = {}
    masked: dict[str, float] = {}
    extent: tuple[float, float, float, float] | None = None
    read = {d: _read_small(p) for d, p in r.scenes.items()}
    if read:
        first = next(iter(read.values()))
        extent = first[3]
        bands = _rgb_bands(first[2], first[0].shape[0])
        ranges = _stretch([np.where(v, a[bands], np.nan) for a, v, _n, _x in read.values()])
        for d, (a, v, _n, _x) in read.items():
            rgba = _to_rgba(a[bands], v, ranges)
            rgba[~v] = mask_overlay(v)[~v]
            previews[d] = rgba
            masked[d] = float((~v).mean())
    return previews, masked, extent


_VIEW = "view"
"""The viewer previews' entry in the figure index (``files``: the ``view_<date>.png``)."""


def _viewer_html(r: _Run, cache: FigureCache) -> str:
    """The interactive map (footprints over the scenes, date slider), written into the report.

    The scene previews are copied from the report being replaced when the scenes are
    unchanged (a saved claim, a rebuild).
    """
    fp = r.footprints
    if fp is not None and fp.crs is not None and not fp.crs.is_projected and len(fp):
        fp = fp.to_crs(utm_crs_of(fp))
    dates = sorted(set(r.scenes) | set(_present(fp, "date")))
    if not dates:
        return "<p>No dates in this run: no map.</p>"
    digest = view_digest(r)
    old = cache.reuse(_VIEW, digest) if r.scenes else None
    previews: dict[str, NDArray[np.float64]] = {}
    if old is not None:
        masked = {str(k): float(v) for k, v in dict(old.get("masked", {})).items()}
        ext = old.get("extent")
        extent = (float(ext[0]), float(ext[1]), float(ext[2]), float(ext[3])) if ext else None
        names = [str(f) for f in old.get("files", [])]
    else:
        previews, masked, extent = _view_previews(r)
        names = [f"view_{d}.png" for d in previews]
        if previews:
            cache.record(_VIEW, digest, files=names, masked=masked,
                         extent=list(extent) if extent else None)
    crs = r.crs or (str(fp.crs) if fp is not None and fp.crs is not None else None)
    data = viewer_data(fp, dates, extent=extent,
                       scenes={n.removeprefix("view_").removesuffix(".png"): n for n in names},
                       credits=attributions(r.run, dates) if r.scenes else
                       {d: "Footprints as digitised in the input files (no imagery)"
                        for d in dates}, masked=masked,
                       north_deg=north_angle_deg(crs, extent) if extent else 0.0)
    return write_viewer(cache.out, data, previews)


def _legend_html(r: _Run) -> str:
    """The outline colours and overlays of the figures, as an HTML legend (screen readers too)."""
    items = [(category_colour(v), f"footprint: {v}", "solid")
             for v in _present(r.footprints, "status")]
    items += [(category_colour(v), f"change event: {v}", "dashed")
              for v in _present(r.changes, "event")]
    items.append(("#8c33bf", "masked: cloud / nodata (tinted)", "fill"))
    if r.probs:
        items.append(("#f03b20", "change probability ≥ 0.1 (colour bar)", "fill"))
    li = "".join(
        f'<li><span class="swatch {kind}" style="border-color:{c};'
        f'{"background:" + c if kind == "fill" else ""}"></span>{_e(label)}</li>'
        for c, label, kind in items)
    return (f'<div class="legend" id="legend"><b>Legend</b><ul>{li}</ul>'
            "<p>Each image panel has a scale bar (lower left), a north arrow (true north, upper "
            "right) and the imagery credit (lower right).</p></div>")


def _pairs_html(r: _Run, cache: FigureCache, progress: Progress | None) -> list[str]:
    out: list[str] = []
    pairs = _pairs(r)
    credits = attributions(r.run, sorted(r.scenes))
    shared = PairFigures()  # layout and figure of the first pair, reused by the next
    for d0, d1 in (progress(pairs, "report figures") if progress else pairs):
        t0 = time.perf_counter()
        name, masked = pair_figure(r, d0, d1, cache, shared)
        log.debug("report: figure %s → %s in %.1f s (masked %s)", d0, d1,
                  time.perf_counter() - t0, {d: round(m, 3) for d, m in masked.items()})
        if name is None:
            r.notes.append(f"scene missing for {d0} or {d1}: no before/after figure.")
            continue
        missing = "" if (d0, d1) in r.probs else (
            f" There is no change probability map change/{_e(d0)}_{_e(d1)}_prob.tif in this "
            "run (no probability map), so the third panel shows the later scene only.")
        mask_note = "".join(
            f" <b>{_e(d)}: {m:.0%} of the scene is masked by cloud or nodata</b> (tinted "
            "purple); outlines touching it are lower bounds." for d, m in masked.items() if m)
        credit = "; ".join(f"{_e(d)}: {_e(credits.get(d, '?'))}" for d in (d0, d1))
        out.append(f"<h3>{_e(d0)} → {_e(d1)}</h3>" + _figure(
            name, f"Before ({_e(d0)}), after ({_e(d1)}) and change probability. Outline "
                  f"colours: footprint status / change event as in the QGIS styles (legend "
                  f"below the panels).{mask_note}{missing} "
                  f'<span class="attribution">{credit}</span>',
            f"before/after/change {d0} to {d1}"))
    if out:
        out.insert(0, _legend_html(r))
    else:
        out.append(
            "<p>This run has no imagery: its footprints were read from a file "
            "(digitised outlines), so there is nothing to show here.</p>"
            if r.run.get("mode") == "vector" or not r.scenes else
            "<p>Fewer than two scenes in this run: nothing to compare.</p>")
    return out


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------
def write_report(run_dir: str | Path, *,
                 progress: Progress | None = None) -> Path:
    """Build ``run_dir/report/index.html`` and its PNG figures from the run's files.

    Parameters
    ----------
    run_dir : str or Path
        A run directory (DESIGN.md "Run directory"). Only ``run.json`` is required; the
        report leaves out, with a note, every part whose input file is missing.

    Returns
    -------
    Path
        ``run_dir/report/index.html``. The folder is built under a temporary name inside
        ``run_dir`` and moved into place when complete, replacing an older report.
    progress : callable, optional
        ``progress(items, label)`` wraps the figure loop (a progress bar in the CLI).

    Raises
    ------
    SourceError
        If ``run_dir`` or its ``run.json`` is missing or unreadable.

    Notes
    -----
    The report shows a locator map, before/after/change images per date pair with the
    footprints drawn, the area of each tracked building over time with its interval, the
    neighbour ratios with their 95% intervals, a table of sites (with claim verdicts when
    ``run.json`` has ``claims``) and the provenance (scenes, processing, versions). A run
    with ``"synthetic": true`` in ``run.json`` says SYNTHETIC at the top of the page.
    """
    run_dir = Path(run_dir)
    rd = RunDir(run_dir)
    r = _load(run_dir)
    with atomic_dir(rd.report_dir) as tmp:
        cache = FigureCache(rd.report_dir, tmp)  # unchanged figures are copied, not drawn
        pairs_html = _pairs_html(r, cache, progress)
        loc, loc_cap = locator_figure(r, cache)
        areas, areas_cap = areas_figure(r, cache)
        nb, nb_cap = neighbour_figure(r, cache)
        timeline = timeline_figure(r, rd.timeline_csv, cache)  # issue 16
        aoi_name = _aoi_label(r.run)
        synthetic = r.synthetic
        title = f"factorywatch report: {aoi_name or _display_name(run_dir)}"
        banner = ('<div class="synthetic">SYNTHETIC DATA: this run uses generated imagery, '
                  "not real observations. Numbers below describe the simulation only.</div>"
                  ) if synthetic else ""
        notes = "".join(f'<div class="warn">{_e(n)}</div>' for n in r.notes)
        html_text = Template(_TEMPLATE.read_text(encoding="utf-8")).substitute(
            version=_e(__version__),
            title=_e(("[SYNTHETIC] " if synthetic else "") + title),
            subtitle=_e(f"Run directory: {_display_name(run_dir)} · "
                        f"{len(r.scenes)} scenes · report built "
                        f"{dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}"),
            synthetic_banner=banner,
            warnings=notes,
            summary=_summary(r),
            locator=_figure(loc, loc_cap, "locator map") if loc else f"<p>{loc_cap}</p>",
            pairs="\n".join(pairs_html),
            viewer=_viewer_html(r, cache),
            areas=(_figure(areas, areas_cap, "area over time") if areas
                   else f"<p>{areas_cap}</p>") + timeline,
            neighbours=(_figure(nb, nb_cap, "neighbour ratios") if nb else f"<p>{nb_cap}</p>"),
            sites_table=_sites_table(r),
            claims=_claims(r.run),
            provenance=_provenance(r),
            footer=_e(f"factorywatch {__version__}. Areas are measured on the AOI's UTM grid; "
                      "intervals are 95% unless stated. Rebuild with: factorywatch report "
                      f"{_display_name(run_dir)}")
            + (" · <b>SYNTHETIC</b>" if synthetic else ""),
        )
        cache.write()
        (tmp / rd.report_index.name).write_text(html_text, encoding="utf-8")
    out = rd.report_index
    log.info("report: %s (%d figures)", out, len(list(rd.report_dir.glob("*.png"))))
    return out
