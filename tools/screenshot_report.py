"""Screenshot a factorywatch HTML report in headless Debian chromium (offline).

Usage::

    python tools/screenshot_report.py RUN_DIR_OR_INDEX_HTML OUT.png [--width 1400] [--height 3000]

Chromium runs with networking features off and a throwaway profile, so a report that needed
the internet (a CDN, a web font) would show up broken in the screenshot. Exits 1 if chromium
fails or writes no PNG.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """Path of a chromium executable, or None."""
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _chromium(index_html: Path, extra: list[str], *, width: int, height: int,
              timeout_s: float) -> subprocess.CompletedProcess[str]:
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("chromium not found; install Debian's chromium package")
    with tempfile.TemporaryDirectory(prefix="fw-chromium-") as profile:
        cmd = [
            exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",  # let the bundled map script run before capture
            f"--window-size={width},{height}", *extra, index_html.resolve().as_uri(),
        ]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                              check=False)


def dump_dom(index_html: Path, *, timeout_s: float = 120.0) -> str:
    """The page's DOM after its scripts ran (``chromium --dump-dom``)."""
    r = _chromium(index_html, ["--dump-dom"], width=1400, height=3000, timeout_s=timeout_s)
    if r.returncode != 0 or "<html" not in r.stdout:
        raise RuntimeError(f"chromium --dump-dom failed (rc {r.returncode}): {r.stderr[-1500:]}")
    return r.stdout


def screenshot(index_html: Path, out_png: Path, *, width: int = 1400, height: int = 3000,
               timeout_s: float = 120.0) -> Path:
    """Render ``index_html`` headless and save a PNG screenshot to ``out_png``."""
    out_png = out_png.resolve()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    out_png.unlink(missing_ok=True)
    r = _chromium(index_html, [f"--screenshot={out_png}"], width=width, height=height,
                  timeout_s=timeout_s)
    if r.returncode != 0 or not out_png.exists() or out_png.stat().st_size == 0:
        raise RuntimeError(f"chromium failed (rc {r.returncode}): {r.stderr[-1500:]}")
    return out_png


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path, help="run directory or report/index.html")
    ap.add_argument("out", type=Path, help="PNG to write")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=3000)
    args = ap.parse_args(argv)
    index = args.report
    if index.is_dir():
        index = index / "report" / "index.html" if (index / "report").is_dir() \
            else index / "index.html"
    if not index.exists():
        print(f"error: {index} not found; build it with 'factorywatch report RUN_DIR'",
              file=sys.stderr)
        return 1
    try:
        png = screenshot(index, args.out, width=args.width, height=args.height)
    except (FileNotFoundError, RuntimeError, subprocess.TimeoutExpired) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
