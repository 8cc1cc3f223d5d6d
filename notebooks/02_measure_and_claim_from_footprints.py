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
# # Measure and check a claim from digitised footprints
#
# Analysts often have outlines already: traced in QGIS over a high-resolution image, or
# taken from a publication. This notebook starts from such a file (no imagery), measures
# every building on the AOI's UTM grid, tracks it across dates and checks a published claim
# such as *"the new hall is more than twice as large as its neighbour"*.
#
# The footprints here are the **SYNTHETIC** demo's true hall outlines (`truth.geojson`), so
# the right answers are known: hall B is 2.25x its neighbour A on the last date.

# %%
import os
import tempfile
from pathlib import Path

import geopandas as gpd

from geo.claims import check_claim
from geo.config import load_config
from geo.demo import write_demo
from geo.pipeline import run_vector
from geo.vector import read_footprints

WORK = Path(os.environ.get("FW_WORKDIR") or tempfile.mkdtemp(prefix="fw-claim-"))

# %% [markdown]
# ## 1. Read the digitised footprints
# `read_footprints` reprojects to the UTM zone of the footprints (areas are only ever
# measured in metres), validates the geometries and adds the footprint columns. Each outline
# gets a 1-sigma digitising error (here 1 m): that is what makes the intervals below.

# %%
files = write_demo(WORK / "inputs")  # SYNTHETIC: writes truth.geojson among other things
footprints = read_footprints([files.truth], aoi_name="kanggye_digitised", date_field="date",
                             digitising_sd_m=1.0)
print(footprints.crs, len(footprints), "footprints on", footprints["date"].nunique(), "dates")
footprints.drop(columns="geometry").head()

# %% [markdown]
# ## 2. Track and measure, writing a normal run directory (GeoJSON + QML, GPKG, report)

# %%
config = load_config(files.config)
summary = run_vector(footprints, WORK / "run", aoi_name="kanggye_digitised", config=config,
                     overwrite=True, source_paths=[files.truth])
run_dir = Path(summary.run_dir)
sites = gpd.read_file(run_dir / "sites.geojson").to_crs(footprints.crs)
tracked = gpd.read_file(run_dir / "footprints.geojson").to_crs(footprints.crs)
sites[["site_id", "status", "area_m2", "area_m2_lo", "area_m2_hi", "neighbour_id",
       "neighbour_area_ratio", "neighbour_area_ratio_lo", "neighbour_area_ratio_hi"]].round(2)

# %% [markdown]
# ## 3. Which site is hall B?
# The truth file names the halls; the pipeline gives stable site ids. Hall B's site is the one
# that covers hall B's last outline.

# %%
truth = gpd.read_file(files.truth).to_crs(footprints.crs)
last_b = truth[truth["hall"] == "B"].sort_values("date").geometry.iloc[-1]
subject = sites.loc[sites.geometry.intersection(last_b).area.idxmax(), "site_id"]
subject

# %% [markdown]
# ## 4. Check claims
# The verdict is **supported** only if the whole 95% interval of the ratio is on the claimed
# side, **contradicted** if it is entirely on the other side, and **undecidable** otherwise.

# %%
claims = [
    (">", 2.0, "more than twice as large as its neighbour"),
    ("~", 2.25, "about 2.25 times its neighbour"),
    ("<", 1.5, "less than 1.5 times its neighbour"),
]
results = []
for relation, factor, text in claims:
    r = check_claim(sites, tracked, subject=subject, reference="neighbour", relation=relation,
                    factor=factor, params=config.measure)
    results.append(r)
    print(f"{text!r}: {r.verdict} — ratio {r.estimate:.2f} ({r.lo:.2f}–{r.hi:.2f})")
    print("   ", r.sentence)

# %%
# digitised outlines of a synthetic scene: the true ratio is 2.25
assert results[0].verdict == "supported"
assert results[2].verdict == "contradicted"
assert results[0].lo <= 2.25 <= results[0].hi

# %% [markdown]
# ## 5. Save the verdict into the run, and look at it on the map
# `factorywatch claim RUN_DIR ...` does this by default; here `save_claim` records the first
# claim in `run.json` and `measurements.csv` and rebuilds the report, whose claims section and
# interactive map (footprints per date with a date slider, offline) are shown below.

# %%
from geo.export.claims_record import claim_record, save_claim

save_claim(run_dir, claim_record(results[0], reference="neighbour"))
index = run_dir / "report" / "index.html"
assert "Claims checked" in index.read_text(encoding="utf-8")
try:
    from IPython.display import IFrame, display

    display(IFrame(src=os.path.relpath(index, Path.cwd()) + "#claims", width="100%",
                   height=900))
except ImportError:  # running as a plain script
    print("open", index, "in a browser")
