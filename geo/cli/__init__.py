"""The ``factorywatch`` command line: click parsing, logging and exit codes only.

Commands live in their own modules and are imported lazily, so that
``factorywatch --help`` stays fast.

Exit codes: 0 success; 1 runtime failure (any :class:`geo.errors.FactoryWatchError`,
one line on stderr, traceback only with ``-v``); 2 usage error. ``claim`` and
``validate`` document their own codes; ``watch`` exits 10 when something changed.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from geo import __version__

__all__ = ["main"]

_COMMANDS: dict[str, str] = {
    "run": "geo.cli.run_cmd",
    "demo": "geo.cli.run_cmd",
    "validate": "geo.cli.run_cmd",
    "scenes": "geo.cli.scenes_cmd",
    "claim": "geo.cli.measure_cmd",
    "measure": "geo.cli.measure_cmd",
    "plan": "geo.cli.measure_cmd",
    "benchmark": "geo.cli.benchmark_cmd",
    "report": "geo.cli.report_cmd",
    "watch": "geo.cli.watch_cmd",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in _COMMANDS if self.get_command(ctx, n) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        mod_name = _COMMANDS.get(cmd_name)
        if mod_name is None:
            return None
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as err:
            if err.name == mod_name:
                return None
            raise
        cmd = getattr(mod, cmd_name.replace("-", "_") + "_cmd", None)
        return cmd if isinstance(cmd, click.Command) else None


def _show_versions(ctx: click.Context, _param: Any, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from geo.provenance import versions

    for k, v in versions().items():
        click.echo(f"{k}: {v}")
    ctx.exit(0)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="factorywatch")
@click.option("--show-versions", is_flag=True, expose_value=False, is_eager=True,
              callback=_show_versions, help="Print library versions (GDAL, PROJ, ...) and exit.")
def main() -> None:
    """Measure industrial buildings across dates in satellite imagery, with error bars.

    \b
    $ factorywatch demo /tmp/fw-demo
    $ factorywatch run aoi/ryongsong_feb11_plant.toml -o runs/feb11
    $ factorywatch claim runs/feb11 --subject S2 --reference neighbour --relation '>' --factor 2
    """
