"""Steps shared by the per-date stages and their streamed form: records and checkpoints.

A date's record, its shift and normalisation, the JSON checkpoint, for :mod:`geo.stages` and
:mod:`geo.stream`. Imports neither of them, so the two stage modules never import each other back.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from geo._atomic import atomic_write_text
from geo.config import RunConfig
from geo.errors import CoregistrationError
from geo.geoarray import GeoArray
from geo.grid import Grid
from geo.records import DateRecord, SceneRef
from geo.sources import Scene

__all__ = ["MIN_VALID_FRAC", "new_record", "record_norm", "record_shift", "write_json"]

log = logging.getLogger("geo.stages")  # the stages' messages, under their usual logger
MIN_VALID_FRAC = 0.05
"""A date with less of the AOI valid (cloud, nodata, outside the image) is skipped."""


def write_json(path: Path, obj: Any) -> Path:
    """Write a JSON file atomically (sorted keys, as every checkpoint and run.json)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def record_shift(rec: DateRecord, shift: Any, scene: Scene, grid: Grid, config: RunConfig,
                 notes: list[str]) -> DateRecord:
    """The record with a :class:`geo.coreg.Shift`; a residual above the limit warns or fails."""
    res = grid.res_m
    residual_m = float(shift.residual_px * res)
    rec = dataclasses.replace(
        rec, shift_dy_px=round(shift.dy_px, 3), shift_dx_px=round(shift.dx_px, 3),
        shift_m=round(float(np.hypot(shift.dy_px, shift.dx_px) * res), 3),
        residual_m=round(residual_m, 3), coreg_ok=bool(shift.ok))
    if residual_m > config.coreg.max_residual_m or not shift.ok:
        what = ("co-registration failed" if not shift.ok else
                f"co-registration residual {residual_m:.2f} m is above "
                f"max_residual_m={config.coreg.max_residual_m} m")
        msg = f"{scene.id}: {what}"
        if config.coreg.on_excess == "fail":
            raise CoregistrationError(
                f"{msg}; check the image or raise [coreg] max_residual_m in "
                f"{config.config_path}")
        log.warning(msg)
        notes.append(msg)
    return rec


def record_norm(rec: DateRecord, norm: Mapping[str, Any], scene: Scene,
                notes: list[str]) -> DateRecord:
    """The record with a normalisation fit; a rejected fit becomes a note."""
    if norm.get("rejected"):
        msg = f"{scene.id}: radiometric normalisation {norm['rejected']}"
        log.warning(msg)
        notes.append(msg)
    return dataclasses.replace(rec, normalization=norm)


def new_record(scene: Scene, ga: GeoArray, valid_frac: float, meta_path: Path,
               notes: list[str]) -> DateRecord:
    """A date's record; ``skipped`` (and checkpointed) when too little of the AOI is valid.

    ``ga`` is the date, or in a streamed run its first block (for the bands and kind).
    """
    rec = DateRecord(date=scene.date, source_id=scene.id, bands=tuple(ga.bands), kind=ga.kind,
                     valid_frac=round(valid_frac, 4),
                     scene=SceneRef(id=scene.id, date=scene.date, properties=scene.properties))
    if ga.roles_guessed:
        msg = (f"{scene.id}: band roles guessed as {', '.join(ga.bands)} (the file does not name "
               "its bands); if wrong, set [source] bands = [...] in the config, one role per band")
        log.warning(msg)
        notes.append(msg)
    if valid_frac < MIN_VALID_FRAC:
        msg = (f"{scene.id}: only {valid_frac:.0%} of the AOI is valid (cloud, nodata or "
               "outside the image); date skipped")
        log.warning(msg)
        rec = dataclasses.replace(rec, skipped=True, warnings=(msg,))
        write_json(meta_path, rec.to_json())
    return rec
