# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Quick start: the SYNTHETIC demo, end to end
#
# Everything in this notebook is **synthetic**: `geo.demo.write_demo` generates four dates of
# 1 m RGB imagery near Kanggye (vegetation, roads, halls, shadows, noise, an illumination
# change, a misregistration and a cloud) together with the true hall outlines. Hall B grows to
# 2.25x its neighbour A. We run the whole pipeline on it, compare the measurements with the
# truth, and look at the outputs an analyst opens: the GeoJSON/GPKG layers (styled for QGIS),
# the COG rasters and the HTML report.
#
# The same thing from a shell: `factorywatch demo /tmp/fw-demo`.

# %%
import dataclasses
import json
import os
import tempfile
from pathlib import Path

import geopandas as gpd

from geo.config import load_config
from geo.demo import write_demo
from geo.demo_report import compare_to_truth, format_comparison
from geo.export.report import write_report
from geo.export.claims_record import claim_record, save_claim
from geo.pipeline import run_aoi
from geo.synthetic import default_spec


def progress(items, label):
    """A progress line per step (the CLI draws a bar; a notebook prints)."""
    items = list(items)
    for i, item in enumerate(items, 1):
        print(f"{label}: {i}/{len(items)}", flush=True)
        yield item


WORK = Path(os.environ.get("FW_WORKDIR") or tempfile.mkdtemp(prefix="fw-quickstart-"))
WORK

# %% [markdown]
# ## 1. Generate the synthetic series and run the pipeline
# `run_aoi` reads the AOI config, builds the AOI's UTM grid, co-registers every date onto it,
# detects buildings and change, polygonizes, tracks each building across dates and measures
# areas and ratios with 95% intervals.
#
# `FW_DEMO_RES_M` (optional) sets the synthetic series' pixel size in metres; the default is
# the demo's 1 m (what `factorywatch demo` runs). The notebook test sets 2 m: the same steps
# on a quarter of the pixels, so it runs faster.

# %%
spec = default_spec()
if os.environ.get("FW_DEMO_RES_M"):
    spec = dataclasses.replace(spec, res_m=float(os.environ["FW_DEMO_RES_M"]))
files = write_demo(WORK / "inputs", spec)
config = load_config(files.config)
summary = run_aoi(config, WORK / "run", overwrite=True, progress=progress)
run_dir = Path(summary.run_dir)
print(json.dumps({k: summary.to_dict()[k] for k in ("aoi", "n_scenes", "dates", "n_sites", "synthetic")},
                 indent=1))
assert summary.synthetic is True  # the demo always says so

# %% [markdown]
# ## 2. Measured against the truth

# %%
comparison = compare_to_truth(run_dir, files.truth)
record = comparison["pair"]["claim"].pop("record")  # the demo claim, saved into the run
print(format_comparison(comparison))
save_claim(run_dir, record, rebuild_report=False)

# %% [markdown]
# ## 3. The sites table: areas and neighbour ratios, each with its 95% interval

# %%
sites = gpd.read_file(run_dir / "sites.geojson")
cols = ["site_id", "status", "first_seen_date", "last_seen_date", "area_m2", "area_m2_lo",
        "area_m2_hi", "neighbour_id", "neighbour_area_ratio", "neighbour_area_ratio_lo",
        "neighbour_area_ratio_hi"]
sites[[c for c in cols if c in sites.columns]].round(2)

# %%
for sentence in sites["sentence"].dropna():
    print(sentence)

# %% [markdown]
# ## 4. What the run directory holds
# `*.geojson` + `*.qml` open styled in QGIS (drag them in); `results.gpkg` holds the same
# layers in UTM with their styles stored inside; `scenes/`, `masks/` and `change/` are
# Cloud-Optimized GeoTIFFs with a `.qml` style each; `report/index.html` works offline.

# %%
sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())

# %% [markdown]
# ## 5. The report
# `factorywatch report RUN_DIR` (or `write_report`) rebuilds it from the files above.

# %%
index = write_report(run_dir, progress=progress)
print(index)
try:
    from IPython.display import IFrame, Image, display

    display(Image(filename=str(index.parent / "areas.png")))
    display(Image(filename=str(sorted(index.parent.glob("pair_*.png"))[-1])))
except ImportError:  # running as a plain script
    pass

# %% [markdown]
# ## 6. The interactive map
# Footprints over each date's scene with a date slider, scale bar, north arrow, legend and
# imagery credit. It is the report's own map (`report/viewer.js`, bundled, no CDN), so it
# works offline; in Jupyter it shows in the frame below (served from the notebook's folder:
# start Jupyter where `WORK` is reachable, or open `report/index.html` in a browser).

# %%
try:
    display(IFrame(src=os.path.relpath(index, Path.cwd()) + "#viewer", width="100%",
                   height=720))
except NameError:  # running as a plain script
    print("open", index, "in a browser for the map")
