"""Errors and warnings: one root, builtin mixins where they mean something.

Messages name the input and the fix. No click import here: the CLI maps these
to exit codes.
"""

from __future__ import annotations

import textwrap

__all__ = [
    "AoiError",
    "CacheMissError",
    "ConfigError",
    "CoregistrationError",
    "CrsMismatchError",
    "EmptyMaskWarning",
    "FactoryWatchError",
    "LargeShiftWarning",
    "LowValidDataWarning",
    "NetworkError",
    "NoImageryError",
    "OutputExistsError",
    "SourceError",
    "one_line",
]


def one_line(text: object, width: int = 240) -> str:
    """A message (GDAL's, urllib's) on one line, shortened between words, never mid-word.

    Examples
    --------
    >>> one_line("HTTP error 503:\\n  Service   Unavailable")
    'HTTP error 503: Service Unavailable'
    >>> one_line("averyveryverylongword and more words here", width=30)
    'averyveryverylongword ...'
    """
    flat = " ".join(str(text).split())
    if len(flat) <= width:
        return flat
    return textwrap.shorten(flat, width=width, placeholder=" ...") or flat[:width]


class FactoryWatchError(Exception):
    """Root of every error that factorywatch raises on purpose."""


class ConfigError(FactoryWatchError, ValueError):
    """A config file or a config value is wrong."""


class AoiError(FactoryWatchError, ValueError):
    """The AOI geometry is missing, empty, invalid or too large."""


class SourceError(FactoryWatchError, OSError):
    """Imagery cannot be listed or opened."""


class NoImageryError(SourceError):
    """Nothing intersects the AOI or the date range."""


class NetworkError(SourceError):
    """A remote service could not be reached after retries."""


class CacheMissError(SourceError):
    """``--offline`` was asked for but the cache lacks some windows."""


class CrsMismatchError(FactoryWatchError, ValueError):
    """Two inputs that must share a CRS do not."""


class CoregistrationError(FactoryWatchError):
    """The shift between dates could not be estimated or is above the limit."""


class OutputExistsError(FactoryWatchError, FileExistsError):
    """The output exists and ``--overwrite`` was not given."""


class LowValidDataWarning(UserWarning):
    """Too little valid (cloud-free, inside-footprint) data in a scene."""


class EmptyMaskWarning(UserWarning):
    """A detection produced no building pixels."""


class LargeShiftWarning(UserWarning):
    """A co-registration residual is above the configured limit."""


# --- run directory safety (geo/rundir.py, geo/_atomic.py) -----------------------------------
__all__ += ["DiskFullError", "RunDirError", "RunDirInUseError"]


class RunDirError(FactoryWatchError, PermissionError):
    """factorywatch refuses to write or replace a folder it did not create."""


class RunDirInUseError(RunDirError):
    """Another factorywatch process holds the run directory's lock."""


class DiskFullError(FactoryWatchError, OSError):
    """No space left (or the file-size limit reached) while writing an output."""
