"""Watch a list of AOIs: incremental runs, what changed since last time, on Dask distributed.

A watchlist (TOML) names AOI configs and shared defaults::

    aois = ["sites/", "extra/kanggye_tractor_plant.toml"]   # files, or folders of *.toml

    [defaults.detect]            # any config section; merged under each AOI's own keys
    min_area_m2 = 300.0

    [[claim]]                    # optional: claims re-checked on every watch run
    aoi = "kanggye_tractor_plant"
    subject = "kanggye_tractor_plant:s2"
    reference = "neighbour"      # a site id, "neighbour", "earlier" or a date
    relation = ">"
    factor = 2

Layout of a watch folder (``-o WATCH_DIR``)::

    .factorywatch  .lock                      the marker; one watch at a time
    <aoi>/store/                              per-date records kept between watch runs
    <aoi>/run/                                the published run (a normal run directory)
    changes_since_last.geojson + .qml         building events since the previous watch run
    watch.gpkg                                those events and every site, all AOIs (EPSG:4326)
    index.html                                one page linking each site's report
    watch_state.json                          claim outcomes and dates of the last watch run

Each watch run searches every AOI's source, processes only the dates newer than the last
date of the AOI's published run (read, co-register, normalise, detect: one task per date), the
change map of each new consecutive pair, then tracks, measures and publishes the AOI's run
from the stored per-date footprints (cheap: no pixels are read for the old dates). An AOI
without new dates is left alone and nothing of it is read. Tasks run on a Dask distributed
cluster (a local one by default, or ``scheduler=tcp://HOST:PORT``); every stage output is
written atomically and a stage whose record exists is not redone, so a retried task or a
worker killed mid-task leaves no half-written file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import html
import itertools
import json
import logging
import os
import pickle
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from filelock import FileLock, Timeout

from geo._atomic import atomic_open, atomic_path, atomic_write_text, sweep_temps
from geo._convert import finite_or_none
from geo.aoi import Aoi, read_aoi, validate_aoi
from geo.config import MeasureParams, RunConfig, load_config, read_toml, resolve_defaults
from geo.errors import AoiError, ConfigError, FactoryWatchError, RunDirError, RunDirInUseError
from geo.footprints import empty_footprints
from geo.grid import Grid, grid_for_aoi
from geo.pipeline import RunContext, _config_hash, _config_inputs, _finish, _guarded
from geo.records import ChangePair, DateRecord, RunInputs, RunSummary
from geo.rundir import RunDir, begin_run, safe_name
from geo.runner import Stages
from geo.sources import Scene, open_source
from geo.stage_steps import write_json
from geo.stages import change_pair, detect_date, prepare_date

__all__ = [
    "EXIT_CHANGED",
    "WatchClaim",
    "WatchResult",
    "Watchlist",
    "load_watchlist",
    "watch",
]

log = logging.getLogger(__name__)

EXIT_CHANGED = 10
"""Exit code of ``factorywatch watch`` when something changed since the last watch run."""
CHANGES_NAME = "changes_since_last"
GPKG_NAME = "watch.gpkg"
INDEX_NAME = "index.html"
STATE_NAME = "watch_state.json"
BUILDING_EVENTS = ("new", "grown", "shrunk", "demolished", "merged", "split")
Reporter = Callable[[int, int, str], None]
"""``reporter(n_done, n_total, label)``: called as each task finishes (a progress bar)."""


# --- the watchlist ---------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class WatchClaim:
    """A claim re-checked on every watch run (a ``[[claim]]`` table of the watchlist)."""

    aoi: str
    subject: str
    reference: str = "neighbour"
    relation: str = ">"
    factor: float = 2.0
    date: str = ""

    @property
    def key(self) -> str:
        """Stable text of the claim, used to compare outcomes between watch runs."""
        when = f" on {self.date}" if self.date else ""
        return (f"{self.aoi}: {self.subject} {self.relation} {self.factor:g} x "
                f"{self.reference}{when}")


@dataclass(frozen=True)
class Watchlist:
    """A parsed watchlist: the AOI configs (defaults merged) and the claims to re-check."""

    path: Path
    configs: tuple[RunConfig, ...]
    claims: tuple[WatchClaim, ...] = ()


def _config_paths(wl: Path, entries: object) -> list[Path]:
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{wl}: 'aois' must be a non-empty list of AOI config files or "
                          "folders, e.g. aois = [\"aoi/\"]")
    out: list[Path] = []
    for e in entries:
        p = (wl.parent / Path(str(e)).expanduser()).resolve()
        if p.is_dir():
            found = sorted(p.glob("*.toml"))
            if not found:
                raise ConfigError(f"{wl}: aois entry {e!r} is a folder without *.toml configs; "
                                  "add AOI configs there or remove the entry")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise ConfigError(f"{wl}: aois entry {e!r} does not exist ({p}); fix the path")
    return list(dict.fromkeys(out))


def _claims(wl: Path, raw: object, names: set[str]) -> tuple[WatchClaim, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"{wl}: 'claim' must be an array of tables ([[claim]])")
    keys = {"aoi", "subject", "reference", "relation", "factor", "date"}
    out: list[WatchClaim] = []
    for i, c in enumerate(raw, 1):
        if not isinstance(c, dict) or not {"aoi", "subject"} <= set(c):
            raise ConfigError(f"{wl}: claim #{i} needs at least aoi and subject")
        bad = sorted(set(c) - keys)
        if bad:
            raise ConfigError(f"{wl}: unknown key claim.{bad[0]} in claim #{i}; valid keys are "
                              f"{', '.join(sorted(keys))}")
        if c["aoi"] not in names:
            raise ConfigError(f"{wl}: claim #{i} names aoi {c['aoi']!r}, which is not in the "
                              f"watchlist (AOIs: {', '.join(sorted(names))})")
        try:
            factor = float(c.get("factor", 2.0))
        except (TypeError, ValueError):
            raise ConfigError(f"{wl}: claim #{i} factor must be a number") from None
        out.append(WatchClaim(aoi=str(c["aoi"]), subject=str(c["subject"]),
                              reference=str(c.get("reference", "neighbour")),
                              relation=str(c.get("relation", ">")), factor=factor,
                              date=str(c.get("date", ""))))
    return tuple(out)


def load_watchlist(path: str | Path) -> Watchlist:
    """Read a watchlist TOML (format in the module docstring).

    Raises
    ------
    ConfigError
        Missing file, bad TOML, unknown keys, a missing AOI config, two AOIs with one name.
    """
    wl, raw = read_toml(path, "no such watchlist; pass a TOML file with aois = [...]")
    unknown = sorted(set(raw) - {"aois", "defaults", "claim"})
    if unknown:
        raise ConfigError(f"{wl}: unknown key {unknown[0]!r}; a watchlist has aois, "
                          "[defaults.<section>] and [[claim]]")
    defaults = resolve_defaults(raw.get("defaults", {}), wl)
    configs = [load_config(p, defaults=defaults) for p in _config_paths(wl, raw.get("aois"))]
    seen: dict[str, str] = {}
    for c in configs:
        name = safe_name(c.aoi.name)
        if name in seen:
            raise ConfigError(f"{wl}: AOIs {seen[name]} and {c.config_path} have the same name "
                              f"{c.aoi.name!r}; set [aoi] name in one of them")
        seen[name] = c.config_path
    return Watchlist(path=wl, configs=tuple(configs),
                     claims=_claims(wl, raw.get("claim"), {c.aoi.name for c in configs}))


# --- stage tasks (run on Dask workers or here) -----------------------------------------------
def _read_json(path: Path) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(path.read_text())
    return out


def date_task(scene: Scene, source: Any, grid: Grid, config: RunConfig, store: RunDir,
              ref: DateRecord | None, aoi_name: str) -> DateRecord:
    """Read, align, normalise and detect one new date; return (and store) its record.

    Idempotent: a date whose record exists is not redone, a prepared date is not re-read.
    Every file is written atomically, so a worker killed here leaves no half-written file.
    """
    rec_path = store.date_record(scene.date)
    if rec_path.exists():
        return DateRecord.from_json(_read_json(rec_path))
    meta_path = store.scene_meta(scene.date)
    rec = DateRecord.from_json(_read_json(meta_path)) if meta_path.exists() else None
    if rec is None or not (rec.skipped or store.scene(scene.date).exists()):
        rec = prepare_date(scene, source, grid, config, store,
                           None if ref is None or ref.skipped else ref)
    if not rec.skipped:
        det = detect_date(rec, grid, config, store, aoi_name)
        rec = dataclasses.replace(rec.with_detection(det),
                                  valid_wkb=shapely.to_wkb(det.valid, hex=True))
        with atomic_open(store.footprints_checkpoint(scene.date)) as f:
            pickle.dump(det.footprints, f, protocol=pickle.HIGHEST_PROTOCOL)
    write_json(rec_path, rec.to_json())
    return rec


def changes_task(records: Sequence[DateRecord], grid: Grid, config: RunConfig,
                 store: RunDir) -> list[ChangePair]:
    """Change maps between consecutive usable dates; only missing pairs are computed."""
    usable = sorted((r for r in records if not r.skipped), key=lambda r: r.date)
    out: list[ChangePair] = []
    for m0, m1 in itertools.pairwise(usable):
        rec = store.change_record(m0.date, m1.date)
        if not rec.exists():
            write_json(rec, change_pair((m0, m1), grid, config, store).to_json())
        out.append(ChangePair.from_json(_read_json(rec)))
    return out


def _link(src: Path, dst: Path) -> None:
    """Hard-link a stored raster into the run being built (a copy across file systems)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _load_footprints(store: RunDir, dates: list[str], crs: str) -> gpd.GeoDataFrame:
    fps: list[gpd.GeoDataFrame] = []
    for d in dates:
        with open(store.footprints_checkpoint(d), "rb") as f:
            fps.append(pickle.load(f))  # our own store, written by date_task
    if not any(len(f) for f in fps):
        return empty_footprints(crs)
    return gpd.GeoDataFrame(pd.concat(fps, ignore_index=True), geometry="geometry", crs=crs)


def _link_rasters(store: RunDir, partial: RunDir, dates: list[str],
                  change_maps: Sequence[ChangePair]) -> None:
    """Hard-link the stored scenes, masks and change rasters into the run being built."""
    for d in dates:
        _link(store.scene(d), partial.scene(d))
        _link(store.mask(d), partial.mask(d))
        for ck in (store.scene_meta(d), store.valid_mask(d)):  # the timeline reads them
            if ck.exists():
                _link(ck, partial.checkpoints / ck.name)
    for cm in change_maps:
        for name in ("change_prob", "change_mask"):
            src = getattr(store, name)(cm.date_from, cm.date_to)
            if src.exists():
                _link(src, getattr(partial, name)(cm.date_from, cm.date_to))


def publish_task(config: RunConfig, aoi: Aoi, grid: Grid, records: Sequence[DateRecord],
                 change_maps: list[ChangePair], store: RunDir, run_dir: Path,
                 new_dates: list[str], workers: str) -> RunSummary:
    """Track, measure, export and publish the AOI's run from the stored per-date records.

    Reads no scene pixels except for the report's figures; the run directory is replaced
    atomically through :mod:`geo.rundir` (a run killed here resumes or is rebuilt).
    """
    started = datetime.now(UTC).isoformat(timespec="seconds")
    recs = sorted(records, key=lambda r: r.date)
    usable = [m for m in recs if not m.skipped]
    dates = [m.date for m in usable]
    warnings = [w for m in recs for w in m.warnings]
    footprints = _load_footprints(store, dates, grid.crs)
    valid_by_date = {m.date: shapely.from_wkb(m.valid_wkb) for m in usable}
    key = hashlib.sha256(f"{_config_hash(config)}|{','.join(dates)}".encode()).hexdigest()[:16]
    session = begin_run(run_dir, overwrite=True, key=key, inputs=_config_inputs(config))
    ctx = RunContext(config=config, aoi=aoi, grid=grid, session=session, stages=Stages(),
                     warnings=warnings, started=started, workers=1)
    inputs = RunInputs(dates=tuple(dates), records=tuple(usable), change_maps=tuple(change_maps),
                       workers=workers,
                       watch={"new_dates": new_dates, "store": str(store.root)})

    def body() -> RunSummary:
        _link_rasters(store, session.partial, dates, change_maps)
        write_json(session.partial.grid_json, grid.to_dict())
        return _finish(ctx, footprints, valid_by_date, inputs)

    return dataclasses.replace(_guarded(session, body), new_dates=tuple(new_dates))


# --- executing tasks: a Dask client, or here ---------------------------------------------------
class _Done:
    """A finished task run in this process (the serial executor's 'future')."""

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def _resolve(x: Any) -> Any:
    if isinstance(x, _Done):
        return x.result()
    if isinstance(x, list):
        return [_resolve(v) for v in x]
    return x


class _Executor:
    """Submits stage tasks to a Dask client (with retries), or runs them here (no client).

    ``connect`` makes the client on the first submit, so that a watch with nothing to do
    starts no local cluster.
    """

    def __init__(self, connect: Callable[[], Any] | None, retries: int, describe: str) -> None:
        self.connect, self.retries, self.describe = connect, retries, describe
        self.client: Any = None
        self.labels: dict[Any, str] = {}

    def submit(self, fn: Callable[..., Any], *args: Any, label: str) -> Any:
        if self.connect is None:
            try:
                fut: Any = _Done(fn(*[_resolve(a) for a in args]))
            except Exception as err:
                fut = _Done(error=err)
        else:
            if self.client is None:
                self.client = self.connect()
            fut = self.client.submit(fn, *args, retries=self.retries, pure=False,
                                     key=f"{fn.__name__}-{uuid.uuid4().hex}")
        self.labels[fut] = label
        return fut

    def completed(self, futures: list[Any]) -> Iterator[Any]:
        if self.client is None:
            yield from futures
            return
        from distributed import as_completed

        yield from as_completed(futures)


@contextlib.contextmanager
def _executor(scheduler: str | None, workers: int, retries: int) -> Iterator[_Executor]:
    """Run tasks in-process (``workers=0``), on an existing scheduler or on a local cluster.

    An existing scheduler is connected at once (an unreachable one fails before anything is
    written); a local cluster is started on first use.
    """
    if not scheduler and workers == 0:
        yield _Executor(None, retries, "in-process")
        return
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if scheduler:
            try:
                # timeout: dask's own distributed.comm.timeouts.connect (30 s unless configured)
                client = stack.enter_context(Client(scheduler))
            except (OSError, TimeoutError) as err:
                raise FactoryWatchError(
                    f"cannot reach the Dask scheduler at {scheduler} ({err}); start it with "
                    "'dask scheduler' or drop --scheduler for a local cluster") from None
            log.info("dask: scheduler %s", scheduler)
            ex = _Executor(lambda: client, retries, f"scheduler {scheduler}")
            ex.client = client
            yield ex
            return

        def local() -> Any:
            cluster = stack.enter_context(LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address="127.0.0.1:0", host="127.0.0.1"))  # never collide on 8787
            log.info("dask: local cluster of %d processes", workers)
            return stack.enter_context(Client(cluster))

        yield _Executor(local, retries, f"local cluster of {workers} processes")


# --- planning and running one watch ----------------------------------------------------------
@dataclass
class _Plan:
    """One AOI of a watch run: what is stored, what is new, and its task futures."""

    config: RunConfig
    aoi: Aoi
    grid: Grid
    source: Any
    store: RunDir
    run: RunDir
    records: list[DateRecord]
    new: list[Scene]
    ignored: list[str] = field(default_factory=list)
    futures: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def name(self) -> str:
        return safe_name(self.config.aoi.name)


def _own_dir(d: RunDir, what: str) -> None:
    """Create ``d`` with our marker, or check that an existing one is ours."""
    if os.path.lexists(d.root):
        if not d.is_ours(finished=False):
            raise RunDirError(f"{d.root} exists and was not made by factorywatch (no marker); "
                              f"move it away or choose another {what}")
        return
    d.root.mkdir(parents=True)
    d.write_marker()


def _check_store_key(store: RunDir, config: RunConfig) -> None:
    """A store holds dates processed with one config: refuse to mix in another one.

    Only ``[output]`` may change between watch runs (it is not part of the key).
    """
    key = _config_hash(config)
    try:
        old = _read_json(store.state).get("key")
    except (OSError, ValueError):
        old = None
    if old is None:
        write_json(store.state, {"key": key})
    elif old != key:
        raise ConfigError(
            f"{config.config_path}: the config changed since {store.root} was built (only "
            "[output] may change between watch runs), so its stored dates would mix two "
            "configs; watch into another -o, or remove that store to reprocess every date")


def _plan(config: RunConfig, wd: RunDir, offline: bool) -> _Plan:
    aoi = read_aoi(config.aoi.geometry, name=config.aoi.name)
    problems = validate_aoi(aoi)
    if problems:
        raise AoiError(f"{aoi.path}: {problems[0]}")
    grid = grid_for_aoi(aoi.geometry, config.grid.resolution_m, buffer_m=config.grid.buffer_m,
                        epsg=config.aoi.measure_epsg)
    source = open_source(config, offline=offline)
    scenes = source.search(aoi, config.source.start or None, config.source.end or None)
    site = wd.root / safe_name(config.aoi.name)
    store = RunDir(site / "store")
    _own_dir(store, "-o")
    _check_store_key(store, config)
    sweep_temps(store.root)
    store.checkpoints.mkdir(exist_ok=True)
    run = RunDir(site / "run")
    # "processed" = published: a date stored by a watch that then failed is redone from its
    # record (no pixels read), so a failure in the middle of a series loses no date
    last = max(_published_dates(run), default="")
    stored = {d: DateRecord.from_json(_read_json(p)) for d, p in store.date_records().items()}
    records = [r for d, r in stored.items() if d <= last]
    new = [s for s in scenes if s.date > last]
    ignored = [s.id for s in scenes if s.date <= last and s.date not in stored]
    if ignored:
        log.warning("%s: %d scene(s) dated before the last watched date %s are ignored (%s); "
                    "run 'factorywatch run' for a full reprocessing", aoi.name, len(ignored),
                    last, ", ".join(ignored[:3]))
    return _Plan(config, aoi, grid, source, store, run, records, new, ignored)


def _published_dates(run: RunDir) -> list[str]:
    """Dates of the published run (none if there is no finished run of ours)."""
    if not run.is_ours():
        return []
    try:
        return [str(d) for d in _read_json(run.run_json).get("dates", [])]
    except (OSError, ValueError):
        return []


def _needs_publish(plan: _Plan) -> bool:
    if plan.new:
        return True
    usable = sorted(r.date for r in plan.records if not r.skipped)
    return bool(usable) and sorted(_published_dates(plan.run)) != usable


def _submit_dates(plans: list[_Plan], ex: _Executor) -> None:
    """Submit every new date: the reference dates of fresh AOIs first, then the others."""
    todo = {p.name: list(p.new) for p in plans}
    refs: dict[str, Any] = {}
    for p in plans:
        ref = next((r for r in p.records if r.reference), None)
        if ref is None and todo[p.name]:
            first = todo[p.name].pop(0)
            refs[p.name] = (first, ex.submit(date_task, first, p.source, p.grid, p.config,
                                             p.store, None, p.aoi.name,
                                             label=f"{p.name}: date {first.date} (reference)"))
        else:
            refs[p.name] = (None, ref)
    for p in plans:
        first, ref = refs[p.name]
        rest = todo[p.name]
        if first is not None:
            p.futures[first.date] = ref
            try:
                ref = ref.result()
                while ref.skipped and rest:  # the reference date was unusable: next
                    nxt = rest.pop(0)
                    fut = ex.submit(date_task, nxt, p.source, p.grid, p.config, p.store, None,
                                    p.aoi.name, label=f"{p.name}: date {nxt.date} (reference)")
                    p.futures[nxt.date] = fut
                    ref = fut.result()
            except Exception as err:
                _fail(p, err)
                continue
        for s in rest:
            p.futures[s.date] = ex.submit(date_task, s, p.source, p.grid, p.config, p.store, ref,
                                          p.aoi.name, label=f"{p.name}: date {s.date}")


def _submit_rest(plans: list[_Plan], ex: _Executor) -> None:
    for p in plans:
        if not _needs_publish(p):
            continue
        recs = [*p.records, *p.futures.values()]
        new_dates = sorted(p.futures)
        changes = ex.submit(changes_task, recs, p.grid, p.config, p.store,
                            label=f"{p.name}: change maps")
        p.futures["changes"] = changes
        p.futures["publish"] = ex.submit(publish_task, p.config, p.aoi, p.grid, recs, changes,
                                         p.store, p.run.root, new_dates, ex.describe,
                                         label=f"{p.name}: track, measure, publish")


# --- what changed since last time ------------------------------------------------------------
@dataclass
class WatchResult:
    """The outcome of one watch run."""

    events: list[dict[str, Any]]
    """One JSON-ready object per event (buildings, then claims), the stdout JSON lines."""
    aois: list[dict[str, Any]]
    """Per AOI: name, run_dir, dates, new_dates, n_sites, status (updated/unchanged/error)."""
    errors: list[str]
    """One line per AOI that failed (its config path, the reason)."""
    outputs: dict[str, str]
    """Summary files written in the watch folder."""

    @property
    def changed(self) -> bool:
        """True if any event happened since the previous watch run."""
        return bool(self.events)


def _building_events(plan: _Plan, new_dates: list[str]) -> gpd.GeoDataFrame | None:
    """The run's change events whose later date is a newly watched date (EPSG:4326)."""
    layer = plan.run.layer("changes")
    if not new_dates or not layer.exists():
        return None
    ch = gpd.read_file(layer, datetime_as_string=True)
    if not len(ch) or "date_to" not in ch.columns:
        return None
    ch = ch[ch["date_to"].astype(str).isin(new_dates) & ch["event"].isin(BUILDING_EVENTS)]
    return ch.assign(aoi=plan.aoi.name) if len(ch) else None


def _event_record(row: Any, plan: _Plan) -> dict[str, Any]:
    c = row.geometry.representative_point()
    return {"type": "building", "aoi": plan.aoi.name, "site_id": row.site_id,
            "event": row.event, "date_from": row.date_from or None, "date_to": row.date_to,
            "area_from_m2": _num(row.area_from_m2), "area_to_m2": _num(row.area_to_m2),
            "change_area_m2": _num(row.change_area_m2), "lon": round(c.x, 6),
            "lat": round(c.y, 6), "change_id": row.change_id,
            "synthetic": bool(plan.aoi.properties.get("synthetic")),
            "run_dir": str(plan.run.root), "report": str(plan.run.report_index)}


def _num(x: Any) -> float | None:
    v = finite_or_none(x)
    return None if v is None else round(v, 2)


def _claim_outcomes(claims: Sequence[WatchClaim], plans: dict[str, _Plan],
                    previous: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Re-check every claim on its AOI's run; an outcome is an event if its verdict changed."""
    from geo.claims import ClaimError, check_claim
    from geo.vector import read_run_tables

    events: list[dict[str, Any]] = []
    state: dict[str, Any] = {}
    for cl in claims:
        plan = plans.get(cl.aoi)
        if plan is None or not plan.run.is_ours():
            continue
        rec: dict[str, Any] = {"verdict": "undecidable", "estimate": None, "lo": None,
                               "hi": None, "date": None}
        try:
            sites, fps, measure = read_run_tables(plan.run.root)
            names = {f.name for f in dataclasses.fields(MeasureParams)}
            params = MeasureParams(**{k: v for k, v in measure.items() if k in names})
            res = check_claim(sites, fps, subject=cl.subject, reference=cl.reference,
                              relation=cl.relation, factor=cl.factor, date=cl.date or None,
                              params=params)
            rec.update(verdict=res.verdict, estimate=round(res.estimate, 4),
                       lo=round(res.lo, 4), hi=round(res.hi, 4), date=res.subject_date,
                       sentence=res.sentence)
        except ClaimError as err:  # never a confident answer when it cannot be checked
            rec["sentence"] = f"{cl.key}: cannot be checked ({err})"
        state[cl.key] = rec
        before = previous.get(cl.key, {})
        if (before.get("verdict"), before.get("date")) != (rec["verdict"], rec["date"]):
            events.append({"type": "claim", "aoi": cl.aoi, "claim": cl.key,
                           "previous_verdict": before.get("verdict"), **rec,
                           "run_dir": str(plan.run.root)})
    return events, state


def _write_gpkg(layers: dict[str, gpd.GeoDataFrame], path: Path) -> Path:
    """Layers in EPSG:4326 (AOIs lie in different UTM zones) with their stored QGIS styles."""
    import pyogrio

    from geo.export.gpkg import GEOMETRY_COLUMN, _styles_frame, _tabular

    with atomic_path(path) as tmp:
        for name, gdf in layers.items():
            kw: dict[str, Any] = {"geometry_type": "Polygon"} if not len(gdf) else {
                "promote_to_multi": None}
            pyogrio.write_dataframe(_tabular(gdf, name), tmp, layer=name, driver="GPKG",
                                    append=tmp.exists(),
                                    layer_options={"GEOMETRY_NAME": GEOMETRY_COLUMN}, **kw)
        pyogrio.write_dataframe(_styles_frame([(n, GEOMETRY_COLUMN) for n in layers]), tmp,
                                layer="layer_styles", driver="GPKG", append=True)
    return path


def _index_html(rows: list[dict[str, Any]], n_events: int, when: str) -> str:
    def link(r: dict[str, Any]) -> str:
        rel = Path(r["name"]) / "run" / "report" / "index.html"
        ok = r.get("report_exists")
        return f'<a href="{html.escape(rel.as_posix())}">report</a>' if ok else "no report"

    body = "".join(
        f"<tr><td>{html.escape(r['aoi'])}{' (SYNTHETIC)' if r.get('synthetic') else ''}</td>"
        f"<td>{html.escape(r['status'])}</td><td>{len(r.get('dates', []))}</td>"
        f"<td>{html.escape(', '.join(r.get('new_dates', [])) or '-')}</td>"
        f"<td>{r.get('n_events', 0)}</td><td>{r.get('n_sites', '')}</td><td>{link(r)}</td></tr>"
        for r in rows)
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>factorywatch watch</title><style>body{font-family:sans-serif;margin:2em}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px 8px}</style>"
        f"</head><body><h1>factorywatch watch</h1><p>{html.escape(when)}: {n_events} event(s) "
        f"since the previous watch run; see <a href=\"{CHANGES_NAME}.geojson\">"
        f"{CHANGES_NAME}.geojson</a> and <a href=\"{GPKG_NAME}\">{GPKG_NAME}</a>.</p>"
        "<table><tr><th>AOI</th><th>status</th><th>dates</th><th>new dates</th>"
        "<th>events</th><th>sites</th><th>report</th></tr>"
        f"{body}</table></body></html>\n")


def _write_outputs(wd: RunDir, plans: list[_Plan], changes: list[gpd.GeoDataFrame],
                   rows: list[dict[str, Any]], n_events: int, state: dict[str, Any]
                   ) -> dict[str, str]:
    from geo.export.geojson import write_geojson
    from geo.export.qml import write_qml

    cols = ["change_id", "aoi", "site_id", "event", "date_from", "date_to", "area_from_m2",
            "area_to_m2", "change_area_m2", "geometry"]
    ch = (gpd.GeoDataFrame(pd.concat(changes, ignore_index=True), crs="EPSG:4326")[cols]
          if changes else gpd.GeoDataFrame({c: [] for c in cols[:-1]},
                                           geometry=gpd.GeoSeries([], crs="EPSG:4326")))
    sites = [gpd.read_file(p.run.layer("sites"), datetime_as_string=True).assign(aoi=p.aoi.name)
             for p in plans if p.run.is_ours() and p.run.layer("sites").exists()]
    all_sites = (gpd.GeoDataFrame(pd.concat(sites, ignore_index=True), crs="EPSG:4326")
                 if sites else gpd.GeoDataFrame({"site_id": []},
                                                geometry=gpd.GeoSeries([], crs="EPSG:4326")))
    out = {"changes": str(write_geojson(ch, wd.root / f"{CHANGES_NAME}.geojson",
                                        layer_name=CHANGES_NAME, id_field="change_id"))}
    write_qml("changes", wd.root / f"{CHANGES_NAME}.qml")
    out["gpkg"] = str(_write_gpkg({"changes": ch, "sites": all_sites}, wd.root / GPKG_NAME))
    when = datetime.now(UTC).isoformat(timespec="seconds")
    out["index"] = str(atomic_write_text(wd.root / INDEX_NAME, _index_html(rows, n_events, when)))
    out["state"] = str(write_json(wd.root / STATE_NAME, {**state, "finished": when}))
    return out


# --- the watch run ---------------------------------------------------------------------------
def _check_watch_dir(watch_dir: str | Path, inputs: Sequence[str]) -> RunDir:
    """The watch folder, refused before anything is written if it is not ours to write."""
    wd = RunDir(Path(os.path.abspath(Path(watch_dir).expanduser())))
    if wd.root.is_symlink():
        raise RunDirError(f"{wd.root} is a symbolic link; pass the real folder as -o")
    if wd.root.exists() and not wd.is_ours(finished=False) and any(wd.root.iterdir()):
        raise RunDirError(f"{wd.root} exists, is not empty and was not made by factorywatch "
                          "watch (no marker); choose another -o")
    for inp in inputs:
        real = Path(inp).resolve()
        if real == wd.root.resolve() or wd.root.resolve() in real.parents:
            raise RunDirError(f"{wd.root} contains an input of the watchlist ({real}); "
                              "choose another -o")
    return wd


def _fail(p: _Plan, err: BaseException) -> None:
    if not p.error:
        p.error = f"{p.config.config_path}: {' '.join(str(err).split())}"


def _gather(plans: list[_Plan], ex: _Executor, reporter: Reporter | None) -> None:
    """Wait for every task (progress as they finish); note the first error of each AOI."""
    futs = [f for p in plans for f in p.futures.values()]
    owner = {id(f): p for p in plans for f in p.futures.values()}
    for i, fut in enumerate(ex.completed(futs), 1):
        if reporter is not None:
            reporter(i, len(futs), ex.labels.get(fut, "task"))
        try:
            fut.result()
        except Exception as err:
            _fail(owner[id(fut)], err)


def watch(watchlist: Watchlist, watch_dir: str | Path, *, scheduler: str | None = None,
          workers: int = 2, retries: int = 2, offline: bool = False,
          reporter: Reporter | None = None) -> WatchResult:
    """Bring every AOI of ``watchlist`` up to date and report what changed since last time.

    Parameters
    ----------
    watchlist : Watchlist
        From :func:`load_watchlist`.
    watch_dir : str or Path
        The watch folder (layout in the module docstring); created if missing.
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://HOST:PORT``); its workers must see
        ``watch_dir`` and the imagery at the same paths (shared storage) and import ``geo``.
    workers : int
        Without ``scheduler``: the size of the local Dask cluster; 0 runs every task here.
    retries : int
        Times a failed task is retried (``client.submit(..., retries=N)``).
    offline : bool
        Remote imagery from the cache only.
    reporter : callable, optional
        ``reporter(n_done, n_total, label)`` after each task (a progress bar).

    Returns
    -------
    WatchResult

    Raises
    ------
    RunDirError
        ``watch_dir`` is not ours, or another watch holds its lock.
    """
    t0 = time.perf_counter()
    inputs = [p for c in watchlist.configs for p in _config_inputs(c)] + [str(watchlist.path)]
    wd = _check_watch_dir(watch_dir, inputs)
    with _executor(scheduler, workers, retries) as ex:
        wd.root.mkdir(parents=True, exist_ok=True)
        if not wd.marker.exists():
            wd.write_marker()
        lock = FileLock(str(wd.lock), timeout=0, is_singleton=False)
        try:
            lock.acquire()
        except Timeout:
            raise RunDirInUseError(f"{wd.root}: another factorywatch watch is running here "
                                   f"(lock {wd.lock}); wait for it or choose another -o") from None
        try:
            try:
                previous = _read_json(wd.root / STATE_NAME)
            except (OSError, ValueError):
                previous = {}
            plans, errors = [], []
            for cfg in watchlist.configs:
                try:
                    plans.append(_plan(cfg, wd, offline))
                except FactoryWatchError as err:
                    errors.append(f"{cfg.config_path}: {' '.join(str(err).split())}")
            _submit_dates(plans, ex)
            _submit_rest([p for p in plans if not p.error], ex)
            _gather(plans, ex, reporter)
            errors += [p.error for p in plans if p.error]
            result = _summarise(watchlist, wd, plans, previous, errors)
        finally:
            lock.release()
    log.info("watch: %d AOI(s), %d event(s), %d error(s) in %.1f s", len(plans),
             len(result.events), len(errors), time.perf_counter() - t0)
    return result


def _summarise(watchlist: Watchlist, wd: RunDir, plans: list[_Plan], previous: dict[str, Any],
               errors: list[str]) -> WatchResult:
    """Events since the previous watch run: on run dates that its state did not list yet.

    Counting against the previous *state* (written last) rather than against the dates
    processed now means a watch that stopped after publishing loses no event: the next watch
    reports it.
    """
    events: list[dict[str, Any]] = []
    changes: list[gpd.GeoDataFrame] = []
    rows: list[dict[str, Any]] = []
    prev_aois = previous.get("aois", {})
    for p in plans:
        new_dates = sorted(d for d in p.futures if d not in ("changes", "publish"))
        before = prev_aois.get(p.aoi.name, {}).get("dates", [])
        dates: list[str] = []
        n_sites: Any = ""
        if p.run.is_ours():
            run = _read_json(p.run.run_json)
            dates, n_sites = list(run.get("dates", [])), run.get("n_sites", "")
        ch = None if p.error else _building_events(p, [d for d in dates if d not in before])
        evs = [_event_record(r, p) for r in ch.itertuples()] if ch is not None else []
        if ch is not None:
            changes.append(ch)
        events += evs
        rows.append({"aoi": p.aoi.name, "name": p.name, "dates": before if p.error else dates,
                     "n_sites": n_sites, "new_dates": [] if p.error else new_dates,
                     "n_events": len(evs), "status": "error" if p.error else "updated"
                     if "publish" in p.futures else "unchanged", "run_dir": str(p.run.root),
                     "report_exists": p.run.report_index.exists(),
                     "synthetic": bool(p.aoi.properties.get("synthetic"))})
    claim_events, claim_state = _claim_outcomes(
        watchlist.claims, {p.aoi.name: p for p in plans if not p.error},
        previous.get("claims", {}))
    events += claim_events
    state = {"claims": {**previous.get("claims", {}), **claim_state},
             "aois": {**prev_aois, **{r["aoi"]: {"dates": r["dates"], "status": r["status"]}
                                      for r in rows}}}
    outputs = _write_outputs(wd, plans, changes, rows, len(events), state)
    return WatchResult(events=events, aois=rows, errors=errors, outputs=outputs)
