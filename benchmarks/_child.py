"""One benchmark arm in a child process: its own CPU time and peak memory, from ``wait4``."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_child(cmd: list[str], *, env: Mapping[str, str] | None = None,
              log: Path | None = None) -> dict[str, float]:
    """Run ``cmd``; the child's CPU seconds (user + system), peak RSS in MB and wall seconds.

    The child gets this checkout first on ``PYTHONPATH``, plus ``env``. Its stdout and stderr
    go to ``log`` (kept) or to a temporary file; a failing child stops the benchmark with the
    tail of its output. CPU and RSS are the child's own, so other users of the machine do not
    count.
    """
    t0 = time.perf_counter()
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with log.open("w+b") if log is not None else tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env)
        _, status, ru = os.wait4(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            out.seek(0)
            tail = out.read()[-2000:].decode(errors="replace")
            where = f"; see {log}" if log is not None else ""
            raise SystemExit(f"{cmd[:4]} failed ({code}){where}:\n{tail}")
    return {"cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": ru.ru_maxrss / 1024,
            "wall_s": time.perf_counter() - t0}
