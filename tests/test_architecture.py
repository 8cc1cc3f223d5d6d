"""Layers point one way: compute modules import neither click nor rasterio's file I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GEO = Path(__file__).resolve().parents[1] / "geo"
PURE = ["grid", "geoarray", "footprints", "synthetic", "detect", "coreg", "normalize", "match",
        "measure", "claims", "plan", "types", "errors", "config",
        "fit", "guided", "refine", "synthetic_s2"]


def _imports_and_calls(path: Path) -> tuple[set[str], set[str]]:
    tree = ast.parse(path.read_text())
    mods: set[str] = set()
    calls: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module)
            mods |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                calls.add(f"{f.value.id}.{f.attr}")
            elif isinstance(f, ast.Name):
                calls.add(f.id)
    return mods, calls


@pytest.mark.parametrize("name", PURE)
def test_compute_modules_are_pure(name: str) -> None:
    path = GEO / f"{name}.py"
    if not path.exists():
        pytest.skip(f"geo/{name}.py not present")
    mods, calls = _imports_and_calls(path)
    assert not any(m == "click" or m.startswith("click.") for m in mods), f"{name} imports click"
    assert "rasterio.open" not in calls and "rasterio.open" not in mods, f"{name} opens files"
    assert not any(m.startswith(("geo.reading", "geo.sources", "geo.pipeline", "geo.export", "geo.cli"))
                   for m in mods), f"{name} imports an I/O layer"
    assert "open" not in calls and "print" not in calls, f"{name} does I/O or prints"


def test_only_cli_imports_click() -> None:
    for path in GEO.rglob("*.py"):
        if "cli" in path.relative_to(GEO).parts:
            continue
        mods, _ = _imports_and_calls(path)
        assert "click" not in mods, f"{path} imports click"


def test_library_never_prints() -> None:
    for path in GEO.rglob("*.py"):
        if "cli" in path.relative_to(GEO).parts:
            continue
        _, calls = _imports_and_calls(path)
        assert "print" not in calls, f"{path} calls print()"
