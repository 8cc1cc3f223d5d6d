"""The guided-mode pipeline stage: read the priors and the co-registered dates, fit, write.

I/O layer around :func:`geo.guided.guided_measure`; called once by :mod:`geo.pipeline` after
read/co-registration. Writes ``buildings.csv`` (one row per date and building: presence state,
area with its 95% interval, fit quality, or why the date does not support a measurement).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
from pathlib import Path
from typing import Any

import geopandas as gpd

from geo.config import RunConfig
from geo.export.geojson import atomic_write_text
from geo.grid import Grid
from geo.guided import guided_measure
from geo.priors import read_priors
from geo.reading import read_to_grid

__all__ = ["guided_stage"]

log = logging.getLogger(__name__)


def guided_stage(metas: list[dict[str, Any]], grid: Grid, config: RunConfig, partial: Path,
                 aoi_name: str, rec: dict[str, Any]) -> gpd.GeoDataFrame:
    """Footprints of the named priors on every date (guided mode); writes ``buildings.csv``."""
    priors = read_priors(config.buildings.priors, grid.crs)
    scenes = []
    for m in metas:
        d = m["date"]
        ga = read_to_grid(str(partial / "scenes" / f"{d}.tif"), grid, date=d,
                          source_id=m["source_id"], roles=m["bands"])
        vmask = read_to_grid(str(partial / ".checkpoints" / f"valid_{d}.tif"), grid, date=d,
                             roles=["b1"])
        ga = dataclasses.replace(ga, kind=m["kind"])
        scenes.append(ga.with_data(ga.data, valid=(vmask.data[0] > 0) & ga.valid))
    res = guided_measure(scenes, priors, aoi_name=aoi_name,
                         psf_px=config.buildings.psf_sigma_px, search_m=config.buildings.search_m,
                         coreg_residual_m={m["date"]: float(m.get("residual_m", 0.0))
                                           for m in metas})
    buf = io.StringIO()
    res.table.to_csv(buf, index=False, quoting=csv.QUOTE_MINIMAL, float_format="%.6g")
    atomic_write_text(partial / "buildings.csv", buf.getvalue())
    counts = res.table["state"].value_counts().to_dict()
    rec.update(n_priors=len(priors), n_measured=len(res.footprints),
               states=";".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return res.footprints
