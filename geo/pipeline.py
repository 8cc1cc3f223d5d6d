"""Run one AOI end to end; the only module that knows the run-directory layout.

A run writes into ``<run_dir>.partial/`` and renames it to ``<run_dir>`` when
everything is written, so a run directory is never half-written. Per-date
checkpoints (co-registered scenes, masks) stay in the ``.partial`` folder when a
run is interrupted, and the next run with the same config resumes from them.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import itertools
import json
import logging
import shutil
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
from geo.aoi import Aoi, read_aoi, validate_aoi
from geo.config import RunConfig, config_to_dict
from geo.errors import (
    AoiError,
    CoregistrationError,
    FactoryWatchError,
    NoImageryError,
    OutputExistsError,
)
from geo.export.geojson import atomic_write_text, write_geojson
from geo.export.qml import RasterKind
from geo.footprints import empty_footprints, polygonize
from geo.geoarray import GeoArray
from geo.grid import Grid, grid_for_aoi, to_crs
from geo.provenance import git_commit, versions
from geo.reading import read_to_grid
from geo.sources import Scene, open_source
from geo.sources.http import redact
from geo.sources.local import file_sha256

__all__ = ["Progress", "changes_from_events", "prepare_run_dir", "run_aoi", "run_vector"]

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


def prepare_run_dir(run_dir: str | Path, *, overwrite: bool, key: str) -> tuple[Path, Path]:
    """Return ``(final, partial)`` paths; refuse to clobber without ``overwrite``.

    A ``.partial`` folder from an interrupted run with the same ``key`` (config
    hash) is kept so that the run resumes; one from another config is removed.
    """
    final = Path(run_dir).resolve()
    if final.exists() and not overwrite:
        raise OutputExistsError(
            f"{final}: run directory exists; pass --overwrite to replace it or choose another -o"
        )
    partial = final.with_name(final.name + ".partial")
    state = partial / ".state.json"
    if partial.exists():
        try:
            old = json.loads(state.read_text())["key"]
        except (OSError, ValueError, KeyError):
            old = None
        if old != key:
            shutil.rmtree(partial)
        else:
            log.info("resuming the interrupted run in %s", partial)
    partial.mkdir(parents=True, exist_ok=True)
    atomic_write_text(state, json.dumps({"key": key}))
    return final, partial


def _publish(partial: Path, final: Path) -> None:
    (partial / ".state.json").unlink(missing_ok=True)
    ckpt = partial / ".checkpoints"
    if ckpt.exists():
        shutil.rmtree(ckpt)
    if final.exists():
        trash = final.with_name(final.name + ".old")
        if trash.exists():
            shutil.rmtree(trash)
        final.rename(trash)
        partial.rename(final)
        shutil.rmtree(trash)
    else:
        partial.rename(final)


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
    if Path(run_dir).exists() and not overwrite:
        raise OutputExistsError(
            f"{Path(run_dir).resolve()}: run directory exists; pass --overwrite to replace it "
            "or choose another -o"
        )
    stage = _Stages()
    run_warnings: list[str] = []
    started = datetime.now(UTC).isoformat(timespec="seconds")

    with stage("aoi") as rec:
        aoi = read_aoi(config.aoi.geometry, name=config.aoi.name)
        problems = validate_aoi(aoi)
        if problems:
            raise AoiError(f"{aoi.path}: {problems[0]}")
        grid = grid_for_aoi(aoi.geometry, config.grid.resolution_m,
                            buffer_m=config.grid.buffer_m, epsg=config.aoi.measure_epsg)
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

    final, partial = prepare_run_dir(run_dir, overwrite=overwrite, key=_config_hash(config))
    try:
        return _run_stages(config, aoi, grid, source, scenes, final, partial, stage, prog,
                           run_warnings, started, workers)
    except FactoryWatchError:
        if not any((partial / ".checkpoints").glob("scene_*.json")):
            shutil.rmtree(partial, ignore_errors=True)
        else:
            log.info("run stopped; checkpoints kept in %s, rerun to resume", partial)
        raise
    except BaseException:
        log.info("run interrupted; checkpoints kept in %s, rerun to resume", partial)
        raise


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

            cluster = self._stack.enter_context(LocalCluster(
                n_workers=self.workers, threads_per_worker=1, processes=True,
                dashboard_address=None))
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
                final: Path, partial: Path, stage: _Stages, prog: Progress[Any],
                run_warnings: list[str], started: str, workers: int) -> dict[str, Any]:
    ckpt = partial / ".checkpoints"
    ckpt.mkdir(exist_ok=True)
    _write_json(partial / "grid.json", grid.to_dict())
    with _Runner(workers, prog) as runner:
        # --- read, co-register, normalise: one date at a time, checkpointed --------------------
        metas: list[dict[str, Any]] = []
        with stage("read+coregister") as rec:
            todo: list[Scene] = []
            ref_meta: dict[str, Any] | None = None
            for scene in scenes:
                meta_path = ckpt / f"scene_{scene.date}.json"
                if meta_path.exists() and (partial / "scenes" / f"{scene.date}.tif").exists():
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
    return _finish(config, aoi, grid, footprints, dates, valid_by_date, final, partial, stage,
                   run_warnings, started, extra)


def detect_date(meta: dict[str, Any], grid: Grid, config: RunConfig, partial: Path,
                aoi_name: str) -> tuple[gpd.GeoDataFrame, BaseGeometry, dict[str, Any]]:
    """Building mask and footprints of one co-registered date (main process or Dask worker).

    Returns ``(footprints, valid_geometry, meta_update)``; writes ``masks/<date>.tif``.
    """
    from geo.detect import building_mask

    d = meta["date"]
    ga = _load_scene(partial / "scenes" / f"{d}.tif", grid, meta)
    vmask = read_to_grid(str(partial / ".checkpoints" / f"valid_{d}.tif"), grid, date=d,
                         roles=["b1"])
    ga = ga.with_data(ga.data, valid=(vmask.data[0] > 0) & ga.valid)
    bm = building_mask(ga, config.detect)
    mask_u8 = np.where(ga.valid, bm.mask.astype("uint8"), 255).astype("uint8")
    _write_raster(mask_u8[None], grid, partial / "masks" / f"{d}.tif", kind="mask", nodata=255)
    fp = polygonize(bm.mask, grid, date=d, aoi_name=aoi_name,
                    min_area_m2=config.detect.min_area_m2,
                    connectivity=config.detect.connectivity, alt_mask=bm.alt_mask,
                    invalid=~ga.valid, coreg_residual_m=float(meta.get("residual_m", 0.0)))
    return fp, _valid_geometry(ga.valid, grid), {"detect_method": bm.method,
                                                 "detect_threshold": float(bm.threshold)}


def change_pair(pair: tuple[dict[str, Any], dict[str, Any]], grid: Grid, config: RunConfig,
                partial: Path) -> dict[str, Any]:
    """Change map between two consecutive dates (main process or Dask worker)."""
    from geo.detect import change_map

    m0, m1 = pair
    a = _load_scene(partial / "scenes" / f"{m0['date']}.tif", grid, m0)
    b = _load_scene(partial / "scenes" / f"{m1['date']}.tif", grid, m1)
    cm = change_map(a, b, params=config.detect)
    stem = f"{m0['date']}_{m1['date']}"
    if config.output.rasters:
        both = a.valid & b.valid
        prob = np.where(both, cm.probability, np.nan).astype("float32")
        _write_raster(prob[None], grid, partial / "change" / f"{stem}_prob.tif",
                      kind="probability", nodata=float("nan"))
        _write_raster(np.where(both, cm.mask.astype("uint8"), 255).astype("uint8")[None],
                      grid, partial / "change" / f"{stem}_mask.tif", kind="mask", nodata=255)
    return {"date_from": m0["date"], "date_to": m1["date"], "method": cm.method,
            "changed_frac": round(float(cm.mask.mean()), 5)}


def prepare_date(scene: Scene, source: Any, grid: Grid, config: RunConfig, partial: Path,
                 ref_meta: dict[str, Any] | None) -> dict[str, Any]:
    """Read one date onto the grid, align and normalise it to the reference, checkpoint it.

    Runs in the main process or in a Dask worker: everything it needs comes in as
    picklable values and the reference is re-read from its checkpoint file.
    Returns the date's metadata (also written to ``.checkpoints/scene_<date>.json``).
    """
    from geo.coreg import coregister
    from geo.normalize import normalize_to

    ckpt = partial / ".checkpoints"
    meta_path = ckpt / f"scene_{scene.date}.json"
    tif = partial / "scenes" / f"{scene.date}.tif"
    res = grid.res_m
    ga = source.read(scene, grid)
    notes: list[str] = []
    meta: dict[str, Any] = {"date": scene.date, "source_id": scene.id, "bands": list(ga.bands),
                            "kind": ga.kind, "valid_frac": round(ga.valid_frac, 4),
                            "scene": {"id": scene.id, "date": scene.date,
                                      "properties": scene.properties}}
    if ga.valid_frac < MIN_VALID_FRAC:
        msg = (f"{scene.id}: only {ga.valid_frac:.0%} of the AOI is valid (cloud, nodata or "
               "outside the image); date skipped")
        log.warning(msg)
        meta.update(skipped=True, warnings=[msg])
        _write_json(meta_path, meta)
        return meta
    if ref_meta is None:
        meta.update(shift_dy_px=0.0, shift_dx_px=0.0, shift_m=0.0, residual_m=0.0, reference=True)
    else:
        ref = _load_scene(partial / "scenes" / f"{ref_meta['date']}.tif", grid, ref_meta)
        if config.coreg.enabled:
            aligned, shift = coregister(ref, ga, max_shift_px=config.coreg.max_shift_m / res)
            residual_m = float(shift.residual_px * res)
            meta.update(shift_dy_px=round(shift.dy_px, 3), shift_dx_px=round(shift.dx_px, 3),
                        shift_m=round(float(np.hypot(shift.dy_px, shift.dx_px) * res), 3),
                        residual_m=round(residual_m, 3), coreg_ok=bool(shift.ok))
            if shift.ok:
                ga = aligned
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
        if ga.kind == ref.kind and ga.bands == ref.bands:
            ga, norm = normalize_to(ref, ga)
            meta["normalization"] = norm
            if norm.get("rejected"):
                msg = f"{scene.id}: radiometric normalisation {norm['rejected']}"
                log.warning(msg)
                notes.append(msg)
    _write_raster(np.where(ga.valid, ga.data, np.float32(np.nan)), grid, tif, kind="scene",
                  nodata=float("nan"), band_names=list(ga.bands),
                  tags={"DATE": ga.date, "SOURCE_ID": ga.source_id})
    _write_raster(np.where(ga.valid, 1, 0).astype("uint8")[None], grid,
                  ckpt / f"valid_{scene.date}.tif", kind="mask")
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


def _track(footprints: gpd.GeoDataFrame, dates: list[str], aoi_name: str, config: RunConfig,
           partial: Path, valid_by_date: dict[str, BaseGeometry] | None) -> Any:
    """Overlap tracking; in guided mode sites keyed by prior, states from ``buildings.csv``."""
    from geo.guided import track_guided
    from geo.match import track_footprints

    if "prior_id" not in footprints.columns:
        return track_footprints(footprints, dates=dates, aoi_name=aoi_name,
                                params=config.match, valid_by_date=valid_by_date)
    path = partial / "buildings.csv"
    table = pd.read_csv(path, dtype={"date": str}) if path.exists() else None
    return track_guided(footprints, dates=dates, aoi_name=aoi_name, params=config.match,
                        table=table)


def _csv_text(df: pd.DataFrame) -> str:
    buf = io.StringIO()
    df.to_csv(buf, index=False, quoting=csv.QUOTE_MINIMAL, float_format="%.6g")
    return buf.getvalue()


def _finish(config: RunConfig, aoi: Aoi, grid: Grid | None, footprints: gpd.GeoDataFrame,
            dates: list[str], valid_by_date: dict[str, BaseGeometry] | None, final: Path,
            partial: Path, stage: _Stages, run_warnings: list[str], started: str,
            extra: dict[str, Any]) -> dict[str, Any]:
    """Track, measure and write every vector output, run.json and the report; publish."""
    from geo.export.qml import write_qml
    from geo.measure import measure_sites

    with stage("track+measure") as rec:
        tracks = _track(footprints, dates, aoi.name, config, partial, valid_by_date)
        tracks = measure_sites(tracks, config.measure)
        rec.update(n_sites=len(tracks.sites), n_events=len(tracks.events))
    # each footprint carries its site's status, so that the footprint layer styles by status too
    status_of = dict(zip(tracks.sites["site_id"], tracks.sites["status"], strict=True))
    tracks = dataclasses.replace(tracks, footprints=tracks.footprints.assign(
        status=tracks.footprints["site_id"].map(status_of)))
    changes = changes_from_events(tracks.events, tracks.footprints)
    synthetic = _is_synthetic(aoi)
    outputs: dict[str, str] = {}
    with stage("export") as rec:
        layers = {"footprints": (tracks.footprints, "footprint_id"),
                  "sites": (tracks.sites, "site_id"), "changes": (changes, "change_id")}
        for name, (gdf, id_field) in layers.items():
            outputs[name] = str(write_geojson(gdf, partial / f"{name}.geojson", layer_name=name,
                                              id_field=id_field))
            write_qml(name, partial / f"{name}.qml")
        sites_table = pd.DataFrame(tracks.sites.drop(columns="geometry"))
        outputs["measurements"] = str(atomic_write_text(partial / "measurements.csv",
                                                        _csv_text(sites_table)))
        outputs["events"] = str(atomic_write_text(partial / "events.csv",
                                                  _csv_text(tracks.events)))
        if config.output.gpkg:
            from geo.export.gpkg import write_gpkg

            outputs["gpkg"] = str(write_gpkg(
                {"footprints": tracks.footprints, "sites": tracks.sites, "changes": changes,
                 "events": tracks.events}, partial / "results.gpkg"))
        if (partial / "buildings.csv").exists():  # guided mode
            outputs["buildings"] = str(partial / "buildings.csv")
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
    _write_json(partial / "run.json", manifest)
    if config.output.report:
        with stage("report"):
            from geo.export.report import write_report

            outputs["report"] = str(write_report(partial))
        manifest["stages"] = stage.records
        _write_json(partial / "run.json", manifest)
    _publish(partial, final)
    outputs = {k: str(final / Path(v).relative_to(partial)) for k, v in outputs.items()}
    return {
        "aoi": aoi.name,
        "run_dir": str(final),
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
              properties={"point_kind": "footprints", "coord_source": "digitised footprints",
                          "coord_confidence": "high", "synthetic": synthetic})
    blob: str = footprints.to_json()
    key = hashlib.sha256(blob.encode()).hexdigest()[:16]
    final, partial = prepare_run_dir(run_dir, overwrite=overwrite, key=key)
    inputs = [{"id": Path(p).name, "path": str(p), "sha256": file_sha256(p)}
              for p in source_paths]
    extra = {"dates": dates, "inputs": inputs, "mode": "vector"}
    cfg = dataclasses.replace(config, output=dataclasses.replace(config.output, rasters=False))
    return _finish(cfg, aoi, None, footprints, dates, None, final, partial, stage, [], started,
                   extra)
