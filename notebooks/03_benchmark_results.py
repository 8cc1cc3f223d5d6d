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
# # Reading the change-detection benchmark
#
# `factorywatch benchmark DATASET_DIR --method NAME` scores a change method on a folder laid
# out like LEVIR-CD (`A/`, `B/`, `label/`). Precision, recall, F1 and IoU come from the global
# TP/FP/FN over all images (the LEVIR-CD convention), and the time is per megapixel.
#
# This notebook runs the same harness (`geo.benchmark.run_benchmark`) on the **real**,
# third-party-labelled LEVIR-CD crops shipped in `../shared/data` (7 pairs of 256×256 px),
# compares two methods and shows where they fail.
#
# **Shared data: one variable.** Point `FACTORYWATCH_SHARED` at the `shared/` folder (the one
# holding `data/levir_cd/crops_256`), e.g. `FACTORYWATCH_SHARED=/work/shared jupyter lab`.
# Without it, a `shared/` folder beside or above the working directory is used; with neither,
# the next cell stops with a message saying what to set.

# %%
import os
import tempfile
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from geo.benchmark import run_benchmark
from geo.config import DetectParams

LEVIR = Path("data") / "levir_cd" / "crops_256"
env = os.environ.get("FACTORYWATCH_SHARED")
candidates = [Path(env)] if env else [p / "shared" for p in (Path.cwd(), *Path.cwd().parents)]
DATASET = next((c / LEVIR for c in candidates if (c / LEVIR / "label").is_dir()), None)
if DATASET is None:
    raise FileNotFoundError(
        f"LEVIR-CD crops not found at {candidates[0] / LEVIR}"
        + (" (from FACTORYWATCH_SHARED)" if env else " or in any shared/ folder above here")
        + "; set FACTORYWATCH_SHARED to the shared/ folder that holds data/levir_cd/crops_256")
# FW_BENCH_METHODS (optional): the methods to compare, comma-separated (the notebook test runs one)
METHODS = os.environ.get("FW_BENCH_METHODS", "cva,rgb-objects").split(",")
DATASET

# %%
params = DetectParams(min_area_m2=20.0)
results = {m: run_benchmark(DATASET, method=m, params=params, res_m=0.5) for m in METHODS}

# %% [markdown]
# ## Overall scores (global TP/FP/FN)

# %%
overall = pd.DataFrame([
    {"method": m, "precision": r.precision, "recall": r.recall, "f1": r.f1, "iou": r.iou,
     "n_images": r.n_images, "s_per_megapixel": r.seconds_per_megapixel}
    for m, r in results.items()
]).set_index("method")
overall.round(3)

# %% [markdown]
# ## Per image
# A pair with no change in the label (`train_386_0512_0768`) has F1 = 0 by definition when
# anything is predicted; look at its false positives instead.

# %%
per_image = pd.DataFrame([
    {"method": m, "image": s.name, "f1": s.f1, "precision": s.precision, "recall": s.recall,
     "fp": s.fp, "fn": s.fn}
    for m, r in results.items() for s in r.per_image
])
per_image.pivot(index="image", columns="method", values="f1").round(3)

# %%
WORK = Path(os.environ.get("FW_WORKDIR") or tempfile.mkdtemp(prefix="fw-bench-"))
fig = Figure(figsize=(9, 4))
ax = fig.subplots()
per_image.pivot(index="image", columns="method", values="f1").plot.bar(ax=ax)
ax.set_ylabel("F1 per image")
ax.set_ylim(0, 1)
fig.tight_layout()
fig.savefig(WORK / "benchmark_f1_per_image.png", dpi=100)
try:
    from IPython.display import Image, display

    display(Image(filename=str(WORK / "benchmark_f1_per_image.png")))
except ImportError:  # running as a plain script
    pass

# %%
# the scores are proper fractions and every image was scored
for r in results.values():
    assert r.n_images == len(r.per_image) > 0
    assert 0.0 <= r.f1 <= 1.0 and 0.0 <= r.precision <= 1.0 and 0.0 <= r.recall <= 1.0
