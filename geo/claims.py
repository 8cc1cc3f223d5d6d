"""Check a published size claim against measured footprints.

Pure compute. A claim is ``subject RELATION factor × reference``: "more than twice as large as
its neighbour" is ``relation=">", factor=2, reference="neighbour"``.

Verdicts (``lo``/``hi`` = the 95% interval of the measured ratio subject / reference)

====== ============================ =============================
rel.   supported                    contradicted
====== ============================ =============================
``>``  ``lo > factor``              ``hi <= factor``
``>=`` ``lo >= factor``             ``hi < factor``
``<``  ``hi < factor``              ``lo >= factor``
``<=`` ``hi <= factor``             ``lo > factor``
``~``  interval inside the band     interval outside the band
====== ============================ =============================

Otherwise the claim is ``undecidable`` (the interval straddles the factor): finer imagery or a
better outline is needed. It is also ``undecidable``, whatever the interval, when either
footprint is a built-up region, has an unstable outline or is occluded (the reasons are in
``ClaimResult.reasons`` and the sentence), or covers fewer than :data:`SMALL_PX` pixels;
regions are never picked as a neighbour.
``~`` ("about F times") uses the band ``F / (1 + t)`` to ``F × (1 + t)`` with
``t = MeasureParams.about_tolerance`` (default 0.10, i.e. ±10%).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from geo.config import MeasureParams
from geo.errors import FactoryWatchError
from geo.measure import footprint_errors, format_ratio, neighbour_of, pair_seed, ratio_interval
from geo.plausibility import claim_blockers, is_region
from geo.types import RELATIONS, Relation, Verdict

__all__ = ["RELATIONS", "SMALL_PX", "ClaimError", "ClaimResult", "Relation", "Verdict",
           "check_claim", "claim_phrase", "verdict_for"]

log = logging.getLogger(__name__)

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SMALL_PX = 20
"""Below this many pixels the calibration study found intervals under-cover (blur bias)."""


class ClaimError(FactoryWatchError, ValueError):
    """A claim cannot be evaluated as asked (unknown site, no such date, no neighbour)."""


@dataclass(frozen=True, kw_only=True)
class ClaimResult:
    """The verdict on one claim, with the measured ratio and its 95% interval."""

    verdict: Verdict
    """``supported``, ``contradicted`` or ``undecidable``."""
    estimate: float
    """Measured area ratio subject / reference."""
    lo: float
    """Lower end of the 95% interval of the ratio."""
    hi: float
    """Upper end of the 95% interval of the ratio."""
    subject_id: str
    """Site id of the subject."""
    reference_id: str
    """Site id of the reference (the subject itself when comparing with an earlier date)."""
    relation: str
    """One of :data:`RELATIONS`."""
    factor: float
    """The claimed factor."""
    sentence: str
    """A plain sentence a report can quote."""
    subject_date: str = ""
    """Date of the subject's footprint used."""
    reference_date: str = ""
    """Date of the reference footprint used."""
    reasons: tuple[str, ...] = ()
    """Why the verdict is ``undecidable`` whatever the interval says: a built-up region, an
    unstable outline or an occluded footprint (:func:`geo.plausibility.claim_blockers`)."""


def verdict_for(relation: str, factor: float, lo: float, hi: float, *,
                about_tolerance: float = 0.10) -> Verdict:
    """Return the verdict for an interval ``[lo, hi]`` against ``relation factor``.

    Examples
    --------
    >>> verdict_for(">", 2.0, 2.1, 2.5), verdict_for(">", 2.0, 1.5, 2.0)
    ('supported', 'contradicted')
    >>> verdict_for(">", 2.0, 1.9, 2.1)
    'undecidable'
    """
    if relation not in RELATIONS:
        raise ClaimError(f"relation {relation!r} is not one of {', '.join(RELATIONS)}")
    if relation == ">":
        return "supported" if lo > factor else "contradicted" if hi <= factor else "undecidable"
    if relation == ">=":
        return "supported" if lo >= factor else "contradicted" if hi < factor else "undecidable"
    if relation == "<":
        return "supported" if hi < factor else "contradicted" if lo >= factor else "undecidable"
    if relation == "<=":
        return "supported" if hi <= factor else "contradicted" if lo > factor else "undecidable"
    b_lo, b_hi = factor / (1.0 + about_tolerance), factor * (1.0 + about_tolerance)
    if b_lo <= lo and hi <= b_hi:
        return "supported"
    if hi < b_lo or lo > b_hi:
        return "contradicted"
    return "undecidable"


_WORDS = {1.0: "", 2.0: "twice", 3.0: "three times", 4.0: "four times", 0.5: "half"}


def claim_phrase(relation: str, factor: float) -> str:
    """Words for ``relation factor``: ``(">", 2) → "more than twice as large as"``."""
    if factor == 1.0:
        return {">": "larger than", ">=": "at least as large as", "<": "smaller than",
                "<=": "at most as large as", "~": "about the same size as"}[relation]
    times = _WORDS.get(float(factor), f"{factor:g} times")
    lead = {">": "more than", ">=": "at least", "<": "less than", "<=": "at most",
            "~": "about"}[relation]
    return f"{lead} {times} as large as"


def _fmt(x: float) -> str:
    return format_ratio(x)


def _blockers(pair: pd.DataFrame, res: np.ndarray, *, same_site: bool) -> list[str]:
    """Reasons no confident verdict may be given: gates, occlusion, too few pixels."""
    out = [*claim_blockers(pair.iloc[0]), *([] if same_site else claim_blockers(pair.iloc[1]))]
    a = pair["area_m2"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        px = np.where(res > 0, a / np.where(res > 0, res, 1.0) ** 2, np.inf)
    if float(np.min(px)) < SMALL_PX:
        out.append(f"an outline has fewer than {SMALL_PX} pixels, too few for a trusted interval")
    return out


def _shown_verdict(verdict: Verdict, blockers: list[str],
                   res: NDArray[np.float64]) -> tuple[Verdict, str]:
    """The verdict after the blockers (any makes it undecidable) and its wording."""
    if blockers:
        return "undecidable", "undecidable: " + "; ".join(dict.fromkeys(blockers))
    if verdict == "undecidable":
        return verdict, ("undecidable at this resolution" if float(np.max(res)) > 0 else
                         "undecidable at this digitising accuracy")
    return verdict, verdict


def _small_caution(a: NDArray[np.float64], res: NDArray[np.float64]) -> str:
    """The caution appended to the sentence when a building covers under SMALL_PX pixels."""
    with np.errstate(divide="ignore", invalid="ignore"):
        n_px = np.where(res > 0, a / np.where(res > 0, res, 1.0) ** 2, np.inf)
    if float(np.min(n_px)) < SMALL_PX:
        return (f"; caution: a building covers only {float(np.min(n_px)):.0f} pixels, where "
                "the calibration found 95% intervals too narrow (use finer imagery)")
    return ""


def _check_request(relation: str, factor: float, footprints: gpd.GeoDataFrame) -> None:
    """Refuse an unknown relation, a non-positive factor or unprojected footprints."""
    if relation not in RELATIONS:
        raise ClaimError(f"relation {relation!r} is not one of {', '.join(RELATIONS)}")
    if not (np.isfinite(factor) and factor > 0):
        raise ClaimError(f"factor {factor!r} must be a positive number (twice = 2)")
    if footprints.crs is None or not footprints.crs.is_projected:
        raise ClaimError("footprints must be in a projected CRS to compare areas; reproject "
                         "with gdf.to_crs(gdf.estimate_utm_crs())")


def _subject_row(subject: str, date: str | None, sid: NDArray[Any],
                 fdate: NDArray[Any], known: set[str]) -> tuple[int, list[str]]:
    """Row of the subject's footprint on ``date`` (default: its last sighting), its dates."""
    if subject not in known:
        raise ClaimError(f"no site {subject!r} in this run; pick one of sites.geojson's "
                         f"site_id values (e.g. {sorted(known)[:3]})")
    subj_dates = sorted(set(fdate[sid == subject]))
    if not subj_dates:
        raise ClaimError(f"site {subject!r} has no footprints; check footprints.geojson")
    s_date = date or subj_dates[-1]
    if s_date not in subj_dates:
        raise ClaimError(f"site {subject!r} was not seen on {s_date}; it was seen on "
                         f"{', '.join(subj_dates)}")
    s_row = int(np.flatnonzero((sid == subject) & (fdate == s_date))[0])
    return s_row, subj_dates


def _reference_row(fp: gpd.GeoDataFrame, sid: NDArray[Any], fdate: NDArray[Any],
                   known: set[str], s_row: int, subj_dates: list[str], *, reference: str,
                   params: MeasureParams) -> tuple[int, str]:
    """Row of the reference footprint (a site, the neighbour, an earlier sighting), phrase."""
    subject, s_date = str(sid[s_row]), str(fdate[s_row])
    if reference == "neighbour":
        others = np.flatnonzero((fdate == s_date) & (sid != subject) & ~is_region(fp))
        j = neighbour_of(fp.geometry.iloc[s_row], fp.iloc[others], rule=params.neighbour,
                         max_distance_m=params.neighbour_max_distance_m)
        if j is None:
            raise ClaimError(f"site {subject!r} has no neighbour within "
                             f"{params.neighbour_max_distance_m:g} m on {s_date}; name the "
                             "reference site id instead")
        r_row = int(others[j])
        ref_phrase = f"its neighbour {sid[r_row]}"
    elif reference == "earlier" or _DATE.match(reference):
        r_date = subj_dates[0] if reference == "earlier" else reference
        if r_date not in subj_dates:
            raise ClaimError(f"site {subject!r} was not seen on {r_date}; it was seen on "
                             f"{', '.join(subj_dates)}")
        if r_date == s_date:
            raise ClaimError(f"site {subject!r} was first seen on {s_date}, the date being "
                             "checked; pass --date for a later sighting or a reference date")
        r_row = int(np.flatnonzero((sid == subject) & (fdate == r_date))[0])
        ref_phrase = f"itself on {r_date}"
    else:
        if reference not in known:
            raise ClaimError(f"no reference site {reference!r}; use a site id, 'neighbour', "
                             "'earlier' or a date YYYY-MM-DD")
        rows = np.flatnonzero((sid == reference) & (fdate == s_date))
        if len(rows) == 0:
            seen = sorted(set(fdate[sid == reference]))
            raise ClaimError(f"reference {reference!r} was not seen on {s_date} (seen on "
                             f"{', '.join(seen)}); pass --date with a date both were seen on")
        r_row = int(rows[0])
        ref_phrase = reference
    return r_row, ref_phrase


def check_claim(
    sites: gpd.GeoDataFrame,
    footprints: gpd.GeoDataFrame,
    *,
    subject: str,
    reference: str,
    relation: str,
    factor: float,
    date: str | None = None,
    params: MeasureParams,
) -> ClaimResult:
    """Decide whether measured footprints support a size claim.

    Parameters
    ----------
    sites : GeoDataFrame
        Tracked sites (``site_id``, ``last_seen_date``, optionally ``neighbour_id``).
    footprints : GeoDataFrame
        Tracked footprints in a projected CRS with ``site_id``, ``date``, ``area_m2``,
        ``perimeter_m`` and the uncertainty columns of the footprint schema.
    subject : str
        Site id of the building the claim is about.
    reference : str
        A site id; ``"neighbour"`` (the subject's neighbour on that date, by
        ``params.neighbour``); ``"earlier"`` (the subject's first sighting); or a date
        ``YYYY-MM-DD`` (the subject on that date).
    relation : {">", ">=", "<", "<=", "~"}
        How the ratio subject / reference compares with ``factor``.
    factor : float
        The claimed factor, > 0 ("twice" = 2).
    date : str, optional
        Date of the subject's footprint; default its last sighting.
    params : MeasureParams
        Monte Carlo draws, seed, same-date correlation, neighbour rule, ``~`` tolerance.

    Returns
    -------
    ClaimResult

    Raises
    ------
    ClaimError
        Unknown site or date, no neighbour, bad relation or factor.
    """
    _check_request(relation, factor, footprints)
    fp = footprints.reset_index(drop=True)
    sid = fp["site_id"].astype(str).to_numpy()
    fdate = fp["date"].astype(str).to_numpy()
    known = set(sites["site_id"].astype(str)) | set(sid)
    s_row, subj_dates = _subject_row(subject, date, sid, fdate, known)
    r_row, ref_phrase = _reference_row(fp, sid, fdate, known, s_row, subj_dates,
                                       reference=reference, params=params)

    pair = fp.iloc[[s_row, r_row]]
    err = footprint_errors(pd.DataFrame(pair))
    a = pair["area_m2"].to_numpy(dtype=float)
    same_date = fdate[s_row] == fdate[r_row]
    est, lo, hi = ratio_interval(
        a[0], (err.independent[0], err.common[0]), a[1], (err.independent[1], err.common[1]),
        common_corr=params.same_date_corr if same_date else 0.0, n_draws=params.n_draws,
        seed=pair_seed(params.seed, *(str(x) for x in pair.get("footprint_id", pair.index))),
    )
    e, low, high = float(est[0]), float(lo[0]), float(hi[0])
    verdict = verdict_for(relation, factor, low, high, about_tolerance=params.about_tolerance)
    res = pair["res_m"].fillna(0).to_numpy(float) if "res_m" in pair.columns else np.zeros(2)
    blockers = _blockers(pair, res, same_site=r_row == s_row)
    verdict, shown = _shown_verdict(verdict, blockers, res)
    sentence = (f"{subject} {claim_phrase(relation, factor)} {ref_phrase}: {shown} "
                f"({_fmt(e)}x, 95% interval {_fmt(low)}–{_fmt(high)})") + _small_caution(a, res)
    log.info("claim: %s", sentence)
    return ClaimResult(
        verdict=verdict, estimate=e, lo=low, hi=high, subject_id=subject,
        reference_id=str(sid[r_row]), relation=relation, factor=float(factor),
        sentence=sentence, subject_date=str(fdate[s_row]), reference_date=str(fdate[r_row]),
        reasons=tuple(dict.fromkeys(blockers)),
    )
