"""Shared CLI plumbing: verbosity, logging to stderr, error → exit-code mapping."""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import click

from geo.errors import FactoryWatchError, one_line

__all__ = [
    "FiniteFloat",
    "ProjectedEpsg",
    "common_options",
    "configure_logging",
    "echo_json",
    "echo_summary",
    "handles_errors",
    "json_option",
    "progress_factory",
    "verbosity_options",
]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class FiniteFloat(click.FloatRange):
    """A ``FloatRange`` that also refuses ``nan`` and ``inf`` (usage error, exit 2)."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        rv = click.FloatRange.convert(self, value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


class ProjectedEpsg(click.types.IntParamType):
    """An EPSG code of a projected CRS in metres (usage error, exit 2, otherwise)."""

    name = "epsg"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        code = click.types.IntParamType.convert(self, value, param, ctx)
        try:
            crs = CRS.from_epsg(code)
        except CRSError:
            self.fail(f"{value!r} is not a known EPSG code; pass a projected one such as a "
                      "UTM zone (326xx north, 327xx south).", param, ctx)
        if not crs.is_projected or crs.axis_info[0].unit_name not in ("metre", "meter"):
            self.fail(f"EPSG:{code} is not a projected CRS in metres; pass a UTM zone.",
                      param, ctx)
        return code


_BARS: list[Any] = []
"""The click progress bars being drawn on stderr (innermost last)."""


class _ProgressSafeHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes log records on their own line above an active progress bar, then redraws it.

    ``click.progressbar`` has no writer of its own; this handler clears the bar's line
    (``\\r`` + erase-line), writes the record and lets the bar render itself again.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        bar = _BARS[-1] if _BARS else None
        live = bar is not None and sys.stderr.isatty()
        try:
            if live:
                sys.stderr.write("\r\x1b[K")
            super().emit(record)
            if live and bar is not None:
                bar.render_progress()
        except Exception:  # logging must never raise
            self.handleError(record)


def configure_logging(verbose: int, quiet: int) -> None:
    """Map ``-v``/``-q`` counts to log levels on stderr (rasterio's rule).

    Default: INFO from factorywatch, warnings from libraries. ``-v``: DEBUG from factorywatch
    with timestamps; ``-vv``: libraries' INFO/DEBUG too; ``-vvv``: GDAL's CPL_DEBUG. ``-q``:
    warnings and errors only; ``-qq``: errors only. Records go through the progress bars'
    writer (:class:`_ProgressSafeHandler`), so a log line never cuts a bar in two.
    """
    level = logging.DEBUG if verbose > 0 else {0: logging.INFO, 1: logging.WARNING}.get(
        quiet, logging.ERROR)
    if verbose and quiet:
        level = logging.INFO
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_factorywatch", False):
            root.removeHandler(h)
    handler = _ProgressSafeHandler()
    fmt = ("%(asctime)s %(levelname)s %(name)s: %(message)s" if verbose
           else "%(levelname)s %(name)s: %(message)s")
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    handler._factorywatch = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("geo").setLevel(level)
    # third-party INFO chatter ("Created 17 records") is noise at the default level
    for name in ("pyogrio", "rasterio", "distributed", "fiona", "matplotlib", "PIL"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)
    # urllib3 logs each retry as a WARNING; our own message after the retries says what failed
    logging.getLogger("urllib3").setLevel(logging.DEBUG if verbose > 1 else logging.ERROR)
    if verbose > 2:
        os.environ["CPL_DEBUG"] = "ON"


def verbosity_options(f: F) -> F:
    """Add ``-v/--verbose`` and ``-q/--quiet`` (counted)."""
    f = click.option("-q", "--quiet", count=True, help="Less output (repeatable).")(f)
    f = click.option("-v", "--verbose", count=True,
                     help="More output; -v shows tracebacks, -vvv GDAL debug.")(f)
    return f


def handles_errors(f: F) -> F:
    """Turn :class:`FactoryWatchError` into a one-line message and exit code 1."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        verbose = int(kwargs.get("verbose") or 0)
        try:
            return f(*args, **kwargs)
        except FactoryWatchError as err:
            if verbose:
                traceback.print_exc(file=sys.stderr)
            msg = " ".join(str(err).split())
            click.echo(f"Error: {msg}", err=True)
            raise SystemExit(1) from None
        except KeyboardInterrupt:
            click.echo("Interrupted; run the same command again to resume.", err=True)
            raise SystemExit(130) from None
        except (click.ClickException, click.exceptions.Exit, SystemExit):
            raise
        except Exception as err:
            if verbose:
                traceback.print_exc(file=sys.stderr)
                raise SystemExit(1) from None
            line = one_line(err, 300)
            click.echo(
                f"Error: unexpected {type(err).__name__}: {line} (run again with -v for the "
                "traceback and report it)",
                err=True,
            )
            raise SystemExit(1) from None

    return wrapper  # type: ignore[return-value]


def json_option(help: str) -> Callable[[F], F]:
    """Add the ``--json`` flag (passed to the command as ``as_json``)."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def common_options(json_help: str | None = None) -> Callable[[F], F]:
    """The options and plumbing every command shares, defined once.

    Adds ``--json`` (when ``json_help`` is given), ``-v/--verbose`` and ``-q/--quiet``; sets up
    logging from them (:func:`configure_logging`) before the command runs, and maps errors to
    one line and an exit code (:func:`handles_errors`). Use it right below ``@click.command``'s
    own options, as the last decorator.
    """

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def logged(*args: Any, **kwargs: Any) -> Any:
            configure_logging(int(kwargs.get("verbose") or 0), int(kwargs.get("quiet") or 0))
            return f(*args, **kwargs)

        cmd: F = verbosity_options(handles_errors(logged))  # type: ignore[assignment]
        return json_option(json_help)(cmd) if json_help is not None else cmd

    return decorate


def progress_factory(quiet: int) -> Callable[[Iterable[T], str], Iterator[T]] | None:
    """A progress bar on stderr (ETA on a terminal) that log lines do not break; None if -q."""
    if quiet:
        return None

    def wrap(items: Iterable[T], label: str) -> Iterator[T]:
        seq = list(items)
        tty = sys.stderr.isatty()
        with click.progressbar(seq, label=label, file=sys.stderr, show_pos=True,
                               show_eta=tty) as bar:
            _BARS.append(bar)
            try:
                yield from bar
            finally:
                _BARS.remove(bar)

    return wrap


def echo_json(obj: Any) -> None:
    """Print ``obj`` as indented, key-sorted JSON on stdout (the ``--json`` output)."""
    click.echo(json.dumps(obj, sort_keys=True, indent=2, default=str))


def echo_summary(summary: Any, as_json: bool) -> None:
    """Print a run's summary (JSON, or the run folder), then its warnings on stderr."""
    if as_json:
        echo_json(summary.to_dict())
    else:
        click.echo(summary.run_dir)
    for w in summary.warnings:
        click.echo(f"Warning: {w}", err=True)
