"""``factorywatch run``, ``demo`` and ``validate``."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import click

from geo.cli._common import common_options, progress_factory

__all__ = ["demo_cmd", "run_cmd", "validate_cmd"]


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, sort_keys=True, indent=2, default=str))


@click.command("run")
@click.argument("aoi_config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "run_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Run directory [default: runs/<aoi name>].")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing run directory (only one factorywatch made).")
@click.option("--offline", is_flag=True, help="Remote imagery from the cache only.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Read and align dates in parallel on a local Dask cluster of N processes.")
@click.option("--priors", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Guided mode: GeoJSON/GPKG of named buildings to fit on every date "
                   "(overrides [buildings] priors).")
@common_options(json_help="Print the run summary as JSON on stdout.")
def run_cmd(aoi_config: Path, run_dir: Path | None, overwrite: bool, offline: bool,
            workers: int, priors: Path | None, as_json: bool, verbose: int, quiet: int) -> None:
    """Run the whole pipeline for one AOI.

    \b
    $ factorywatch run aoi/ryongsong_feb11_plant.toml -o runs/feb11
    $ factorywatch run my_site.toml -o runs/my_site --overwrite --json
    $ factorywatch run my_site.toml --priors buildings.geojson   # guided mode
    """
    from geo.config import load_config
    from geo.pipeline import run_aoi
    from geo.rundir import safe_name

    config = load_config(aoi_config)
    if priors is not None:
        config = dataclasses.replace(config, buildings=dataclasses.replace(
            config.buildings, priors=str(priors.resolve())))
    if config.buildings.priors:  # bad priors fail now, before any imagery is read
        from geo.priors import read_priors

        read_priors(config.buildings.priors, "EPSG:4326")
    out = run_dir or Path("runs") / safe_name(config.aoi.name)
    summary = run_aoi(config, out, overwrite=overwrite, offline=offline,
                      progress=progress_factory(quiet), workers=workers)
    if as_json:
        _echo_json(summary.to_dict())
    else:
        click.echo(summary.run_dir)
    for w in summary.warnings:
        click.echo(f"Warning: {w}", err=True)


@click.command("validate")
@click.argument("aoi_config", type=click.Path(dir_okay=False, path_type=Path))
@common_options(json_help="Print the problems as a JSON list.")
def validate_cmd(aoi_config: Path, as_json: bool, verbose: int, quiet: int) -> None:
    """Check an AOI config and its AOI file; exit 1 if there is any problem.

    \b
    $ factorywatch validate aoi/kanggye_tractor_plant.toml
    """
    from geo.validate import config_warnings, validate_config

    problems = validate_config(aoi_config)
    for w in config_warnings(aoi_config):
        click.echo(f"{aoi_config}: warning: {w}", err=True)
    if as_json:
        _echo_json(problems)
    else:
        for p in problems:
            click.echo(f"{aoi_config}: {p}", err=True)
        if not problems:
            click.echo(f"{aoi_config}: OK", err=True)
    sys.exit(1 if problems else 0)


@click.command("demo")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path),
                default=Path("factorywatch-demo"))
@click.option("--overwrite", is_flag=True,
              help="Replace the inputs/ and run/ an earlier demo wrote in FOLDER.")
@common_options(json_help="Print measured vs truth as JSON.")
def demo_cmd(folder: Path, overwrite: bool, as_json: bool, verbose: int, quiet: int) -> None:
    """Generate the SYNTHETIC demo series, run it, and print measured ratios beside the truth.

    The series is synthetic: four dates of 1 m RGB imagery placed near Kanggye, with
    vegetation, roads, halls, shadows, noise, an illumination change, a misregistration
    and a cloud. Hall B grows to 2.25x its neighbour A.

    \b
    $ factorywatch demo /tmp/fw-demo
    """
    from geo.config import load_config
    from geo.demo import write_demo
    from geo.demo_report import compare_to_truth, format_comparison
    from geo.pipeline import run_aoi
    from geo.rundir import prepare_demo_folder

    inputs, run = prepare_demo_folder(folder, overwrite=overwrite)
    files = write_demo(inputs.root)
    config = load_config(files.config)
    summary = run_aoi(config, run.root, overwrite=overwrite, progress=progress_factory(quiet))
    result = compare_to_truth(Path(summary.run_dir), files.truth)
    record = (result.get("pair") or {}).get("claim", {}).pop("record", None)
    if record is not None:  # the demo's claim shows in run.json, measurements.csv and report
        from geo.export.claims_record import save_claim

        save_claim(Path(summary.run_dir), record)
    if as_json:
        _echo_json({"summary": summary.to_dict(), "comparison": result})
    else:
        click.echo(format_comparison(result))
        click.echo(f"\nOutputs (SYNTHETIC): {summary.run_dir}")
        click.echo("Open sites.geojson / results.gpkg in QGIS, or report/index.html in a browser.")
