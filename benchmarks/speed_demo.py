"""CPU of a whole run of the SYNTHETIC demo against decoding its input pixels once, stage by stage.

Input: the **SYNTHETIC** demo series (``geo.demo.write_demo``: 4 RGB dates, 461 x 462 px at
1 m, mixed CRSs, not real imagery). Side by side, each in a fresh child process (CPU = the
child's user + system time from ``wait4``, so other users of the machine do not count):

- ``bare``: decode every pixel of the four input GeoTIFFs once (rasterio, block by block);
- ``import``: ``python -c "import geo.pipeline, geo.export.report"`` (interpreter start-up and
  the imports a run needs; part of every CLI run);
- ``run``: ``python -m geo.cli run demo.toml -o RUN``: the whole pipeline and report.

Each is repeated ``--repeats`` times and the medians printed, with the run's per-stage CPU
seconds from its ``run.json`` (``stages[].cpu_s``: the main process, all threads). Run::

    python benchmarks/speed_demo.py [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _child import run_child
from memory_large import BARE  # the same bare decode as the large-AOI benchmark


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    ns = ap.parse_args(argv)
    from geo.demo import write_demo

    arms: dict[str, list[dict[str, float]]] = {"bare": [], "import": [], "run": []}
    stages: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="fw_speed_demo_") as tmp:
        files = write_demo(Path(tmp) / "inputs")
        tifs = sorted(map(str, files.imagery.glob("*.tif")))
        for i in range(ns.repeats):  # interleaved, so drifts in the machine's load hit all arms
            arms["bare"].append(run_child([sys.executable, "-c", BARE, *tifs]))
            arms["import"].append(run_child([sys.executable, "-c",
                                         "import geo.pipeline, geo.export.report"]))
            out = Path(tmp) / f"run{i}"
            arms["run"].append(run_child([sys.executable, "-m", "geo.cli", "run", str(files.config),
                                      "-o", str(out), "-q"]))
            run = json.loads((out / "run.json").read_text())
            stages.append({s["stage"]: float(s.get("cpu_s") or 0.0) for s in run["stages"]})
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("cpu_s", "peak_rss_mb", "wall_s")}
           for k, v in arms.items()}
    stage_med = {k: statistics.median(s.get(k, 0.0) for s in stages) for k in stages[0]}
    bare = med["bare"]["cpu_s"]
    print(f"SYNTHETIC demo, {ns.repeats} repeats, medians (CPU s = user + system of the child)")
    print("| arm | CPU s | × bare decode | peak RSS MB |\n|---|---|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v['cpu_s']:.2f} | {v['cpu_s'] / bare:.0f}× | {v['peak_rss_mb']:.0f} |")
    print("\n| stage | CPU s | × bare decode |\n|---|---|---|")
    for k, v in stage_med.items():
        print(f"| {k} | {v:.2f} | {v / bare:.1f}× |")
    if ns.json is not None:
        ns.json.write_text(json.dumps({"medians": med, "stages_cpu_s": stage_med,
                                       "runs": arms, "stages": stages}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
