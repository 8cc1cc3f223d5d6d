"""Log lines go through the progress bars' writer; the report stage has a bar; -v adds detail."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest
from _runfixture import make_run_dir
from click.testing import CliRunner

from geo.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run_dir(tmp_path_factory.mktemp("prog") / "run")


def _run_in_terminal(args: list[str]) -> str:
    """Run the CLI with stderr on a pseudo-terminal (progress bars on) and return stderr."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", "from geo.cli import main; main()", *args],
                            stdout=subprocess.DEVNULL, stderr=slave, stdin=subprocess.DEVNULL,
                            env=env)
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        r, _, _ = select.select([master], [], [], 240)
        if not r:
            proc.kill()
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(master)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")[-2000:]
    return b"".join(chunks).decode("utf-8", errors="replace")


def _screen_lines(raw: str) -> list[str]:
    """What a terminal shows: each line after its last carriage return, escapes removed."""
    out = []
    for line in raw.replace("\r\n", "\n").split("\n"):
        line = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line)
        out.append(line.split("\r")[-1])
    return out


def test_report_has_a_progress_bar_and_logs_do_not_break_it(run_dir: Path) -> None:
    raw = _run_in_terminal(["report", str(run_dir), "-v"])
    assert "report figures" in raw  # the bar of the report stage
    assert re.search(r"report figures +\[#+\] +2/2", raw), raw[-1500:]
    logs = [ln for ln in _screen_lines(raw) if "DEBUG" in ln or "INFO" in ln]
    assert any("report: figure" in ln for ln in logs)  # the -v detail
    for ln in logs:  # every log line starts a line of its own: no bar text before it
        assert re.match(r"^\d\d:\d\d:\d\d (DEBUG|INFO) ", ln), repr(ln)


@pytest.mark.slow
def test_verbose_adds_detail(run_dir: Path) -> None:
    plain = CliRunner().invoke(main, ["report", str(run_dir)])
    verbose = CliRunner().invoke(main, ["report", str(run_dir), "-v"])
    assert plain.exit_code == verbose.exit_code == 0
    assert "DEBUG" not in plain.stderr and "report: figure" not in plain.stderr
    assert "report: figure" in verbose.stderr
    assert len(verbose.stderr.splitlines()) > len(plain.stderr.splitlines())
    quiet = CliRunner().invoke(main, ["report", str(run_dir), "-q"])
    assert quiet.stderr == ""
