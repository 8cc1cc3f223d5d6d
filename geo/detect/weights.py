"""The packaged model weights of :mod:`geo.detect.learned` and :mod:`geo.detect.cnn` (I/O)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import resources
from typing import Any

import numpy as np

from geo.errors import ConfigError

__all__ = ["packaged_weights"]


@contextlib.contextmanager
def packaged_weights(name: str, rebuild: str) -> Iterator[Any]:
    """The packaged weights ``geo/detect/<name>`` opened with ``np.load`` (no pickles).

    A missing file is one :class:`ConfigError` line naming it and the script that rebuilds it.
    """
    ref = resources.files("geo.detect").joinpath(name)
    if not ref.is_file():
        raise ConfigError(f"geo/detect/{name} is missing; reinstall factorywatch or run "
                          f"{rebuild} to rebuild it")
    with ref.open("rb") as fh, np.load(fh, allow_pickle=False) as z:
        yield z
