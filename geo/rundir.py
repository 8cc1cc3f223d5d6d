"""The run directory: the one module that knows its layout, its marker, its lock and publish.

Layout of a run directory (DESIGN.md "Run directory")::

    run.json  grid.json  .factorywatch          manifest, grid, the marker
    footprints|sites|changes.geojson + .qml     vector layers and their QGIS styles
    measurements.csv  events.csv  results.gpkg  tables
    scenes/<date>.tif  masks/<date>.tif         co-registered scenes, building masks
    change/<d0>_<d1>_prob.tif|_mask.tif         change maps
    report/index.html                           the HTML report

A run is built in the sibling ``<name>.partial/`` (with ``.state.json``, ``.lock`` and
``.checkpoints/``) and renamed to ``<name>`` when complete.

The overwrite rule: a folder is replaced only if it carries the marker file that
factorywatch wrote (plus, for a finished run, a ``run.json`` of ours); a symbolic link is
never followed to delete; the working folder, the home folder, a filesystem root and any
folder that contains the run's inputs are never replaced; a sibling ``.partial`` is reused
only when it carries the marker. Two processes never write the same run directory: the
second one stops at once with the PID of the first (a real file lock, ``filelock``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from geo import __version__
from geo._atomic import atomic_write_text, disk_full_error, replace_dir, sweep_temps
from geo.errors import OutputExistsError, RunDirError, RunDirInUseError

__all__ = [
    "MARKER",
    "RunDir",
    "RunSession",
    "begin_run",
    "check_target",
    "prepare_demo_folder",
    "safe_name",
]

log = logging.getLogger(__name__)

MARKER = ".factorywatch"
"""Marker file in every folder factorywatch creates and may therefore replace."""
_MARKER_KIND = "factorywatch-run-directory"
_UNSAFE = re.compile(r"[\x00-\x1f/\\:*?\"<>|]+")


def safe_name(name: str) -> str:
    """``name`` as one safe path component (for the default ``runs/<name>``).

    Examples
    --------
    >>> safe_name("/etc"), safe_name("../x"), safe_name("Kanggye plant"), safe_name("..")
    ('etc', 'x', 'Kanggye plant', '_')
    """
    s = _UNSAFE.sub("_", str(name)).strip(" ._")
    s = re.sub(r"_+", "_", s).strip("_")
    return s[:120] or "_"


@dataclass(frozen=True, slots=True)
class RunDir:
    """Every path inside one run directory (or its ``.partial`` build folder).

    A plain value: nothing is read or written by creating it, and it pickles (Dask
    workers get it). ``RunDir(p).partial`` is the folder a run into ``p`` is built in.
    """

    root: Path

    # --- files at the top ---------------------------------------------------------------
    @property
    def run_json(self) -> Path:
        """``run.json``: the run's manifest."""
        return self.root / "run.json"

    @property
    def grid_json(self) -> Path:
        """``grid.json``: the AOI grid."""
        return self.root / "grid.json"

    @property
    def marker(self) -> Path:
        """The marker file that makes this folder factorywatch's to replace."""
        return self.root / MARKER

    @property
    def state(self) -> Path:
        """Config hash and owner PID of the run building this ``.partial``."""
        return self.root / ".state.json"

    @property
    def lock(self) -> Path:
        """The lock file (held by the run building this folder)."""
        return self.root / ".lock"

    def layer(self, name: str) -> Path:
        """``<name>.geojson`` (footprints, sites, changes)."""
        return self.root / f"{name}.geojson"

    def style(self, name: str) -> Path:
        """``<name>.qml``, the QGIS style beside a layer."""
        return self.root / f"{name}.qml"

    @property
    def measurements_csv(self) -> Path:
        """``measurements.csv``: one row per site."""
        return self.root / "measurements.csv"

    @property
    def events_csv(self) -> Path:
        """``events.csv``: one row per site and date pair."""
        return self.root / "events.csv"

    @property
    def timeline_csv(self) -> Path:
        """``timeline.csv``: one row per site and usable scene (construction timeline)."""
        return self.root / "timeline.csv"

    @property
    def gpkg(self) -> Path:
        """``results.gpkg``: every layer, styled."""
        return self.root / "results.gpkg"

    @property
    def buildings_csv(self) -> Path:
        """``buildings.csv`` (guided mode): one row per date and named building."""
        return self.root / "buildings.csv"

    @property
    def qgis_project(self) -> Path:
        """``factorywatch.qgs``: the layers, styled, with the time slider set to the dates."""
        return self.root / "factorywatch.qgs"

    # --- folders ------------------------------------------------------------------------
    @property
    def checkpoints(self) -> Path:
        """``.checkpoints/``: per-date state for resuming (never published)."""
        return self.root / ".checkpoints"

    @property
    def scenes_dir(self) -> Path:
        """``scenes/``: co-registered scene COGs."""
        return self.root / "scenes"

    @property
    def masks_dir(self) -> Path:
        """``masks/``: building-mask COGs."""
        return self.root / "masks"

    @property
    def change_dir(self) -> Path:
        """``change/``: change maps between consecutive dates."""
        return self.root / "change"

    @property
    def report_dir(self) -> Path:
        """``report/``: the HTML report folder."""
        return self.root / "report"

    @property
    def report_index(self) -> Path:
        """``report/index.html``."""
        return self.report_dir / "index.html"

    # --- per date -----------------------------------------------------------------------
    def scene(self, date: str) -> Path:
        """``scenes/<date>.tif``."""
        return self.scenes_dir / f"{date}.tif"

    def mask(self, date: str) -> Path:
        """``masks/<date>.tif``."""
        return self.masks_dir / f"{date}.tif"

    def valid_mask(self, date: str) -> Path:
        """``.checkpoints/valid_<date>.tif``: the valid-pixel mask of a date."""
        return self.checkpoints / f"valid_{date}.tif"

    def scene_meta(self, date: str) -> Path:
        """``.checkpoints/scene_<date>.json``: a date's metadata, the resume record."""
        return self.checkpoints / f"scene_{date}.json"

    def change_prob(self, d0: str, d1: str) -> Path:
        """``change/<d0>_<d1>_prob.tif``."""
        return self.change_dir / f"{d0}_{d1}_prob.tif"

    def change_mask(self, d0: str, d1: str) -> Path:
        """``change/<d0>_<d1>_mask.tif``."""
        return self.change_dir / f"{d0}_{d1}_mask.tif"

    # --- a watch store (geo/watch.py): per-date records kept between watch runs -------------
    def date_record(self, date: str) -> Path:
        """``.checkpoints/date_<date>.json``: a watched date's metadata, detection included."""
        return self.checkpoints / f"date_{date}.json"

    def footprints_checkpoint(self, date: str) -> Path:
        """``.checkpoints/footprints_<date>.pkl``: a watched date's footprints (exact)."""
        return self.checkpoints / f"footprints_{date}.pkl"

    def change_record(self, d0: str, d1: str) -> Path:
        """``.checkpoints/change_<d0>_<d1>.json``: a change map's metadata."""
        return self.checkpoints / f"change_{d0}_{d1}.json"

    def date_records(self) -> dict[str, Path]:
        """Date → date record, for the watched dates present."""
        return {p.stem.removeprefix("date_"): p
                for p in sorted(self.checkpoints.glob("date_*.json"))}

    def scenes(self) -> dict[str, Path]:
        """Date → scene COG, for the scenes present."""
        return {p.stem: p for p in sorted(self.scenes_dir.glob("*.tif"))}

    def masks(self) -> dict[str, Path]:
        """Date → building-mask COG, for the masks present."""
        return {p.stem: p for p in sorted(self.masks_dir.glob("*.tif"))}

    def change_probs(self) -> dict[tuple[str, str], Path]:
        """``(d0, d1)`` → change-probability COG, for the maps present."""
        out: dict[tuple[str, str], Path] = {}
        for p in sorted(self.change_dir.glob("*_prob.tif")):
            parts = p.name.removesuffix("_prob.tif").split("_")
            if len(parts) == 2:
                out[(parts[0], parts[1])] = p
        return out

    def has_checkpoints(self) -> bool:
        """True if at least one date is checkpointed (the run can resume)."""
        return any(self.checkpoints.glob("scene_*.json"))

    # --- siblings and ownership ---------------------------------------------------------
    @property
    def name(self) -> str:
        """The run's name as the user sees it (without ``.partial``)."""
        return self.root.name.removesuffix(".partial")

    @property
    def partial(self) -> RunDir:
        """The sibling ``<name>.partial`` folder a run is built in."""
        return RunDir(self.root.with_name(self.root.name + ".partial"))

    def relative(self, path: Path, to: RunDir) -> Path:
        """``path`` under this folder, re-rooted under ``to`` (a published partial's files)."""
        return to.root / Path(path).relative_to(self.root)

    def is_ours(self, *, finished: bool = True) -> bool:
        """True if factorywatch made this folder: a real folder (not a link) with our marker.

        ``finished`` also asks for a ``run.json`` written by factorywatch.
        """
        if self.root.is_symlink() or not self.root.is_dir():
            return False
        if self.marker.is_symlink() or not self.marker.is_file():
            return False
        try:
            ok = json.loads(self.marker.read_text()).get("kind") == _MARKER_KIND
            if finished:
                ok = ok and "factorywatch" in json.loads(self.run_json.read_text())
        except (OSError, ValueError, AttributeError, TypeError):
            return False
        return bool(ok)

    def write_marker(self) -> None:
        """Write the marker file (this folder is now factorywatch's)."""
        atomic_write_text(self.marker, json.dumps({
            "kind": _MARKER_KIND, "factorywatch": __version__,
            "note": "made by factorywatch; factorywatch --overwrite may replace this folder"},
            indent=1) + "\n")


def _target(run_dir: str | Path) -> RunDir:
    """The run directory as given: absolute, its last component not resolved (a link stays one)."""
    p = Path(os.path.abspath(Path(run_dir).expanduser()))
    return RunDir(p.parent.resolve() / p.name)


def _protected(path: Path, inputs: Iterable[str | Path]) -> str | None:
    real = path.resolve()
    if real == real.parent or os.path.ismount(real):
        return "is a filesystem root"
    for what, p in (("working folder", Path.cwd()), ("home folder", Path.home())):
        p = p.resolve()
        if real == p or real in p.parents:
            return f"is (or contains) the {what}"
    for inp in inputs:
        if not str(inp):
            continue
        ip = Path(inp).resolve()
        if ip == real or real in ip.parents:
            return f"contains an input of this run ({ip})"
    return None


def check_target(run_dir: str | Path, *, overwrite: bool, inputs: Iterable[str | Path] = ()
                 ) -> RunDir:
    """Refuse, before any work, an ``-o`` that factorywatch must not write or replace.

    Returns the target :class:`RunDir`. Raises :class:`OutputExistsError` (exists, no
    ``overwrite``) or :class:`RunDirError` (a link, a protected folder, not ours).
    """
    final = _target(run_dir)
    p = final.root
    if p.is_symlink():
        raise RunDirError(f"{p} is a symbolic link; factorywatch never writes or deletes "
                          "through a link: pass the real folder or choose another -o")
    inputs = list(inputs)
    if p.exists() and not p.is_dir():
        raise OutputExistsError(f"{p} is a file, not a run directory; choose another -o")
    if p.exists():
        if not overwrite:
            raise OutputExistsError(f"{p}: run directory exists; pass --overwrite to replace "
                                    "it or choose another -o")
        why = _protected(p, inputs)
        if why is not None:
            raise RunDirError(f"{p} {why}; factorywatch never replaces it: choose another -o")
        if not final.is_ours():
            raise RunDirError(
                f"{p} is not a factorywatch run directory (no {MARKER} marker and run.json); "
                "--overwrite replaces only folders factorywatch made: move it away or choose "
                "another -o")
    part = final.partial.root
    if os.path.lexists(part):
        if not final.partial.is_ours(finished=False):
            raise RunDirError(f"{part} exists and was not made by factorywatch (no {MARKER} "
                              "marker); move it away or choose another -o")
        _lock(final.partial, final).release()  # another run in it: say so before any work
    return final


def _owner_pid(partial: RunDir) -> str:
    try:
        return str(json.loads(partial.state.read_text()).get("pid", "?"))
    except (OSError, ValueError, AttributeError):
        return "?"


@dataclass
class RunSession:
    """A locked ``.partial`` build folder and the run directory it will be published to."""

    final: RunDir
    partial: RunDir
    _lock: FileLock = field(repr=False)

    def publish(self) -> None:
        """Sweep temp files and checkpoints, then rename ``.partial`` onto the run directory.

        An existing run directory is replaced only if it is still ours; it is removed only
        after the new one is in place.
        """
        if os.path.lexists(self.final.root) and not self.final.is_ours():
            raise RunDirError(f"{self.final.root} appeared during the run and is not a "
                              f"factorywatch run directory; the finished run is kept in "
                              f"{self.partial.root}: move it into place yourself")
        sweep_temps(self.partial.root)
        if self.partial.checkpoints.exists():
            shutil.rmtree(self.partial.checkpoints)
        self.partial.state.unlink(missing_ok=True)
        self.partial.lock.unlink(missing_ok=True)  # still held through its open descriptor
        replace_dir(self.partial.root, self.final.root)

    def discard(self) -> None:
        """Remove the ``.partial`` folder (ours: it carries the marker)."""
        if self.partial.is_ours(finished=False):
            shutil.rmtree(self.partial.root, ignore_errors=True)

    def release(self) -> None:
        """Release the lock."""
        self._lock.release()


def _clear(partial: RunDir) -> None:
    """Empty a ``.partial`` of ours from another config (keep the marker and the lock)."""
    keep = {MARKER, partial.lock.name}
    for child in partial.root.iterdir():
        if child.name in keep:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _lock(partial: RunDir, final: RunDir) -> FileLock:
    lock = FileLock(str(partial.lock), timeout=0, is_singleton=False)
    try:
        lock.acquire()
    except Timeout:
        raise RunDirInUseError(
            f"{final.root}: run directory is in use by PID {_owner_pid(partial)} (lock "
            f"{partial.lock}); wait for that run to finish or choose another -o") from None
    return lock


def begin_run(run_dir: str | Path, *, overwrite: bool, key: str,
             inputs: Iterable[str | Path] = ()) -> RunSession:
    """Check the target, create or reuse ``<run_dir>.partial`` and lock it.

    A ``.partial`` of ours from an interrupted run with the same ``key`` (config hash) is
    kept so that the run resumes (its temp files swept); one from another config is emptied.
    """
    final = check_target(run_dir, overwrite=overwrite, inputs=inputs)
    partial = final.partial
    try:
        try:
            partial.root.mkdir(parents=True)
            partial.write_marker()
        except FileExistsError:
            if not partial.is_ours(finished=False):
                raise RunDirError(f"{partial.root} exists and was not made by factorywatch; "
                                  "move it away or choose another -o") from None
        lock = _lock(partial, final)
    except OSError as err:
        if isinstance(err, RunDirError):
            raise
        full = disk_full_error(err, partial.root, partial.root.parent)
        if full is not None:
            raise full from err
        raise RunDirError(f"{partial.root}: cannot create the run folder ({err.strerror}); "
                          "choose another -o") from err
    try:
        try:
            old = json.loads(partial.state.read_text())["key"]
        except (OSError, ValueError, KeyError, TypeError):
            old = None
        if old != key:
            _clear(partial)
        else:
            swept = sweep_temps(partial.root)
            log.info("resuming the interrupted run in %s (%d temp files swept)", partial.root,
                     len(swept))
        atomic_write_text(partial.state, json.dumps({
            "key": key, "pid": os.getpid(),
            "started": datetime.now(UTC).isoformat(timespec="seconds")}))
    except BaseException:
        lock.release()
        raise
    return RunSession(final, partial, lock)


def prepare_demo_folder(folder: str | Path, *, overwrite: bool) -> tuple[RunDir, RunDir]:
    """Make ``folder/inputs`` ready for the demo; return ``(inputs, run)``.

    ``--overwrite`` replaces only the ``inputs/`` and ``run/`` the demo wrote (each with our
    marker); nothing else in ``folder`` is touched, and a filesystem root is refused.
    """
    root = _target(folder).root
    if root.is_symlink() and not root.is_dir():
        raise RunDirError(f"{root} is a dangling symbolic link; choose another folder")
    real = root.resolve()
    if real == real.parent:
        raise RunDirError(f"{root} is a filesystem root; choose a demo folder such as "
                          "/tmp/fw-demo")
    inputs, run = RunDir(real / "inputs"), RunDir(real / "run")
    for d in (inputs, run):
        if not os.path.lexists(d.root):
            continue
        if not overwrite:
            raise OutputExistsError(f"{d.root} exists; pass --overwrite to replace the demo's "
                                    "inputs/ and run/, or choose another folder")
        if not d.is_ours(finished=d is run):
            raise RunDirError(f"{d.root} was not written by factorywatch demo (no {MARKER} "
                              "marker); move it away or choose another folder")
    check_target(run.root, overwrite=overwrite)
    if os.path.lexists(inputs.root):
        shutil.rmtree(inputs.root)
    inputs.root.mkdir(parents=True)
    inputs.write_marker()
    return inputs, run
