"""Statement classification from PostgreSQL's own grammar (pglast / libpg_query), cached by text.

The same text arrives again and again (ORMs, prepared statements), so classification is memoised: a hit costs a
dict lookup, not a parse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pglast import parser as pg

# Top-level parse nodes -> statement kinds. Anything unlisted is reported by its node name, snake-cased.
_KINDS = {
    "SelectStmt": "select",
    "InsertStmt": "insert",
    "UpdateStmt": "update",
    "DeleteStmt": "delete",
    "MergeStmt": "merge",
    "TruncateStmt": "truncate",
    "DropStmt": "drop",
    "DropRoleStmt": "drop",
    "DropdbStmt": "drop",
    "DropTableSpaceStmt": "drop",
    "DropOwnedStmt": "drop",
    "DropSubscriptionStmt": "drop",
    "DropUserMappingStmt": "drop",
    "GrantStmt": "grant",
    "GrantRoleStmt": "grant",
    "CopyStmt": "copy",
    "DoStmt": "do",
    "CallStmt": "call",
    "VariableSetStmt": "set",
    "VariableShowStmt": "show",
    "TransactionStmt": "transaction",
    "PrepareStmt": "prepare",
    "ExecuteStmt": "execute",
    "DeallocateStmt": "deallocate",
    "VacuumStmt": "vacuum",
    "ExplainStmt": "explain",
    "ListenStmt": "listen",
    "UnlistenStmt": "unlisten",
    "NotifyStmt": "notify",
    "DeclareCursorStmt": "declare",
    "FetchStmt": "fetch",
    "ClosePortalStmt": "close",
    "LockStmt": "lock",
    "DiscardStmt": "discard",
    "CheckPointStmt": "checkpoint",
    "IndexStmt": "create",
    "ViewStmt": "create",
    "CreateTableAsStmt": "create",
    "RenameStmt": "alter",
    "RefreshMatViewStmt": "refresh",
    "ReindexStmt": "reindex",
    "CommentStmt": "comment",
}

# Lexer tokens that carry literal values; these are what redaction replaces.
_LITERALS = frozenset({"SCONST", "USCONST", "ICONST", "FCONST", "BCONST", "XCONST"})
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_NEAR = re.compile(r' at or near "(?:[^"]|"")*"')


@dataclass(frozen=True, slots=True)
class StatementInfo:
    """One statement of a query string, as the audit and (later) policy see it."""

    kind: str
    redacted: str | None  # literals replaced by $n; None when even the lexer cannot read the text
    error: str | None = None  # the parser's message when kind == "unparsed"


def _kind(node_name: str) -> str:
    if node_name in _KINDS:
        return _KINDS[node_name]
    name = node_name.removesuffix("Stmt")
    for prefix, kind in (("Create", "create"), ("Alter", "alter"), ("Drop", "drop")):
        if name.startswith(prefix):
            return kind
    return _CAMEL.sub("_", name).lower() or "utility"


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

    Two caches: by exact text, and by *shape* (the text with its literals replaced). Clients that inline values
    send a new text every time; the lexer pass that computes the shape costs a few microseconds, while the parse
    it saves costs tens, so a new text of a known shape is never parsed again.
    """
    shape = redact(text)
    if shape is not None:
        infos = _classify_shape(shape)
        if infos is not None:
            return infos
    # The shape does not parse (a typed literal such as interval '1 day' needs its string) or cannot be lexed:
    # parse the text itself and redact each statement separately.
    return _classify_text(text)


@lru_cache(maxsize=4096)
def _classify_shape(shape: str) -> tuple[StatementInfo, ...] | None:
    try:
        parsed = pg.parse_sql(shape)
    except pg.ParseError:
        return None
    return tuple(StatementInfo(_kind(type(s.stmt).__name__), piece) for s, piece in _pieces(shape, parsed))


def _classify_text(text: str) -> tuple[StatementInfo, ...]:
    try:
        parsed = pg.parse_sql(text)
    except pg.ParseError as exc:
        return (StatementInfo("unparsed", redact(text), _parser_message(exc)),)
    return tuple(StatementInfo(_kind(type(s.stmt).__name__), redact(piece)) for s, piece in _pieces(text, parsed))


def _pieces(text: str, parsed: Any) -> list[tuple[Any, str]]:
    """Each parsed statement with its own source text (pglast reports character offsets; 0 length = to the end)."""
    out = []
    for raw_stmt in parsed:
        start = raw_stmt.stmt_location or 0
        length = raw_stmt.stmt_len or (len(text) - start)
        out.append((raw_stmt, text[start : start + length].strip()))
    return out
