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

__all__ = ["RunJson", "check_run_json"]


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
