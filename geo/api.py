"""The small public API: run an AOI, measure footprints, check a claim, open a run.

Notebooks and scripts need only these four functions (``import geo``); everything else is
reachable in the submodules for those who want the pieces.

Examples
--------
>>> import geo
>>> sorted(n for n in geo.__all__ if n != "__version__")
['Run', 'check', 'measure', 'open_run', 'run']
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from geo.claims import ClaimResult, check_claim
from geo.config import MeasureParams, RunConfig, load_config
from geo.errors import SourceError

__all__ = ["Run", "check", "measure", "open_run", "run"]


@dataclass(frozen=True, slots=True)
class Run:
    """A finished run directory, read back: its tables (projected CRS) and its manifest."""

    path: Path
    """The run directory."""
    sites: gpd.GeoDataFrame
    """One row per tracked building, with areas, intervals and ratios."""
    footprints: gpd.GeoDataFrame
    """One row per building outline per date."""
    events: pd.DataFrame
    """Change events between dates (``new``, ``grown``, ...)."""
    manifest: dict[str, Any]
    """``run.json``: provenance, config, warnings, stages."""

    @property
    def measure_config(self) -> dict[str, Any]:
        """The run's ``[measure]`` settings (``{}`` if run.json lacks them)."""
        cfg = self.manifest.get("config")
        section = cfg.get("measure") if isinstance(cfg, dict) else None
        return dict(section) if isinstance(section, dict) else {}

    @property
    def warnings(self) -> list[str]:
        """The run's warnings (read them before publishing a number)."""
        return [str(w) for w in self.manifest.get("warnings", [])]


def run(config: str | Path | RunConfig, run_dir: str | Path, *, overwrite: bool = False,
        offline: bool = False, workers: int = 1) -> Run:
    """Run one AOI end to end (``factorywatch run``) and open the result.

    Parameters
    ----------
    config : str, Path or RunConfig
        An AOI TOML (see ``aoi/*.toml``) or a loaded config.
    run_dir : str or Path
        Output folder (must not exist unless ``overwrite`` and it is a factorywatch run).
    overwrite, offline, workers
        As the CLI's ``--overwrite``, ``--offline`` and ``--workers``.
    """
    from geo.pipeline import run_aoi

    cfg = config if isinstance(config, RunConfig) else load_config(config)
    summary = run_aoi(cfg, run_dir, overwrite=overwrite, offline=offline, workers=workers)
    return open_run(summary.run_dir)


def measure(paths: Sequence[str | Path], run_dir: str | Path, *, aoi_name: str,
            date_field: str | None = None, dates: Sequence[str] | None = None,
            epsg: int | None = None, config: str | Path | RunConfig | None = None,
            overwrite: bool = False) -> Run:
    """Track and measure analyst-digitised footprints (``factorywatch measure``).

    Parameters
    ----------
    paths : sequence of path
        GeoJSON / GPKG / Shapefile files, any CRS; one per date unless ``date_field``.
    run_dir : str or Path
        Output folder.
    aoi_name : str
        Prefix of the ids.
    date_field, dates, epsg
        As ``--date-field``, ``--dates`` and ``--epsg``.
    config : str, Path or RunConfig, optional
        A TOML whose ``[match]`` and ``[measure]`` sections are used.
    overwrite : bool
        As ``--overwrite``.
    """
    from geo.pipeline import run_vector
    from geo.vector import read_footprints

    cfg = (config if isinstance(config, RunConfig)
           else load_config(config) if config is not None else RunConfig())
    sd = cfg.measure.digitising_sd_m
    gdf = read_footprints(list(paths), aoi_name=aoi_name, date_field=date_field, dates=dates,
                          digitising_sd_m=1.0 if sd is None else sd, epsg=epsg)
    summary = run_vector(gdf, run_dir, aoi_name=aoi_name, config=cfg, overwrite=overwrite,
                         source_paths=[str(p) for p in paths])
    return open_run(summary.run_dir)


def open_run(run_dir: str | Path) -> Run:
    """Read a run directory written by ``run`` or ``measure``.

    Raises
    ------
    SourceError
        If the folder is not a complete run directory.
    """
    from geo.export.tables import read_csv
    from geo.rundir import RunDir
    from geo.vector import read_run_tables

    d = Path(run_dir)
    rd = RunDir(d)
    sites, footprints, _measure = read_run_tables(d)
    manifest: dict[str, Any] = {}
    if rd.run_json.is_file():
        try:
            loaded = json.loads(rd.run_json.read_text(encoding="utf-8"))
        except ValueError as err:
            raise SourceError(f"{rd.run_json}: not valid JSON ({err}); rerun the run") from None
        manifest = loaded if isinstance(loaded, dict) else {}
    events = read_csv(rd.events_csv)
    return Run(path=d, sites=sites, footprints=footprints, events=events, manifest=manifest)


def check(run: Run | str | Path, subject: str, reference: str = "neighbour", *,
          relation: str = ">", factor: float = 1.0, date: str | None = None) -> ClaimResult:
    """Check a size claim against a run ("S2 is more than twice its neighbour").

    Parameters
    ----------
    run : Run, str or Path
        An opened run or its directory.
    subject, reference, relation, factor, date
        As ``factorywatch claim``'s ``--subject``, ``--reference``, ``--relation``,
        ``--factor`` and ``--date``.

    Returns
    -------
    ClaimResult
        ``verdict`` is ``supported``, ``contradicted`` or ``undecidable`` (with the reason).
    """
    r = run if isinstance(run, Run) else open_run(run)
    params = MeasureParams(**{k: v for k, v in r.measure_config.items()
                              if k in MeasureParams.__dataclass_fields__})
    return check_claim(r.sites, r.footprints, subject=subject, reference=reference,
                       relation=relation, factor=factor, date=date, params=params)
