"""`factorywatch watch`: incremental monitoring of a watchlist on a real Dask cluster.

A real ``dask scheduler`` and two ``dask worker`` processes are started on 127.0.0.1; two
SYNTHETIC demo-like AOIs (tests/_watch_series.py) are watched; one worker is killed while it
runs a task; the outputs must equal a one-process watch. Then one new date per AOI is added:
the second watch must process only that date and report exactly the new events. Only the
first watch on the cluster writes site_a's HTML report (on a worker; the watch index links
it); then the report is switched off (most of a small AOI's CPU time, and no later step looks
at it; ``[output]`` may change between watch runs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _watch_series import DATES, add_date, set_report, write_series
from click.testing import CliRunner

from geo.cli import main
from geo.config import ConfigError
from geo.errors import RunDirError
from geo.rundir import RunDir
from geo.watch import EXIT_CHANGED, load_watchlist

REPO = Path(__file__).resolve().parents[1]
NAMES = ("site_a", "site_b")  # two AOIs x three dates: six date tasks for two workers
TABLES = ("events.csv", "measurements.csv", "footprints.geojson", "sites.geojson",
          "changes.geojson")
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests"),
                                         env.get("PYTHONPATH", "")])
    return env


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, "dask scheduler exited"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError("dask scheduler did not start")


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real scheduler and two single-threaded workers (no nanny: a kill is a real loss).

    Function-scoped: one test uses it, and the processes should not idle (and use CPU)
    through the rest of the module. They run in their own sessions and hold nothing worth
    a graceful shutdown, so they are killed outright at the end (after SIGTERM, their
    graceful shutdown sometimes ran into the old 20 s wait).
    """
    from distributed import Client

    logs = tmp_path_factory.mktemp("dask-logs")
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    files = contextlib.ExitStack()
    sched = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", str(port), "--no-dashboard"], env=_env(), start_new_session=True,
        stdout=files.enter_context(open(logs / "scheduler.log", "wb")),
        stderr=subprocess.STDOUT)
    procs.append(sched)
    workers = {}
    try:
        _wait_port(port, sched)
        for name in ("w1", "w2"):
            workers[name] = subprocess.Popen(
                ["nice", sys.executable, "-m", "distributed.cli.dask_worker", addr,
                 "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1",
                 "--name", name], env=_env(), start_new_session=True,
                stdout=files.enter_context(open(logs / f"{name}.log", "wb")),
                stderr=subprocess.STDOUT)
            procs.append(workers[name])
        with Client(addr, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield {"address": addr, "workers": workers, "logs": logs}
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)  # its own session: its group is its own
        for p in procs:
            p.wait()
        files.close()


def _watch_cli(wl: Path, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["nice", sys.executable, "-c", "from geo.cli import main; main()", "watch", str(wl),
         "-o", str(out), "-q", *extra], env=_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)


def _kill_when_busy(address: str, worker: subprocess.Popen[bytes], name: str,
                    watcher: subprocess.Popen[bytes], timeout: float = 240) -> str:
    """SIGKILL worker ``name`` as soon as the scheduler says it is running a watch task."""
    from distributed import Client

    with Client(address, timeout=30) as client:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout and watcher.poll() is None:
            info = client.scheduler_info()["workers"]
            addr = next((a for a, w in info.items() if w.get("name") == name), None)
            busy = client.processing().get(addr, ()) if addr else ()
            task = next((k for k in busy if "date_task" in str(k)), None)
            if task is not None:
                time.sleep(0.3)  # well inside the task (a date takes seconds here)
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=20)
                return str(task)
            time.sleep(0.05)
    raise AssertionError("worker never ran a watch task")


def _events(stdout: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]


def _key(ev: dict[str, Any]) -> tuple[Any, ...]:
    if ev["type"] == "claim":
        return ("claim", ev["claim"], ev["verdict"], ev["date"])
    return (ev["aoi"], ev["site_id"], ev["event"], ev["date_from"], ev["date_to"],
            ev["area_from_m2"], ev["area_to_m2"], ev["change_area_m2"])


def _assert_same_runs(a: Path, b: Path) -> None:
    """Two watch folders hold the same results (tables byte for byte, run.json content)."""
    for name in NAMES:
        ra, rb = RunDir(a / name / "run"), RunDir(b / name / "run")
        for t in TABLES:
            assert (ra.root / t).read_bytes() == (rb.root / t).read_bytes(), f"{name}/{t}"
        ja, jb = (json.loads(r.run_json.read_text()) for r in (ra, rb))
        for k in ("dates", "coregistration", "change_maps", "inputs", "n_sites", "warnings"):
            assert ja[k] == jb[k], f"{name} run.json {k}"
        assert sorted(ra.scenes()) == sorted(rb.scenes()) == ja["dates"]
    for f in ("changes_since_last.geojson",):
        assert (a / f).read_bytes() == (b / f).read_bytes()


def _store_stamps(wd: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for p in sorted(wd.glob("*/store/**/*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(wd))] = (st.st_ino, st.st_mtime_ns)
    return out


def _event_rows(run: Path) -> set[tuple[Any, ...]]:
    ev = pd.read_csv(run / "events.csv", dtype=str, keep_default_na=False)
    return {(run.parent.name, r.site_id, r.event, r.date_from, r.date_to)
            for r in ev.itertuples() if r.event != "unchanged"}


def test_watch_on_a_real_cluster_survives_a_killed_worker_and_is_incremental(
        cluster: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wl = write_series(tmp_path / "series", n_aois=len(NAMES), n_dates=3)  # site_a: report
    dist, serial = tmp_path / "watch-dist", tmp_path / "watch-serial"

    # --- 1. first watch on the cluster; worker w1 is killed while it runs a date task -------
    proc = _watch_cli(wl, dist, "--scheduler", cluster["address"], "--retries", "1")
    killed = _kill_when_busy(cluster["address"], cluster["workers"]["w1"], "w1", proc)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == EXIT_CHANGED, err.decode()[-3000:]
    assert "date_task" in killed
    first = _events(out)
    assert not list(dist.rglob("*.partial")) and not list(dist.rglob("*.fwtmp*"))
    index = (dist / "index.html").read_text()  # site_a's report, written on a worker, is linked
    assert 'href="site_a/run/report/index.html"' in index and "(SYNTHETIC)" in index
    assert 'href="site_b/run/report/index.html"' not in index
    assert (dist / "site_a" / "run" / "report" / "index.html").is_file()
    set_report(wl.parent, "site_a", False)  # no later step looks at a report

    # --- the same watch in one process, no Dask: identical results ---------------------------
    r = CliRunner().invoke(main, ["watch", str(wl), "-o", str(serial), "--workers", "0", "-q"])
    assert r.exit_code == EXIT_CHANGED, r.output
    _assert_same_runs(dist, serial)
    assert sorted(map(_key, _events(r.stdout.encode()))) == sorted(map(_key, first))
    # every event of the three dates is new the first time; truth: B new and grown, D gone
    kinds = {(e["aoi"], e["event"]) for e in first if e["type"] == "building"}
    assert {(n, k) for n in NAMES for k in ("new", "grown", "demolished")} <= kinds
    assert any(e["type"] == "claim" and e["verdict"] == "supported" for e in first)
    assert (serial / "changes_since_last.qml").is_file() and (serial / "watch.gpkg").is_file()

    # --- 2. nothing new: no pixel is read, exit 0, no events, in seconds ----------------------
    from geo.sources.local import LocalGeoTiffSource

    reads: list[str] = []
    real_read = LocalGeoTiffSource.read
    monkeypatch.setattr(LocalGeoTiffSource, "read",
                        lambda self, scene, grid: reads.append(scene.id) or real_read(
                            self, scene, grid))
    stamps = _store_stamps(serial)
    t0 = time.monotonic()
    r = CliRunner().invoke(main, ["watch", str(wl), "-o", str(serial), "--workers", "0", "-q"])
    elapsed = time.monotonic() - t0
    assert r.exit_code == 0, r.output
    assert r.stdout == "" and reads == [] and elapsed < 30
    assert _store_stamps(serial) == stamps

    # --- 3. one new date per AOI: only it is processed, exactly the new events are reported --
    before = {n: _event_rows(serial / n / "run") for n in NAMES}
    for n in NAMES:
        add_date(wl.parent, n, DATES[3])
    stamps = _store_stamps(dist)
    # on the cluster again, from this process this time (no second interpreter to start)
    r = CliRunner().invoke(main, ["watch", str(wl), "-o", str(dist), "--scheduler",
                                  cluster["address"], "-q"])
    assert r.exit_code == EXIT_CHANGED, r.output
    second = _events(r.stdout.encode())
    after_stamps = _store_stamps(dist)
    assert {k: v for k, v in after_stamps.items() if k in stamps} == stamps  # old dates untouched
    for n in NAMES:
        run = json.loads(RunDir(dist / n / "run").run_json.read_text())
        assert run["watch"]["new_dates"] == [DATES[3]] and run["dates"] == list(DATES)
        assert {Path(k).name for k in after_stamps if k not in stamps and k.startswith(n)} >= {
            f"date_{DATES[3]}.json", f"{DATES[3]}.tif"}

    reads.clear()
    r = CliRunner().invoke(main, ["watch", str(wl), "-o", str(serial), "--workers", "0", "-q"])
    assert r.exit_code == EXIT_CHANGED, r.output
    assert sorted(reads) == sorted(f"synthetic_{DATES[3]}.tif" for _ in NAMES)  # one read each
    _assert_same_runs(dist, serial)
    expected = set().union(*(_event_rows(serial / n / "run") - before[n] for n in NAMES))
    got = {(e["aoi"], e["site_id"], e["event"], e["date_from"], e["date_to"])
           for e in second if e["type"] == "building"}
    assert got == expected and all(e[4] == DATES[3] for e in expected)
    assert {(n, "new") for n in NAMES} <= {(e[0], e[2]) for e in got}  # hall E on the new date

    # --- the incremental run equals a run from scratch over the four dates --------------------
    from geo.pipeline import run_aoi

    cfg = next(c for c in load_watchlist(wl).configs if c.aoi.name == "site_a")
    cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, report=False))
    fresh = Path(run_aoi(cfg, tmp_path / "fresh_a").run_dir)
    for t in TABLES:
        assert (fresh / t).read_bytes() == (dist / "site_a" / "run" / t).read_bytes(), t


def test_watchlist_defaults_merge_under_each_aoi(tmp_path: Path) -> None:
    wl = write_series(tmp_path, n_aois=2, n_dates=1)
    w = load_watchlist(wl)
    by = {c.aoi.name: c for c in w.configs}
    assert set(by) == {"site_a", "site_b"}
    assert by["site_a"].detect.min_area_m2 == 300.0 and by["site_a"].output.report is True
    assert by["site_b"].output.report is False and by["site_b"].output.gpkg is False
    assert w.claims[0].key == "site_a: site_a:s3 > 2 x neighbour"


@pytest.mark.parametrize(("text", "match"), [
    ('aois = ["sites/"]\nfoo = 1\n', "unknown key 'foo'"),
    ('aois = ["nowhere/"]\n', "does not exist"),
    ('aois = ["sites/"]\n[defaults.detect]\nmin_aera_m2 = 3\n', "unknown key detect.min_aera_m2"),
    ('aois = ["sites/"]\n[defaults.nosuch]\nx = 1\n', r"unknown section \[defaults.nosuch\]"),
    ('aois = ["sites/"]\n[[claim]]\naoi = "other"\nsubject = "x"\n', "not in the watchlist"),
    ("aois = []\n", "non-empty list"),
])
def test_bad_watchlist_names_file_and_key(tmp_path: Path, text: str, match: str) -> None:
    write_series(tmp_path, n_aois=1, n_dates=1)
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=match) as err:
        load_watchlist(bad)
    assert str(bad) in str(err.value)
    r = CliRunner().invoke(main, ["watch", str(bad), "-o", str(tmp_path / "w")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert not (tmp_path / "w").exists()


def test_watch_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    wl = write_series(tmp_path, n_aois=1, n_dates=1)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    r = CliRunner().invoke(main, ["watch", str(wl), "-o", str(mine), "--workers", "0"])
    assert r.exit_code == 1 and "not made by factorywatch" in r.output
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    with pytest.raises(RunDirError):
        from geo.watch import watch

        watch(load_watchlist(wl), mine, workers=0)


def test_a_changed_config_is_not_mixed_into_the_store(tmp_path: Path) -> None:
    wl = write_series(tmp_path, n_aois=1, n_dates=1, report=False)
    r = CliRunner().invoke(main, ["watch", str(wl), "-o", str(tmp_path / "w"), "--workers", "0",
                                  "-q"])
    assert r.exit_code == EXIT_CHANGED, r.output  # one date: only the claim's first outcome
    assert [e["type"] for e in map(json.loads, r.stdout.splitlines())] == ["claim"]
    toml = tmp_path / "sites" / "site_a.toml"
    toml.write_text(toml.read_text().replace("max_residual_m = 1.0", "max_residual_m = 2.0"))
    r = CliRunner().invoke(main, ["watch", str(wl), "-o", str(tmp_path / "w"), "--workers", "0",
                                  "-q"])
    assert r.exit_code == 1 and "the config changed since" in r.output
    assert str(toml) in r.output


def test_a_failing_aoi_is_named_and_the_others_still_update(tmp_path: Path) -> None:
    wl = write_series(tmp_path, n_aois=2, n_dates=1, report=False)
    (tmp_path / "imagery" / "site_b" / f"synthetic_{DATES[0]}.tif").write_bytes(b"not a tiff")
    r = CliRunner().invoke(main, ["watch", str(wl), "-o", str(tmp_path / "w"), "--workers", "0",
                                  "-q"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and str(tmp_path / "sites" / "site_b.toml") in errors[0]
    assert "cannot open as a GeoTIFF" in errors[0]
    assert RunDir(tmp_path / "w" / "site_a" / "run").is_ours()
    assert not (tmp_path / "w" / "site_b" / "run").exists()


def test_an_unreachable_scheduler_fails_before_anything_is_written(tmp_path: Path) -> None:
    import dask

    wl = write_series(tmp_path, n_aois=1, n_dates=1)
    # dask's own setting; the port is closed, so any timeout shows the error (it was 3 s of
    # retrying a refused connection)
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        r = CliRunner().invoke(main, ["watch", str(wl), "-o", str(tmp_path / "w"), "--scheduler",
                                      f"tcp://127.0.0.1:{_free_port()}"])
    assert r.exit_code == 1 and "cannot reach the Dask scheduler" in r.output
    assert not (tmp_path / "w").exists()


def test_a_date_that_failed_is_redone_next_time_and_done_dates_are_not_reread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: reading the second date fails once (a transient source error)."""
    from geo.errors import SourceError
    from geo.sources.local import LocalGeoTiffSource

    wl = write_series(tmp_path, n_aois=1, n_dates=3, report=False)
    real_read = LocalGeoTiffSource.read
    reads: list[str] = []
    broken = {"synthetic_scene_b.tif"}

    def read(self: LocalGeoTiffSource, scene: Any, grid: Any) -> Any:
        reads.append(scene.id)
        if scene.id in broken:
            raise SourceError(f"{scene.href}: read failed (injected); try again")
        return real_read(self, scene, grid)

    monkeypatch.setattr(LocalGeoTiffSource, "read", read)
    args = ["watch", str(wl), "-o", str(tmp_path / "w"), "--workers", "0", "-q"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and "read failed (injected)" in r.output
    assert not (tmp_path / "w" / "site_a" / "run").exists()
    broken.clear()
    reads.clear()
    r = CliRunner().invoke(main, args)
    assert r.exit_code == EXIT_CHANGED, r.output
    assert reads == ["synthetic_scene_b.tif"]  # the stored dates are not read again
    run = json.loads(RunDir(tmp_path / "w" / "site_a" / "run").run_json.read_text())
    assert run["dates"] == list(DATES[:3])
    # the timeline is built from the watch store's scenes (their metadata and valid masks)
    assert run["timeline"] and all(t["scenes"] >= 2 for t in run["timeline"].values()), \
        run["timeline"]
