"""Per-date stage on one process vs a local Dask distributed cluster, side by side.

A SYNTHETIC series (the demo's site, more dates, larger scene) is written once; then
``run_aoi`` runs it with ``workers=1`` (baseline) and ``workers=N``, alternating, and the
wall time of the ``read+coregister`` stage (reading, co-registering, normalising and writing
each date) and of the whole run are compared. Run:

    python benchmarks/speed_workers.py [--dates 8] [--size-m 1200] [--workers 2] [--repeat 2]

On a 2-core machine the ceiling is 2x; cluster start-up (about 2-4 s) is included.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np

from geo.config import load_config
from geo.demo import write_demo
from geo.pipeline import run_aoi
from geo.synthetic import default_spec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dates", type=int, default=8)
    ap.add_argument("--size-m", type=float, default=1200.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    base = default_spec()
    dates = tuple(f"{2015 + i}-06-{1 + i:02d}" for i in range(a.dates))
    last = base.dates[-1]
    halls = tuple(dataclasses.replace(h, rects_by_date={
        d: h.rects_by_date.get(base.dates[min(i, len(base.dates) - 1)], h.rects_by_date.get(last))
        for i, d in enumerate(dates)}) for h in base.halls)
    spec = dataclasses.replace(base, dates=dates, halls=halls, size_m=(a.size_m, a.size_m),
                               gain={}, offset={}, shift_px={dates[2]: (-0.8, 1.6)}, cloud={})
    times: dict[str, list[dict[str, float]]] = {"workers=1": [], f"workers={a.workers}": []}
    with tempfile.TemporaryDirectory() as tmp:
        files = write_demo(Path(tmp) / "in", spec)
        cfg = load_config(files.config)
        cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, report=False))
        for r in range(a.repeat):
            for w in (1, a.workers):
                out = Path(tmp) / f"run_{w}_{r}"
                run_aoi(cfg, out)
                m = json.loads((out / "run.json").read_text())
                st = {s["stage"]: s["seconds"] for s in m["stages"]}
                times[f"workers={w}"].append({"read+coregister": st["read+coregister"],
                                              "total": sum(st.values())})
    med = {k: {s: float(np.median([t[s] for t in v])) for s in ("read+coregister", "total")}
           for k, v in times.items()}
    k1, kn = "workers=1", f"workers={a.workers}"
    print(f"SYNTHETIC series: {a.dates} dates, {a.size_m:.0f} m at 1 m, repeat {a.repeat}\n")
    print("| variant | read+coregister s | whole run s |\n|---|---|---|")
    for k in (k1, kn):
        print(f"| {k} | {med[k]['read+coregister']:.1f} | {med[k]['total']:.1f} |")
    ratio = med[k1]["read+coregister"] / med[kn]["read+coregister"]
    print(f"\nread+coregister speed-up with {a.workers} Dask workers: {ratio:.2f}x "
          f"(whole run {med[k1]['total'] / med[kn]['total']:.2f}x)")
    if a.json:
        a.json.write_text(json.dumps({"median": med, "speedup_ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
