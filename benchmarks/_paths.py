"""Where the shared third-party data lives: ``$FACTORYWATCH_SHARED/data`` or ``../shared/data``."""

from __future__ import annotations

import os
from pathlib import Path


def shared_data() -> Path:
    """The ``data/`` folder of ``shared/`` beside the checkout (or ``$FACTORYWATCH_SHARED``)."""
    env = os.environ.get("FACTORYWATCH_SHARED")
    if env:
        return Path(env) / "data"
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    raise SystemExit("shared data not found: set FACTORYWATCH_SHARED to the folder holding data/")
