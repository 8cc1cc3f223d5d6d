"""Errors and warnings: one root, builtin mixins where they mean something.

Messages name the input and the fix. No click import here: the CLI maps these
to exit codes.
"""

from __future__ import annotations

import textwrap

__all__ = [
    "AoiError",
    "BandError",
    "CacheMissError",
    "ConfigError",
    "CoregistrationError",
    "CrsMismatchError",
    "FactoryWatchError",
    "MissingBandError",
    "NetworkError",
    "NoImageryError",
    "OutputExistsError",
    "SourceError",
    "one_line",
]


def one_line(text: object, width: int = 300) -> str:
    """A message (GDAL's, urllib's) on one line, at most ``width`` characters, never cut mid-word.

    A longer message is cut at the last space before the limit and ends with "…".

    Examples
    --------
    >>> one_line("HTTP error 503:\\n  Service   Unavailable")
    'HTTP error 503: Service Unavailable'
    >>> one_line("averyveryverylongword and more words here", width=30)
    'averyveryverylongword and …'
    """
    flat = " ".join(str(text).split())
    if len(flat) <= width:
        return flat
    return textwrap.shorten(flat, width=width, placeholder=" …") or flat[:width]


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


class BandError(FactoryWatchError, ValueError):
    """The imagery lacks the bands a method needs, or two dates have different bands."""


class MissingBandError(BandError, KeyError):
    """A band role asked for is not in the image (a ``KeyError`` too, for lookups)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return Exception.__str__(self)


class CoregistrationError(FactoryWatchError):
    """The shift between dates could not be estimated or is above the limit."""


class OutputExistsError(FactoryWatchError, FileExistsError):
    """The output exists and ``--overwrite`` was not given."""


# --- run directory safety (geo/rundir.py, geo/_atomic.py) -----------------------------------
__all__ += ["DiskFullError", "RunDirError", "RunDirInUseError"]


class RunDirError(FactoryWatchError, PermissionError):
    """factorywatch refuses to write or replace a folder it did not create."""


class RunDirInUseError(RunDirError):
    """Another factorywatch process holds the run directory's lock."""


class DiskFullError(FactoryWatchError, OSError):
    """No space left (or the file-size limit reached) while writing an output."""
