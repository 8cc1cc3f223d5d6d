"""Errors and warnings: one root, builtin mixins where they mean something.

Messages name the input and the fix. No click import here: the CLI maps these
to exit codes.
"""

from __future__ import annotations

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


def one_line(text: object, limit: int = 300) -> str:
    """``text`` on one line, at most ``limit`` characters, never cut inside a word.

    A longer message is cut at the last space before the limit and ends with "…".

    Examples
    --------
    >>> one_line("a  long\nmessage here", 12)
    'a long …'
    >>> one_line("short")
    'short'
    """
    flat = " ".join(str(text).split())
    if len(flat) <= limit:
        return flat
    cut = flat[: max(1, limit - 1)]
    head = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return head.rstrip(" ,;:") + " …"


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
