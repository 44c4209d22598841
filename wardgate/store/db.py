"""The store: one engine, migrations at start, and every query the gateway and the CLI run.

SQLite (WAL) is the embedded default; PostgreSQL is the same schema for several replicas. Queries are plain
SQLAlchemy Core so both dialects run the same code.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import DateTime, Engine, create_engine, delete, event, func, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from ..audit import _records
from ..audit.chain import Entry
from . import chainlog, schema

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x77617264  # "ward": serialises migrations of replicas starting together


class StoreError(Exception):
    """The store cannot be reached or written; callers fail closed."""


def engine_url(url: str) -> str:
    """Use the psycopg 3 driver for PostgreSQL URLs written the usual way."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def utc(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything the store writes is UTC."""
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Write:
    """One audit write: an insert or an update by primary key.

    ``values`` is a dict of columns, or, for inserts on the hot path, a tuple in the order of
    ``INSERT_COLUMNS[table]`` (no per-record dict to build and encode). Not frozen, though nothing changes one:
    the shipper builds one or two per record, and a frozen dataclass's ``__init__`` (``object.__setattr__`` per
    field) costs ~7x a plain one's (1.7 us against 0.24 for six fields, here).
    """

    table: str
    values: dict[str, Any] | tuple[Any, ...]
    key: str | None = None  # set for updates: the primary-key column to match


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.audit_key_file: Path | None = None  # the checkpoint key, for writers that sign their own chain (CLI)
        self._sql_cache: dict[tuple[str, str, tuple[str, ...], str | None], str] = {}
        if self.is_sqlite:
            path = url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                url, connect_args={"timeout": 30, "check_same_thread": False}, pool_pre_ping=False
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
            # Python 3.11's sqlite3 binds None through its adaptation protocol, which looks for __adapt__ and
            # __conform__ and fails (an AttributeError made and cleared each time): ~230 ns per None, and a
            # statement record holds several (its shipper's largest cost after SQLite's own). An adapter
            # registered for NoneType answers from the registry: a C call that returns None, bound as NULL, as
            # before. The registry is the process's; None stays NULL for every other user of sqlite3 too.
            sqlite3.register_adapter(type(None), _NONE_ADAPTER)
        else:
            self.engine = create_engine(engine_url(url), pool_pre_ping=True, pool_size=5, max_overflow=5)

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Any database failure leaves the store as a StoreError, which callers fail closed on."""
        try:
            yield
        except SQLAlchemyError as exc:
            raise StoreError(f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}") from exc

    def describe(self) -> str:
        """The URL without credentials, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    def migrate(self) -> None:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as conn:
                if not self.is_sqlite:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot prepare the store at {self.describe()}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
            ) from exc

    def close(self) -> None:
        self.engine.dispose()

    # --- writes -------------------------------------------------------------------------------------------

    def write(self, writes: Sequence[Write], journal: tuple[str, int] | None = None,
              chain: str | None = None) -> Entry | None:
        """Apply a batch in one transaction: all of it or none of it.

        With ``journal`` (name, offset), the journal's committed offset moves in the same transaction, so a
        replay after a crash starts exactly after the last batch that reached the store. With ``chain``, the
        audit records among the writes are appended to that hash chain in the same transaction (chainlog.py);
        the chain's new head is returned (None when nothing was chained).

        This is the audit writer's hot path and its thread shares the interpreter with the relay, so it speaks
        DB-API directly: one executemany of plain tuples per run of inserts, statements built once per shape.
        """
        dbapi_error = self.engine.dialect.loaded_dbapi.Error
        try:
            raw = self.engine.raw_connection()
        except SQLAlchemyError as exc:
            raise StoreError(f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}") from exc
        try:
            cur = raw.cursor()
            self._apply(cur, writes)
            head = None
            if chain is not None:
                recs = chainlog.records(writes)
                if recs:
                    head = chainlog.append(cur, self.is_sqlite, chain, recs)
            if journal is not None:
                cur.execute(self._offset_sql(), (journal[0], journal[1], self._time_value(time.time())))
            raw.commit()
            return head
        except dbapi_error as exc:
            with contextlib.suppress(dbapi_error):
                raw.rollback()
            raise StoreError(f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}") from exc
        finally:
            raw.close()

    def journal_offset(self, name: str) -> int:
        t = schema.journal_offsets
        with self._guard(), self.engine.connect() as conn:
            value = conn.execute(select(t.c.offset).where(t.c.journal == name)).scalar()
        return int(value or 0)

    def forget_journal(self, name: str) -> None:
        t = schema.journal_offsets
        with self._guard(), self.engine.begin() as conn:
            conn.execute(delete(t).where(t.c.journal == name))

    def _apply(self, cur: Any, writes: Iterable[Write]) -> None:
        """Run writes in order; consecutive inserts into one table go as one executemany."""
        run: list[dict[str, Any] | tuple[Any, ...]] = []
        run_table = ""
        for w in writes:
            if w.key is None and w.table == run_table and type(w.values) is type(run[0]):
                run.append(w.values)
                continue
            if run:
                self._insert_many(cur, run_table, run)
                run, run_table = [], ""
            if w.key is None:
                run, run_table = [w.values], w.table
            else:
                assert isinstance(w.values, dict), "updates name their columns"
                times = _TIME_COLUMNS.get(w.table, ())
                sets = [c for c in w.values if c != w.key]
                params = [self._time_value(w.values[c]) if c in times else w.values[c] for c in sets]
                cur.execute(self._sql(("update", w.table, tuple(sets), w.key)), (*params, w.values[w.key]))
        if run:
            self._insert_many(cur, run_table, run)

    def _insert_many(self, cur: Any, table_name: str, rows: list[dict[str, Any] | tuple[Any, ...]]) -> None:
        times = _TIME_COLUMNS.get(table_name, ())
        convert = self._time_value
        first = rows[0]
        if isinstance(first, tuple):
            columns = INSERT_COLUMNS[table_name]
            slots = [i for i, c in enumerate(columns) if c in times]
            params: list[tuple[Any, ...]] = []
            if slots and self.is_sqlite:  # the shipper's every batch: in C, the same text (``_records.c``)
                params = _records.sqlite_rows(rows, slots, convert)  # type: ignore[arg-type]
            else:
                for r in rows:
                    if slots:
                        lst = list(r)
                        for i in slots:
                            lst[i] = convert(lst[i])
                        r = tuple(lst)  # noqa: PLW2901
                    params.append(r)  # type: ignore[arg-type]
        else:
            columns = tuple(first)
            params = [tuple(convert(r[c]) if c in times else r[c] for c in columns) for r in rows]  # type: ignore[call-overload]
        cur.executemany(self._sql(("insert", table_name, columns, None)), params)

    def _time_value(self, v: Any) -> Any:
        if v is None or isinstance(v, str):
            return v
        if not self.is_sqlite:
            return _as_datetime(v)  # PostgreSQL takes the aware datetime
        # SQLite keeps SQLAlchemy's DateTime as text; the "+00:00" a UTC datetime adds is sliced off.
        return v.isoformat(" ", "microseconds")[:26] if isinstance(v, datetime) else sqlite_time(float(v))

    def _sql(self, key: tuple[str, str, tuple[str, ...], str | None]) -> str:
        """INSERT or UPDATE text for one table and column set, in the driver's own parameter style."""
        text_ = self._sql_cache.get(key)
        if text_ is None:
            verb, table, columns, where = key
            mark = "?" if self.is_sqlite else "%s"
            q = self.engine.dialect.identifier_preparer.quote
            if verb == "insert":
                text_ = (
                    f"INSERT INTO {q(table)} ({', '.join(q(c) for c in columns)}) "
                    f"VALUES ({', '.join(mark for _ in columns)})"
                )
            else:
                assert where is not None
                text_ = (
                    f"UPDATE {q(table)} SET {', '.join(f'{q(c)} = {mark}' for c in columns)} WHERE {q(where)} = {mark}"
                )
            self._sql_cache[key] = text_
        return text_

    def _offset_sql(self) -> str:
        mark = "?" if self.is_sqlite else "%s"
        q = self.engine.dialect.identifier_preparer.quote
        off = q("offset")
        return (
            f"INSERT INTO journal_offsets (journal, {off}, updated_at) VALUES ({mark}, {mark}, {mark}) "
            f"ON CONFLICT (journal) DO UPDATE SET {off} = excluded.{off}, updated_at = excluded.updated_at"
        )

    # --- signing keys ----------------------------------------------------------------------------------------

    def signing_keys(self) -> list[dict[str, Any]]:
        with self._guard(), self.engine.connect() as conn:
            rows = conn.execute(select(schema.signing_keys).order_by(schema.signing_keys.c.created_at))
            return [dict(r._mapping) for r in rows]

    def add_signing_key(self, kid: str, algorithm: str, private_pem: str, public_pem: str) -> None:
        self.write(
            [
                Write(
                    "signing_keys",
                    {
                        "kid": kid,
                        "algorithm": algorithm,
                        "private_pem": private_pem,
                        "public_pem": public_pem,
                        "created_at": now(),
                    },
                )
            ]
        )

    # --- tokens ------------------------------------------------------------------------------------------------

    def token(self, token_id: str) -> dict[str, Any] | None:
        with self._guard(), self.engine.connect() as conn:
            row = conn.execute(select(schema.tokens).where(schema.tokens.c.id == token_id)).first()
        return _token_row(row._mapping) if row else None

    def tokens(self, subject: str | None = None) -> list[dict[str, Any]]:
        q = select(schema.tokens).order_by(schema.tokens.c.created_at)
        if subject:
            q = q.where(schema.tokens.c.subject == subject)
        with self._guard(), self.engine.connect() as conn:
            return [_token_row(r._mapping) for r in conn.execute(q)]

    def revoke_token(self, token_id: str) -> bool:
        with self._guard(), self.engine.begin() as conn:
            res = conn.execute(
                update(schema.tokens)
                .where(schema.tokens.c.id == token_id, schema.tokens.c.revoked_at.is_(None))
                .values(revoked_at=now())
            )
            return bool(res.rowcount)

    # --- sessions and statements -------------------------------------------------------------------------------

    def sessions(
        self,
        limit: int = 50,
        user: str | None = None,
        connection: str | None = None,
    ) -> list[dict[str, Any]]:
        s = schema.sessions
        counts = (
            select(schema.statements.c.session_id, func.count().label("statements"))
            .group_by(schema.statements.c.session_id)
            .subquery()
        )
        q = (
            select(s, func.coalesce(counts.c.statements, 0).label("statements"))
            .outerjoin(counts, counts.c.session_id == s.c.id)
            .order_by(s.c.started_at.desc())
            .limit(limit)
        )
        if user:
            q = q.where(s.c.user == user)
        if connection:
            q = q.where(s.c.connection == connection)
        with self._guard(), self.engine.connect() as conn:
            return [_session_row(r._mapping) for r in conn.execute(q)]

    def session(self, session_id: str) -> dict[str, Any] | None:
        s = schema.sessions
        with self._guard(), self.engine.connect() as conn:
            rows = list(conn.execute(select(s).where(s.c.id.startswith(session_id)).limit(2)))
        if len(rows) != 1:
            return None
        return _session_row(rows[0]._mapping)

    def statements(self, session_id: str) -> list[dict[str, Any]]:
        st = schema.statements
        with self._guard(), self.engine.connect() as conn:
            rows = conn.execute(select(st).where(st.c.session_id == session_id).order_by(st.c.seq))
            return [_dated(dict(r._mapping), "started_at") for r in rows]

    def events(self, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        e = schema.events
        q = select(e).order_by(e.c.id.desc()).limit(limit)
        if kind:
            q = q.where(e.c.kind == kind)
        with self._guard(), self.engine.connect() as conn:
            out = []
            for r in conn.execute(q):
                row = _dated(dict(r._mapping), "at")
                row["detail"] = json.loads(row["detail"])
                out.append(row)
            return out


_NONE_ADAPTER: Any = {}.get  # get(None) is None, in C: Store.__init__ says why


_second_text: dict[int, str] = {}


def sqlite_time(t: float) -> str:
    """Epoch seconds as the text SQLAlchemy's DateTime keeps in SQLite (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC),
    exactly what ``datetime.fromtimestamp(t, UTC)`` gives (microseconds rounded half to even). The shipper
    converts every record's times: the date-and-second part is made once per second (a run of records shares
    it), which makes this a third of the datetime route's cost."""
    sec = int(t)
    us = round((t - sec) * 1e6)  # t - int(t) is exact for a double; one rounding, as datetime's C code does
    if us >= 1_000_000 or t < 0:
        return datetime.fromtimestamp(t, UTC).isoformat(" ", "microseconds")[:26]
    head = _second_text.get(sec)
    if head is None:
        if len(_second_text) > 4096:
            _second_text.clear()
        head = _second_text[sec] = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%d %H:%M:%S.")
    return f"{head}{us:06d}"


def _as_datetime(v: Any) -> datetime | None:
    if v is None or isinstance(v, datetime):
        return v
    return datetime.fromtimestamp(float(v), UTC)


# The column order of positional (tuple) inserts: every column but an autoincrement key.
INSERT_COLUMNS = {
    t.name: tuple(c.name for c in t.columns if not (c.primary_key and c.autoincrement is True))
    for t in schema.metadata.tables.values()
}

# Columns whose records carry epoch seconds (cheap to make and to journal) and the store keeps as timestamps.
_TIME_COLUMNS = {
    t.name: frozenset(c.name for c in t.columns if isinstance(c.type, DateTime))
    for t in schema.metadata.tables.values()
}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _dated(row: dict[str, Any], *cols: str) -> dict[str, Any]:
    for c in cols:
        row[c] = utc(row[c])
    return row


def _token_row(m: Any) -> dict[str, Any]:
    row = _dated(dict(m), "created_at", "expires_at", "revoked_at")
    row["groups"] = json.loads(row["groups"])
    return row


def _session_row(m: Any) -> dict[str, Any]:
    row = _dated(dict(m), "started_at", "ended_at")
    row["groups"] = json.loads(row["groups"])
    return row
