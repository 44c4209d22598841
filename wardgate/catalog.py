"""Names of result columns: (table OID, attnum) from a RowDescription -> the ``schema.table.column`` names rules use.

Masking rules name columns as ``schema.table.column``, but PostgreSQL tells the client only the OID of a result
column's relation and its attribute number; for a column selected from a view those are the view's own. So the
gateway asks the upstream catalog, with its own credential, what each relation is called and, for views and
materialized views, which columns of which relations each view column is a plain reference to (what PostgreSQL
itself recorded when the view was created, read from the view's stored query tree, ``pg_rewrite.ev_action``).
Views over views, and partitions (whose columns are also their partitioned parent's columns), are followed down to
the base tables, so a rule on ``public.customers.email`` also covers ``SELECT contact FROM customer_contacts``.

What is not followed: a view column that is an expression (``upper(email)``, ``email || ''``, a scalar subquery)
has only the view's own name; PostgreSQL records no source for it and neither does this module. Masking such a
column needs a rule on the view's column, or value detectors.

The catalog answers from memory on the hot path (``names``, ``missing``); only ``load`` does I/O, on one
connection per upstream shared by all its sessions. Everything is forgotten after ``ttl`` seconds or on
``invalidate`` (the gateway calls it after DDL it relays).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg

from .config import PostgresConnection
from .masking.policy import ColumnName

__all__ = ["Catalog", "CatalogUnavailable", "ColumnName", "view_origins"]

log = logging.getLogger("wardgate.catalog")

MAX_DEPTH = 32
"""How many levels of views (and partitions) one ``load`` follows; deeper chains are refused, not half-resolved."""

_RESTARTS = 3
"""How many times a ``load`` starts over because ``invalidate`` ran while it was reading."""

_T = TypeVar("_T")

_LIBPQ_PREAMBLE = re.compile(r"^(?:connection failed: )?(?:connection to server at .*? failed: )?(?:FATAL: +)?")


def connect_params(c: PostgresConnection, application_name: str, timeout: float) -> dict[str, Any]:
    """libpq keywords for a side connection to an upstream with the gateway's credential."""
    params: dict[str, Any] = {
        "host": c.host,
        "port": c.port,
        "dbname": c.database,
        "user": c.user,
        # The same words in libpq, but libpq's "require" verifies the server after all if ~/.postgresql/root.crt
        # exists, where the gateway's own upstream TLS does not.
        "sslmode": c.sslmode,
        "gssencmode": "disable",  # the gateway logs in with a password; no Kerberos round trip first
        "application_name": application_name,
        "connect_timeout": max(2, math.ceil(timeout)),  # libpq's own minimum is 2 s
    }
    if c.password is not None:
        params["password"] = c.password.value
    if c.sslmode == "verify-full" and c.sslrootcert is not None:
        params["sslrootcert"] = str(c.sslrootcert)
    return params


class CatalogUnavailable(Exception):
    """The upstream catalog could not be read; the message is safe to show a client (no password, no secret DSN)."""


# --- pg_node_tree --------------------------------------------------------------------------------------------------

# pg_strtok (src/backend/nodes/read.c): ( ) { } are tokens of their own; any other run of characters up to a blank
# (space, newline, tab: not \r), a parenthesis or a brace is one token, in which a backslash makes the next
# character literal. outToken escapes blanks, parentheses, braces and backslashes inside names, so a view column
# called "}{TARGETENTRY :resjunk false" is one token. It does not escape ':' : a column may be called ":resno", so
# field labels are told from values by position (label, value, label, value...), never by their spelling.
_TOKEN = re.compile(r"[(){}]|(?:\\.?|[^ \n\t(){}\\])+", re.DOTALL)


@dataclass(slots=True)
class _Node:
    """``{TYPE :label value :label value ...}``; values are tokens (still escaped), nodes or lists."""

    type: str
    fields: dict[str, object] = field(default_factory=dict)
    label: str | None = None  # while parsing: the label whose value comes next


def _parse(text: str) -> object:
    """The first value of a pg_node_tree text, as ``_Node``/``list``/``str``; ``ValueError`` when malformed.

    Iterative, so that a deeply nested expression in a view cannot exhaust Python's stack. A Datum
    (``:constvalue 4 [ 1 0 0 0 ]``) is the one value of two parts: its length is kept, the bytes in brackets are
    skipped (a bracket token can only appear there, as a label's value is read first).
    """
    root: list[object] = []
    stack: list[_Node | list[object]] = [root]

    def place(value: object) -> None:
        top = stack[-1]
        if isinstance(top, list):
            top.append(value)
        elif top.label is not None:
            top.fields[top.label] = value
            top.label = None
        else:
            raise ValueError(f"malformed pg_node_tree: value without a label in {top.type}")

    tokens = iter(_TOKEN.findall(text))
    for tok in tokens:
        top = stack[-1]
        if tok == "{":
            node = _Node(next(tokens, ""))
            if node.type in ("", "{", "}", "(", ")"):
                raise ValueError("malformed pg_node_tree: node without a type")
            place(node)
            stack.append(node)
        elif tok == "(":
            items: list[object] = []
            place(items)
            stack.append(items)
        elif tok in ("}", ")"):
            want = _Node if tok == "}" else list
            if len(stack) == 1 or not isinstance(top, want) or (isinstance(top, _Node) and top.label is not None):
                raise ValueError(f"malformed pg_node_tree: unexpected {tok!r}")
            stack.pop()
        elif isinstance(top, _Node) and top.label is None:
            if tok == "[":
                if "]" not in tokens:  # consumes the Datum's bytes up to and including "]"
                    raise ValueError("malformed pg_node_tree: unterminated datum")
            elif tok.startswith(":"):
                top.label = tok
            else:
                raise ValueError(f"malformed pg_node_tree: {tok[:40]!r} where a label belongs in {top.type}")
        else:
            place(tok)
    if len(stack) != 1 or not root:
        raise ValueError("malformed pg_node_tree: unbalanced or empty")
    return root[0]


def _int(node: _Node, label: str) -> int:
    value = node.fields.get(label)
    if not isinstance(value, str):
        raise ValueError(f"malformed pg_node_tree: {node.type} has no {label}")
    return int(value)


def _nodes(value: object, type_: str) -> list[_Node]:
    """The nodes of one type in a list value (``<>``, the empty list, gives [])."""
    return [v for v in value if isinstance(v, _Node) and v.type == type_] if isinstance(value, list) else []


Origins = dict[int, tuple[tuple[int, int], ...]]


def _query_origins(query: _Node, depth: int) -> Origins:
    """resno -> the (relation OID, attnum) pairs PostgreSQL recorded for the query's output columns.

    A set operation (UNION, INTERSECT, EXCEPT, with or without ALL) records no origin on its own output columns
    (``:resorigtbl 0``); its branches do, in the subqueries its ``:setOperations`` tree points at through the
    range table. A set-operation column takes the origins of that column in every branch, so a ``UNION`` of
    ``customers.email`` and ``suppliers.email`` is both. Branches that are set operations themselves (or
    parenthesised queries with their own ORDER BY/LIMIT) are followed the same way.
    """
    out: dict[int, list[tuple[int, int]]] = {}
    for tle in _nodes(query.fields.get(":targetList"), "TARGETENTRY"):
        if tle.fields.get(":resjunk") == "false" and (tbl := _int(tle, ":resorigtbl")) != 0:
            out.setdefault(_int(tle, ":resno"), []).append((tbl, _int(tle, ":resorigcol")))
    setop = query.fields.get(":setOperations")
    if isinstance(setop, _Node) and depth < MAX_DEPTH:
        rtable = query.fields.get(":rtable")
        rtable = rtable if isinstance(rtable, list) else []
        todo = [setop]
        while todo:
            op = todo.pop()
            for side in (op.fields.get(":larg"), op.fields.get(":rarg")):
                if not isinstance(side, _Node):
                    continue
                if side.type == "SETOPERATIONSTMT":
                    todo.append(side)
                    continue
                index = _int(side, ":rtindex") if side.type == "RANGETBLREF" else 0
                rte = rtable[index - 1] if 0 < index <= len(rtable) else None
                sub = rte.fields.get(":subquery") if isinstance(rte, _Node) else None
                if isinstance(sub, _Node) and sub.type == "QUERY":
                    for resno, pairs in _query_origins(sub, depth + 1).items():
                        out.setdefault(resno, []).extend(pairs)
    return {resno: tuple(dict.fromkeys(pairs)) for resno, pairs in out.items()}


def view_origins(ev_action: str) -> Origins:
    """View column attnum -> the (relation OID, attnum) pairs it is a plain reference to, from ``pg_rewrite.ev_action``.

    ``ev_action`` is the text of a view's ``_RETURN`` rule: a list holding one Query. Only that top-level Query's
    target list describes the view's columns; the queries nested in its range table, CTEs and sublinks have target
    lists of their own and are ignored, except the branches of a set operation (see ``_query_origins``). PostgreSQL
    records the origin through subqueries in FROM, non-recursive CTEs and joins, not through expressions; a column
    with no recorded origin is absent from the result. An origin may itself be a view: the caller follows it.
    Raises ``ValueError`` when the text is not a pg_node_tree Query list.
    """
    tree = _parse(ev_action)
    queries = _nodes(tree, "QUERY")
    if not queries:
        raise ValueError("malformed pg_node_tree: not a list of Query nodes")
    return _query_origins(queries[0], 0)


# --- the catalog ----------------------------------------------------------------------------------------------------

# One row per relation and one round trip per level of views: the columns as two parallel arrays, the inheritance
# parents (a partition's partitioned table) and, for views and materialized views, the stored query.
_RELATIONS = """
SELECT c.oid, n.nspname::text, c.relname::text,
       ARRAY(SELECT a.attnum FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
       ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
       ARRAY(SELECT i.inhparent FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid ORDER BY i.inhseqno),
       CASE WHEN c.relkind IN ('v', 'm') THEN
         (SELECT r.ev_action::text FROM pg_catalog.pg_rewrite r WHERE r.ev_class = c.oid AND r.rulename = '_RETURN')
       END
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = ANY(%s::pg_catalog.oid[])
"""


@dataclass(frozen=True, slots=True)
class _Relation:
    """What one row of ``_RELATIONS`` says, before views and parents are followed."""

    schema: str
    name: str
    columns: dict[int, str]  # attnum -> attname
    origins: Origins  # views: attnum -> the columns it refers to
    parents: tuple[int, ...]

    def refs(self) -> set[int]:
        return {oid for pairs in self.origins.values() for oid, _ in pairs} | set(self.parents)


@dataclass(frozen=True, slots=True)
class _Entry:
    loaded_at: float  # the oldest fetch its names were resolved from
    relation: _Relation | None  # None: no such relation
    names: dict[int, tuple[ColumnName, ...]]


class Catalog:
    """One per configured upstream connection, shared by all its sessions."""

    def __init__(self, conn: PostgresConnection, name: str, ttl: float = 60.0) -> None:
        self._conn_cfg = conn
        self._name = name
        self._ttl = ttl
        self._timeout = float(conn.connect_timeout)
        self._entries: dict[int, _Entry] = {}
        self._generation = 0
        self._lock = asyncio.Lock()
        self._db: psycopg.AsyncConnection[Any] | None = None
        self._abandoned: set[asyncio.Task[None]] = set()
        self._failure: tuple[float, CatalogUnavailable] | None = None  # the last failed load: when, why

    # --- answers from memory ---------------------------------------------------------------------------------------

    def _fresh(self, oid: int, now: float) -> _Entry | None:
        entry = self._entries.get(oid)
        return entry if entry is not None and now - entry.loaded_at < self._ttl else None

    def names(self, oid: int, attnum: int) -> tuple[ColumnName, ...] | None:
        """The names of result column (oid, attnum): first the relation's own (schema, relname, attname), then,
        for a view/matview column that is a plain reference to another relation's column, that column's names
        (recursively, deduplicated). None when `oid` is not loaded or its entry is older than ttl (caller must
        `await load`). () when the relation is loaded but has no such column (dropped/unknown attnum) or the oid
        is not a relation (anymore), and for oid 0 (a column that is not a relation's).

        A partition's column is also named as its partitioned table's column (and so on up the tree), as is a
        column inherited with INHERITS: a rule on the partitioned table covers a query on one partition. A column
        of a set-operation view (UNION...) is named as the columns of all its branches (see ``view_origins``).
        """
        if oid == 0:  # an expression, not a relation's column; ``missing`` ignores it too
            return ()
        entry = self._fresh(oid, time.monotonic())
        return None if entry is None else entry.names.get(attnum, ())

    def missing(self, oids: Iterable[int]) -> set[int]:
        """The oids among these (ignore 0) that `names` would answer None for."""
        now = time.monotonic()
        return {oid for oid in oids if oid != 0 and self._fresh(oid, now) is None}

    def invalidate(self) -> None:
        """Forget everything (called after DDL through the gateway).

        A ``load`` that is reading while this runs starts over, so it does not store what it read before the DDL.
        """
        self._entries.clear()
        self._generation += 1

    # --- loading ---------------------------------------------------------------------------------------------------

    async def load(self, oids: Iterable[int]) -> None:
        """Load these relations (and, for views, the relations their columns come from). Concurrent callers share
        one connection (asyncio.Lock); an oid already loaded fresh by a concurrent call is not fetched twice.
        Raises CatalogUnavailable (with a timeout of conn.connect_timeout for connect and each query).

        Callers that were waiting for the lock while a load failed get that failure at once rather than each
        trying again in turn: against an unreachable upstream, a burst of sessions fails within one timeout.
        """
        wanted = {oid for oid in oids if oid != 0}
        if not self.missing(wanted):
            return
        asked_at = time.monotonic()
        async with self._lock:
            if self._failure is not None and self._failure[0] >= asked_at:
                raise CatalogUnavailable(str(self._failure[1]))
            try:
                for attempt in range(_RESTARTS + 1):
                    pending = self.missing(wanted)
                    if not pending:
                        return
                    generation = self._generation
                    fetched = await self._fetch_closure(pending)
                    if generation == self._generation or attempt == _RESTARTS:
                        self._store(fetched)
                        return
            except CatalogUnavailable as exc:
                self._failure = (time.monotonic(), exc)
                raise

    async def _fetch_closure(self, pending: set[int]) -> dict[int, _Relation | None]:
        """Fetch these relations and, level by level, the stale or unknown relations they refer to."""
        fetched: dict[int, _Relation | None] = {}
        depth = 0
        while pending:
            if depth == MAX_DEPTH:
                raise CatalogUnavailable(
                    f'cannot read the catalog of connection "{self._name}": views or partitions nested more than '
                    f"{MAX_DEPTH} levels deep"
                )
            depth += 1
            rows = await self._query(sorted(pending))
            level: dict[int, _Relation | None] = dict.fromkeys(pending)
            level |= {int(row[0]): self._relation(row) for row in rows}
            fetched |= level
            now = time.monotonic()
            pending = {
                ref
                for rel in level.values()
                if rel is not None
                for ref in rel.refs()
                if ref not in fetched and self._fresh(ref, now) is None
            }
        return fetched

    def _relation(self, row: tuple[Any, ...]) -> _Relation:
        oid, schema, name, attnums, attnames, parents, ev_action = row
        origins: Origins = {}
        if ev_action is not None:
            try:
                origins = view_origins(ev_action)
            except ValueError as exc:
                # Fail closed: a view whose sources cannot be told would otherwise go unmasked.
                raise CatalogUnavailable(
                    f'cannot read the catalog of connection "{self._name}": the definition of view '
                    f"{schema}.{name} (oid {oid}) could not be read ({exc})"
                ) from None
        return _Relation(
            schema=schema,
            name=name,
            columns=dict(zip((int(a) for a in attnums), attnames, strict=True)),
            origins=origins,
            parents=tuple(int(p) for p in parents),
        )

    def _store(self, fetched: dict[int, _Relation | None]) -> None:
        """Resolve every fetched relation's columns to their names and cache them.

        An entry counts as loaded when the oldest relation its names come from was, so it expires with them.
        """
        now = time.monotonic()
        relations: dict[int, tuple[float, _Relation | None]] = {}
        for oid, entry in self._entries.items():
            if now - entry.loaded_at < self._ttl:
                relations[oid] = (entry.loaded_at, entry.relation)
        relations |= {oid: (now, rel) for oid, rel in fetched.items()}
        memo: dict[tuple[int, int], tuple[tuple[ColumnName, ...], float]] = {}

        def resolve(oid: int, attnum: int, seen: frozenset[int]) -> tuple[tuple[ColumnName, ...], float]:
            key = (oid, attnum)
            if key in memo:
                return memo[key]
            loaded_at, rel = relations.get(oid, (now, None))
            if rel is None or attnum not in rel.columns or oid in seen:  # a cycle of views cannot be queried anyway
                return (), loaded_at
            attname = rel.columns[attnum]
            names = [ColumnName(rel.schema, rel.name, attname)]
            refs = list(rel.origins.get(attnum, ()))
            for parent in rel.parents:
                parent_rel = relations.get(parent, (now, None))[1]
                by_name = {n: a for a, n in parent_rel.columns.items()} if parent_rel is not None else {}
                if attname in by_name:
                    refs.append((parent, by_name[attname]))
            for ref_oid, ref_attnum in refs:
                ref_names, ref_loaded = resolve(ref_oid, ref_attnum, seen | {oid})
                names.extend(ref_names)
                loaded_at = min(loaded_at, ref_loaded)
            memo[key] = (tuple(dict.fromkeys(names)), loaded_at)
            return memo[key]

        for oid, rel in fetched.items():
            columns: dict[int, tuple[ColumnName, ...]] = {}
            loaded_at = now
            for attnum in rel.columns if rel is not None else ():
                columns[attnum], when = resolve(oid, attnum, frozenset())
                loaded_at = min(loaded_at, when)
            self._entries[oid] = _Entry(loaded_at, rel, columns)

    # --- the connection --------------------------------------------------------------------------------------------

    async def _query(self, oids: list[int]) -> list[tuple[Any, ...]]:
        """Run ``_RELATIONS``; a kept connection found broken is replaced once."""
        retried = False
        while True:
            db, reused = await self._connection()
            try:
                return await self._bounded(self._execute(db, oids), "reading the catalog", db)
            except psycopg.Error as exc:
                if retried or not reused or not db.broken:
                    raise self._unavailable(exc) from None
                log.warning('catalog connection of "%s" lost (%s); reconnecting', self._name, self._reason(exc))
                await self._discard()
                retried = True

    @staticmethod
    async def _execute(db: psycopg.AsyncConnection[Any], oids: list[int]) -> list[tuple[Any, ...]]:
        cur = await db.execute(_RELATIONS, [oids])
        return await cur.fetchall()

    async def _connection(self) -> tuple[psycopg.AsyncConnection[Any], bool]:
        """The kept connection (True), or a new one (False)."""
        if self._db is not None and not self._db.closed:
            return self._db, True
        params = connect_params(self._conn_cfg, "wardgate-catalog", self._timeout)
        connect = psycopg.AsyncConnection.connect(autocommit=True, prepare_threshold=None, **params)
        try:
            self._db = await self._bounded(connect, "connecting", None)
        except psycopg.Error as exc:
            raise self._unavailable(exc) from None
        return self._db, False

    async def _bounded(self, work: Awaitable[_T], doing: str, db: psycopg.AsyncConnection[Any] | None) -> _T:
        """``work`` within the timeout, or CatalogUnavailable at once.

        Cancelling a psycopg query makes psycopg cancel it on the server and wait up to seconds more for that; the
        caller should not wait for it. So the work runs as a task; on timeout (or if the caller is cancelled) the
        task is cancelled and finished in the background, and the connection it used is dropped and closed then.
        """
        task = asyncio.ensure_future(work)
        try:
            done, _ = await asyncio.wait({task}, timeout=self._timeout)
        except BaseException:
            self._abandon(task, db)
            raise
        if not done:
            self._abandon(task, db)
            raise CatalogUnavailable(
                f'cannot read the catalog of connection "{self._name}" ({self._conn_cfg.address}): '
                f"timed out after {self._timeout:g}s {doing}"
            )
        return task.result()

    def _abandon(self, task: asyncio.Future[Any], db: psycopg.AsyncConnection[Any] | None) -> None:
        if db is not None and db is self._db:
            self._db = None

        async def finish() -> None:
            task.cancel()
            await asyncio.wait({task})
            result = None if task.cancelled() or task.exception() is not None else task.result()
            for conn in (db, result):
                if isinstance(conn, psycopg.AsyncConnection):
                    await conn.close()

        cleanup = asyncio.ensure_future(finish())
        self._abandoned.add(cleanup)
        cleanup.add_done_callback(self._abandoned.discard)

    async def _discard(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    async def close(self) -> None:
        """Close the connection; a later ``load`` opens a new one."""
        async with self._lock:
            await self._discard()
        if self._abandoned:
            await asyncio.wait(set(self._abandoned))

    # --- messages --------------------------------------------------------------------------------------------------

    def _reason(self, exc: BaseException) -> str:
        """Why, in words safe for a client: the server's own message, or libpq's first line, never a secret."""
        if isinstance(exc, psycopg.Error) and exc.sqlstate and exc.diag.message_primary:
            text = f"{exc.diag.message_primary} (SQLSTATE {exc.sqlstate})"
        else:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            low = first.lower()
            if "refused" in low:
                text = "connection refused"
            elif "timeout" in low or "timed out" in low:
                text = "timed out"
            elif "could not translate host name" in low or "name or service not known" in low:
                text = "host name not found"
            elif "no password supplied" in low:
                text = "authentication failed: the server asks for a password and none is configured"
            elif "server closed the connection" in low or "consuming input failed" in low:
                text = "the server closed the connection"
            else:  # libpq's words without its preamble: 'database "x" does not exist', 'server does not support SSL...'
                text = _LIBPQ_PREAMBLE.sub("", first)
        password = self._conn_cfg.password.value if self._conn_cfg.password is not None else ""
        if password:
            text = text.replace(password, "***")
        return text[:300]

    def _unavailable(self, exc: BaseException) -> CatalogUnavailable:
        return CatalogUnavailable(
            f'cannot read the catalog of connection "{self._name}" ({self._conn_cfg.address}): {self._reason(exc)}'
        )
