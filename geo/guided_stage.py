"""The guided-mode pipeline stage: read the priors and the co-registered dates, fit, write.

I/O layer around :func:`geo.guided.guided_measure`; called once by :mod:`geo.pipeline` after
read/co-registration. Writes ``buildings.csv`` (one row per date and building: presence state,
area with its 95% interval, fit quality, or why the date does not support a measurement).
"""

from __future__ import annotations

import logging

import geopandas as gpd

from geo.config import RunConfig
from geo.export.tables import write_csv
from geo.grid import Grid
from geo.guided import guided_measure
from geo.priors import read_priors
from geo.reading import read_to_grid
from geo.records import DateRecord
from geo.rundir import RunDir
from geo.runner import StageNotes
from geo.stages import load_scene

__all__ = ["guided_stage"]

log = logging.getLogger(__name__)


def guided_stage(metas: list[DateRecord], grid: Grid, config: RunConfig, partial: RunDir,
                 aoi_name: str, rec: StageNotes) -> gpd.GeoDataFrame:
    """Footprints of the named priors on every date (guided mode); writes ``buildings.csv``."""
    priors = read_priors(config.buildings.priors, grid.crs)
    scenes = []
    for m in metas:
        d = m.date
        ga = load_scene(partial.scene(d), grid, m)
        vmask = read_to_grid(str(partial.valid_mask(d)), grid, date=d,
                             roles=["b1"])
        scenes.append(ga.with_data(ga.data, valid=(vmask.data[0] > 0) & ga.valid))
    res = guided_measure(scenes, priors, aoi_name=aoi_name,
                         psf_px=config.buildings.psf_sigma_px, search_m=config.buildings.search_m,
                         coreg_residual_m={m.date: m.residual
                                           for m in metas})
    write_csv(res.table, partial.buildings_csv)  # names are user text: formula cells neutralised
    counts = res.table["state"].value_counts().to_dict()
    rec.update(n_priors=len(priors), n_measured=len(res.footprints),
               states=";".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return res.footprints
