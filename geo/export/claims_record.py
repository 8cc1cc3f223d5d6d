"""Record checked claims in a run directory: ``run.json`` ``claims``, ``measurements.csv``.

I/O layer. ``factorywatch claim --save`` (and the demo) call :func:`save_claim`; the report
(:mod:`geo.export.report`) shows ``run.json``'s ``claims`` in its claims section and the
verdict in the sites table, and ``measurements.csv`` gets ``claim_verdict`` and
``claim_sentence`` columns for the subject's row. Every file is replaced atomically
(temp file + ``os.replace``), so an interrupted save leaves the old files intact.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from geo.claims import ClaimResult, claim_phrase
from geo.errors import SourceError
from geo.export.geojson import atomic_write_text

__all__ = ["claim_record", "owns_run_dir", "save_claim"]

log = logging.getLogger(__name__)

_KEY = ("subject_id", "reference", "relation", "factor", "subject_date", "quantity")
"""A claim checked again with the same key replaces the older record."""


def claim_record(res: ClaimResult, *, reference: str, quantity: str = "area",
                 sentence: str | None = None) -> dict[str, Any]:
    """The JSON record of one checked claim (``ClaimResult`` fields plus what was asked).

    Parameters
    ----------
    res : ClaimResult
        The verdict.
    reference : str
        The reference as asked (``neighbour``, ``earlier``, a date or a site id).
    quantity : str
        What the claim compares (``area`` or ``floor-space``).
    sentence : str, optional
        The sentence printed (with any caveat); default ``res.sentence``.
    """
    rec = dataclasses.asdict(res)
    rec.update(
        reference=reference, quantity=quantity, sentence=sentence or res.sentence,
        text=f"{res.subject_id} {claim_phrase(res.relation, res.factor)} "
             + (f"its {reference}" if reference in ("neighbour", "earlier") else reference),
        checked=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    return rec


def owns_run_dir(run_dir: Path) -> bool:
    """True if the current user owns ``run_dir`` and its ``run.json`` and may write both."""
    run_json = run_dir / "run.json"
    try:
        uid = os.getuid()
        return (run_dir.stat().st_uid == uid and run_json.stat().st_uid == uid
                and os.access(run_dir, os.W_OK) and os.access(run_json, os.W_OK))
    except (OSError, AttributeError):
        return False


def _merge(claims: list[dict[str, Any]], rec: dict[str, Any]) -> list[dict[str, Any]]:
    key = tuple(str(rec.get(k)) for k in _KEY)
    kept = [c for c in claims if tuple(str(c.get(k)) for k in _KEY) != key]
    return [*kept, rec]


def _measurements(path: Path, claims: list[dict[str, Any]]) -> None:
    if not path.is_file():
        return
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "site_id" not in df.columns:
        return
    by: dict[str, list[dict[str, Any]]] = {}
    for c in claims:
        by.setdefault(str(c.get("subject_id")), []).append(c)
    df["claim_verdict"] = [" | ".join(str(c.get("verdict")) for c in by.get(s, []))
                           for s in df["site_id"]]
    df["claim_sentence"] = [" | ".join(str(c.get("sentence")) for c in by.get(s, []))
                            for s in df["site_id"]]
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    atomic_write_text(path, buf.getvalue())


def save_claim(run_dir: str | Path, record: dict[str, Any], *,
               rebuild_report: bool = True) -> Path:
    """Add ``record`` to ``run.json``'s ``claims`` and to ``measurements.csv``; rebuild the report.

    Parameters
    ----------
    run_dir : str or Path
        A run directory written by factorywatch (it must have ``run.json``).
    record : dict
        From :func:`claim_record`. A record with the same subject, reference, relation,
        factor, date and quantity replaces the older one.
    rebuild_report : bool
        Rebuild ``report/`` when the run already has one (so it shows the claim).

    Returns
    -------
    Path
        ``run_dir/run.json``.

    Raises
    ------
    SourceError
        If ``run.json`` is missing or is not a JSON object.
    """
    d = Path(run_dir)
    run_json = d / "run.json"
    try:
        run = json.loads(run_json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SourceError(f"{run_json}: cannot read ({type(err).__name__}); the claim was not "
                          "saved; pass a run directory written by factorywatch or --no-save"
                          ) from None
    if not isinstance(run, dict):
        raise SourceError(f"{run_json}: not a JSON object; the claim was not saved; pass "
                          "--no-save")
    old = run.get("claims")
    claims = [c for c in (old if isinstance(old, list) else []) if isinstance(c, dict)]
    run["claims"] = _merge(claims, record)
    atomic_write_text(run_json, json.dumps(run, indent=2, sort_keys=True, default=str) + "\n")
    _measurements(d / "measurements.csv", run["claims"])
    log.info("claim saved in %s (%d claims)", run_json, len(run["claims"]))
    if rebuild_report and (d / "report" / "index.html").is_file():
        from geo.export.report import write_report

        write_report(d)
    return run_json
