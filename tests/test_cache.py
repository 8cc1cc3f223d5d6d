"""The window cache: keys, atomic writes, damaged entries, search TTL."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from geo.grid import Grid
from geo.sources.cache import WindowCache, atomic_write, default_cache_dir, grid_hash, query_hash

G = Grid("EPSG:32652", Affine(10, 0, 384970, 0, -10, 4420020), (60, 62))


def test_grid_hash_is_stable_and_discriminating() -> None:
    assert grid_hash(G) == grid_hash(Grid("EPSG:32652", G.transform, (60, 62)))
    others = [
        Grid("EPSG:32651", G.transform, G.shape),
        Grid(G.crs, Affine(10, 0, 384980, 0, -10, 4420020), G.shape),
        Grid(G.crs, Affine(20, 0, 384970, 0, -20, 4420020), G.shape),
        Grid(G.crs, G.transform, (61, 62)),
    ]
    hashes = {grid_hash(G), *(grid_hash(o) for o in others), grid_hash(G, extra="nearest")}
    assert len(hashes) == 6
    assert query_hash({"a": 1, "b": [1, 2]}) == query_hash({"b": [1, 2], "a": 1})


def test_window_roundtrip(tmp_path: Path) -> None:
    c = WindowCache(tmp_path)
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    valid = data > 3
    assert c.get_window("s2", "item/1", "B04", "abc") is None
    p = c.put_window("s2", "item/1", "B04", "abc", data, valid, source="https://a/B04.tif")
    assert p.is_file() and p.is_relative_to(tmp_path / "windows")
    got = c.get_window("s2", "item/1", "B04", "abc")
    assert got is not None
    np.testing.assert_array_equal(got[0], data)
    np.testing.assert_array_equal(got[1], valid)
    assert (c.stats.hits, c.stats.misses, c.stats.writes) == (1, 1, 1)
    assert not list(p.parent.glob("*.part"))


def test_interrupted_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = WindowCache(tmp_path)
    c.put_window("s2", "i", "B04", "g", np.ones((2, 2), np.float32), np.ones((2, 2), bool))
    before = c.window_path("s2", "i", "B04", "g").read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(KeyboardInterrupt):
        c.put_window("s2", "i", "B04", "g", np.zeros((2, 2), np.float32), np.zeros((2, 2), bool))
    with pytest.raises(KeyboardInterrupt):
        c.put_window("s2", "i", "B08", "g", np.zeros((2, 2), np.float32), np.zeros((2, 2), bool))
    monkeypatch.undo()
    folder = c.window_path("s2", "i", "B04", "g").parent
    assert sorted(p.name for p in folder.iterdir()) == [c.window_path("s2", "i", "B04", "g").name]
    assert c.window_path("s2", "i", "B04", "g").read_bytes() == before  # old entry untouched


def test_atomic_write_failure_keeps_old_file(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(p, "w") as f:
        f.write("new, half")
        raise RuntimeError("disk full")
    assert p.read_text() == "old"
    assert [q.name for q in tmp_path.iterdir()] == ["x.json"]


def test_damaged_entry_is_a_miss_and_removed(tmp_path: Path) -> None:
    c = WindowCache(tmp_path)
    p = c.put_window("s2", "i", "B04", "g", np.ones((8, 8), np.float32), np.ones((8, 8), bool))
    p.write_bytes(p.read_bytes()[:40])  # truncated on disk after the fact
    assert c.get_window("s2", "i", "B04", "g") is None
    assert not p.exists()


def test_search_cache_and_ttl(tmp_path: Path) -> None:
    c = WindowCache(tmp_path)
    items = [{"id": "a", "assets": {"red": {"href": "https://x/B04.tif"}}}]
    c.put_search("q1", {"api": "x"}, items)
    assert c.get_search("q1") == items
    assert c.get_search("q1", max_age_s=3600) == items
    old = time.time() - 7200
    p = c.search_path("q1")
    p.write_text(p.read_text().replace('"written": ', f'"written": {old}, "was": '))
    assert c.get_search("q1", max_age_s=3600) is None
    assert c.get_search("q1") == items  # offline: any age
    p.write_text("{not json")
    assert c.get_search("q1") is None


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACTORYWATCH_CACHE", str(tmp_path / "fw"))
    assert default_cache_dir() == tmp_path / "fw"
    monkeypatch.delenv("FACTORYWATCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "factorywatch"
    assert os.fspath(default_cache_dir()).endswith("factorywatch")
