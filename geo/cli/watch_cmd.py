"""``factorywatch watch``: bring a watchlist of AOIs up to date, print what changed."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import click

from geo.cli._common import common_options

__all__ = ["watch_cmd"]


def _bar(quiet: int) -> Callable[[int, int, str], None] | None:
    """A one-line progress bar on stderr: tasks done / total and the AOI and stage just done."""
    if quiet:
        return None
    tty = sys.stderr.isatty()

    def report(done: int, total: int, label: str) -> None:
        width = 24
        fill = int(width * done / max(total, 1))
        line = f"[{'#' * fill}{'.' * (width - fill)}] {done}/{total} {label}"
        if tty:
            click.echo(f"\r{line[:110]:<110}", err=True, nl=done == total)
        else:
            click.echo(line, err=True)

    return report


@click.command("watch")
@click.argument("watchlist", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "watch_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("watch"), show_default=True,
              help="Watch folder: per-AOI stores and runs, and the summary of changes.")
@click.option("--scheduler", envvar="DASK_SCHEDULER_ADDRESS", default=None,
              help="Existing Dask scheduler (tcp://HOST:PORT) [env DASK_SCHEDULER_ADDRESS]; "
                   "its workers must see the watch folder and imagery at the same paths.")
@click.option("--workers", type=click.IntRange(0, 64), default=2, show_default=True,
              help="Without --scheduler: processes of the local Dask cluster (0: no Dask, "
                   "everything in this process).")
@click.option("--retries", type=click.IntRange(0, 20), default=2, show_default=True,
              help="Times a failed task is retried.")
@click.option("--offline", is_flag=True, help="Remote imagery from the cache only.")
@common_options()
def watch_cmd(watchlist: Path, watch_dir: Path, scheduler: str | None, workers: int,
              retries: int, offline: bool, verbose: int, quiet: int) -> None:
    """Process new imagery for every AOI of WATCHLIST and report what changed since last time.

    Prints one JSON object per event on stdout (buildings new, grown, shrunk, demolished,
    merged or split on a newly watched date; claims whose verdict changed). Exit codes:
    0 nothing changed, 10 something changed, 1 an AOI or the run failed, 2 usage error.

    \b
    $ factorywatch watch watchlist.toml -o watch/
    $ factorywatch watch watchlist.toml -o /shared/watch --scheduler tcp://10.0.0.5:8786
    """
    from geo.watch import EXIT_CHANGED, load_watchlist, watch

    wl = load_watchlist(watchlist)
    result = watch(wl, watch_dir, scheduler=scheduler, workers=workers, retries=retries,
                   offline=offline, reporter=_bar(quiet))
    for ev in result.events:
        click.echo(json.dumps(ev, sort_keys=True, default=str))
    for row in result.aois:
        new = ", ".join(row["new_dates"]) or "no new dates"
        click.echo(f"{row['aoi']}: {row['status']} ({new}; {row['n_events']} event(s))",
                   err=True)
    click.echo(f"Summary: {result.outputs['index']}", err=True)
    for err in result.errors:
        click.echo(f"Error: {err}", err=True)
    if result.errors:
        sys.exit(1)
    sys.exit(EXIT_CHANGED if result.changed else 0)
