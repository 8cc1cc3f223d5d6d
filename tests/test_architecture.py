"""Layers point one way: compute modules import neither click nor rasterio's file I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from common import parse_source

GEO = Path(__file__).resolve().parents[1] / "geo"
PURE = ["grid", "geoarray", "footprints", "synthetic", "detect", "coreg", "normalize", "match",
        "measure", "claims", "plan", "types", "errors", "tiles", "plausibility",
        "factory_scene", "fit", "guided", "refine", "synthetic_s2"]
PURE += ["timeline", "timeline_synth"]  # issue 16
PURE += ["changes"]  # issue 11
# attribute calls that touch the file system, whatever object they are called on
FILE_IO_ATTRS = {"read_text", "read_bytes", "write_text", "write_bytes", "open", "mkdir",
                 "unlink", "rmdir", "touch", "iterdir", "rglob", "rmtree", "copyfile", "is_file",
                 "is_dir", "read_file", "to_file", "read_csv", "to_csv", "savez", "savez_compressed"}
# module-level readers that take a path or a file handle
FILE_IO_CALLS = {"np.load", "np.save", "json.load", "json.dump", "tomllib.load", "pickle.load",
                 "pickle.dump", "os.remove", "os.listdir", "os.scandir", "shutil.rmtree"}


# files of a pure package that are I/O glue on purpose (each with the reason)
NOT_PURE = {
    "detect/tiled.py": "the pipeline's tiled detect stage reads scene windows from the run dir",
    "detect/weights.py": "opens the packaged weights for learned and cnn",
}


def _module_files(name: str) -> list[Path]:
    """The file of a compute module, or every file of a compute package (less NOT_PURE)."""
    pkg = GEO / name
    if pkg.is_dir():
        return sorted(p for p in pkg.rglob("*.py") if str(p.relative_to(GEO)) not in NOT_PURE)
    path = GEO / f"{name}.py"
    assert path.exists(), f"geo/{name} is listed as pure but does not exist: update PURE"
    return [path]


def _imports_and_calls(path: Path) -> tuple[set[str], set[str]]:
    tree = parse_source(path)
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
            if isinstance(f, ast.Attribute) and f.attr in FILE_IO_ATTRS:
                calls.add(f".{f.attr}")
            elif isinstance(f, ast.Name):
                calls.add(f.id)
    return mods, calls


@pytest.mark.parametrize("name", PURE)
def test_compute_modules_are_pure(name: str) -> None:
    for path in _module_files(name):
        _assert_pure(path)


def _assert_pure(path: Path, root: Path = GEO) -> None:
    name = str(path.relative_to(root))
    mods, calls = _imports_and_calls(path)
    io_calls = sorted(c for c in calls
                      if (c.startswith(".") and c[1:] in FILE_IO_ATTRS) or c in FILE_IO_CALLS)
    assert not io_calls, f"{name} touches files ({', '.join(io_calls)})"
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


def test_the_file_read_check_catches_a_path_read(tmp_path: Path) -> None:
    """The purity check itself: a module that reads a file through pathlib fails it."""
    bad = tmp_path / "bad.py"
    bad.write_text("from pathlib import Path\n\ndef f(p):\n    return Path(p).read_text()\n")
    with pytest.raises(AssertionError, match="touches files"):
        _assert_pure(bad, tmp_path)



MAX_FUNCTION_LINES = 80


def _long_functions(root: Path = GEO, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Every function in ``root`` longer than ``limit`` lines, ``def`` to last line included."""
    out = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(parse_source(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > limit:
                    out.append(f"geo/{path.relative_to(root)}:{node.lineno} {node.name} ({n} lines)")
    return out


def test_no_function_in_geo_is_over_80_lines() -> None:
    """Issue 11: long functions become named steps (docstring lines count too)."""
    long = _long_functions()
    assert not long, "split these into named steps:\n" + "\n".join(long)


def test_long_function_checker_finds_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "m.py").write_text(f"def short():\n    return 1\n\n\ndef long():\n{body}\n")
    assert [s.split()[1] for s in _long_functions(tmp_path)] == ["long"]


def _geo_imports(path: Path, *, top_level_only: bool) -> set[str]:
    """The ``geo.*`` names a file imports (``from geo.x import y`` gives ``geo.x.y``: a module
    when ``y`` is a submodule, else resolved to ``geo.x`` by :func:`_import_cycles`)."""
    tree = parse_source(path)
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("geo.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("geo"):
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_cycles(root: Path = GEO, *, top_level_only: bool = False) -> list[list[str]]:
    """Strongly connected groups of more than one module in ``root``'s import graph.

    Importing ``a.b`` also runs ``a/__init__``, so a module depends on its package's
    ``__init__`` too, except the package's own submodules (Python handles those). The root
    ``geo/__init__`` (the public façade, and ``__version__``) is left out.
    """
    mods = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps = set()
        for dep in _geo_imports(path, top_level_only=top_level_only):
            while dep not in mods and "." in dep:
                dep = dep.rsplit(".", 1)[0]
            parent = dep.rsplit(".", 1)[0]
            if parent in mods and parent != root.name and not name.startswith(parent + "."):
                deps.add(parent)
            if dep in mods and dep not in (name, root.name):
                deps.add(dep)
        graph[name] = deps
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_detect_package_has_no_import_cycle() -> None:
    """Issue 11: ``geo.detect`` and its method modules import each other one way only (the old
    ``detect`` <-> ``models`` cycle needed function-level imports and ``Any``)."""
    cycles = [c for c in _import_cycles() if any(m.startswith("geo.detect") for m in c)]
    assert not cycles, f"import cycles: {cycles}"


def test_cycle_checker_finds_a_cycle(tmp_path: Path) -> None:
    pkg = tmp_path / "geo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from geo.b import g\n")
    (pkg / "b.py").write_text("from geo.a import f\n")
    (pkg / "c.py").write_text("import geo.a\n")
    assert _import_cycles(pkg) == [["geo.a", "geo.b"]]
    assert _import_cycles(pkg, top_level_only=True) == []


# --- issue 11: typed records across stage boundaries, no import cycle -------------------------
STAGE_MODULES = ["stages", "pipeline", "runner", "guided_stage", "timeline_stage", "watch"]
# file edges: these build or read a JSON object (run.json, watch_state.json, index rows)
JSON_EDGES = {"pipeline._manifest", "runner.to_json", "watch._read_json", "watch._event_record",
              "watch._claim_outcomes", "watch._index_html", "watch.link", "watch._write_outputs",
              "watch._summarise", "timeline_stage.timeline_json"}


def _untyped_dict_signatures(path: Path, module: str) -> list[str]:
    """Functions of ``path`` whose argument or return annotations mention ``dict[str, Any]``."""
    out = []
    for node in ast.walk(parse_source(path)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        a = node.args
        anns = [x.annotation for x in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]
                if x is not None and x.annotation is not None]
        text = " ".join(ast.unparse(t) for t in [*anns, node.returns] if t is not None)
        if "dict[str, Any]" in text.replace("Dict", "dict") and \
                f"{module}.{node.name}" not in JSON_EDGES:
            out.append(f"geo/{path.name}:{node.lineno} {node.name}({text})")
    return out


def test_no_untyped_dict_crosses_a_stage_boundary() -> None:
    """Stage functions pass geo.records dataclasses; dict[str, Any] only at the JSON edges."""
    bad = [s for m in STAGE_MODULES for s in _untyped_dict_signatures(GEO / f"{m}.py", m)]
    assert not bad, "pass a geo.records dataclass instead:\n" + "\n".join(bad)


def test_untyped_dict_checker_finds_one(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("from typing import Any\n\n\ndef ok(x: int) -> int:\n"
                                   "    return x\n\n\ndef bad(meta: dict[str, Any]) -> None:\n"
                                   "    pass\n")
    assert [s.split()[1].split("(")[0] for s in _untyped_dict_signatures(tmp_path / "m.py", "m")
            ] == ["bad"]


def test_no_import_cycle() -> None:
    """No module of geo imports itself back, at module level or inside a function (a
    function-level import that closes a loop is a cycle postponed, not removed)."""
    cycles = _import_cycles()
    assert not cycles, f"import cycles: {cycles}"


def test_stage_modules_import_alone() -> None:
    """Each split module imports first in a fresh interpreter (no order-dependent cycle)."""
    import subprocess
    import sys

    # one interpreter; before each module every geo module is forgotten, so each is imported
    # first (third-party packages stay loaded: they cannot take part in a cycle of ours)
    code = """
import importlib, sys, traceback
for m in ["records", "runner", "stages", "pipeline", "changes", "watch"]:
    for k in [k for k in sys.modules if k == "geo" or k.startswith("geo.")]:
        del sys.modules[k]
    try:
        importlib.import_module("geo." + m)
    except Exception:
        print("geo." + m, traceback.format_exc()[-500:])
        sys.exit(1)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=GEO.parent, check=False)
    assert r.returncode == 0, r.stdout + r.stderr[-500:]
