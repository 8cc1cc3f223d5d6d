"""Run one AOI end to end: the orchestration of the stages.

A run writes into ``<run_dir>.partial/`` and renames it to ``<run_dir>`` when
everything is written, so a run directory is never half-written. Per-date
checkpoints (co-registered scenes, masks) stay in the ``.partial`` folder when a
run is interrupted, and the next run with the same config resumes from them. Every
path inside a run, the overwrite rule, the lock and the publish belong to
:mod:`geo.rundir`; the per-date and per-pair stage functions to :mod:`geo.stages`; running
them serially or on Dask to :mod:`geo.runner`; the records they pass to :mod:`geo.records`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from geo import __version__
from geo._atomic import disk_full_error
from geo.aoi import Aoi
from geo.changes import changes_from_events
from geo.config import RunConfig, config_to_dict
from geo.errors import AoiError, DiskFullError, FactoryWatchError, NoImageryError
from geo.export.geojson import write_geojson
from geo.export.tables import write_csv
from geo.footprints import empty_footprints
from geo.grid import Grid, to_crs
from geo.http import redact
from geo.plausibility import adjacent_spread, gate_warnings
from geo.preflight import preflight
from geo.provenance import git_commit, versions
from geo.records import ChangePair, DateRecord, RunInputs, RunSummary
from geo.rundir import RunDir, RunSession, begin_run, check_target
from geo.runner import Progress, StageRunner, Stages, no_progress
from geo.sources import Scene, open_source
from geo.sources.local import file_sha256
from geo.stage_steps import write_json
from geo.stages import change_pair, detect_date, prepare_date

__all__ = ["Progress", "RunContext", "changes_from_events", "run_aoi", "run_vector"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunContext:
    """What every stage of one run shares: config, AOI, grid, session, timer, warnings.

    ``grid`` is ``None`` for a run from footprints (``run_vector``); ``warnings`` is the run's
    list, appended to by the stages.
    """

    config: RunConfig
    aoi: Aoi
    grid: Grid | None
    session: RunSession
    stages: Stages
    progress: Progress[Any] = no_progress
    warnings: list[str] = dataclasses.field(default_factory=list)
    started: str = dataclasses.field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    workers: int = 1
    source: Any = None  # the run's imagery source (the timeline reads extra STAC scenes)

    @property
    def partial(self) -> RunDir:
        """The ``.partial`` run directory being written."""
        return self.session.partial


def _config_hash(config: RunConfig) -> str:
    d = config_to_dict(config)
    d.pop("output", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _config_inputs(config: RunConfig) -> list[str]:
    """Files and folders a run reads: a run directory must never contain one of them."""
    return [p for p in (config.config_path, config.aoi.geometry, config.source.path,
                        config.source.cache_dir) if p]


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
) -> RunSummary:
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
    RunSummary
        aoi, run_dir, n_scenes, dates, n_sites, outputs, warnings; ``to_dict()`` is ``--json``.

    Raises
    ------
    FactoryWatchError
        For bad input (AOI, config, imagery) and runtime failures; nothing is
        left in ``run_dir`` then.
    """
    check_target(run_dir, overwrite=overwrite, inputs=_config_inputs(config))
    stage = Stages()
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
    from geo.stream import fixed_budget, streams

    config = fixed_budget(config)  # resolved once: every stage (and Dask worker) agrees
    if streams(grid, config):
        log.info("grid %dx%d is above the memory budget (%.0f MiB): streamed block by block",
                 *grid.shape, config.grid.memory_budget_mb)
    ctx = RunContext(config=config, aoi=aoi, grid=grid, session=session, stages=stage,
                     progress=progress or no_progress, warnings=run_warnings, started=started,
                     workers=workers, source=source)
    return _guarded(session, lambda: _run_stages(ctx, grid, source, scenes))


def _guarded(session: RunSession, body: Callable[[], RunSummary]) -> RunSummary:
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


def _keep(rec: DateRecord, ctx: RunContext, recs: list[DateRecord]) -> bool:
    """Collect a date's warnings; keep it unless it was skipped. True when kept."""
    ctx.warnings.extend(rec.warnings)
    if not rec.skipped:
        recs.append(rec)
    return not rec.skipped


def _resumed(ctx: RunContext, scenes: list[Scene], recs: list[DateRecord]
             ) -> tuple[list[Scene], DateRecord | None]:
    """Dates already checkpointed by an interrupted run (kept in ``recs``), and those to do."""
    partial = ctx.partial
    todo: list[Scene] = []
    ref: DateRecord | None = None
    for scene in scenes:
        meta_path = partial.scene_meta(scene.date)
        if meta_path.exists() and partial.scene(scene.date).exists():
            rec = DateRecord.from_json(json.loads(meta_path.read_text()))
            if _keep(rec, ctx, recs):
                ref = ref or (rec if rec.reference else None)
        else:
            todo.append(scene)
    return todo, ref


def _read_dates(ctx: RunContext, runner: StageRunner, grid: Grid, source: Any,
                scenes: list[Scene]) -> list[DateRecord]:
    """Read, co-register, normalise: one date at a time, checkpointed; sorted by date."""
    recs: list[DateRecord] = []
    with ctx.stages("read+coregister") as notes:
        todo, ref = _resumed(ctx, scenes, recs)
        notes["resumed"] = len(scenes) - len(todo)
        # the reference date (first usable one) must exist before the others are aligned
        while ref is None and todo:
            rec = prepare_date(todo.pop(0), source, grid, ctx.config, ctx.partial, None)
            if _keep(rec, ctx, recs):
                ref = rec
        if todo and ref is not None:
            for rec in runner.map(prepare_date, todo, "reading dates", source, grid,
                                  ctx.config, ctx.partial, ref):
                _keep(rec, ctx, recs)
        notes["n_dates"] = len(recs)
    if not recs:
        raise NoImageryError(f"{ctx.aoi.name}: no date has enough valid pixels inside the AOI")
    return sorted(recs, key=lambda r: r.date)


def _detect_dates(ctx: RunContext, runner: StageRunner, grid: Grid, recs: list[DateRecord]
                  ) -> tuple[gpd.GeoDataFrame, dict[str, BaseGeometry], list[DateRecord]]:
    """Building masks and footprints of every date; the records gain how they were made."""
    with ctx.stages("detect+footprints") as notes:
        results = runner.map(detect_date, recs, "detecting buildings", grid, ctx.config,
                             ctx.partial, ctx.aoi.name)
        fps = [r.footprints for r in results]
        valid_by_date = {m.date: r.valid for m, r in zip(recs, results, strict=True)}
        recs = [m.with_detection(r) for m, r in zip(recs, results, strict=True)]
        footprints = (pd.concat(fps, ignore_index=True) if any(len(f) for f in fps)
                      else empty_footprints(grid.crs))
        footprints = gpd.GeoDataFrame(footprints, geometry="geometry", crs=grid.crs)
        notes["n_footprints"] = len(footprints)
    return footprints, valid_by_date, recs


def _run_stages(ctx: RunContext, grid: Grid, source: Any, scenes: list[Scene]) -> RunSummary:
    partial = ctx.partial
    partial.checkpoints.mkdir(exist_ok=True)
    write_json(partial.grid_json, grid.to_dict())
    with StageRunner(ctx.workers, ctx.progress) as runner:
        recs = _read_dates(ctx, runner, grid, source, scenes)
        footprints, valid_by_date, recs = _detect_dates(ctx, runner, grid, recs)
        if ctx.config.buildings.priors:  # guided mode: the named priors replace the detections
            from geo.guided_stage import guided_stage

            with ctx.stages("guided") as notes:
                footprints = guided_stage(recs, grid, ctx.config, partial, ctx.aoi.name, notes)
        # --- pixel change maps between consecutive dates ---------------------------------------
        with ctx.stages("change") as notes:
            change_maps: list[ChangePair] = runner.map(
                change_pair, list(itertools.pairwise(recs)), "change maps", grid, ctx.config,
                partial)
            notes["n_pairs"] = len(change_maps)
    inputs = RunInputs(dates=tuple(r.date for r in recs), records=tuple(recs),
                       change_maps=tuple(change_maps), workers=ctx.workers)
    return _finish(ctx, footprints, valid_by_date, inputs)


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


def _manifest(ctx: RunContext, tracks: Any, inputs: RunInputs) -> dict[str, Any]:
    """The run.json object (the file edge: written as JSON by :func:`_finish`)."""
    from geo.timeline_stage import timeline_json

    aoi, grid = ctx.aoi, ctx.grid
    return {
        "factorywatch": __version__,
        "synthetic": _is_synthetic(aoi),
        "status": "complete",
        "started": ctx.started,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "aoi": {"name": aoi.name, "path": aoi.path, "properties": aoi.properties,
                "bounds_4326": list(aoi.geometry.bounds), "is_measuring": aoi.is_measuring},
        "grid": grid.to_dict() if grid is not None else None,
        "config": json.loads(redact(json.dumps(config_to_dict(ctx.config)))),
        "versions": versions(),
        "git_commit": git_commit(),
        "warnings": ctx.warnings,
        "stages": ctx.stages.to_json(),
        "n_sites": len(tracks.sites),
        "timeline": timeline_json(tracks.sites),
        **inputs.to_json(),
    }


def _finish(ctx: RunContext, footprints: gpd.GeoDataFrame,
            valid_by_date: dict[str, BaseGeometry] | None, inputs: RunInputs) -> RunSummary:
    """Track, measure and write every vector output, run.json and the report; publish."""
    from geo.measure import measure_sites
    from geo.timeline_stage import with_timeline

    config, aoi, grid, partial = ctx.config, ctx.aoi, ctx.grid, ctx.partial
    dates = list(inputs.dates)
    with ctx.stages("track+measure") as notes:
        tracks = _track(footprints, dates, aoi.name, config, partial, valid_by_date)
        if grid is not None:
            tracks = _scatter_and_warn(tracks, config, ctx.warnings)
        tracks = measure_sites(tracks, config.measure)
        notes.update(n_sites=len(tracks.sites), n_events=len(tracks.events))
    tracks = _carry_columns(tracks, dates)
    tracks = _with_cloud_share(tracks, valid_by_date)
    with ctx.stages("timeline"):  # geo/timeline_stage.py
        tracks = with_timeline(tracks, partial, grid, ctx.warnings, source=ctx.source, aoi=aoi,
                               span=(config.source.start or None, config.source.end or None))
    changes = changes_from_events(tracks.events, tracks.footprints)
    outputs: dict[str, str] = {}
    with ctx.stages("export") as notes:
        outputs.update(_export_layers(tracks, changes, partial, config, dates,
                                      grid.crs if grid is not None else str(footprints.crs),
                                      title=f"factorywatch: {aoi.name}"))
        notes["n_files"] = len(outputs)
    manifest = _manifest(ctx, tracks, inputs)
    write_json(partial.run_json, manifest)
    if config.output.report:
        with ctx.stages("report"):
            from geo.export.report import write_report

            outputs["report"] = str(write_report(partial.root, progress=ctx.progress))
        manifest["stages"] = ctx.stages.to_json()
        write_json(partial.run_json, manifest)
    ctx.session.publish()
    final = ctx.session.final
    return RunSummary(aoi=aoi.name, run_dir=str(final.root), n_scenes=len(dates),
                      dates=tuple(dates), n_sites=len(tracks.sites),
                      outputs={k: str(partial.relative(Path(v), final))
                               for k, v in outputs.items()},
                      warnings=tuple(ctx.warnings), synthetic=_is_synthetic(aoi))


def run_vector(
    footprints: gpd.GeoDataFrame,
    run_dir: str | Path,
    *,
    aoi_name: str,
    config: RunConfig,
    overwrite: bool = False,
    source_paths: Iterable[str] = (),
) -> RunSummary:
    """Track, measure and write outputs from analyst-digitised footprints (no imagery).

    ``footprints`` must be in a projected metric CRS with the footprint columns
    (see :func:`geo.vector.read_footprints`).
    """
    if footprints.crs is None or not footprints.crs.is_projected:
        raise AoiError("footprints must be in a projected metric CRS; read them with "
                       "geo.vector.read_footprints")
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
    inputs = RunInputs(dates=tuple(dates), mode="vector",
                       files=tuple((p, file_sha256(p)) for p in source_paths))
    cfg = dataclasses.replace(config, output=dataclasses.replace(config.output, rasters=False))
    ctx = RunContext(config=cfg, aoi=aoi, grid=None, session=session, stages=Stages())
    return _guarded(session, lambda: _finish(ctx, footprints, None, inputs))
