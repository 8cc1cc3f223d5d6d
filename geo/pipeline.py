"""Run one AOI end to end.

A run writes into ``<run_dir>.partial/`` and renames it to ``<run_dir>`` when
everything is written, so a run directory is never half-written. Per-date
checkpoints (co-registered scenes, masks) stay in the ``.partial`` folder when a
run is interrupted, and the next run with the same config resumes from them. Every
path inside a run, the overwrite rule, the lock and the publish belong to
:mod:`geo.rundir`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from rasterio import features
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geo import __version__
from geo._atomic import atomic_write_text, disk_full_error
from geo.aoi import Aoi
from geo.config import RunConfig, config_to_dict
from geo.errors import (
    AoiError,
    CoregistrationError,
    DiskFullError,
    FactoryWatchError,
    NoImageryError,
)
from geo.export.geojson import write_geojson
from geo.export.qml import RasterKind
from geo.export.tables import write_csv
from geo.footprints import empty_footprints, polygonize
from geo.geoarray import GeoArray
from geo.grid import Grid, to_crs
from geo.plausibility import adjacent_spread, gate_footprints, gate_warnings
from geo.preflight import preflight
from geo.provenance import git_commit, versions
from geo.reading import read_to_grid
from geo.rundir import RunDir, RunSession, begin_run, check_target
from geo.sources import Scene, open_source
from geo.sources.http import redact
from geo.sources.local import file_sha256

__all__ = ["Progress", "changes_from_events", "run_aoi", "run_vector"]

log = logging.getLogger(__name__)
T = TypeVar("T")
Progress = Callable[[Iterable[T], str], Iterator[T]]
MIN_VALID_FRAC = 0.05


def _no_progress(items: Iterable[T], _label: str) -> Iterator[T]:
    yield from items


class _Stages:
    """Stage timer: one INFO line per stage, also stored in run.json."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[dict[str, Any]]:
        rec: dict[str, Any] = {"stage": name}
        t0 = time.perf_counter()
        yield rec
        rec["seconds"] = round(time.perf_counter() - t0, 3)
        self.records.append(rec)
        extra = ", ".join(f"{k}={v}" for k, v in rec.items() if k not in ("stage", "seconds"))
        log.info("%s: %s%.1f s", name, f"{extra}, " if extra else "", rec["seconds"])


def _config_hash(config: RunConfig) -> str:
    d = config_to_dict(config)
    d.pop("output", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _config_inputs(config: RunConfig) -> list[str]:
    """Files and folders a run reads: a run directory must never contain one of them."""
    return [p for p in (config.config_path, config.aoi.geometry, config.source.path,
                        config.source.cache_dir) if p]


def _write_json(path: Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _valid_geometry(valid: np.ndarray, grid: Grid) -> BaseGeometry:
    """The valid-data area of a date as one (multi)polygon in the grid CRS."""
    if valid.all():
        return shapely.box(*grid.bounds)
    polys = [shape(g) for g, v in features.shapes(valid.astype("uint8"), mask=valid,
                                                 transform=grid.transform) if v]
    return shapely.union_all(polys) if polys else shapely.Polygon()


def _load_scene(path: Path, grid: Grid, meta: dict[str, Any]) -> GeoArray:
    ga = read_to_grid(str(path), grid, date=meta["date"], source_id=meta["source_id"],
                      roles=meta["bands"])
    return dataclasses.replace(ga, kind=meta["kind"])


def _write_raster(data: np.ndarray, grid: Grid, path: Path, *, kind: RasterKind,
                  nodata: float | None = None, band_names: list[str] | None = None,
                  tags: dict[str, str] | None = None) -> Path:
    from geo.export.rasters import write_cog

    out: Path = write_cog(data, grid, path, kind=kind, nodata=nodata,
                          band_names=band_names, tags=tags)
    return out


def _is_synthetic(aoi: Aoi) -> bool:
    return bool(aoi.properties.get("synthetic"))


def run_aoi(
    config: RunConfig,
    run_dir: str | Path,
    *,
    overwrite: bool = False,
    offline: bool = False,
    progress: Progress[Any] | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Run the whole pipeline for one AOI and return the run summary.

    Parameters
    ----------
    config : RunConfig
        The resolved config (see :func:`geo.config.load_config`).
    run_dir : str or Path
        Output folder; must not exist unless ``overwrite``.
    overwrite : bool
        Replace an existing run directory (only once the new run is complete).
    offline : bool
        Read remote imagery from the cache only.
    progress : callable, optional
        ``progress(iterable, label)`` wrapper for long loops (a progress bar).
    workers : int
        With more than one, dates are read and aligned in parallel on a local Dask
        distributed cluster of that many processes.

    Returns
    -------
    dict
        The ``--json`` summary: aoi, run_dir, n_scenes, dates, n_sites, outputs, warnings.

    Raises
    ------
    FactoryWatchError
        For bad input (AOI, config, imagery) and runtime failures; nothing is
        left in ``run_dir`` then.
    """
    prog: Progress[Any] = progress or _no_progress
    check_target(run_dir, overwrite=overwrite, inputs=_config_inputs(config))
    stage = _Stages()
    run_warnings: list[str] = []
    started = datetime.now(UTC).isoformat(timespec="seconds")

    with stage("aoi") as rec:
        aoi, grid = preflight(config)  # the same checks as `validate`, before any pixel
        rec.update(crs=grid.crs, shape=f"{grid.shape[0]}x{grid.shape[1]}")
        if not aoi.is_measuring:
            run_warnings.append(
                f"AOI {aoi.name} is centred on a {aoi.properties.get('point_kind')} "
                f"(coord_confidence={aoi.properties.get('coord_confidence')}); its buildings are "
                "not known to be the plant's: re-centre the AOI before publishing areas or ratios"
            )
    with stage("search") as rec:
        source = open_source(config, offline=offline)
        scenes = source.search(aoi, config.source.start or None, config.source.end or None)
        if not scenes:
            raise NoImageryError(f"{config.config_path}: no imagery for AOI {aoi.name}")
        rec["n_scenes"] = len(scenes)

    session = begin_run(run_dir, overwrite=overwrite, key=_config_hash(config),
                       inputs=_config_inputs(config))
    return _guarded(session, lambda: _run_stages(config, aoi, grid, source, scenes, session,
                                                 stage, prog, run_warnings, started, workers))


def _guarded(session: RunSession, body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``body`` holding the run's lock; keep or drop the ``.partial`` when it fails.

    A full disk keeps the ``.partial`` (rerun to resume); another error drops it unless it
    holds checkpoints; an interruption keeps it.
    """
    partial = session.partial.root
    try:
        return body()
    except BaseException as err:
        full = disk_full_error(err, partial, partial)
        if full is not None:
            raise DiskFullError(f"{full} (the run so far is kept in {partial}: rerun the same "
                                "command to resume)") from err
        if not isinstance(err, FactoryWatchError):
            log.info("run interrupted; checkpoints kept in %s, rerun to resume", partial)
        elif not session.partial.has_checkpoints():
            session.discard()
        else:
            log.info("run stopped; checkpoints kept in %s, rerun to resume", partial)
        raise
    finally:
        session.release()


class _Runner:
    """Maps a per-item stage function serially (with a progress bar) or on a Dask cluster.

    With ``workers > 1`` a local Dask distributed cluster of that many single-threaded
    processes is started once per run; stage functions get picklable values only.
    """

    def __init__(self, workers: int, prog: Progress[Any]) -> None:
        self.workers, self.prog = workers, prog
        self._stack = contextlib.ExitStack()
        self.client: Any = None

    def __enter__(self) -> _Runner:
        return self

    def _start(self) -> Any:
        if self.client is None:
            from distributed import Client, LocalCluster

            # port 0 for the scheduler's HTTP server: never collide with another cluster on 8787
            cluster = self._stack.enter_context(LocalCluster(
                n_workers=self.workers, threads_per_worker=1, processes=True,
                dashboard_address="127.0.0.1:0", host="127.0.0.1"))
            self.client = self._stack.enter_context(Client(cluster))
            log.info("dask: local cluster with %d worker processes", self.workers)
        return self.client

    def map(self, fn: Callable[..., T], items: list[Any], label: str, *args: Any) -> list[T]:
        if self.workers > 1 and len(items) > 1:
            client = self._start()
            futures = [client.submit(fn, item, *args, pure=False) for item in items]
            return [f.result() for f in self.prog(futures, label)]
        return [fn(item, *args) for item in self.prog(items, label)]

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


def _run_stages(config: RunConfig, aoi: Aoi, grid: Grid, source: Any, scenes: list[Scene],
                session: RunSession, stage: _Stages, prog: Progress[Any],
                run_warnings: list[str], started: str, workers: int) -> dict[str, Any]:
    from geo.stream import fixed_budget, streams

    partial = session.partial
    partial.checkpoints.mkdir(exist_ok=True)
    _write_json(partial.grid_json, grid.to_dict())
    config = fixed_budget(config)  # every stage (and Dask worker) takes the same path
    if streams(grid, config):
        log.info("grid %dx%d is above the memory budget (%.0f MiB): streamed block by block",
                 *grid.shape, config.grid.memory_budget_mb)
    with _Runner(workers, prog) as runner:
        # --- read, co-register, normalise: one date at a time, checkpointed --------------------
        metas: list[dict[str, Any]] = []
        with stage("read+coregister") as rec:
            todo: list[Scene] = []
            ref_meta: dict[str, Any] | None = None
            for scene in scenes:
                meta_path = partial.scene_meta(scene.date)
                if meta_path.exists() and partial.scene(scene.date).exists():
                    meta = json.loads(meta_path.read_text())
                    run_warnings.extend(meta.get("warnings", []))
                    if not meta.get("skipped"):
                        metas.append(meta)
                        ref_meta = ref_meta or (meta if meta.get("reference") else None)
                else:
                    todo.append(scene)
            rec["resumed"] = len(scenes) - len(todo)
            # the reference date (first usable one) must exist before the others are aligned
            while ref_meta is None and todo:
                meta = prepare_date(todo.pop(0), source, grid, config, partial, None)
                run_warnings.extend(meta.get("warnings", []))
                if not meta.get("skipped"):
                    metas.append(meta)
                    ref_meta = meta
            if todo and ref_meta is not None:
                done = runner.map(prepare_date, todo, "reading dates", source, grid, config,
                                  partial, ref_meta)
                for meta in done:
                    run_warnings.extend(meta.get("warnings", []))
                    if not meta.get("skipped"):
                        metas.append(meta)
            rec["n_dates"] = len(metas)
        if not metas:
            raise NoImageryError(f"{aoi.name}: no date has enough valid pixels inside the AOI")
        metas.sort(key=lambda m: m["date"])
        dates = [m["date"] for m in metas]
        # --- building masks and footprints -------------------------------------------------------
        with stage("detect+footprints") as rec:
            results = runner.map(detect_date, metas, "detecting buildings", grid, config,
                                 partial, aoi.name)
            fps = [r[0] for r in results]
            valid_by_date = {m["date"]: r[1] for m, r in zip(metas, results, strict=True)}
            for m, r in zip(metas, results, strict=True):
                m.update(r[2])
            footprints = (pd.concat(fps, ignore_index=True) if any(len(f) for f in fps)
                          else empty_footprints(grid.crs))
            footprints = gpd.GeoDataFrame(footprints, geometry="geometry", crs=grid.crs)
            rec["n_footprints"] = len(footprints)
        if config.buildings.priors:  # guided mode: the named priors replace the detections
            from geo.guided_stage import guided_stage

            with stage("guided") as rec:
                footprints = guided_stage(metas, grid, config, partial, aoi.name, rec)
        # --- pixel change maps between consecutive dates ---------------------------------------
        with stage("change") as rec:
            change_meta = runner.map(change_pair, list(itertools.pairwise(metas)), "change maps",
                                     grid, config, partial)
            rec["n_pairs"] = len(change_meta)
    inputs = [{"id": m["scene"]["id"], "date": m["date"],
               "sha256": m["scene"]["properties"].get("sha256"),
               "properties": m["scene"]["properties"]} for m in metas]
    extra = {"dates": dates, "workers": workers, "coregistration": [
        {k: m.get(k) for k in ("date", "shift_dy_px", "shift_dx_px", "shift_m", "residual_m",
                               "coreg_ok", "reference", "normalization", "detect_method",
                               "detect_threshold", "valid_frac")} for m in metas],
        "change_maps": change_meta, "inputs": inputs}
    return _finish(config, aoi, grid, footprints, dates, valid_by_date, session, stage,
                   run_warnings, started, extra, progress=prog)


def detect_date(meta: dict[str, Any], grid: Grid, config: RunConfig, partial: RunDir,
                aoi_name: str) -> tuple[gpd.GeoDataFrame, BaseGeometry, dict[str, Any]]:
    """Building mask and footprints of one co-registered date (main process or Dask worker).

    Returns ``(footprints, valid_geometry, meta_update)``; writes ``masks/<date>.tif``.
    """
    from geo.detect import building_mask
    from geo.tiled_detect import detect_date_tiled, needs_tiles

    d = meta["date"]
    if needs_tiles(grid, config):  # large grid: tile by tile, from windows of the scene COG
        fp, valid_geom, n_valid, upd = detect_date_tiled(meta, grid, config, partial, aoi_name)
        fp = gate_footprints(fp, valid_area_m2=float(n_valid) * grid.pixel_area_m2,
                             params=config.detect)  # the same plausibility gates as untiled
        return fp, valid_geom, upd
    ga = _load_scene(partial.scene(d), grid, meta)
    vmask = read_to_grid(str(partial.valid_mask(d)), grid, date=d,
                         roles=["b1"])
    ga = ga.with_data(ga.data, valid=(vmask.data[0] > 0) & ga.valid)
    bm = building_mask(ga, config.detect)
    mask_u8 = np.where(ga.valid, bm.mask.astype("uint8"), 255).astype("uint8")
    _write_raster(mask_u8[None], grid, partial.mask(d), kind="mask", nodata=255)
    fp = polygonize(bm.mask, grid, date=d, aoi_name=aoi_name,
                    min_area_m2=config.detect.min_area_m2,
                    connectivity=config.detect.connectivity, alt_mask=bm.alt_mask,
                    invalid=~ga.valid, coreg_residual_m=float(meta.get("residual_m", 0.0)))
    fp = gate_footprints(fp, valid_area_m2=float(ga.valid.sum()) * grid.pixel_area_m2,
                         params=config.detect)
    return fp, _valid_geometry(ga.valid, grid), {"detect_method": bm.method,
                                                 "detect_threshold": float(bm.threshold)}


def change_pair(pair: tuple[dict[str, Any], dict[str, Any]], grid: Grid, config: RunConfig,
                partial: RunDir) -> dict[str, Any]:
    """Change map between two consecutive dates (main process or Dask worker)."""
    from geo.detect import change_map
    from geo.stream import change_pair_streamed, streams

    if streams(grid, config):
        return change_pair_streamed(pair, grid, config, partial)
    m0, m1 = pair
    a = _load_scene(partial.scene(m0["date"]), grid, m0)
    b = _load_scene(partial.scene(m1["date"]), grid, m1)
    cm = change_map(a, b, params=config.detect)
    if config.output.rasters:
        both = a.valid & b.valid
        prob = np.where(both, cm.probability, np.nan).astype("float32")
        _write_raster(prob[None], grid, partial.change_prob(m0["date"], m1["date"]),
                      kind="probability", nodata=float("nan"))
        _write_raster(np.where(both, cm.mask.astype("uint8"), 255).astype("uint8")[None],
                      grid, partial.change_mask(m0["date"], m1["date"]), kind="change_mask",
                      nodata=255)
    return {"date_from": m0["date"], "date_to": m1["date"], "method": cm.method,
            "changed_frac": round(float(cm.mask.mean()), 5)}


def date_meta(scene: Scene, ga: GeoArray, valid_frac: float, meta_path: Path
              ) -> tuple[dict[str, Any], list[str]]:
    """A date's metadata and notes; ``skipped`` (and written) when too little is valid.

    ``ga`` is the date (or, in a streamed run, its first block: for bands and kind).
    """
    notes: list[str] = []
    meta: dict[str, Any] = {"date": scene.date, "source_id": scene.id, "bands": list(ga.bands),
                            "kind": ga.kind, "valid_frac": round(valid_frac, 4),
                            "scene": {"id": scene.id, "date": scene.date,
                                      "properties": scene.properties}}
    if ga.roles_guessed:
        msg = (f"{scene.id}: band roles guessed as {', '.join(ga.bands)} (the file does not name "
               "its bands); if wrong, set [source] bands = [...] in the config, one role per band")
        log.warning(msg)
        notes.append(msg)
    if valid_frac < MIN_VALID_FRAC:
        msg = (f"{scene.id}: only {valid_frac:.0%} of the AOI is valid (cloud, nodata or "
               "outside the image); date skipped")
        log.warning(msg)
        meta.update(skipped=True, warnings=[msg])
        _write_json(meta_path, meta)
    return meta, notes


def record_shift(scene: Scene, shift: Any, config: RunConfig, res_m: float,
                 meta: dict[str, Any], notes: list[str]) -> None:
    """Put a co-registration :class:`geo.coreg.Shift` into ``meta``; warn or fail on excess."""
    residual_m = float(shift.residual_px * res_m)
    meta.update(shift_dy_px=round(shift.dy_px, 3), shift_dx_px=round(shift.dx_px, 3),
                shift_m=round(float(np.hypot(shift.dy_px, shift.dx_px) * res_m), 3),
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


def record_norm(scene: Scene, norm: dict[str, Any], meta: dict[str, Any],
                notes: list[str]) -> None:
    """Put a normalisation fit into ``meta``; a rejected fit becomes a note."""
    meta["normalization"] = norm
    if norm.get("rejected"):
        msg = f"{scene.id}: radiometric normalisation {norm['rejected']}"
        log.warning(msg)
        notes.append(msg)


def prepare_date(scene: Scene, source: Any, grid: Grid, config: RunConfig, partial: RunDir,
                 ref_meta: dict[str, Any] | None) -> dict[str, Any]:
    """Read one date onto the grid, align and normalise it to the reference, checkpoint it.

    Runs in the main process or in a Dask worker: everything it needs comes in as
    picklable values and the reference is re-read from its checkpoint file.
    Returns the date's metadata (also written to ``.checkpoints/scene_<date>.json``).
    A grid above the memory budget is streamed block by block (:mod:`geo.stream`).
    """
    from geo.coreg import coregister
    from geo.normalize import normalize_to
    from geo.stream import prepare_date_streamed, streams

    if streams(grid, config):
        return prepare_date_streamed(scene, source, grid, config, partial, ref_meta)
    meta_path = partial.scene_meta(scene.date)
    ga = source.read(scene, grid)
    meta, notes = date_meta(scene, ga, ga.valid_frac, meta_path)
    if meta.get("skipped"):
        return meta
    if ref_meta is None:
        meta.update(shift_dy_px=0.0, shift_dx_px=0.0, shift_m=0.0, residual_m=0.0, reference=True)
    else:
        ref = _load_scene(partial.scene(ref_meta["date"]), grid, ref_meta)
        if config.coreg.enabled:
            aligned, shift = coregister(ref, ga, max_shift_px=config.coreg.max_shift_m / grid.res_m)
            record_shift(scene, shift, config, grid.res_m, meta, notes)
            if shift.ok:
                ga = aligned
        if ga.kind == ref.kind and ga.bands == ref.bands:
            ga, norm = normalize_to(ref, ga)
            record_norm(scene, norm, meta, notes)
    _write_raster(np.where(ga.valid, ga.data, np.float32(np.nan)), grid,
                  partial.scene(scene.date), kind="scene", nodata=float("nan"),
                  band_names=list(ga.bands), tags={"DATE": ga.date, "SOURCE_ID": ga.source_id})
    _write_raster(np.where(ga.valid, 1, 0).astype("uint8")[None], grid,
                  partial.valid_mask(scene.date), kind="mask")
    meta["warnings"] = notes
    _write_json(meta_path, meta)
    return meta


def changes_from_events(events: pd.DataFrame, footprints: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Geometries of change events: new / grown (added part) / shrunk / demolished / merged / split.

    ``unchanged`` events are left out. Geometry is in the footprints' CRS.
    """
    crs = footprints.crs
    cols = ["change_id", "site_id", "event", "date_from", "date_to", "area_from_m2",
            "area_to_m2", "change_area_m2", "related_site_ids"]
    rows: list[dict[str, Any]] = []
    if len(events) and len(footprints):
        by = {(s, d): g for s, d, g in zip(footprints["site_id"], footprints["date"],
                                           footprints.geometry, strict=True)}
        for i, ev in enumerate(events.itertuples(index=False), 1):
            kind = str(ev.event)
            if kind == "unchanged":
                continue
            before = by.get((ev.site_id, ev.date_from))
            after = by.get((ev.site_id, ev.date_to))
            if kind == "new" or (kind in ("merged", "split") and after is not None):
                geom = after
            elif kind == "demolished":
                geom = before
            elif kind == "grown" and after is not None:
                geom = after.difference(before) if before is not None else after
            elif kind == "shrunk" and before is not None:
                geom = before.difference(after) if after is not None else before
            else:
                geom = after if after is not None else before
            if geom is None or geom.is_empty:
                continue
            geom = shapely.make_valid(geom)
            if geom.geom_type not in ("Polygon", "MultiPolygon"):
                polys = [g for g in getattr(geom, "geoms", []) if g.geom_type == "Polygon"]
                if not polys:
                    continue
                geom = shapely.MultiPolygon(polys)
            when = str(ev.date_to or ev.date_from)
            rows.append({"change_id": f"{ev.site_id!s}:{kind}:{when}:{i}",
                         "site_id": ev.site_id, "event": kind, "date_from": ev.date_from,
                         "date_to": ev.date_to, "area_from_m2": ev.area_from_m2,
                         "area_to_m2": ev.area_to_m2, "change_area_m2": float(geom.area),
                         "related_site_ids": getattr(ev, "related_site_ids", ""),
                         "geometry": geom})
    if not rows:
        df = pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
        return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)


def _with_cloud_share(tracks: Any, valid_by_date: dict[str, BaseGeometry] | None) -> Any:
    """Each footprint gains ``cloud_share``: how much of its site's outline is masked that date."""
    if valid_by_date is None or not len(tracks.footprints):
        return tracks
    from geo.sources.qa import footprint_cloud_share

    fp = tracks.footprints
    return dataclasses.replace(tracks, footprints=fp.assign(cloud_share=footprint_cloud_share(
        list(fp["site_id"]), list(fp["date"]), list(fp.geometry), valid_by_date)))


def _carry_columns(tracks: Any, dates: list[str]) -> Any:
    """Carry columns for the outputs: status and ``date_end`` to footprints, names to sites.

    ``status`` lets the footprint layer style by status; ``date_end`` drives the QGIS time
    slider; a site takes the name of its latest named sighting.
    """
    from geo.export.qml import footprint_date_end
    from geo.names import site_names

    status_of = dict(zip(tracks.sites["site_id"], tracks.sites["status"], strict=True))
    fp = tracks.footprints.assign(
        status=tracks.footprints["site_id"].map(status_of),
        date_end=footprint_date_end([str(d) for d in tracks.footprints["date"]], dates))
    sites = tracks.sites
    if "name" in fp.columns:
        sites = sites.assign(name=sites["site_id"].map(site_names(fp)))
    return dataclasses.replace(tracks, footprints=fp, sites=sites)


def _scatter_and_warn(tracks: Any, config: RunConfig, run_warnings: list[str]) -> Any:
    """Imagery runs: outline scatter between unchanged dates, and the gates' run warnings."""
    fp = gpd.GeoDataFrame(adjacent_spread(tracks.footprints, tracks.events),
                          geometry="geometry", crs=tracks.footprints.crs)
    run_warnings.extend(gate_warnings(fp, config.detect))
    return dataclasses.replace(tracks, footprints=fp)


def _track(footprints: gpd.GeoDataFrame, dates: list[str], aoi_name: str, config: RunConfig,
           partial: RunDir, valid_by_date: dict[str, BaseGeometry] | None) -> Any:
    """Overlap tracking; in guided mode sites keyed by prior, states from ``buildings.csv``."""
    from geo.guided import track_guided
    from geo.match import track_footprints

    if "prior_id" not in footprints.columns:
        return track_footprints(footprints, dates=dates, aoi_name=aoi_name,
                                params=config.match, valid_by_date=valid_by_date)
    path = partial.buildings_csv
    table = pd.read_csv(path, dtype={"date": str}) if path.exists() else None
    return track_guided(footprints, dates=dates, aoi_name=aoi_name, params=config.match,
                        table=table)


def _export_layers(tracks: Any, changes: gpd.GeoDataFrame, partial: RunDir,
                   config: RunConfig, dates: list[str], crs: str, *, title: str
                   ) -> dict[str, str]:
    """Write the layers and their styles, the QGIS project, the CSVs and the GPKG.

    ``tracks`` is a :class:`geo.match.Tracks`; the files go into ``partial``; returns their
    paths by output name.
    """
    from geo.export.qml import write_qml

    outputs: dict[str, str] = {}
    layers = {"footprints": (tracks.footprints, "footprint_id"),
              "sites": (tracks.sites, "site_id"), "changes": (changes, "change_id")}
    for name, (gdf, id_field) in layers.items():
        outputs[name] = str(write_geojson(gdf, partial.layer(name), layer_name=name,
                                          id_field=id_field))
        write_qml(name, partial.style(name))
    from geo.export.qgs import write_project

    outputs["qgis_project"] = str(write_project(  # opens with the time slider on
        partial.qgis_project, dates, crs, title=title))
    sites_table = pd.DataFrame(tracks.sites.drop(columns="geometry"))
    outputs["measurements"] = str(write_csv(sites_table, partial.measurements_csv))
    outputs["events"] = str(write_csv(tracks.events, partial.events_csv))
    if config.output.gpkg:
        from geo.export.gpkg import write_gpkg

        outputs["gpkg"] = str(write_gpkg(
            {"footprints": tracks.footprints, "sites": tracks.sites, "changes": changes,
             "events": tracks.events}, partial.gpkg))
    if partial.buildings_csv.exists():  # guided mode
        outputs["buildings"] = str(partial.buildings_csv)
    return outputs


def _finish(config: RunConfig, aoi: Aoi, grid: Grid | None, footprints: gpd.GeoDataFrame,
            dates: list[str], valid_by_date: dict[str, BaseGeometry] | None,
            session: RunSession, stage: _Stages, run_warnings: list[str], started: str,
            extra: dict[str, Any], progress: Progress[Any] | None = None) -> dict[str, Any]:
    """Track, measure and write every vector output, run.json and the report; publish."""
    from geo.measure import measure_sites
    from geo.timeline_stage import with_timeline

    partial = session.partial
    with stage("track+measure") as rec:
        tracks = _track(footprints, dates, aoi.name, config, partial, valid_by_date)
        if grid is not None:
            tracks = _scatter_and_warn(tracks, config, run_warnings)
        tracks = measure_sites(tracks, config.measure)
        rec.update(n_sites=len(tracks.sites), n_events=len(tracks.events))
    tracks = _carry_columns(tracks, dates)
    tracks = _with_cloud_share(tracks, valid_by_date)
    tracks = with_timeline(tracks, partial, grid, run_warnings)  # geo/timeline_stage.py
    changes = changes_from_events(tracks.events, tracks.footprints)
    synthetic = _is_synthetic(aoi)
    outputs: dict[str, str] = {}
    with stage("export") as rec:
        outputs.update(_export_layers(tracks, changes, partial, config, dates,
                                      grid.crs if grid is not None else str(footprints.crs),
                                      title=f"factorywatch: {aoi.name}"))
        rec["n_files"] = len(outputs)
    manifest = {
        "factorywatch": __version__,
        "synthetic": synthetic,
        "status": "complete",
        "started": started,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "aoi": {"name": aoi.name, "path": aoi.path, "properties": aoi.properties,
                "bounds_4326": list(aoi.geometry.bounds), "is_measuring": aoi.is_measuring},
        "grid": grid.to_dict() if grid is not None else None,
        "config": json.loads(redact(json.dumps(config_to_dict(config)))),
        "versions": versions(),
        "git_commit": git_commit(),
        "warnings": run_warnings,
        "stages": stage.records,
        "n_sites": len(tracks.sites),
        **extra,
    }
    _write_json(partial.run_json, manifest)
    if config.output.report:
        with stage("report"):
            from geo.export.report import write_report

            outputs["report"] = str(write_report(partial.root, progress=progress))
        manifest["stages"] = stage.records
        _write_json(partial.run_json, manifest)
    session.publish()
    final = session.final
    outputs = {k: str(partial.relative(Path(v), final)) for k, v in outputs.items()}
    return {
        "aoi": aoi.name,
        "run_dir": str(final.root),
        "n_scenes": len(dates),
        "dates": dates,
        "n_sites": len(tracks.sites),
        "outputs": outputs,
        "warnings": run_warnings,
        "synthetic": synthetic,
    }


def run_vector(
    footprints: gpd.GeoDataFrame,
    run_dir: str | Path,
    *,
    aoi_name: str,
    config: RunConfig,
    overwrite: bool = False,
    source_paths: Iterable[str] = (),
) -> dict[str, Any]:
    """Track, measure and write outputs from analyst-digitised footprints (no imagery).

    ``footprints`` must be in a projected metric CRS with the footprint columns
    (see :func:`geo.vector.read_footprints`).
    """
    if footprints.crs is None or not footprints.crs.is_projected:
        raise AoiError("footprints must be in a projected metric CRS; read them with "
                       "geo.vector.read_footprints")
    stage = _Stages()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    dates = sorted({str(d) for d in footprints["date"]})
    hull = shapely.union_all(np.asarray(footprints.geometry.values)).envelope
    synthetic = bool("synthetic" in footprints.columns and footprints["synthetic"].fillna(False)
                     .astype(bool).any())
    aoi = Aoi(name=aoi_name, geometry=to_crs(hull, str(footprints.crs), "EPSG:4326"),
              properties={"point_kind": "footprints", "synthetic": synthetic,
                          "coord_source": "the envelope of the input footprints (their "
                                          "positions are as digitised; confidence not given)"})
    blob: str = footprints.to_json()
    key = hashlib.sha256(blob.encode()).hexdigest()[:16]
    source_paths = [str(p) for p in source_paths]
    session = begin_run(run_dir, overwrite=overwrite, key=key, inputs=source_paths)
    inputs = [{"id": Path(p).name, "path": str(p), "sha256": file_sha256(p)}
              for p in source_paths]
    extra = {"dates": dates, "inputs": inputs, "mode": "vector"}
    cfg = dataclasses.replace(config, output=dataclasses.replace(config.output, rasters=False))
    return _guarded(session, lambda: _finish(cfg, aoi, None, footprints, dates, None, session,
                                             stage, [], started, extra))
