"""factorywatch: measure industrial buildings across dates, with error bars.

The import package is ``geo``; the distribution and the CLI are ``factorywatch``.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
