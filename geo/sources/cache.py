"""On-disk cache of remote windows and search results, written atomically.

Layout under the cache root (default ``~/.cache/factorywatch``)::

    windows/<collection>/<item id>/<asset>-<grid hash>.npz   # data (float32) + valid (bool)
    search/<query hash>.json                                  # unsigned STAC items of a search

Keys are ``(item id, asset, grid hash)``: the same window of the same asset on the same AOI grid
is read over the network once. Every file is written to a temporary name in the same folder and
moved into place with :func:`os.replace`, so a download that is interrupted (network error,
Ctrl-C, a killed process) never leaves a partial entry behind. An entry that fails to load
anyway (disk damage) is treated as a miss and removed.

Nothing secret is stored: hrefs are kept without their query strings, and STAC items are stored
unsigned (Planetary Computer URLs are signed just before each read).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from geo._atomic import atomic_open as _atomic_open
from geo.grid import Grid

__all__ = [
    "CacheStats",
    "WindowCache",
    "atomic_write",
    "default_cache_dir",
    "grid_hash",
    "query_hash",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Bumped when the entry format changes; part of every key."""


def default_cache_dir() -> Path:
    """``$FACTORYWATCH_CACHE``, else ``$XDG_CACHE_HOME/factorywatch``, else ``~/.cache/...``."""
    env = os.environ.get("FACTORYWATCH_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "factorywatch"


def grid_hash(grid: Grid, *, extra: str = "") -> str:
    """Hash a grid (CRS, transform, shape) and an optional suffix.

    Examples
    --------
    >>> from affine import Affine
    >>> g = Grid("EPSG:32652", Affine(10, 0, 500000, 0, -10, 4400000), (32, 32))
    >>> grid_hash(g) == grid_hash(Grid("EPSG:32652", g.transform, (32, 32)))
    True
    >>> grid_hash(g) != grid_hash(g, extra="nearest")
    True
    """
    t = grid.transform
    doc = json.dumps({"v": FORMAT_VERSION, "crs": grid.crs,
                      "t": [round(v, 6) for v in (t.a, t.b, t.c, t.d, t.e, t.f)],
                      "shape": list(grid.shape), "extra": extra}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def query_hash(query: dict[str, Any]) -> str:
    """Hash a JSON-ready search description (stable across runs)."""
    doc = json.dumps({"v": FORMAT_VERSION, **query}, sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:20]


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(name: str) -> str:
    s = _SAFE.sub("_", name).strip("._") or "_"
    if len(s) > 120:
        s = s[:100] + "-" + hashlib.sha256(name.encode()).hexdigest()[:12]
    return s


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on success fsync it and ``os.replace`` it.

    On any exception (including KeyboardInterrupt) the temporary file is removed and ``path``
    is left untouched.
    """
    with _atomic_open(path, mode, fsync=True) as f:
        yield f


@dataclass
class CacheStats:
    """Hits and misses since the cache object was made (for logs and tests)."""

    hits: int = 0
    misses: int = 0
    writes: int = 0


class WindowCache:
    """Windows of remote assets on an AOI grid, and STAC search results, on disk.

    Parameters
    ----------
    root : str or Path
        Cache folder; created on first write.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        self.stats = CacheStats()

    # --- windows --------------------------------------------------------------------------
    def window_path(self, collection: str, item_id: str, asset: str, ghash: str) -> Path:
        """Where the window of ``asset`` of ``item_id`` on the grid ``ghash`` is stored."""
        return (self.root / "windows" / _safe(collection or "_") / _safe(item_id)
                / f"{_safe(asset)}-{ghash}.npz")

    def get_window(
        self, collection: str, item_id: str, asset: str, ghash: str
    ) -> tuple[NDArray[np.float32], NDArray[np.bool_]] | None:
        """Return ``(data, valid)`` or None on a miss (a damaged entry is removed)."""
        p = self.window_path(collection, item_id, asset, ghash)
        if not p.is_file():
            self.stats.misses += 1
            return None
        try:
            with open(p, "rb") as fh, np.load(fh, allow_pickle=False) as z:
                data = np.asarray(z["data"], dtype=np.float32)
                valid = np.asarray(z["valid"], dtype=bool)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            log.warning("cache entry %s is unreadable (%s); it will be fetched again", p, err)
            with contextlib.suppress(OSError):
                p.unlink()
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return data, valid

    def has_window(self, collection: str, item_id: str, asset: str, ghash: str) -> bool:
        """Return True if the entry exists (not checked for damage)."""
        return self.window_path(collection, item_id, asset, ghash).is_file()

    def put_window(
        self, collection: str, item_id: str, asset: str, ghash: str,
        data: NDArray[np.float32], valid: NDArray[np.bool_], *, source: str = "",
    ) -> Path:
        """Store a window atomically; ``source`` (an unsigned href) is kept for provenance."""
        p = self.window_path(collection, item_id, asset, ghash)
        with atomic_write(p) as f:
            np.savez_compressed(f, data=np.asarray(data, dtype=np.float32),
                                valid=np.asarray(valid, dtype=bool),
                                source=np.array(source), written=np.array(time.time()))
        self.stats.writes += 1
        return p

    # --- search results -------------------------------------------------------------------
    def search_path(self, qhash: str) -> Path:
        """Where the items of the search ``qhash`` are stored."""
        return self.root / "search" / f"{qhash}.json"

    def get_search(
        self, qhash: str, *, max_age_s: float | None = None
    ) -> list[dict[str, Any]] | None:
        """Return the stored items, or None if missing, unreadable or older than ``max_age_s``."""
        p = self.search_path(qhash)
        if not p.is_file():
            self.stats.misses += 1
            return None
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
            items = doc["items"]
            written = float(doc.get("written", 0.0))
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("cached search %s is unreadable (%s); searching again", p, err)
            self.stats.misses += 1
            return None
        if max_age_s is not None and time.time() - written > max_age_s:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return list(items)

    def put_search(self, qhash: str, query: dict[str, Any], items: list[dict[str, Any]]) -> Path:
        """Store the (unsigned) items of a search atomically."""
        p = self.search_path(qhash)
        doc = {"query": query, "written": time.time(), "items": items}
        with atomic_write(p, "w") as f:
            json.dump(doc, f)
        self.stats.writes += 1
        return p
