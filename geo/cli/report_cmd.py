"""``factorywatch report RUN_DIR``: rebuild the HTML report of an existing run."""

from __future__ import annotations

import json
from pathlib import Path

import click

from geo.cli._common import common_options, progress_factory

__all__ = ["report_cmd"]


@click.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@common_options(json_help="Print a JSON object (report path, figures) instead of the path.")
def report_cmd(run_dir: Path, as_json: bool, verbose: int, quiet: int) -> None:
    """Rebuild RUN_DIR/report/index.html and its PNG figures from the run's files.

    Works offline and only reads RUN_DIR (run.json, grid.json, the GeoJSON layers, scenes/,
    masks/, change/). The old report is replaced only once the new one is complete.
    Prints the path of index.html on stdout.

    \b
    $ factorywatch report runs/feb11
    $ chromium runs/feb11/report/index.html
    """
    from geo.export.report import write_report  # lazy: keeps --help fast
    from geo.rundir import RunDir

    index = write_report(run_dir, progress=progress_factory(quiet))
    if as_json:
        figures = sorted(p.name for p in RunDir(run_dir).report_dir.glob("*.png"))
        click.echo(json.dumps({"report": str(index), "figures": figures}, sort_keys=True))
    else:
        click.echo(str(index))
