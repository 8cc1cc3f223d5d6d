"""factorywatch never deletes what it did not create (issue 10, data loss; issue 11, RunDir).

One test per data-loss case. Each runs the real CLI (click's CliRunner in-process, or a
subprocess where a second process, a signal or a resource limit is the point), and each
checks that nothing outside the run directory changed (a snapshot of the sandbox before
and after: every path with its type, size, inode and, for files, mtime).

These tests do not import ``geo.rundir`` at module level, so that they can be run against
a checkout without it (they fail there, by behaviour). No test here ever points a
destructive command at a real system folder: home is a sandbox ``HOME``, the working
folder a sandbox ``cwd``; ``-o /`` is only run through ``measure``, which on every version
fails before it writes; ``demo /`` is tested at the library level only.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pytest
from click.testing import CliRunner
from shapely.geometry import box

from geo.cli import main

FW = [sys.executable, "-c", "from geo.cli import main; main()"]
_TEMPISH = re.compile(r"^\..*(tmp|part|\.old)", re.IGNORECASE)


# --- helpers --------------------------------------------------------------------------------
def invoke(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return r.exit_code, r.stderr


def one_error(stderr: str, *needles: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "unexpected" not in lines[0], stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


Snapshot = dict[str, tuple[str, int, int, int]]


def snapshot(root: Path, *skip: Path) -> Snapshot:
    """Every path under ``root`` (links not followed) except those under ``skip``."""
    out: Snapshot = {}
    skips = [str(s) for s in skip]
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            p = os.path.join(dirpath, name)
            if any(p == s or p.startswith(s + os.sep) for s in skips):
                continue
            st = os.lstat(p)
            kind = "link" if os.path.islink(p) else "dir" if os.path.isdir(p) else "file"
            # a folder's own mtime changes when an entry is added: its entries show that
            out[os.path.relpath(p, root)] = (kind, 0 if kind == "dir" else st.st_size,
                                             st.st_ino, 0 if kind == "dir" else st.st_mtime_ns)
    return out


def footprint_files(folder: Path, aoi: str = "plant") -> list[str]:
    """Two dates of digitised footprints (SYNTHETIC rectangles in UTM 52N)."""
    folder.mkdir(parents=True, exist_ok=True)
    g0 = [box(500000, 4400000, 500100, 4400050), box(500150, 4400000, 500200, 4400050)]
    g1 = [box(500000, 4400000, 500100, 4400050), box(500150, 4400000, 500250, 4400050)]
    for d, g in (("2022-10-01", g0), ("2023-06-01", g1)):
        gpd.GeoDataFrame({"when": [d] * 2}, geometry=g, crs=32652).to_crs(4326).to_file(
            folder / f"{aoi}_{d}.geojson", driver="GeoJSON")
    cfg = folder / "measure.toml"
    cfg.write_text("[output]\nreport = false\n")
    return sorted(str(p) for p in folder.glob(f"{aoi}_*.geojson"))


def measure(files: list[str], *extra: str) -> tuple[int, str]:
    cfg = str(Path(files[0]).parent / "measure.toml")
    return invoke("measure", *files, "--config", cfg, "-q", *extra)


def user_folder(path: Path) -> Path:
    """A folder of the analyst's own files (no factorywatch marker)."""
    path.mkdir(parents=True)
    (path / "notes.txt").write_text("my field notes")
    (path / "sub").mkdir()
    (path / "sub" / "photo.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return path


@pytest.fixture(scope="module")
def demo_inputs_2m(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SYNTHETIC demo's inputs (config, AOI, four GeoTIFFs) at 2 m; returns the config.

    2 m, not the demo's 1 m: a quarter of the pixels, and nothing these tests check depends
    on the pixel size (the disk-full, file-size and kill -9 tests size their limits so that
    each stops the run in the same scene, with the same error, as on the 1 m series).
    The config turns the HTML report off (as ``footprint_files`` does): these tests are about
    the run directory's files and what is around it, not the report, which comes after every
    stage that the disk-full, file-size and kill -9 tests stop (its temp folder and publishing
    are tested in test_report.py).
    """
    import dataclasses

    from geo.demo import write_demo
    from geo.synthetic import default_spec

    spec = dataclasses.replace(default_spec(), res_m=2.0)
    cfg = Path(write_demo(tmp_path_factory.mktemp("demo_2m"), spec).config)
    cfg.write_text(cfg.read_text() + "\n[output]\nreport = false\n")
    return cfg


# --- -o DIR --overwrite ---------------------------------------------------------------------
@pytest.mark.parametrize("cmd", ["measure", "run"])
def test_overwrite_refuses_a_folder_of_user_files(tmp_path: Path, demo_inputs_2m: Path,
                                                  cmd: str) -> None:
    files = footprint_files(tmp_path / "fp")
    out = user_folder(tmp_path / "mine")
    before = snapshot(tmp_path)
    if cmd == "measure":
        code, err = measure(files, "-o", str(out), "--overwrite")
    else:
        code, err = invoke("run", str(demo_inputs_2m), "-o", str(out), "--overwrite", "-q")
    assert code == 1
    one_error(err, str(out), "not a factorywatch run directory", "-o")
    assert snapshot(tmp_path) == before


def test_overwrite_refuses_the_working_folder(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    files = footprint_files(tmp_path / "fp")
    work = user_folder(tmp_path / "work")
    # even a working folder that looks like a run of ours is never replaced
    (work / ".factorywatch").write_text(json.dumps({"kind": "factorywatch-run-directory"}))
    (work / "run.json").write_text(json.dumps({"factorywatch": "0"}))
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)
    code, err = measure(files, "-o", ".", "--overwrite")
    assert code == 1
    one_error(err, str(work), "working folder", "-o")
    assert snapshot(tmp_path) == before


def test_overwrite_refuses_the_home_folder(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    files = footprint_files(tmp_path / "fp")
    home = user_folder(tmp_path / "home")
    (home / ".factorywatch").write_text(json.dumps({"kind": "factorywatch-run-directory"}))
    (home / "run.json").write_text(json.dumps({"factorywatch": "0"}))
    monkeypatch.setenv("HOME", str(home))
    before = snapshot(tmp_path)
    code, err = measure(files, "-o", str(home), "--overwrite")
    assert code == 1
    one_error(err, str(home), "home folder")
    assert snapshot(tmp_path) == before


def test_overwrite_refuses_a_filesystem_root(tmp_path: Path) -> None:
    files = footprint_files(tmp_path / "fp")
    before = snapshot(tmp_path)
    code, err = measure(files, "-o", "/", "--overwrite")
    assert code == 1
    one_error(err, "/", "filesystem root")
    assert snapshot(tmp_path) == before


def test_overwrite_refuses_a_folder_holding_the_inputs(tmp_path: Path) -> None:
    # a folder that carries our marker and run.json, but the run's inputs are inside it
    out = tmp_path / "project"
    files = footprint_files(out)
    (out / ".factorywatch").write_text(json.dumps({"kind": "factorywatch-run-directory"}))
    (out / "run.json").write_text(json.dumps({"factorywatch": "0"}))
    before = snapshot(tmp_path)
    code, err = measure(files, "-o", str(out), "--overwrite")
    assert code == 1
    one_error(err, str(out), "contains an input")
    assert snapshot(tmp_path) == before


def test_overwrite_never_follows_a_symlink(tmp_path: Path) -> None:
    files = footprint_files(tmp_path / "fp")
    real = tmp_path / "real_run"
    code, err = measure(files, "-o", str(real))
    assert code == 0, err
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    before = snapshot(tmp_path)
    code, err = measure(files, "-o", str(link), "--overwrite")
    assert code == 1
    one_error(err, str(link), "symbolic link")
    assert snapshot(tmp_path) == before
    assert link.is_symlink() and (real / "run.json").is_file()


def test_overwrite_replaces_a_run_of_ours(tmp_path: Path) -> None:
    """The rule still lets --overwrite do its job on a run directory factorywatch made."""
    files = footprint_files(tmp_path / "fp")
    out = tmp_path / "run"
    assert measure(files, "-o", str(out))[0] == 0
    first = (out / "run.json").stat().st_ino
    before = snapshot(tmp_path, out)
    code, err = measure(files, "-o", str(out), "--overwrite")
    assert code == 0, err
    assert (out / "run.json").stat().st_ino != first
    assert snapshot(tmp_path, out) == before


# --- sibling .partial / .old ----------------------------------------------------------------
def test_foreign_partial_folder_is_kept(tmp_path: Path) -> None:
    files = footprint_files(tmp_path / "fp")
    out = tmp_path / "run"
    user_folder(tmp_path / "run.partial")
    before = snapshot(tmp_path)
    code, err = measure(files, "-o", str(out))
    assert code == 1
    one_error(err, "run.partial", "not made by factorywatch")
    assert snapshot(tmp_path) == before
    assert not out.exists()


def test_foreign_old_folder_survives_publish(tmp_path: Path) -> None:
    files = footprint_files(tmp_path / "fp")
    out = tmp_path / "run"
    assert measure(files, "-o", str(out))[0] == 0
    user_folder(tmp_path / "run.old")
    before = snapshot(tmp_path, out)
    code, err = measure(files, "-o", str(out), "--overwrite")
    assert code == 0, err
    assert snapshot(tmp_path, out) == before
    assert (tmp_path / "run.old" / "notes.txt").read_text() == "my field notes"


# --- AOI names ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../escaped", "ABS"])
def test_aoi_name_stays_inside_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    name: str) -> None:
    files = footprint_files(tmp_path / "fp")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    if name == "ABS":
        name = str(tmp_path / "abs_target")
    before = snapshot(tmp_path, work)
    code, err = measure(files, "--aoi-name", name)
    assert code == 0, err
    assert snapshot(tmp_path, work) == before  # nothing appeared beside or above work/
    runs = list((work / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "run.json").is_file()


def test_config_aoi_name_stays_inside_runs(tmp_path: Path, demo_inputs_2m: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "cfg" / "site.toml"
    cfg.parent.mkdir()
    text = demo_inputs_2m.read_text().replace('name = "kanggye_demo"', 'name = "../escaped"')
    # keep the demo's inputs where they are
    text = re.sub(r'^(geometry|path) = "(.*)"$',
                  lambda m: f'{m[1]} = "{demo_inputs_2m.parent / m[2]}"', text, flags=re.M)
    cfg.write_text(text)
    work = tmp_path / "work"
    user_folder(work / "runs" / "escaped")  # where the sanitised name lands: refused at once
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)
    code, err = invoke("run", str(cfg), "-q")
    assert code == 1
    one_error(err, str(work / "runs" / "escaped"), "--overwrite")
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "escaped").exists()


# --- demo --overwrite -------------------------------------------------------------------------
def test_demo_overwrite_refuses_a_run_folder_it_did_not_write(tmp_path: Path) -> None:
    folder = user_folder(tmp_path / "demo")
    user_folder(folder / "run")
    before = snapshot(tmp_path)
    code, err = invoke("demo", str(folder), "--overwrite", "-q")
    assert code == 1
    one_error(err, str(folder / "run"), "not written by factorywatch")
    assert snapshot(tmp_path) == before


@pytest.mark.slow
def test_demo_overwrite_keeps_the_users_other_files(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    import geo.demo

    # the whole `demo` command (inputs, run, report, saved claim), on the demo series at 2 m
    # instead of 1 m: what it may touch does not depend on the pixel size (the 1 m demo runs in
    # conftest's demo_cli)
    spec = dataclasses.replace(geo.demo.default_spec(), res_m=2.0)
    monkeypatch.setattr(geo.demo, "default_spec", lambda: spec)
    folder = user_folder(tmp_path / "demo")
    before = snapshot(tmp_path, folder / "inputs", folder / "run")
    code, err = invoke("demo", str(folder), "--overwrite", "-q")
    assert code == 0, err
    assert snapshot(tmp_path, folder / "inputs", folder / "run") == before
    assert (folder / "run" / "run.json").is_file()
    run = json.loads((folder / "run" / "run.json").read_text())
    assert run["config"]["grid"]["resolution_m"] == 2.0  # the 2 m series was the one run
    assert run["claims"] and (folder / "run" / "report" / "index.html").is_file()


def test_demo_refuses_a_filesystem_root() -> None:
    from geo.errors import RunDirError
    from geo.rundir import prepare_demo_folder

    with pytest.raises(RunDirError, match="filesystem root"):
        prepare_demo_folder("/", overwrite=True)


# --- disk full --------------------------------------------------------------------------------
@contextlib.contextmanager
def _tmpfs(mnt: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on the new folder ``mnt`` (skip where mounting fails)."""
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                       capture_output=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """768 kB: the 2 m demo's first scene (290 kB) is written and checkpointed, its second
    (610 kB) fills the disk (anywhere from 640 to 900 kB does the same)."""
    with _tmpfs(tmp_path / "mnt", "768k") as mnt:
        yield mnt


def test_disk_full_names_the_device_and_keeps_partial(tmp_path: Path, demo_inputs_2m: Path,
                                                      small_tmpfs: Path) -> None:
    # the 2 m demo series: where the disk fills and what is kept do not depend on the pixel
    # size (the 1 m series in a 3 MB tmpfs stopped at the same scene)
    out = small_tmpfs / "run"
    before = snapshot(tmp_path, small_tmpfs)
    code, err = invoke("run", str(demo_inputs_2m), "-o", str(out), "-q")
    assert code == 1
    line = one_error(err, f"no space left on {small_tmpfs} writing {out}.partial",
                     "free space or choose another -o")
    assert "Traceback" not in line
    assert (small_tmpfs / "run.partial" / ".state.json").is_file()
    assert any((small_tmpfs / "run.partial" / ".checkpoints").glob("scene_*.json"))
    assert not out.exists()
    assert snapshot(tmp_path, small_tmpfs) == before
    # room again: the same command resumes from the kept .partial and publishes
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_tmpfs)], check=True)
    code, err = invoke("run", str(demo_inputs_2m), "-o", str(out), "-v")
    assert code == 0, err
    assert "resuming the interrupted run" in err
    assert (out / "run.json").is_file() and not (small_tmpfs / "run.partial").exists()


def test_a_cog_cut_short_by_a_full_disk_is_not_checkpointed(tmp_path: Path,
                                                            demo_inputs_2m: Path) -> None:
    """At 1 MB the disk fills half way through a scene COG. libtiff only logs that failure, so
    the file used to be published and checkpointed, and the resume then failed on it ("read
    failed ... the file may be corrupt"); the write is read back before it is published."""
    with _tmpfs(tmp_path / "mnt", "1m") as mnt:
        out = mnt / "run"
        code, err = invoke("run", str(demo_inputs_2m), "-o", str(out), "-q")
        assert code == 1
        one_error(err, f"no space left on {mnt} writing {out}.partial", "rerun the same command")
        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        code, err = invoke("run", str(demo_inputs_2m), "-o", str(out), "-v")
        assert code == 0, err
        assert "resuming the interrupted run" in err
        assert (out / "run.json").is_file() and not (mnt / "run.partial").exists()


def test_a_file_size_limit_inside_a_cog_write_is_a_full_disk(tmp_path: Path,
                                                             demo_inputs_2m: Path) -> None:
    """At 400 kB the limit is hit inside GDAL's COG writer, which raised SystemError("Unknown
    GDAL Error") and came out as an "unexpected" error."""
    out = tmp_path / "run"
    r = subprocess.run([*FW, "run", str(demo_inputs_2m), "-o", str(out), "-q"],
                       capture_output=True, text=True, timeout=300,
                       preexec_fn=lambda: _fsize_limit(400_000), check=False)
    assert r.returncode == 1, r.stderr
    one_error(r.stderr, "no space left on", f"writing {out}.partial", "file-size limit")
    assert not out.exists()


def _fsize_limit(limit: int) -> None:
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_file_size_limit_is_reported_like_a_full_disk(tmp_path: Path,
                                                      demo_inputs_2m: Path) -> None:
    # 540 kB on the 2 m series stops the second scene's COG where 1.5 MB did on the 1 m one,
    # in libtiff ("TIFFAppendToStrip: Seek error", 500-575 kB); 350-475 kB is the other path,
    # inside GDAL's COG writer (SystemError, the 400 kB test above)
    out = tmp_path / "run"
    before = snapshot(tmp_path, out, tmp_path / "run.partial")
    r = subprocess.run([*FW, "run", str(demo_inputs_2m), "-o", str(out), "-q"],
                       capture_output=True, text=True, timeout=300,
                       preexec_fn=lambda: _fsize_limit(540_000), check=False)
    assert r.returncode == 1, r.stderr
    one_error(r.stderr, "no space left on", f"writing {out}.partial", "file-size limit",
              "choose another -o")
    assert (tmp_path / "run.partial" / ".state.json").is_file()
    assert not out.exists()
    assert snapshot(tmp_path, out, tmp_path / "run.partial") == before


# --- a second process, and kill -9 ------------------------------------------------------------
@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory,
            demo_inputs_2m: Path) -> Iterator[tuple[subprocess.Popen[str], Path, Path]]:
    """A real ``factorywatch run`` in another process, caught after its first checkpoint.

    On the 2 m demo series: the lock, the kill -9 mid-write and the resume do not depend on
    the pixel size, and after its first checkpoint the run still has about 2 s of work (its
    other three scenes), ten times what the second run's refusal takes.
    """
    base = tmp_path_factory.mktemp("running")
    out = base / "run"
    log = base / "first_run.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([*FW, "run", str(demo_inputs_2m), "-o", str(out), "-q"],
                                stdout=subprocess.DEVNULL, stderr=f, text=True)
    ckpt = base / "run.partial" / ".checkpoints"
    deadline = time.monotonic() + 180
    while not any(ckpt.glob("scene_*.json")) and proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the first run wrote no checkpoint in 180 s")
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.fail(f"the first run ended before it could be interrupted: {log.read_text()}")
    yield proc, out, demo_inputs_2m
    if proc.poll() is None:
        proc.kill()
        proc.wait()


Running = tuple[subprocess.Popen[str], Path, Path]


def test_second_run_into_the_same_dir_stops_at_once(running: Running) -> None:
    proc, out, config = running
    base = out.parent
    before = snapshot(base, base / "first_run.log")
    t0 = time.monotonic()
    # the second run in this process (the CLI in-process); the first is the other process
    code, err = invoke("run", str(config), "-o", str(out), "-q")
    took = time.monotonic() - t0
    assert proc.poll() is None, "the first run must still be running for this test to mean much"
    assert code == 1, err
    one_error(err, str(out), f"run directory is in use by PID {proc.pid}")
    assert took < 60
    after = snapshot(base, base / "first_run.log")
    # the first run goes on writing inside run.partial; nothing else may change
    assert {k: v for k, v in after.items() if not k.startswith("run.partial")} == \
        {k: v for k, v in before.items() if not k.startswith("run.partial")}


def test_kill9_then_resume_publishes_no_temp_files(running: Running) -> None:
    proc, out, config = running
    base = out.parent
    partial = base / "run.partial"

    def temps() -> list[str]:
        return [f for _d, _s, fs in os.walk(partial) for f in fs if _TEMPISH.match(f)]

    deadline = time.monotonic() + 120  # catch the run in the middle of a write, then kill -9
    while not temps() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert partial.is_dir() and not out.exists()
    caught = temps()
    # plus what a kill -9 mid-write leaves with today's and older writers' names
    scenes = partial / "scenes"
    scenes.mkdir(exist_ok=True)
    (scenes / ".2019-05-20.tif.1a2b3c4d.fwtmp.tif").write_bytes(b"half a tiff")
    (scenes / ".2019-05-20.k3j4h5.tmp.tif").write_bytes(b"half a tiff")
    (partial / ".sites.geojson.x1y2.tmp").write_text("{")
    before = snapshot(base, out, partial, base / "first_run.log")
    code, err = invoke("run", str(config), "-o", str(out), "-v")  # the resume, in-process
    assert code == 0, err
    assert "resuming the interrupted run" in err
    published = [p for p in out.rglob("*") if _TEMPISH.match(p.name)]
    assert published == [], (published, caught)
    assert not partial.exists() and (out / "run.json").is_file()
    assert snapshot(base, out, partial, base / "first_run.log") == before


# --- CSV formula injection --------------------------------------------------------------------
def test_csv_text_cells_cannot_run_as_formulas(tmp_path: Path) -> None:
    files = footprint_files(tmp_path / "fp", aoi="plant")
    out = tmp_path / "run"
    code, err = measure(files, "-o", str(out), "--aoi-name", "=HYPERLINK(\"http://x\",\"y\")")
    assert code == 0, err
    for name in ("measurements.csv", "events.csv"):
        with open(out / name, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        cells = [c for row in rows[1:] for c in row]
        assert any(c.startswith("'=HYPERLINK") for c in cells), name
        bad = [c for c in cells if c[:1] in ("=", "+", "-", "@")
               and not re.fullmatch(r"[+-]?[\d.]+(e[+-]?\d+)?", c)]
        assert bad == [], (name, bad)
    # the GeoJSON/GPKG keep the real ids (only spreadsheets run formulas)
    sites = gpd.read_file(out / "sites.geojson")
    assert sites["site_id"].str.startswith("=HYPERLINK").all()


def test_csv_negative_numbers_stay_numbers() -> None:
    import pandas as pd

    from geo.export.tables import csv_text

    df = pd.DataFrame({"n": [-3.5, 2.0], "s": ["-3.5", "-cmd"], "t": ["@x", "+1"]})
    rows = list(csv.reader(csv_text(df).splitlines()))
    assert rows[1] == ["-3.5", "-3.5", "'@x"] and rows[2] == ["2", "'-cmd", "+1"]


def test_csv_round_trip_restores_the_text(tmp_path: Path) -> None:
    import pandas as pd

    from geo.export.tables import read_csv, write_csv

    df = pd.DataFrame({"site_id": ["=a:s1", "b:s2"], "area_m2": [-1.5, 2.0]})
    back = read_csv(write_csv(df, tmp_path / "t.csv"))
    assert back["site_id"].tolist() == ["=a:s1", "b:s2"]
    assert back["area_m2"].tolist() == [-1.5, 2.0]


# --- the pieces: temp names, their sweep, safe names --------------------------------------------
def test_sweep_removes_only_temp_names(tmp_path: Path) -> None:
    from geo._atomic import atomic_path, sweep_temps

    keep = ["2019-05-20.tif", ".factorywatch", ".state.json", "notes.tmp.txt", "a.part"]
    for name in keep:
        (tmp_path / name).write_text("x")
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "scenes" / "d.tif") as tmp:
        tmp.write_bytes(b"half")
        leftover = tmp.with_name(tmp.name + "-journal")
        leftover.write_bytes(b"x")  # what a kill -9 would leave beside it
        raise KeyboardInterrupt
    assert not tmp.exists() and not leftover.exists()  # cleaned on the way out
    (tmp_path / "scenes" / ".d.tif.0a1b2c3d.fwtmp.tif").write_bytes(b"killed")
    (tmp_path / ".report.ab12.fwtmp").mkdir()
    (tmp_path / ".report.ab12.fwtmp" / "x.png").write_bytes(b"x")
    removed = sweep_temps(tmp_path)
    assert len(removed) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*keep, "scenes"])
    assert list((tmp_path / "scenes").iterdir()) == []


@pytest.mark.parametrize(("name", "expected"), [
    ("/etc/passwd", "etc_passwd"), ("../x", "x"), ("..", "_"), ("a\\b", "a_b"),
    ("Kanggye plant", "Kanggye plant"), ("=1+2", "=1+2")])
def test_safe_name_is_one_component(name: str, expected: str) -> None:
    from geo.rundir import safe_name

    assert safe_name(name) == expected
    assert Path(safe_name(name)).name == safe_name(name)
