"""Statement classification from PostgreSQL's own grammar (pglast / libpg_query), cached by text.

The same text arrives again and again (ORMs, prepared statements), so classification is memoised: a hit costs a
dict lookup, not a parse.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pglast import parser as pg

from .analyze import GATEWAY_SETTINGS, Facts, analyze

# Lexer tokens that carry literal values; these are what redaction replaces.
_LITERALS = frozenset({"SCONST", "USCONST", "ICONST", "FCONST", "BCONST", "XCONST"})
_NEAR = re.compile(r' at or near "(?:[^"]|"")*"')


@dataclass(frozen=True, slots=True)
class StatementInfo:
    """One statement of a query string, as the audit and the policy see it. Hashable: decisions are cached by it."""

    kind: str
    redacted: str | None  # literals replaced by $n; None when even the lexer cannot read the text
    error: str | None = None  # the parser's message when kind == "unparsed"
    tags: frozenset[str] = frozenset()  # finer kinds: copy_program, set_role, ddl, delete inside a CTE...
    reads: tuple[str, ...] = ()  # tables read, as written in the statement (schema-qualified when it was)
    writes_to: tuple[str, ...] = ()  # tables written or altered
    functions: tuple[str, ...] = ()  # functions called, lower-cased, qualified when the text qualified them
    writes: bool = False  # changes data, schema, privileges, settings or the server (or locks rows)
    unbounded: frozenset[str] = frozenset()  # "delete"/"update" statements in it without a bounding WHERE
    prepare_name: str | None = None
    execute_name: str | None = None

    @property
    def kinds(self) -> frozenset[str]:
        """The kind and every tag: what a rule's ``kinds`` is matched against."""
        return self.tags | {self.kind}


def _info(facts: Facts, redacted: str | None) -> StatementInfo:
    return StatementInfo(
        facts.kind,
        redacted,
        None,
        frozenset(facts.tags),
        tuple(sorted(facts.reads)),
        tuple(sorted(facts.writes_to)),
        tuple(sorted(facts.functions)),
        facts.writes,
        frozenset(facts.unbounded),
        facts.prepare_name,
        facts.execute_name,
    )


def _parse_one(text: str) -> dict[str, Any] | None:
    """The single statement node of ``text``; None when it holds several or none. Raises pg.ParseError."""
    stmts = json.loads(pg.parse_sql_json(text)).get("stmts", [])
    if len(stmts) != 1:
        return None
    node = stmts[0].get("stmt")
    return node if isinstance(node, dict) else None


def redact(text: str) -> str | None:
    """Replace every literal with a numbered placeholder, continuing after the text's own ``$n`` parameters.

    Uses PostgreSQL's lexer, so quoting, escapes and dollar quotes are understood. ``None`` when the text cannot
    be lexed (for example an unterminated string): then nothing of it is safe to keep.
    """
    try:
        tokens = pg.scan(text)
    except pg.ParseError:
        return None
    highest = 0
    for tok in tokens:
        if tok.name == "PARAM":
            digits = text[tok.start + 1 : tok.end + 1]
            if digits.isdigit():
                highest = max(highest, int(digits))
    out: list[str] = []
    pos = 0
    n = highest
    for tok in tokens:  # token offsets are character offsets, end inclusive
        if tok.name in _LITERALS:
            n += 1
            out.append(text[pos : tok.start])
            out.append(f"${n}")
            pos = tok.end + 1
    out.append(text[pos:])
    return "".join(out).strip()


def _parser_message(exc: Exception) -> str:
    """The parser's message without the quoted source text, which may hold a literal value."""
    return _NEAR.sub("", str(exc))


@lru_cache(maxsize=8192)
def classify(text: str) -> tuple[StatementInfo, ...]:
    """Each statement of ``text`` with its kind and redacted text; ``()`` for an empty query string.

    Two caches: by exact text, and by *shape* (one statement with its literals replaced). Clients that inline
    values send a new text every time; splitting (in C) and the lexer pass that computes the shape cost a few
    microseconds, while the parse into Python objects they save costs tens, so a new text of a known shape is
    never parsed again. Each statement is redacted on its own, so its stored text does not depend on what else
    was sent with it.
    """
    try:
        pieces = pg.split(text)
    except pg.ParseError as exc:
        return (StatementInfo("unparsed", redact(text), _parser_message(exc)),)
    return tuple(_classify_one(piece) for piece in pieces)


def _classify_one(piece: str) -> StatementInfo:
    shape = redact(piece)
    if shape is not None:
        info = _classify_shape(shape)
        if info is not None:
            return info
    # The shape does not parse (a literal the grammar needs as a string, e.g. COPY t FROM 'file'), cannot be
    # lexed, or its verdict depends on its literals (set_config('role', ...)): classify the statement itself.
    try:
        node = _parse_one(piece)
        if node is None:
            return StatementInfo("unparsed", shape, "not a single statement")
        return _info(analyze(node), shape)
    except (pg.ParseError, ValueError) as exc:
        return StatementInfo("unparsed", shape, _parser_message(exc))
    except RecursionError:
        # Expressions nested hundreds deep ('a' || 'b' || ... 500 times): the parse tree's JSON and the walk
        # over it exceed Python's recursion limit. Unparsed, so the policy's rule for those decides (fail closed).
        return StatementInfo("unparsed", shape, TOO_DEEP)


TOO_DEEP = "it nests expressions too deeply for the gateway to analyse"


@lru_cache(maxsize=4096)
def _classify_shape(shape: str) -> StatementInfo | None:
    try:
        node = _parse_one(shape)
        if node is None:
            return None
        facts = analyze(node)
    except (pg.ParseError, ValueError, RecursionError):
        return None
    if facts.literal_sensitive:
        return None
    return _info(facts, shape)


def prepared_names(text: str) -> list[tuple[str, str | None, str | None]]:
    """What a query string does to SQL-level prepared statements, in order.

    ``("prepare", name, inner_text)`` for ``PREPARE name [(types)] AS inner``; ``("deallocate", name, None)``
    (name None for ALL) for ``DEALLOCATE``; ``("deallocate", None, None)`` for ``DISCARD ALL``. The protocol
    can Bind such a statement by name, so the gateway must know its text to judge and record what runs.
    """
    try:
        pieces = pg.split(text)
    except pg.ParseError:
        return []
    ops: list[tuple[str, str | None, str | None]] = []
    for piece in pieces:
        try:
            (raw,) = pg.parse_sql(piece)
        except (pg.ParseError, ValueError, RecursionError):
            continue
        node: Any = raw.stmt  # pglast's node classes are generated; their fields are not typed
        kind = type(node).__name__
        if kind == "PrepareStmt":
            inner = _after_as(piece)
            if inner is not None:
                ops.append(("prepare", node.name, inner))
        elif kind == "DeallocateStmt":
            ops.append(("deallocate", node.name, None))
        elif kind == "DiscardStmt" and getattr(node.target, "name", "") == "DISCARD_ALL":
            ops.append(("deallocate", None, None))
    return ops


def _after_as(prepare: str) -> str | None:
    """The text of ``inner`` in ``PREPARE name [(types)] AS inner``: everything after the first top-level AS."""
    depth = 0
    tokens = pg.scan(prepare)
    for i, tok in enumerate(tokens):
        if tok.name == "ASCII_40":
            depth += 1
        elif tok.name == "ASCII_41":
            depth -= 1
        elif tok.name == "AS" and depth == 0 and i + 1 < len(tokens):
            return prepare[tokens[i + 1].start :].strip()
    return None


def gateway_settings(text: str) -> dict[str, str]:
    """The values ``text`` gives the gateway's own settings (``wardgate.*``), the last one winning; '' for RESET
    or DEFAULT. Called only for statements tagged ``set_gateway``."""
    try:
        stmts = json.loads(pg.parse_sql_json(text)).get("stmts", [])
    except pg.ParseError:
        return {}
    out: dict[str, str] = {}
    for st in stmts:
        node = st.get("stmt", {}).get("VariableSetStmt")
        if not node or node.get("name") not in GATEWAY_SETTINGS:
            continue
        args = node.get("args", [])
        value = ""
        if node.get("kind") == "VAR_SET_VALUE" and args:
            const = args[0].get("A_Const", {})
            if "sval" in const:
                value = str(const["sval"].get("sval", ""))
            elif "boolval" in const:
                value = "on" if const["boolval"].get("boolval") else "off"
            elif "ival" in const:
                value = str(const["ival"].get("ival", 0))  # the parse tree leaves a zero out
            elif "fval" in const:
                value = str(const["fval"].get("fval", "0"))
        out[node["name"]] = value
    return out
