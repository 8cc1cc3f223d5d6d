"""factorywatch: measure industrial buildings across dates, with error bars.

The import package is ``geo``; the distribution and the CLI are ``factorywatch``. The public
API is four functions and one result type, imported lazily so that ``import geo`` stays fast:

- :func:`geo.run` runs one AOI config end to end (``factorywatch run``);
- :func:`geo.measure` tracks and measures analyst-digitised footprints (``factorywatch measure``);
- :func:`geo.check` checks a size claim against a run (``factorywatch claim``);
- :func:`geo.open_run` reads a run directory back as a :class:`geo.Run`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Run", "__version__", "check", "measure", "open_run", "run"]

if TYPE_CHECKING:
    from geo.api import Run, check, measure, open_run, run


def __getattr__(name: str) -> Any:
    if name in {"Run", "check", "measure", "open_run", "run"}:
        from geo import api

        return getattr(api, name)
    raise AttributeError(f"module 'geo' has no attribute {name!r}")
