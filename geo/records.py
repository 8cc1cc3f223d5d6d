"""Typed records that cross the run's stage boundaries.

Stage functions (:mod:`geo.stages`) and the orchestration (:mod:`geo.pipeline`,
:mod:`geo.watch`) pass these frozen dataclasses, never free-form dicts. JSON exists only at
the file edges: ``to_json`` / ``from_json`` give exactly the keys that the checkpoints
(``.checkpoints/scene_<date>.json``, the watch store's date records) and ``run.json`` have
always had, so runs written before these records existed still resume and reports still read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
from shapely.geometry.base import BaseGeometry

__all__ = ["ChangePair", "DateRecord", "DetectResult", "RunInputs", "RunSummary", "SceneRef",
           "StageTiming"]

JsonDict = dict[str, Any]
"""A JSON object as read from or written to a file (the edges only)."""

_COREG_KEYS = ("date", "shift_dy_px", "shift_dx_px", "shift_m", "residual_m", "coreg_ok",
               "reference", "normalization", "detect_method", "detect_threshold", "valid_frac")
# optional keys: written to a checkpoint only when set (as the dict records did)
_OPTIONAL = ("shift_dy_px", "shift_dx_px", "shift_m", "residual_m", "coreg_ok", "reference",
             "normalization", "detect_method", "detect_threshold", "detect_tiles", "valid_wkb")


@dataclass(frozen=True, slots=True, kw_only=True)
class SceneRef:
    """The source scene a date was read from: id, date and the provider's properties."""

    id: str
    date: str
    properties: Mapping[str, Any]

    def to_json(self) -> JsonDict:
        """The ``scene`` object of a checkpoint."""
        return {"id": self.id, "date": self.date, "properties": dict(self.properties)}


@dataclass(frozen=True, slots=True, kw_only=True)
class DateRecord:
    """One date of a run: read, co-registered, normalised and (later) detected.

    Written by :func:`geo.stages.prepare_date` as ``.checkpoints/scene_<date>.json``; the
    detect fields are filled by :meth:`with_detection`; ``valid_wkb`` is the watch store's
    valid-data area (hex WKB). Fields left ``None`` are not written to the JSON.
    """

    date: str
    source_id: str
    bands: tuple[str, ...]
    kind: str
    valid_frac: float
    scene: SceneRef
    warnings: tuple[str, ...] = ()
    skipped: bool = False
    shift_dy_px: float | None = None
    shift_dx_px: float | None = None
    shift_m: float | None = None
    residual_m: float | None = None
    coreg_ok: bool | None = None
    reference: bool | None = None
    normalization: Mapping[str, Any] | None = None
    detect_method: str | None = None
    detect_threshold: float | None = None
    detect_tiles: int | None = None
    valid_wkb: str | None = None

    @property
    def residual(self) -> float:
        """Co-registration residual in metres (0 for the reference or without co-registration)."""
        return float(self.residual_m or 0.0)

    def with_detection(self, det: DetectResult) -> DateRecord:
        """The record with how its building mask was made (method, threshold, tiles)."""
        return dataclasses.replace(self, detect_method=det.method,
                                   detect_threshold=det.threshold, detect_tiles=det.tiles)

    def to_json(self) -> JsonDict:
        """The checkpoint JSON object (unset optional fields left out)."""
        out: JsonDict = {"date": self.date, "source_id": self.source_id,
                         "bands": list(self.bands), "kind": self.kind,
                         "valid_frac": self.valid_frac, "scene": self.scene.to_json(),
                         "warnings": list(self.warnings)}
        if self.skipped:
            out["skipped"] = True
        for k in _OPTIONAL:
            v = getattr(self, k)
            if v is not None:
                out[k] = dict(v) if k == "normalization" else v
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> DateRecord:
        """Read a checkpoint or watch-store date record."""
        sc = d["scene"]
        return cls(date=str(d["date"]), source_id=str(d["source_id"]),
                   bands=tuple(d["bands"]), kind=str(d["kind"]),
                   valid_frac=float(d["valid_frac"]),
                   scene=SceneRef(id=sc["id"], date=sc["date"], properties=sc["properties"]),
                   warnings=tuple(d.get("warnings", ())), skipped=bool(d.get("skipped")),
                   **{k: d[k] for k in _OPTIONAL if d.get(k) is not None})

    def coreg_json(self) -> JsonDict:
        """The date's entry of ``run.json``'s ``coregistration`` list."""
        full = self.to_json()
        return {k: full.get(k) for k in _COREG_KEYS}

    def input_json(self) -> JsonDict:
        """The date's entry of ``run.json``'s ``inputs`` list."""
        props = dict(self.scene.properties)
        return {"id": self.scene.id, "date": self.date, "sha256": props.get("sha256"),
                "properties": props}


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectResult:
    """Footprints of one date, its valid-data area (grid CRS) and how the mask was made."""

    footprints: gpd.GeoDataFrame
    valid: BaseGeometry
    method: str
    threshold: float
    tiles: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangePair:
    """The change map between two consecutive dates (an entry of ``change_maps``)."""

    date_from: str
    date_to: str
    method: str
    changed_frac: float

    def to_json(self) -> JsonDict:
        """The ``change_maps`` entry / watch-store change record."""
        return {"date_from": self.date_from, "date_to": self.date_to, "method": self.method,
                "changed_frac": self.changed_frac}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ChangePair:
        """Read a watch-store change record."""
        return cls(date_from=str(d["date_from"]), date_to=str(d["date_to"]),
                   method=str(d["method"]), changed_frac=float(d["changed_frac"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class StageTiming:
    """One stage's wall time and what it counted (an entry of ``run.json``'s ``stages``)."""

    stage: str
    seconds: float
    notes: Mapping[str, object] = dataclasses.field(default_factory=dict)
    cpu_s: float | None = None
    """CPU seconds of this process (all its threads) during the stage; not Dask workers'."""
    peak_rss_mb: float | None = None
    """This process's peak resident memory so far, at the stage's end (``ru_maxrss``)."""

    def to_json(self) -> JsonDict:
        """The ``stages`` entry of run.json."""
        out: JsonDict = {"stage": self.stage, **self.notes, "seconds": self.seconds}
        if self.cpu_s is not None:
            out["cpu_s"] = self.cpu_s
        if self.peak_rss_mb is not None:
            out["peak_rss_mb"] = self.peak_rss_mb
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class RunInputs:
    """What a run was made from, as ``run.json`` lists it (merged into the manifest).

    Imagery runs give ``records`` (the usable dates) and ``change_maps``; vector runs give
    ``files`` as (path, sha256) and ``mode="vector"``; a watch run adds ``watch``.
    """

    dates: tuple[str, ...]
    records: tuple[DateRecord, ...] = ()
    change_maps: tuple[ChangePair, ...] = ()
    files: tuple[tuple[str, str], ...] = ()
    workers: int | str | None = None
    mode: str | None = None
    watch: Mapping[str, object] | None = None

    def to_json(self) -> JsonDict:
        """The keys merged into run.json."""
        out: JsonDict = {"dates": list(self.dates)}
        if self.mode == "vector":
            out["mode"] = self.mode
            out["inputs"] = [{"id": Path(p).name, "path": p, "sha256": sha}
                             for p, sha in self.files]
            return out
        out.update(workers=self.workers,
                   coregistration=[r.coreg_json() for r in self.records],
                   change_maps=[c.to_json() for c in self.change_maps],
                   inputs=[r.input_json() for r in self.records])
        if self.watch is not None:
            out["watch"] = dict(self.watch)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """What :func:`geo.pipeline.run_aoi` / ``run_vector`` return; ``to_dict`` is ``--json``."""

    aoi: str
    run_dir: str
    n_scenes: int
    dates: tuple[str, ...]
    n_sites: int
    outputs: Mapping[str, str]
    warnings: tuple[str, ...]
    synthetic: bool
    new_dates: tuple[str, ...] | None = None  # watch runs only

    def to_dict(self) -> JsonDict:
        """The ``--json`` summary (the keys of the dict summaries before records)."""
        out: JsonDict = {"aoi": self.aoi, "run_dir": self.run_dir, "n_scenes": self.n_scenes,
                         "dates": list(self.dates), "n_sites": self.n_sites,
                         "outputs": dict(self.outputs), "warnings": list(self.warnings),
                         "synthetic": self.synthetic}
        if self.new_dates is not None:
            out["new_dates"] = list(self.new_dates)
        return out
