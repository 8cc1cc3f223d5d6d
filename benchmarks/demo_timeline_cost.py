"""What the construction timeline costs the SYNTHETIC demo: runs with and without it, side by side.

SYNTHETIC data (geo.demo, not real imagery). The demo (4 RGB dates, 480 x 480 px at 1 m) is run
``--repeats`` times with the timeline stage and as many times with it replaced by a no-op
(so no ``timeline.csv`` and no timeline figure in the report), alternating, in one process.
It prints each run's wall and process CPU time, the medians of each arm and their ratios, and
the timeline stage's own seconds from ``run.json``. A ratio, not a timing: the machine's load
moves both arms (CPU time much less than wall time on a shared machine).

    python benchmarks/demo_timeline_cost.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's geo, first

from geo import timeline_stage
from geo.config import load_config
from geo.demo import write_demo
from geo.pipeline import run_aoi


def _once(cfg: Any, out: Path, with_timeline: bool) -> tuple[float, float, float]:
    real = timeline_stage.with_timeline
    if not with_timeline:
        timeline_stage.with_timeline = lambda tracks, *a, **k: tracks  # type: ignore[assignment]
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        summary = run_aoi(cfg, out)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        timeline_stage.with_timeline = real  # type: ignore[assignment]
    stages = json.loads((Path(summary["run_dir"]) / "run.json").read_text())["stages"]
    stage_s = sum(float(s["seconds"]) for s in stages if s["stage"] == "timeline")
    return wall, cpu, stage_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fw_demo_cost_"))
    cfg = load_config(write_demo(root / "inputs").config)
    walls: dict[bool, list[float]] = {True: [], False: []}
    cpus: dict[bool, list[float]] = {True: [], False: []}
    for i in range(args.repeats):
        for arm in (False, True):
            wall, cpu, stage_s = _once(cfg, root / f"run_{i}_{int(arm)}", arm)
            walls[arm].append(wall)
            cpus[arm].append(cpu)
            print(f"run {i} timeline={'on ' if arm else 'off'} wall {wall:6.2f} s, CPU "
                  f"{cpu:6.2f} s (timeline stage {stage_s:.2f} s wall)", flush=True)
    for what, d in (("wall", walls), ("CPU", cpus)):
        on, off = statistics.median(d[True]), statistics.median(d[False])
        print(f"median {what}: with timeline {on:.2f} s, without {off:.2f} s, "
              f"ratio {on / off:.3f}")


if __name__ == "__main__":
    main()
