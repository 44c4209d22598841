"""What one parsed statement does: its kind, tags, tables read and written, functions called, whether it writes.

Works on libpg_query's JSON parse tree (``pglast.parser.parse_sql_json``): plain dicts and lists, about six times
cheaper to build than pglast's node objects, and every node is visited, so a DELETE hidden in a CTE, a function
called inside a subquery or an ``EXPLAIN ANALYZE`` of an UPDATE is seen wherever it sits.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pglast import parser as pg

# Top-level node -> kind. Unlisted Create*/Alter*/Drop* nodes are create/alter/drop; anything else is named after
# its node, snake-cased (e.g. "ClusterStmt" -> "cluster").
# The gateway's own session settings (SET or RESET, or the startup packet): PostgreSQL takes them as custom
# parameters, and the gateway keeps their values for its session. reason: why, for reviewers; review_wait: off
# makes a statement held for review fail at once with the request's id instead of waiting.
REASON_SETTING = "wardgate.reason"
WAIT_SETTING = "wardgate.review_wait"
GATEWAY_SETTINGS = frozenset({REASON_SETTING, WAIT_SETTING})

_KINDS = {
    "SelectStmt": "select",
    "InsertStmt": "insert",
    "UpdateStmt": "update",
    "DeleteStmt": "delete",
    "MergeStmt": "merge",
    "TruncateStmt": "truncate",
    "DropStmt": "drop",
    "DropdbStmt": "drop",
    "DropTableSpaceStmt": "drop",
    "DropOwnedStmt": "drop",
    "DropSubscriptionStmt": "drop",
    "DropUserMappingStmt": "drop",
    "CopyStmt": "copy",
    "DoStmt": "do",
    "CallStmt": "call",
    "VariableShowStmt": "show",
    "TransactionStmt": "transaction",
    "PrepareStmt": "prepare",
    "ExecuteStmt": "execute",
    "DeallocateStmt": "deallocate",
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
    "ReassignOwnedStmt": "alter",
    "AlterSystemStmt": "alter",
    "LoadStmt": "load",
}
# Kinds that change data, schema, privileges or the server, whatever their details.
_WRITING_KINDS = frozenset({
    "insert", "update", "delete", "merge", "truncate", "create", "alter", "drop", "grant", "revoke", "do", "call",
    "vacuum", "analyze", "refresh", "reindex", "cluster", "comment", "lock", "load", "checkpoint",
    "import_foreign_schema", "security_label", "create_foreign_table",
})
_ROLE_NODES = frozenset({
    "CreateRoleStmt", "AlterRoleStmt", "AlterRoleSetStmt", "DropRoleStmt", "GrantRoleStmt", "ReassignOwnedStmt",
    "DropOwnedStmt", "AlterDefaultPrivilegesStmt",
})
# Functions with effects beyond returning a value: they end sessions, touch server files, large objects, other
# databases, settings or sequences. A statement calling one writes, even when it is a SELECT.
WRITING_FUNCTIONS = frozenset({
    "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile", "pg_promote",
    "pg_switch_wal", "pg_create_restore_point", "pg_file_write", "pg_file_rename", "pg_file_unlink",
    "lo_import", "lo_export", "lo_unlink", "lo_create", "lo_creat", "lo_put", "lo_from_bytea", "lo_truncate",
    "set_config", "dblink", "dblink_exec", "dblink_connect", "dblink_connect_u", "dblink_send_query",
    "nextval", "setval", "pg_create_logical_replication_slot", "pg_create_physical_replication_slot",
    "pg_drop_replication_slot", "pg_replication_origin_create", "pg_stat_reset", "pg_stat_reset_shared",
    "pg_import_system_collations",
})
# Functions that read the table their text argument names.
_TABLE_TEXT_FUNCTIONS = frozenset({"table_to_xml", "table_to_xmlschema", "table_to_xml_and_xmlschema"})
# The key under which each node keeps the relation(s) it writes.
_WRITE_TARGETS = {
    "InsertStmt": "relation",
    "UpdateStmt": "relation",
    "DeleteStmt": "relation",
    "MergeStmt": "relation",
    "TruncateStmt": "relations",
    "IntoClause": "rel",
    "CreateStmt": "relation",
    "AlterTableStmt": "relation",
    "IndexStmt": "relation",
    "RenameStmt": "relation",
    "RefreshMatViewStmt": "relation",
    "ReindexStmt": "relation",
    "ClusterStmt": "relation",
    "VacuumRelation": "relation",
    "LockStmt": "relations",
    "GrantStmt": "objects",
    "ViewStmt": "view",
    "CreateTableAsStmt": "into",
}
_TABLE_OBJECTS = frozenset({
    "OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_SEQUENCE", "OBJECT_INDEX", "OBJECT_FOREIGN_TABLE",
})
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_ACCESS_SHARE = 1  # LockStmt.mode: AccessShareLock


@dataclass(slots=True)
class Facts:
    kind: str
    tags: set[str] = field(default_factory=set)
    reads: set[str] = field(default_factory=set)
    writes_to: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    writes: bool = False
    unbounded: set[str] = field(default_factory=set)  # "delete"/"update" statements in it that have no WHERE
    # Columns the enclosing SELECT's WHERE pins to a constant (``WHERE name = 'x'``), innermost last: lets
    # ``SELECT set_config(name, ...) FROM pg_settings WHERE name = 'x'`` (pg_dump does this) be read exactly.
    pinned: list[dict[tuple[str, ...], str]] = field(default_factory=list)
    prepare_name: str | None = None  # PREPARE name AS ...
    execute_name: str | None = None  # EXECUTE name
    literal_sensitive: bool = False  # its verdict may depend on a literal's value (set_config's name, a function body)


def kind_of(node_name: str, node: dict[str, Any]) -> str:
    if node_name in ("GrantStmt", "GrantRoleStmt"):
        return "grant" if node.get("is_grant") else "revoke"
    if node_name == "VacuumStmt":
        return "vacuum" if node.get("is_vacuumcmd") else "analyze"
    if node_name == "VariableSetStmt":
        return "reset" if str(node.get("kind", "")).startswith("VAR_RESET") else "set"
    if node_name in _KINDS:
        return _KINDS[node_name]
    name = node_name.removesuffix("Stmt")
    for prefix, kind in (("Create", "create"), ("Alter", "alter"), ("Drop", "drop")):
        if name.startswith(prefix):
            return kind
    return _CAMEL.sub("_", name).lower() or "utility"


def analyze(stmt: dict[str, Any]) -> Facts:
    """Facts about one top-level statement node (``{"SelectStmt": {...}}``)."""
    ((name, node),) = stmt.items()
    facts = Facts(kind_of(name, node))
    _top(facts, name, node)
    _walk(stmt, facts, frozenset())
    facts.reads -= facts.writes_to
    writing_kind = facts.kind in _WRITING_KINDS and "lock_access_share" not in facts.tags
    data = facts.writes or writing_kind or bool(facts.writes_to) or bool(facts.unbounded)
    called = {f.rsplit(".", 1)[-1] for f in facts.functions} & WRITING_FUNCTIONS
    if called:
        facts.tags.add("writing_function")
    if called - {"set_config"}:
        data = True
    facts.writes = data or bool(called)
    if facts.writes and not data:
        facts.tags.add("settings_only")  # its only effect is set_config() of a session setting, as SET would be
    if facts.kind in ("create", "alter", "drop"):
        facts.tags.add("ddl")
    return facts


def _top(facts: Facts, name: str, node: dict[str, Any]) -> None:
    """What only the top-level node says: COPY's direction, SET's target, EXPLAIN's ANALYZE, PREPARE's name."""
    if name == "CopyStmt":
        facts.tags.add("copy_from" if node.get("is_from") else "copy_to")
        if node.get("is_program"):
            facts.tags.add("copy_program")
            facts.writes = True
        elif node.get("filename") is not None:
            facts.tags.add("copy_file")
            facts.writes = True
        if node.get("is_from"):
            facts.writes = True
            facts.writes_to.update(_relname(rv) for rv in _targets(node, "relation"))
    elif name == "VariableSetStmt":
        var = str(node.get("name", ""))
        if var in ("role", "session_authorization", "standard_conforming_strings", "client_encoding") \
                and facts.kind == "set":
            facts.tags.add(f"set_{var}")
        if var in GATEWAY_SETTINGS:
            facts.tags.add("set_gateway")
        if var in _READ_ONLY_SETTINGS and node.get("kind") == "VAR_SET_VALUE":
            if any(_off(a) for a in node.get("args", [])):
                facts.tags.add("read_write")
        elif node.get("kind") == "VAR_SET_MULTI":
            _transaction_options(node.get("args", []), facts)
    elif name == "TransactionStmt":
        _transaction_options(node.get("options", []), facts)
    elif name == "AlterSystemStmt":
        facts.tags.add("alter_system")
    elif name in _ROLE_NODES:
        facts.tags.add("role")
    elif name == "DropStmt" and node.get("removeType") in _TABLE_OBJECTS:
        for obj in node.get("objects", []):
            items = obj.get("List", {}).get("items", []) if isinstance(obj, dict) else []
            parts = [i["String"]["sval"] for i in items if isinstance(i, dict) and "String" in i]
            if parts:
                facts.writes_to.add(".".join(parts))
    elif name == "AlterTableStmt":
        for cmd in node.get("cmds", []):
            sub = cmd.get("AlterTableCmd", {}).get("subtype", "")
            if sub in ("AT_DropColumn", "AT_DropConstraint"):
                facts.tags.add("drop_column" if sub == "AT_DropColumn" else "drop_constraint")
    elif name == "ExplainStmt":
        analyze_opt = any(
            o.get("DefElem", {}).get("defname") == "analyze" and _truthy(o["DefElem"].get("arg"))
            for o in node.get("options", [])
        )
        if analyze_opt:
            facts.tags.add("explain_analyze")
    elif name == "PrepareStmt":
        facts.prepare_name = node.get("name")
    elif name == "ExecuteStmt":
        facts.execute_name = node.get("name")
    elif name == "SelectStmt" and node.get("intoClause"):
        facts.tags.add("select_into")
    elif name == "CreateFunctionStmt":
        _function_body(node, facts)


_READ_ONLY_SETTINGS = ("default_transaction_read_only", "transaction_read_only")


def _off(value: Any) -> bool:
    """Is this setting value false? Anything the gateway cannot read counts as false (the unsafe reading)."""
    const = value.get("A_Const") if isinstance(value, dict) else None
    if const is None:
        return True
    if "ival" in const:
        return not const["ival"].get("ival", 0)
    if "sval" in const:
        return str(const["sval"].get("sval", "")).strip().lower() in ("off", "false", "0", "no", "f", "n", "of")
    if "boolval" in const:
        return not const["boolval"].get("boolval", False)
    return True


def _transaction_options(options: list[Any], facts: Facts) -> None:
    """BEGIN/START TRANSACTION/SET TRANSACTION/SET SESSION CHARACTERISTICS ... READ WRITE: tagged ``read_write``,
    which a read-only session refuses (its upstream runs with default_transaction_read_only = on)."""
    for o in options:
        d = o.get("DefElem", {}) if isinstance(o, dict) else {}
        if d.get("defname") == "transaction_read_only" and _off(d.get("arg")):
            facts.tags.add("read_write")


def _function_body(node: dict[str, Any], facts: Facts) -> None:
    """A function's body runs later, one ``SELECT f()`` away, so CREATE FUNCTION is judged by it. A SQL body is
    parsed and its statements' facts join this one's (a ``DELETE FROM t`` in it is a DELETE without WHERE);
    a procedural body (plpgsql, C, ...) cannot be inspected, like a DO block: tagged ``procedural_code``."""
    options = {
        o["DefElem"].get("defname"): o["DefElem"].get("arg") for o in node.get("options", []) if "DefElem" in o
    }
    language = str((options.get("language") or {}).get("String", {}).get("sval", "sql")).lower()
    body = options.get("as")
    if body is None:
        if language != "sql":
            facts.tags.add("procedural_code")
        return  # no body, or BEGIN ATOMIC: its statements are in the tree and walked like the rest
    facts.literal_sensitive = True  # redaction turns the body into a $n; the verdict needs the text
    items = body.get("List", {}).get("items", []) if isinstance(body, dict) else []
    texts = [i.get("String", {}).get("sval", "") for i in items]
    if language != "sql" or len(texts) != 1:
        facts.tags.add("procedural_code")
        return
    try:
        stmts = json.loads(pg.parse_sql_json(texts[0])).get("stmts", [])
    except (pg.ParseError, ValueError):
        facts.tags.add("procedural_code")  # unreadable: as uninspectable as any other language
        return
    for stmt in stmts:
        inner = analyze(stmt["stmt"])
        facts.tags |= inner.tags | {inner.kind}
        facts.reads |= inner.reads
        facts.writes_to |= inner.writes_to
        facts.functions |= inner.functions
        facts.unbounded |= inner.unbounded
        facts.writes = facts.writes or inner.writes


def _truthy(arg: Any) -> bool:
    """An option's argument: absent means on (``EXPLAIN (ANALYZE)``); false/off/0 mean off."""
    if arg is None:
        return True
    if isinstance(arg, dict):
        if "Boolean" in arg:
            return bool(arg["Boolean"].get("boolval"))
        if "String" in arg:
            return str(arg["String"].get("sval", "")).lower() not in ("false", "off", "0", "no")
        if "Integer" in arg:
            return bool(arg["Integer"].get("ival"))
    return True


def _relname(rv: dict[str, Any]) -> str:
    schema = rv.get("schemaname")
    return f"{schema}.{rv['relname']}" if schema else str(rv["relname"])


def _walk(value: Any, facts: Facts, ctes: frozenset[str], explain_only: bool = False) -> None:
    """Visit every node. Node types are capitalised keys (``{"SelectStmt": {...}}``); typed fields hold their
    node's content directly (``"relation": {"relname": ...}``), so a RangeVar is known by its ``relname``.

    ``ctes``: the CTE names in scope here; an unqualified name among them is the CTE, not a table. Scoped per
    WITH, so a CTE named like a table hides that table only where the CTE is visible."""
    if isinstance(value, list):
        for v in value:
            _walk(v, facts, ctes, explain_only)
    elif isinstance(value, dict):
        if "relname" in value:
            _read(value, facts, ctes)
            return
        for key, child in value.items():
            if isinstance(child, dict):
                if key[:1].isupper():
                    _visit(key, child, facts, ctes, explain_only)
                else:
                    _walk(child, facts, ctes, explain_only)
            elif isinstance(child, list):
                _walk(child, facts, ctes, explain_only)


def _read(rv: dict[str, Any], facts: Facts, ctes: frozenset[str]) -> None:
    if rv.get("schemaname") or rv["relname"] not in ctes:
        facts.reads.add(_relname(rv))


def _targets(node: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = node.get(key)
    out = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict):
            item = item.get("RangeVar", item)  # noqa: PLW2901
            item = item.get("rel", item)  # noqa: PLW2901 - an IntoClause
            if "relname" in item:
                out.append(item)
    return out


def _visit(name: str, node: dict[str, Any], facts: Facts, ctes: frozenset[str], explain_only: bool) -> None:
    if "relname" in node:  # {"RangeVar": {...}}
        _read(node, facts, ctes)
        return
    with_clause = node.get("withClause")
    if isinstance(with_clause, dict):
        ctes = ctes | {str(c.get("CommonTableExpr", {}).get("ctename", "")) for c in with_clause.get("ctes", [])}
    if name == "ExplainStmt" and "explain_analyze" not in facts.tags:
        explain_only = True  # EXPLAIN without ANALYZE plans the statement; it does not run it
    if name == "LockStmt" and int(node.get("mode", 8)) <= _ACCESS_SHARE:
        facts.tags.add("lock_access_share")  # the lock every SELECT takes (pg_dump asks for it): a read
    elif not explain_only:
        key = _WRITE_TARGETS.get(name)
        if key is not None:
            facts.writes_to.update(_relname(rv) for rv in _targets(node, key))
        if name == "SelectStmt" and node.get("intoClause"):
            facts.writes_to.update(_relname(rv) for rv in _targets(node, "intoClause"))
            facts.writes = True
        if name == "SelectStmt" and node.get("lockingClause"):
            facts.tags.add("locking")
            facts.writes = True
        if name in ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"):
            _dml(name, node, facts)
    if name == "FuncCall":
        parts = [p["String"]["sval"] for p in node.get("funcname", []) if "String" in p]
        if parts:
            facts.functions.add(".".join(parts).lower())
            fn = parts[-1].lower()
            if fn == "set_config":
                _set_config(node, facts)
            elif fn in _TABLE_TEXT_FUNCTIONS:
                _table_argument(node, facts)
    pinned = name == "SelectStmt"
    if pinned:
        facts.pinned.append(_pinned_columns(node.get("whereClause")))
    for child in node.values():
        if isinstance(child, (dict, list)):
            _walk(child, facts, ctes, explain_only)
    if pinned:
        facts.pinned.pop()


def _column(node: dict[str, Any]) -> tuple[str, ...] | None:
    ref = node.get("ColumnRef")
    if ref is None:
        return None
    return tuple(str(f.get("String", {}).get("sval", "*")) for f in ref.get("fields", []))


def _text_const(node: dict[str, Any]) -> str | None:
    const = node.get("A_Const")
    return None if const is None else const.get("sval", {}).get("sval")


def _pinned_columns(where: dict[str, Any] | None) -> dict[tuple[str, ...], str]:
    """``col = 'const'`` terms ANDed at the top of a WHERE: each such column can only hold that value."""
    if not where:
        return {}
    terms = [where]
    bool_expr = where.get("BoolExpr")
    if bool_expr is not None:
        if bool_expr.get("boolop") != "AND_EXPR":
            return {}
        terms = bool_expr.get("args", [])
    out: dict[tuple[str, ...], str] = {}
    for term in terms:
        expr = term.get("A_Expr") if isinstance(term, dict) else None
        if not expr or expr.get("kind") != "AEXPR_OP":
            continue
        if [n.get("String", {}).get("sval") for n in expr.get("name", [])] != ["="]:
            continue
        left, right = expr.get("lexpr", {}), expr.get("rexpr", {})
        for col_side, const_side in ((left, right), (right, left)):
            col, const = _column(col_side), _text_const(const_side)
            if col is not None and const is not None:
                out[col] = const
    return out


def _table_argument(node: dict[str, Any], facts: Facts) -> None:
    """``table_to_xml('public.secrets', ...)`` reads the table its text argument names."""
    facts.literal_sensitive = True  # the name is a literal, a $n after redaction
    args = node.get("args") or [{}]
    first = args[0].get("TypeCast", {}).get("arg", args[0])  # 'x'::regclass
    name = _text_const(first)
    if name is None:
        facts.tags.add("dynamic_sql")  # a table chosen at run time: the gateway cannot tell which
    else:
        facts.reads.add(".".join(p.strip().strip('"') for p in name.split(".")))


def _set_config(node: dict[str, Any], facts: Facts) -> None:
    """``set_config('role', ...)`` is ``SET ROLE``: tagged as such, so the rules on role changes see it. A
    setting name the text does not spell out (a parameter, an expression) could be either: tagged as both."""
    args = node.get("args") or [{}]
    first = args[0]
    setting = _text_const(first)
    if setting is None:
        # after redaction the name (or the constant a WHERE pins its column to) is a $n: the verdict needs the
        # statement itself
        facts.literal_sensitive = True
        col = _column(first)
        if col is not None and facts.pinned:
            setting = facts.pinned[-1].get(col)
    if setting is None:
        facts.tags.update(("set_role", "set_session_authorization", "read_write", "set_standard_conforming_strings",
                           "set_client_encoding"))
        return
    setting = setting.strip().lower()
    if setting in ("role", "session_authorization", "standard_conforming_strings", "client_encoding"):
        facts.tags.add(f"set_{setting}")
    elif setting in _READ_ONLY_SETTINGS:
        facts.tags.add("read_write")  # whatever the value: set_config's value is often not spelled out


def _dml(name: str, node: dict[str, Any], facts: Facts) -> None:
    kind = _KINDS[name]
    facts.tags.add(kind)
    if name in ("UpdateStmt", "DeleteStmt"):
        if not _bounds(node.get("whereClause"), _target_names(node)):
            facts.unbounded.add(kind)
    elif name == "InsertStmt":
        conflict = node.get("onConflictClause") or {}
        if conflict.get("action") == "ONCONFLICT_UPDATE":
            facts.tags.add("update")  # an upsert updates the rows it conflicts with
    elif name == "MergeStmt":
        targets = _target_names(node)
        bounded = _bounds(node.get("joinCondition"), targets)
        for clause in node.get("mergeWhenClauses", []):
            when = clause.get("MergeWhenClause", {})
            cmd = str(when.get("commandType", ""))
            for command, tag in (("CMD_DELETE", "delete"), ("CMD_UPDATE", "update")):
                if cmd == command:
                    facts.tags.add(tag)
                    if not bounded and not _bounds(when.get("condition"), targets):
                        facts.unbounded.add(tag)


def _target_names(node: dict[str, Any]) -> frozenset[str]:
    """How the statement's target table can be named in its WHERE: its name and its alias."""
    rel = node.get("relation") or {}
    names = {str(rel.get("relname", ""))}
    alias = (rel.get("alias") or {}).get("aliasname")
    if alias:
        names.add(str(alias))
    return frozenset(names)


def _bounds(where: Any, targets: frozenset[str]) -> bool:
    """Does this WHERE (or MERGE join condition) restrict which rows are touched?

    No, when it refers to no column at all: its value is the same for every row, whatever constants, operators,
    casts or parameters it is made of (``WHERE 1 = 1``, ``WHERE 2 > 1``, ``WHERE $1 = $2``, ``WHERE NOT false``),
    including a harmless ``WHERE 1 = 2``, which is refused along with them. No, too, for ``col = col`` and an OR
    one of whose branches bounds nothing.
    """
    if not isinstance(where, dict) or not where:
        return False
    if not _mentions_column(where, targets):
        return False
    expr = where.get("A_Expr")
    if expr is not None and expr.get("kind") == "AEXPR_OP":
        left, right = _column(expr.get("lexpr", {})), _column(expr.get("rexpr", {}))
        if left is not None and left == right:
            return False  # WHERE id = id
    bool_expr = where.get("BoolExpr")
    if bool_expr is not None and bool_expr.get("boolop") == "OR_EXPR":
        return all(_bounds(a, targets) for a in bool_expr.get("args", []))
    return True


def _mentions_column(node: Any, targets: frozenset[str], in_subquery: bool = False) -> bool:
    """A column of the target table: any column outside a subquery; inside one (``EXISTS (SELECT ...)``), only a
    column qualified with the target's name or alias, since a subquery about other tables is the same for
    every row."""
    if isinstance(node, dict):
        if "CurrentOfExpr" in node:
            return True
        col = _column(node)
        if col is not None:
            return not in_subquery or (len(col) > 1 and col[-2] in targets)
        link = node.get("SubLink")
        if link is not None:  # `x IN (SELECT ...)`: x is outside the subquery, the SELECT inside
            return _mentions_column(link.get("testexpr"), targets, in_subquery) or _mentions_column(
                link.get("subselect"), targets, True)
        return any(_mentions_column(v, targets, in_subquery) for v in node.values() if isinstance(v, (dict, list)))
    if isinstance(node, list):
        return any(_mentions_column(v, targets, in_subquery) for v in node)
    return False
