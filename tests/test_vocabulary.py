"""One vocabulary (issue 11 item 4): each list of names is written once, in geo/types.py."""

from __future__ import annotations

import ast
from pathlib import Path

import click
import pytest
from common import parse_source

from geo import types
from geo.cli import main
from geo.footprints import FOOTPRINT_COLUMNS

GEO = Path(__file__).resolve().parents[1] / "geo"
VOCABULARIES = {name: getattr(types, name) for name in types.__all__
                if name.isupper() and isinstance(getattr(types, name), tuple)}


def _string_sequences(path: Path) -> list[tuple[int, tuple[str, ...]]]:
    """Every tuple/list/set literal of two or more strings in a module, with its line."""
    out = []
    for node in ast.walk(parse_source(path)):
        if isinstance(node, ast.Tuple | ast.List | ast.Set) and len(node.elts) >= 2 and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
            out.append((node.lineno, tuple(e.value for e in node.elts)))  # type: ignore[attr-defined]
        elif (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
              and node.value.id == "Literal" and isinstance(node.slice, ast.Tuple)):
            vals = [e.value for e in node.slice.elts if isinstance(e, ast.Constant)]
            if len(vals) >= 2 and all(isinstance(v, str) for v in vals):
                out.append((node.lineno, tuple(vals)))
    return out


def test_vocabularies_are_written_only_in_types() -> None:
    """No module outside geo/types.py spells out a vocabulary (or the footprint columns)."""
    known = {frozenset(v): k for k, v in VOCABULARIES.items()}
    known[frozenset(FOOTPRINT_COLUMNS)] = "FOOTPRINT_COLUMNS"
    copies = []
    for path in sorted(GEO.rglob("*.py")):
        rel = path.relative_to(GEO)
        for line, seq in _string_sequences(path):
            name = known.get(frozenset(seq))
            if name is None or (str(rel) == "types.py") or (
                    name == "FOOTPRINT_COLUMNS" and str(rel) == "footprints.py"):
                continue
            copies.append(f"geo/{rel}:{line} repeats {name}")
    assert not copies, "\n".join(copies)


@pytest.mark.parametrize("name", ["date_from_name", "FOOTPRINT_COLUMNS"])
def test_one_definition(name: str) -> None:
    where = []
    for path in sorted(GEO.rglob("*.py")):
        for node in ast.walk(parse_source(path)):
            if isinstance(node, ast.FunctionDef) and node.name == name:
                where.append(str(path.relative_to(GEO)))
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                    where.append(str(path.relative_to(GEO)))
    assert len(where) == 1, f"{name} defined in {where}"


def _commands() -> dict[str, click.Command]:
    ctx = click.Context(main)
    return {n: c for n in main.list_commands(ctx) if (c := main.get_command(ctx, n)) is not None}


def _choice(command: str, option: str) -> tuple[str, ...]:
    cmd = _commands()[command]
    (param,) = [p for p in cmd.params if option in p.opts]
    assert isinstance(param.type, click.Choice)
    return tuple(param.type.choices)


def test_click_choices_come_from_types() -> None:
    assert _choice("claim", "--relation") == types.RELATIONS
    assert _choice("claim", "--quantity") == types.QUANTITIES
    assert _choice("benchmark", "--method") == types.CHANGE_METHODS


def test_config_and_detect_use_the_same_literals() -> None:
    from geo import claims, config, detect, plausibility

    assert config.DetectMethod is types.DetectMethod
    assert config.SourceKind is types.SourceKind
    assert claims.Relation is types.Relation and claims.Verdict is types.Verdict
    assert detect.METHODS == types.CHANGE_METHODS
    assert plausibility.FOOTPRINT_KINDS == types.FOOTPRINT_KINDS


def test_every_command_shares_the_verbosity_options() -> None:
    commands = _commands()
    assert len(commands) >= 10
    for name, cmd in commands.items():
        opts = {o for p in cmd.params for o in p.opts}
        assert {"-v", "-q"} <= opts, f"{name} lacks -v/-q"
