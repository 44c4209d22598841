"""The per-statement modules run compiled (setup.py, mypyc), as the benchmark measured them.

An install that quietly left them interpreted would still pass every other test, at a third more instructions
per statement; and a compiled module older than its source would run old code (tests/conftest.py refuses that).
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import importlib.machinery
import inspect
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


def _hot_classes() -> list[type]:
    from wardgate.audit.samples import Kept
    from wardgate.frontends import postgres
    from wardgate.pipeline import StatementRecord

    return [StatementRecord, Kept, postgres.PendingParse, postgres.PendingClose, postgres.PendingDescribe,
            postgres.InjectedDescribe, postgres.Refusal]


@pytest.mark.parametrize("cls", _hot_classes(), ids=lambda c: c.__name__)
def test_per_statement_objects_are_built_by_compiled_code(cls: type) -> None:
    """A dataclass's generated __init__ is interpreted Python even in a compiled module (a frozen one cost
    ~4,600 instructions a call); the classes made for every statement declare their own, which compiles."""
    init = cls.__dict__.get("__init__")
    assert init is not None and not inspect.isfunction(init), f"{cls.__name__}.__init__ is interpreted"


def test_the_connections_are_native_classes() -> None:
    """A class with a Python base (asyncio.Protocol) compiles as a non-native class: every attribute a dict
    lookup. The endpoints are protocols by their methods only, and keep their fields in C (no __dict__)."""
    from wardgate.frontends.postgres import ClientConnection, UpstreamConnection

    for cls in (ClientConnection, UpstreamConnection):
        assert not issubclass(cls, asyncio.BaseProtocol)
        assert cls.__dictoffset__ == 0, f"{cls.__name__} instances have a __dict__: compiled as non-native"
