"""Incremental ``watch`` against runs from scratch, side by side (SYNTHETIC series).

Three small SYNTHETIC AOIs (tests/_watch_series.py: 200 x 200 m at 1 m, the demo's kinds of
change) are watched in one process (``workers=0``, so that CPU time is this process's):

1. first watch over 3 dates;
2. a second watch with no new imagery (must read no pixels);
3. a watch after one new date per AOI (processes only that date);
4. ``run_aoi`` from scratch over the same 4 dates, per AOI (what re-running everything costs).

Wall and CPU seconds and the number of source reads (``ImagerySource.read`` calls) are
printed per step. Run:

    python benchmarks/watch_incremental.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _watch_series import DATES, add_date, write_series

from geo.pipeline import run_aoi
from geo.sources.local import LocalGeoTiffSource
from geo.watch import load_watchlist, watch

NAMES = ("site_a", "site_b", "site_c")
READS: list[str] = []
_real_read = LocalGeoTiffSource.read


def _counting_read(self: LocalGeoTiffSource, scene: Any, grid: Any) -> Any:
    READS.append(scene.id)
    return _real_read(self, scene, grid)


def _timed(label: str, fn: Any) -> dict[str, Any]:
    READS.clear()
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    rec = {"step": label, "wall_s": round(time.perf_counter() - w0, 2),
           "cpu_s": round(time.process_time() - c0, 2), "source_reads": len(READS)}
    if isinstance(out, int):
        rec["events"] = out
    print(f"{label:<44} wall {rec['wall_s']:>6.2f} s  cpu {rec['cpu_s']:>6.2f} s  "
          f"reads {rec['source_reads']:>2}" + (f"  events {out}" if isinstance(out, int) else ""))
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    LocalGeoTiffSource.read = _counting_read  # type: ignore[method-assign]
    print("SYNTHETIC series: 3 AOIs, 200 x 200 px at 1 m; watch in one process (workers=0)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        wl = write_series(root / "series", n_dates=3)
        wd = root / "watch"

        def run_watch() -> int:
            return len(watch(load_watchlist(wl), wd, workers=0).events)

        rows.append(_timed("1. first watch, 3 dates x 3 AOIs", run_watch))
        rows.append(_timed("2. watch again, no new imagery", run_watch))
        for n in NAMES:
            add_date(wl.parent, n, DATES[3])
        rows.append(_timed("3. watch after 1 new date per AOI", run_watch))

        def from_scratch() -> None:
            for k, cfg in enumerate(load_watchlist(wl).configs):
                run_aoi(cfg, root / f"scratch_{k}")

        rows.append(_timed("4. run_aoi from scratch, 4 dates x 3 AOIs", from_scratch))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
