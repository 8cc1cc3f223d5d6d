"""``factorywatch scenes``: list the candidate scenes for an AOI as JSON lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from geo.cli._common import common_options

__all__ = ["scenes_cmd"]

_FIRST = ("id", "date", "aoi_cloud_frac", "valid_frac", "selected", "reject_reason", "platform")


def _record(scene: Any) -> dict[str, Any]:
    from geo.http import redact

    props = {k: v for k, v in scene.properties.items() if k != "asset_keys"}
    rec: dict[str, Any] = {"id": scene.id, "date": scene.date, "datetime": scene.datetime}
    rec.update(props)
    for k in ("aoi_cloud_frac", "valid_frac", "selected", "reject_reason", "platform"):
        rec.setdefault(k, None)
    ordered = {k: rec[k] for k in _FIRST} | {k: rec[k] for k in sorted(rec) if k not in _FIRST}
    clean: dict[str, Any] = json.loads(redact(json.dumps(ordered, default=str)))
    return clean


@click.command("scenes")
@click.argument("aoi_config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--offline", is_flag=True, help="Use the cache only (no network).")
@click.option("--start", default=None, help="First date YYYY-MM-DD [default: from the config].")
@click.option("--end", default=None, help="Last date YYYY-MM-DD [default: from the config].")
@click.option("--selected", "selected_only", is_flag=True,
              help="Only the scenes that `run` would use (best per period).")
@common_options()
def scenes_cmd(aoi_config: Path, offline: bool, start: str | None, end: str | None,
               selected_only: bool, verbose: int, quiet: int) -> None:
    """List the candidate scenes for an AOI as JSON lines, with their AOI cloud fraction.

    One object per scene on stdout: id, date, aoi_cloud_frac, valid_frac, selected,
    reject_reason, platform, relative_orbit, processing_baseline, view angles, ...

    \b
    $ factorywatch scenes aoi/ryongsong_feb11_plant.toml
    $ factorywatch scenes aoi/ryongsong_feb11_plant.toml --selected --offline
    """
    from geo.aoi import read_aoi
    from geo.config import load_config
    from geo.sources import open_source

    config = load_config(aoi_config)
    aoi = read_aoi(config.aoi.geometry, name=config.aoi.name)
    source = open_source(config, offline=offline)
    a, b = start or config.source.start or None, end or config.source.end or None
    candidates = getattr(source, "candidates", None)
    if selected_only or candidates is None:
        scenes = source.search(aoi, a, b)
    else:
        scenes = candidates(aoi, a, b)
    for s in scenes:
        click.echo(json.dumps(_record(s), default=str))
