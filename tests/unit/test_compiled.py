"""The per-statement modules run compiled (setup.py, mypyc), as the benchmark measured them.

An install that quietly left them interpreted would still pass every other test, at a third more instructions
per statement; and a compiled module older than its source would run old code (tests/conftest.py refuses that).
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
from pathlib import Path

import pytest

from tests.conftest import ROOT, compiled_modules


def _module_name(src: Path) -> str:
    return ".".join(src.relative_to(ROOT).with_suffix("").parts)


@pytest.mark.parametrize("src", compiled_modules(), ids=_module_name)
def test_each_listed_module_is_loaded_compiled(src: Path) -> None:
    module = importlib.import_module(_module_name(src))
    assert isinstance(module.__loader__, importlib.machinery.ExtensionFileLoader), (
        f"{_module_name(src)} runs interpreted")
    # What the import system takes from the source's folder: the build beside it, not the source.
    found = importlib.machinery.PathFinder.find_spec(src.stem, [str(src.parent)])
    assert found is not None and found.origin is not None and found.origin.endswith(".so")


def test_the_list_names_sources_that_exist() -> None:
    modules = compiled_modules()
    assert modules, "pyproject.toml lists no compiled modules"
    for src in modules:
        assert src.is_file(), f"pyproject.toml [tool.wardgate] compiled names {src}, which does not exist"


def _generators(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    out: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.AsyncFunctionDef) or (
                isinstance(node, ast.FunctionDef)
                and any(isinstance(n, ast.Yield | ast.YieldFrom) for n in ast.walk(node))):
            out.append(node)
    return out


def test_no_coroutine_binds_one_name_to_two_exception_types() -> None:
    """Compiled, a coroutine keeps each local in one typed slot: `except A as exc` then `except B as exc` raises
    TypeError when B is caught (a refused login once left its client waiting instead of telling it why)."""
    clashes = []
    for src in compiled_modules():
        for fn in _generators(ast.parse(src.read_text())):
            types: dict[str, set[str]] = {}
            for h in ast.walk(fn):
                if isinstance(h, ast.ExceptHandler) and h.name and h.type is not None:
                    types.setdefault(h.name, set()).add(ast.unparse(h.type))
            clashes += [f"{src.name}:{fn.name}: {name} is {sorted(t)}" for name, t in types.items() if len(t) > 1]
    assert not clashes
