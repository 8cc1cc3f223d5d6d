"""The types of the ``run.json`` keys that readers of a run directory rely on.

A hand-edited or foreign ``run.json`` with, say, ``"dates": 5`` must fail with one line
naming the file and the key, not deep inside the report. Checked with pydantic (lax mode:
JSON's own types), the same library that validates the TOML configs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic

from geo.errors import SourceError

__all__ = ["EventDates", "RunJson", "SiteTimeline", "check_run_json"]


class EventDates(pydantic.BaseModel):
    """One construction event of a site (``run.json`` ``timeline.<site>.cleared``/``roofed``).

    It happened in ``(lo, hi]`` (95 %), best estimate ``date``; ``lo`` null with ``hi`` set:
    already there in the first scene; ``hi`` null: not reached by the last scene; all null:
    not seen. ``confidence`` below 0.9 makes date claims on it undecidable.
    """

    model_config = pydantic.ConfigDict(extra="allow")

    date: str | None = None
    lo: str | None = None
    hi: str | None = None
    confidence: float = 0.0


class SiteTimeline(pydantic.BaseModel):
    """A site's construction timeline (``run.json`` ``timeline.<site_id>``, issue 16).

    ``phase``: vegetated / cleared / construction / roofed at the last usable scene;
    ``scenes``: how many scenes the series has (0: none clear enough over the site).
    """

    model_config = pydantic.ConfigDict(extra="allow")

    phase: str | None = None
    scenes: int = 0
    cleared: EventDates | None = None
    roofed: EventDates | None = None


class RunJson(pydantic.BaseModel):
    """Keys of ``run.json`` read by ``report`` and ``claim`` (all optional; others pass)."""

    model_config = pydantic.ConfigDict(extra="allow")

    factorywatch_version: str | None = None
    synthetic: bool | None = None
    aoi: dict[str, Any] | None = None
    created: str | None = None
    status: str | None = None
    config: dict[str, Any] | None = None
    dates: list[str] | None = None
    scenes: list[dict[str, Any]] | None = None
    versions: dict[str, Any] | None = None
    stages: list[dict[str, Any]] | None = None
    warnings: list[str] | None = None
    claims: list[dict[str, Any]] | None = None
    timeline: dict[str, SiteTimeline] | None = None
    """Per site id, its construction timeline; null when the run has no usable series."""


def check_run_json(run: dict[str, Any], path: str | Path) -> None:
    """Raise :class:`SourceError` naming ``path`` and the key if a known key has a wrong type.

    Examples
    --------
    >>> check_run_json({"dates": ["2021-06-03"], "warnings": []}, "run.json")
    >>> check_run_json({"dates": 5}, "run.json")
    Traceback (most recent call last):
    ...
    geo.errors.SourceError: run.json: key 'dates' = 5: must be a valid list; rerun the pipeline \
or restore the file
    """
    try:
        RunJson.model_validate(run)
    except pydantic.ValidationError as err:
        e = err.errors(include_url=False)[0]
        key = ".".join(str(x) for x in e["loc"])
        msg = str(e["msg"]).replace("Input should be", "must be")
        shown = repr(e["input"])
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise SourceError(f"{path}: key {key!r} = {shown}: {msg}; rerun the pipeline or "
                          "restore the file") from None
