"""``factorywatch claim``, ``measure`` and ``plan``.

Exit codes of ``claim`` (for scripts): 0 supported, 3 contradicted, 4 undecidable (at this
resolution, or because a footprint is a built-up region, has an unstable outline or is occluded:
the sentence says which), 1 runtime error (bad run directory, unknown site, ...), 2 usage error.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import Any

import click

from geo.cli._common import (
    FiniteFloat,
    ProjectedEpsg,
    common_options,
)
from geo.types import QUANTITIES, RELATIONS

__all__ = ["CLAIM_EXIT_CODES", "claim_cmd", "measure_cmd", "plan_cmd"]

CLAIM_EXIT_CODES: dict[str, int] = {"supported": 0, "contradicted": 3, "undecidable": 4}
"""Exit code of ``factorywatch claim`` per verdict."""


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, sort_keys=True, indent=2, default=str))

_NOT_VISIBLE = ("output", "production", "capacity")
"""Claims about these ("production quadrupled") cannot be checked from imagery."""


@click.command("claim")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--subject", required=True,
              help="The building the claim is about: site id (feb11:s5), the short id on the "
                   "maps (s5) or its name.")
@click.option("--reference", default=None,
              help="A site id, 'neighbour', 'earlier' (its first sighting) or a date YYYY-MM-DD "
                   "(the same building then).")
@click.option("--relation", default=None, type=click.Choice(RELATIONS),
              help="subject/reference RELATION factor; '~' = about (±10%).")
@click.option("--factor", default=None, type=FiniteFloat(min=0, min_open=True),
              help="The claimed factor: 'twice' = 2.")
@click.option("--roofed-before", default=None, metavar="DATE",
              help="Date claim: the subject was roofed before DATE (YYYY-MM-DD), checked "
                   "against the run's construction timeline instead of a size claim.")
@click.option("--roofed-after", default=None, metavar="DATE", help="Date claim: roofed after.")
@click.option("--cleared-before", default=None, metavar="DATE",
              help="Date claim: ground cleared before.")
@click.option("--cleared-after", default=None, metavar="DATE",
              help="Date claim: ground cleared after.")
@click.option("--date", default=None, help="Date of the subject's footprint [default: last].")
@click.option("--quantity", type=click.Choice(QUANTITIES), default="area", show_default=True,
              help="What the claim compares. Only footprint area is visible from above: "
                   "'floor-space' is checked on footprint area with a caveat; 'output', "
                   "'production' and 'capacity' are not checkable from imagery (exit 4).")
@click.option("--save/--no-save", default=None,
              help="Record the claim and verdict in run.json, measurements.csv and the report "
                   "[default: save when you own the run directory].")
@common_options(json_help="Print the result as JSON on stdout.")
def claim_cmd(run_dir: Path, subject: str, reference: str | None, relation: str | None,
              factor: float | None, date: str | None, quantity: str, save: bool | None,
              as_json: bool, verbose: int, quiet: int, **date_claims: str | None) -> None:
    """Check a size claim against a run: supported, contradicted or undecidable.

    Prints a sentence a report can quote. Exit code 0 supported, 3 contradicted,
    4 undecidable at this resolution, 1 error, 2 usage error.

    \b
    $ factorywatch claim runs/feb11 --subject feb11:s2 --reference neighbour \\
          --relation '>' --factor 2
    feb11:s2 more than twice as large as its neighbour feb11:s1: supported (2.31x, ...)
    $ factorywatch claim runs/feb11 --subject feb11:s2 --roofed-before 2024-10-01
    """
    given = {k: v for k, v in date_claims.items() if v is not None}
    if given:
        _date_claim(run_dir, subject, given, as_json)
        return
    if reference is None or relation is None or factor is None:
        raise click.UsageError("a size claim needs --reference, --relation and --factor "
                               "(or give a date claim such as --roofed-before DATE)")
    if not verbose:  # the verdict is printed once, on stdout; the log line is -v detail
        logging.getLogger("geo.claims").setLevel(logging.WARNING)
    from geo.claims import ClaimError, check_claim
    from geo.config import MeasureParams
    from geo.export.claims_record import claim_record, owns_run_dir, save_claim
    from geo.names import resolve_site
    from geo.vector import read_run_tables

    if quantity in _NOT_VISIBLE:
        if not run_dir.is_dir():
            raise ClaimError(f"{run_dir}: no such run directory; pass a factorywatch run folder")
        text = (f"{subject} {quantity} {relation} {factor:g}x {reference}: not checkable from "
                f"imagery (factorywatch measures roof footprints in m², not {quantity})")
        if as_json:
            _echo_json({"verdict": "not-checkable", "quantity": quantity, "subject_id": subject,
                        "reference": reference, "relation": relation, "factor": factor,
                        "sentence": text, "exit_code": 4})
        else:
            click.echo(text)
        click.get_current_context().exit(4)
    sites, fps, measure = read_run_tables(run_dir)
    fields = {f.name for f in dataclasses.fields(MeasureParams)}
    params = MeasureParams(**{k: v for k, v in measure.items() if k in fields})
    ids = [str(s) for s in sites["site_id"]]
    names = ({str(s): str(n) for s, n in zip(sites["site_id"], sites["name"], strict=True)
              if isinstance(n, str) and n} if "name" in sites.columns else {})
    subject = resolve_site(subject, ids, names)
    if reference not in ("neighbour", "earlier") and not re.match(r"^\d{4}-\d{2}-\d{2}$",
                                                                  reference):
        reference = resolve_site(reference, ids, names)
    res = check_claim(sites, fps, subject=subject, reference=reference, relation=relation,
                      factor=factor, date=date, params=params)
    caveat = (" (footprint area as a proxy for floor space: storeys and underground halls are "
              "not visible from above)") if quantity == "floor-space" else ""
    if save or (save is None and owns_run_dir(run_dir)):
        save_claim(run_dir, claim_record(res, reference=reference, quantity=quantity,
                                         sentence=res.sentence + caveat))
    if as_json:
        _echo_json({**dataclasses.asdict(res), "quantity": quantity,
                    "sentence": res.sentence + caveat,
                    "exit_code": CLAIM_EXIT_CODES[res.verdict]})
    else:
        click.echo(res.sentence + caveat)
    click.get_current_context().exit(CLAIM_EXIT_CODES[res.verdict])


def _date_claim(run_dir: Path, subject: str, given: dict[str, str], as_json: bool) -> None:
    """``claim --roofed-before DATE`` and friends: verdict from the site's timeline columns."""
    import datetime as dt

    from geo.claims import ClaimError
    from geo.names import resolve_site
    from geo.timeline import check_date_claim, event_from_record
    from geo.vector import read_run_tables

    if len(given) > 1:
        raise click.UsageError("give one date claim at a time (e.g. --roofed-before DATE)")
    (key, date), = given.items()
    opt = "--" + key.replace("_", "-")
    try:
        dt.date.fromisoformat(date)
    except ValueError:
        raise click.BadParameter(f"{date!r} is not a date; use YYYY-MM-DD",
                                 param_hint=opt) from None
    event, relation = key.split("_")
    sites, _, _ = read_run_tables(run_dir)
    ids = [str(s) for s in sites["site_id"]]
    names = ({str(s): str(n) for s, n in zip(sites["site_id"], sites["name"], strict=True)
              if isinstance(n, str) and n} if "name" in sites.columns else {})
    subject = resolve_site(subject, ids, names)
    if f"{event}_date_hi" not in sites.columns:
        raise ClaimError(f"{run_dir}: sites have no {event}_date columns (no construction "
                         "timeline in this run); rerun `factorywatch run` with multispectral "
                         "imagery (red + nir) over several dates")
    row = sites.loc[sites["site_id"] == subject].iloc[0].to_dict()
    res = check_date_claim(event_from_record(row, event), relation,  # type: ignore[arg-type]
                           date)
    sentence = f"{subject} {res.sentence}"
    if as_json:
        _echo_json({**dataclasses.asdict(res), "subject_id": subject, "sentence": sentence,
                    "exit_code": CLAIM_EXIT_CODES[res.verdict]})
    else:
        click.echo(sentence)
    click.get_current_context().exit(CLAIM_EXIT_CODES[res.verdict])


def _aoi_name_from(path: Path) -> str:
    stem = re.sub(r"\d{4}-?\d{2}-?\d{2}", "", path.stem)
    stem = re.sub(r"[^A-Za-z0-9]+", "_", stem).strip("_").lower()
    return stem or "footprints"


@click.command("measure")
@click.argument("footprints", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "run_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Run directory [default: runs/<aoi name>].")
@click.option("--date-field", default=None,
              help="Attribute with each footprint's date [default: one file per date, date in "
                   "the file name].")
@click.option("--date", "dates", multiple=True,
              help="Date YYYY-MM-DD of each file, in order (repeat once per file) when neither "
                   "a date field nor dated file names exist.")
@click.option("--name-field", default=None,
              help="Attribute with building names, kept through sites, GPKG, CSV and report "
                   "and accepted by 'claim --subject' [default: name, Name, uid, ... if present].")
@click.option("--digitising-sd-m", type=FiniteFloat(min=0), default=1.0, show_default=True,
              help="1-sigma outline position error of the digitising, metres.")
@click.option("--aoi-name", default=None, help="Name used in ids [default: from the file name].")
@click.option("--epsg", type=ProjectedEpsg(), default=None,
              help="Projected EPSG code to measure in [default: local UTM zone].")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="AOI TOML whose [match] and [measure] settings to use.")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing run directory (only one factorywatch made).")
@common_options(json_help="Print the run summary as JSON on stdout.")
def measure_cmd(footprints: tuple[Path, ...], run_dir: Path | None, date_field: str | None,
                dates: tuple[str, ...], name_field: str | None, digitising_sd_m: float,
                aoi_name: str | None, epsg: int | None, config_path: Path | None,
                overwrite: bool, as_json: bool, verbose: int, quiet: int) -> None:
    """Track and measure analyst-digitised footprints (no imagery).

    Takes GeoJSON, GPKG or Shapefile footprints (OpenStreetMap, Overture or your own), in any
    CRS, with a date field or one file per date, and writes the same run directory as an
    imagery run: sites with areas ± and ratios with 95% intervals, events, GPKG, CSV.

    \b
    $ factorywatch measure plant_2022-10-01.geojson plant_2023-06-01.geojson -o runs/plant
    $ factorywatch measure buildings.gpkg --date-field date --digitising-sd-m 2 --json
    """
    from geo.config import RunConfig, load_config
    from geo.pipeline import run_vector
    from geo.rundir import safe_name
    from geo.vector import read_footprints

    config = load_config(config_path) if config_path is not None else RunConfig()
    name = aoi_name or (config.aoi.name if config_path is not None else "") or _aoi_name_from(
        footprints[0])
    config = dataclasses.replace(config, measure=dataclasses.replace(
        config.measure, digitising_sd_m=digitising_sd_m))
    gdf = read_footprints(list(footprints), aoi_name=name, date_field=date_field,
                          dates=list(dates) or None, digitising_sd_m=digitising_sd_m,
                          epsg=epsg if epsg is not None else config.aoi.measure_epsg,
                          name_field=name_field)
    out = run_dir or Path("runs") / safe_name(name)
    summary = run_vector(gdf, out, aoi_name=name, config=config, overwrite=overwrite,
                         source_paths=[str(p) for p in footprints])
    if as_json:
        _echo_json(summary.to_dict())
    else:
        click.echo(summary.run_dir)
    for w in summary.warnings:
        click.echo(f"Warning: {w}", err=True)


@click.command("plan")
@click.argument("aoi_config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--building-area-m2", required=True, type=FiniteFloat(min=0, min_open=True),
              help="Area of the building to be measured, m².")
@click.option("--aspect-ratio", type=FiniteFloat(min=1), default=2.0, show_default=True,
              help="Length / width of the building.")
@common_options(json_help="Print the table as JSON on stdout.")
def plan_cmd(aoi_config: Path, building_area_m2: float, aspect_ratio: float, as_json: bool,
             verbose: int, quiet: int) -> None:
    """Say, before reading any image, how sure a measurement can be at each resolution.

    For each imagery kind (VHR 0.5 m, PlanetScope 3 m, Sentinel-2 10 m, Landsat 30 m and the
    AOI's own grid): the expected 95% ± on the building's area and the smallest ratio
    difference a claim check can decide.

    \b
    $ factorywatch plan aoi/ryongsong_feb11_plant.toml --building-area-m2 6000
    """
    from geo.config import load_config
    from geo.plan import plan_feasibility

    config = load_config(aoi_config)
    grid_res = float(config.grid.resolution_m)
    src = config.source
    grid_label = (f"AOI grid ({src.kind}"
                  + (f": {', '.join(src.collections)}" if src.kind == "stac" else "") + ")")
    base = plan_feasibility(building_area_m2, resolutions_m=(0.5, 3.0, 10.0, 30.0, grid_res),
                            aspect_ratio=aspect_ratio, params=config.measure)
    for row in base:
        if row["res_m"] == grid_res:
            row["kind"] = f"{row['kind']}; {grid_label}" if row["kind"] != "user imagery" \
                else grid_label
            row["aoi_grid"] = True
        else:
            row["aoi_grid"] = False
    if as_json:
        _echo_json({"aoi": config.aoi.name, "building_area_m2": building_area_m2,
                    "aspect_ratio": aspect_ratio, "rows": base})
        return
    click.echo(f"{config.aoi.name}: a {building_area_m2:,.0f} m² building "
               f"(aspect {aspect_ratio:g}:1), expected 95% uncertainty before processing")
    click.echo(f"{'res_m':>6}  {'pixels':>8}  {'area ±95%':>10}  {'neighbour ratio ±':>18}  "
               f"{'growth ±':>9}  imagery")
    for r in base:
        flag = "" if r["detectable"] else "  [too few pixels]"
        mark = " *" if r["aoi_grid"] else ""
        nb, gr = r["neighbour_ratio_min_diff"], r["growth_ratio_min_diff"]
        nb_s = "—" if nb is None else f"{nb:.1%}"
        gr_s = "—" if gr is None else f"{gr:.1%}"
        click.echo(f"{r['res_m']:>6g}  {r['n_px']:>8,.0f}  {r['area_ci95_rel']:>10.1%}  "
                   f"{nb_s:>18}  {gr_s:>9}  {r['kind']}{mark}{flag}")
    click.echo("(* = this AOI's grid. A ratio claim is decidable only if the true ratio differs "
               "from the claimed factor by more than the ± shown.)")
