"""The pure parts of the live audit sinks: RFC 5424 and octet counting, the webhook signature, file rotation,
bounded backlogs and their accounting, loss reports, the settings handed to the shipper, and the records."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import pytest

from wardgate.audit.chain import iso
from wardgate.audit.export import session_start_record, statement_record
from wardgate.audit.sinks import LOSS_REPORT_EVERY, SinkHub, parse_sinks, sinks_argument
from wardgate.audit.sinks.delivery import Backlog, Sink, SinkError
from wardgate.audit.sinks.file import FileTransport, rotation_plan
from wardgate.audit.sinks.records import UNKNOWN, RecordMaker, SinkRecord, record_time, sink_record
from wardgate.audit.sinks.syslog import (
    FACILITIES,
    SD_ID,
    format_message,
    header_field,
    octet_frame,
    sd_escape,
    severity,
    structured_data,
)
from wardgate.audit.sinks.webhook import body_of, redacted, signature
from wardgate.config import ConfigError, FileSinkConfig, SyslogFacility, load_config
from wardgate.store.db import INSERT_COLUMNS, Write

SECRET = "s3cret-s3cret-s3cret"


def rec(**fields: Any) -> SinkRecord:
    return sink_record({"time": "2026-03-01T12:00:00.123456Z", "type": "statement", **fields})


# --- syslog ----------------------------------------------------------------------------------------------------


def test_sd_values_escape_exactly_quote_backslash_and_bracket() -> None:
    assert sd_escape('a"b\\c]d[e=f') == 'a\\"b\\\\c\\]d[e=f'
    sd = structured_data({"type": "statement", "user": 'ann"]\\', "connection": "app", "rule": None, "status": ""})
    assert sd == f'[{SD_ID} type="statement" user="ann\\"\\]\\\\" connection="app"]'


def test_header_fields_are_printable_ascii_without_spaces() -> None:
    assert header_field("my host\tname", 255) == "my_host_name"
    assert header_field("", 48) == "-"
    assert header_field("é" + "x" * 60, 32) == "_" + "x" * 31


def test_message_layout_priority_and_msgid() -> None:
    r = rec(user="ann", connection="app", session_id="s1", status="ok", statement="select $1")
    msg = format_message(r, facility=FACILITIES["local3"], hostname="db gw", app_name="wardgate", procid="42",
                         limit=8192).decode()
    head, sd_and_msg = msg.split(" [", 1)
    assert head == "<158>1 2026-03-01T12:00:00.123456Z db_gw wardgate 42 statement"  # local3*8 + info
    sd, body = sd_and_msg.split("] ", 1)
    assert sd == f'{SD_ID} type="statement" user="ann" connection="app" session_id="s1" status="ok"'
    assert json.loads(body) == r.fields and body == r.line


def test_severity_marks_what_an_operator_should_see() -> None:
    assert severity({"type": "statement", "status": "ok"}) == 6
    assert severity({"type": "statement", "status": "denied"}) == 5
    assert severity({"type": "auth_failed"}) == 5
    assert severity({"type": "audit_sink_lost"}) == 5
    assert severity({"type": "session_start"}) == 6


def test_a_long_record_is_cut_to_fit_and_stays_json() -> None:
    r = rec(user="ann", statement="select " + "'\"x\"'," * 2000, detail="d" * 3000)
    msg = format_message(r, facility=16, hostname="h", app_name="wardgate", procid="1", limit=600)
    assert len(msg) <= 600
    body = json.loads(msg.decode().split("] ", 1)[1])
    assert body["truncated"] is True and body["type"] == "statement" and body["time"] == r.time
    assert body["user"] == "ann"  # the long fields went first
    assert r.fields["statement"].startswith(body["statement"])
    short = format_message(rec(user="ann"), facility=16, hostname="h", app_name="wardgate", procid="1", limit=600)
    assert b"truncated" not in short


def test_octet_counting_counts_bytes_not_characters() -> None:
    assert octet_frame(b"hello") == b"5 hello"
    m = "<134>1 - - - - - - é".encode()
    assert octet_frame(m) == str(len(m)).encode() + b" " + m and len(m) == len("<134>1 - - - - - - é") + 1


def test_every_configurable_facility_has_a_code() -> None:
    assert set(get_args(SyslogFacility)) == set(FACILITIES)
    assert sorted(FACILITIES.values()) == list(range(24))


# --- webhook ---------------------------------------------------------------------------------------------------


def test_signature_covers_timestamp_and_body() -> None:
    body = body_of([rec(user="a"), rec(user="b")])
    assert json.loads(body) == [rec(user="a").fields, rec(user="b").fields]
    sig = signature(SECRET.encode(), "1700000000", body)
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sig == "sha256=" + expected
    assert signature(SECRET.encode(), "1700000001", body) != sig
    assert signature(SECRET.encode(), "1700000000", body + b" ") != sig


def test_urls_in_messages_keep_only_where_they_go() -> None:
    assert redacted("https://siem.example:8443/collector/TOKEN123?key=abc") == "https://siem.example:8443"


# --- file ------------------------------------------------------------------------------------------------------


def test_rotation_names() -> None:
    p = Path("/var/log/wg/audit.jsonl")
    assert rotation_plan(p, 3) == [
        (Path("/var/log/wg/audit.jsonl.3"), None),
        (Path("/var/log/wg/audit.jsonl.2"), Path("/var/log/wg/audit.jsonl.3")),
        (Path("/var/log/wg/audit.jsonl.1"), Path("/var/log/wg/audit.jsonl.2")),
        (p, Path("/var/log/wg/audit.jsonl.1")),
    ]
    assert rotation_plan(p, 1) == [(Path("/var/log/wg/audit.jsonl.1"), None), (p, Path("/var/log/wg/audit.jsonl.1"))]
    assert rotation_plan(p, 0) == [(p, None)]


def test_file_rotates_by_size_keeps_order_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    t = FileTransport(FileSinkConfig(name="f", type="file", path=path, max_bytes=1024, keep=2))
    records = [rec(seq=i, statement="x" * 40) for i in range(60)]
    for i in range(0, 60, 7):
        t.send(records[i : i + 7])
    t.close()
    files = [path.with_name("audit.jsonl.2"), path.with_name("audit.jsonl.1"), path]
    assert not path.with_name("audit.jsonl.3").exists()
    lines = []
    for f in files:
        assert 0 < f.stat().st_size <= 1024
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        lines += f.read_text().splitlines()
    seqs = [json.loads(line)["seq"] for line in lines]
    assert seqs == list(range(60 - len(seqs), 60)), "the newest records, in order, with nothing in between lost"
    assert len(seqs) < 60


# --- backlog, sink, hub ----------------------------------------------------------------------------------------


def test_backlog_drops_what_does_not_fit_and_counts_it() -> None:
    b: Backlog[int] = Backlog(3)
    assert b.put([1, 2, 3, 4, 5]) == 2 and b.dropped == 2
    assert b.take(2, 0.0, 0.0) == [1, 2]
    assert b.put([6, 7, 8]) == 1 and b.dropped == 3
    assert b.take(10, 0.0, 0.0) == [3, 6, 7]
    assert b.take(10, 0.0, 0.01) == []


def test_backlog_lingers_for_a_full_batch_unless_hurried() -> None:
    b: Backlog[int] = Backlog(100)
    b.put([1])
    threading.Timer(0.05, b.put, args=([2, 3],)).start()
    assert b.take(3, 2.0, 0.0) == [1, 2, 3]  # the batch filled before the linger ran out
    b.put([4])
    t0 = time.monotonic()
    assert b.take(3, 0.1, 0.0) == [4]
    assert time.monotonic() - t0 >= 0.09
    b.put([5])
    b.hurry()
    t0 = time.monotonic()
    assert b.take(3, 5.0, 0.0) == [5] and time.monotonic() - t0 < 1


class FakeTransport:
    """Fails the first ``fail`` sends (optionally after taking ``partial`` records), then takes everything."""

    linger = 0.0
    backoff = 0.01

    def __init__(self, fail: int, retries: int | None, batch_size: int = 10, partial: int = 0,
                 hang: threading.Event | None = None) -> None:
        self.fail = fail
        self.retries = retries
        self.batch_size = batch_size
        self.partial = partial
        self.hang = hang
        self.got: list[Any] = []
        self.attempts = 0

    def send(self, batch: Sequence[SinkRecord]) -> None:
        self.attempts += 1
        if self.hang is not None:
            self.hang.wait(5)
        if self.attempts <= self.fail:
            self.got += [r.fields["seq"] for r in batch[: self.partial]]
            raise SinkError("receiver down", sent=self.partial)
        self.got += [r.fields["seq"] for r in batch]

    def close(self) -> None:
        pass


def _wait(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_failures_are_retried_partial_sends_are_not_repeated() -> None:
    t = FakeTransport(fail=3, retries=None, partial=1)
    sink = Sink("t", "fake", t, 100)
    sink.start()
    sink.offer([rec(seq=i) for i in range(8)])
    _wait(lambda: sink.counts().delivered == 8)
    assert t.got == list(range(8))
    sink.drain()
    sink.join(2)
    assert sink.abandon() == 0
    assert sink.counts().lost == 0


def test_a_batch_is_counted_failed_when_its_retries_are_spent() -> None:
    t = FakeTransport(fail=10**6, retries=2, batch_size=4)
    sink = Sink("t", "fake", t, 100)
    sink.start()
    sink.offer([rec(seq=i) for i in range(8)])
    _wait(lambda: sink.counts().failed == 8)
    assert t.attempts == 6  # two batches, three attempts each
    assert sink.last_error == "receiver down"


def test_what_is_left_at_shutdown_is_abandoned_and_every_record_is_accounted_for() -> None:
    hang = threading.Event()
    t = FakeTransport(fail=0, retries=None, batch_size=3, hang=hang)
    sink = Sink("t", "fake", t, 5)
    sink.start()
    sink.offer([rec(seq=i) for i in range(3)])
    _wait(lambda: len(sink.backlog) == 0)  # the first three are in flight, stuck in the receiver
    sink.offer([rec(seq=i) for i in range(3, 10)])  # five fit, two are dropped
    sink.drain()
    sink.join(0.1)
    assert sink.abandon() == 8
    hang.set()
    sink.join(2)
    c = sink.counts()
    assert (c.delivered, c.dropped, c.failed, c.abandoned) == (0, 2, 0, 8)
    sink.offer([rec(seq=99)])  # closed: nothing is queued any more
    assert len(sink.backlog) == 0


class LossySink(Sink):
    def __init__(self, name: str) -> None:
        super().__init__(name, "fake", FakeTransport(0, None), 1)

    def lose(self, n: int) -> None:
        self.backlog.dropped += n


def test_loss_events_at_most_once_a_minute_while_losses_grow_and_at_the_end() -> None:
    a, b = LossySink("a"), LossySink("b")
    hub = SinkHub([a, b], lambda writes: [])
    assert hub.loss_reports(1000.0) == []
    a.lose(3)
    (r,) = hub.loss_reports(1000.0)
    assert (r.sink, r.counts.dropped, r.final) == ("a", 3, False)
    hub.reported([r], 1000.0)
    a.lose(1)
    assert hub.loss_reports(1000.0 + LOSS_REPORT_EVERY - 1) == []
    (r,) = hub.loss_reports(1000.0 + LOSS_REPORT_EVERY)
    assert r.counts.lost == 4
    hub.reported([r], 1000.0 + LOSS_REPORT_EVERY)
    assert hub.loss_reports(5000.0) == []  # no new loss, no event
    final = hub.loss_reports(5000.0, final=True)
    assert [x.sink for x in final] == ["a"] and final[0].final
    detail = json.loads(final[0].event(0.0)["detail"])
    assert detail == {"sink": "a", "sink_type": "fake", "delivered": 0, "dropped": 4, "failed": 0, "abandoned": 0,
                      "lost": 4, "final": True}


# --- settings --------------------------------------------------------------------------------------------------


def _config(tmp_path: Path, sinks: list[dict[str, Any]]) -> Any:
    import yaml

    p = tmp_path / "wardgate.yaml"
    p.write_text(yaml.safe_dump({"listen": {"allow_plaintext": True}, "audit": {"sinks": sinks}}))
    return load_config(p)


def test_the_shipper_gets_references_never_secret_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WG_TEST_SINK_SECRET", SECRET)
    (tmp_path / "auth.txt").write_text("Splunk abcdefabcdef\n")
    cfg = _config(tmp_path, [
        {"name": "hook", "type": "webhook", "url": "https://siem.example/in", "secret": "env:WG_TEST_SINK_SECRET",
         "authorization": "file:auth.txt"},
        {"name": "f", "type": "file", "path": "audit.jsonl"},
        {"name": "s", "type": "syslog", "host": "127.0.0.1", "protocol": "tcp", "facility": "auth"}])
    arg = sinks_argument(cfg.audit.sinks)
    assert SECRET not in arg and "abcdefabcdef" not in arg
    assert "env:WG_TEST_SINK_SECRET" in arg and f"file:{tmp_path / 'auth.txt'}" in arg
    monkeypatch.chdir("/")  # the shipper resolves nothing relative to the config's directory
    again = parse_sinks(arg)
    assert again == list(cfg.audit.sinks)
    assert again[0].secret.value == SECRET and again[0].authorization.value == "Splunk abcdefabcdef"  # type: ignore[union-attr]
    monkeypatch.delenv("WG_TEST_SINK_SECRET")
    with pytest.raises(ValueError, match="WG_TEST_SINK_SECRET is not set") as err:
        parse_sinks(arg)
    assert SECRET not in str(err.value)


@pytest.mark.parametrize(("sinks", "problem"), [
    ([{"name": "a", "type": "file", "path": "x"}, {"name": "a", "type": "file", "path": "y"}],
     "sink names must be distinct: 'a' is used twice"),
    ([{"name": "a", "type": "file", "path": "x"}, {"name": "b", "type": "file", "path": "x"}], "two file sinks write"),
    ([{"name": "a", "path": "x"}], "sink 0 needs a type: one of file, syslog, webhook"),
    ([{"name": "a", "type": "kafka"}], "sink 0 has an unknown type 'kafka'"),
    ([{"name": "w", "type": "webhook", "url": "http://siem.example/in", "secret": "env:WG_TEST_SINK_SECRET"}],
     "the URL must be https:// (http only for a loopback host)"),
    ([{"name": "w", "type": "webhook", "url": "https://u:p@siem.example/in", "secret": "env:WG_TEST_SINK_SECRET"}],
     "must not hold credentials"),
    ([{"name": "w", "type": "webhook", "url": "https://siem.example/in", "secret": "env:WG_TEST_SHORT"}],
     "at least 16 bytes"),
    ([{"name": "w", "type": "webhook", "url": "https://siem.example/in", "secret": "inline-secret-value!"}],
     "secrets are never written inline"),
    ([{"name": "s", "type": "syslog", "host": "h", "max_message": 70000}], "at most 65507 bytes"),
    ([{"name": "s", "type": "syslog", "host": "h", "facility": "local9"}], "audit.sinks.0.syslog.facility"),
    ([{"name": "Bad Name", "type": "file", "path": "x"}], "audit.sinks.0.file.name"),
])
def test_bad_sink_settings_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sinks: list[dict[str, Any]],
                                     problem: str) -> None:
    monkeypatch.setenv("WG_TEST_SINK_SECRET", SECRET)
    monkeypatch.setenv("WG_TEST_SHORT", "short")
    with pytest.raises(ConfigError) as err:
        _config(tmp_path, sinks)
    assert problem in str(err.value)
    assert SECRET not in str(err.value) and "inline-secret-value" not in str(err.value)


def test_http_is_accepted_for_a_loopback_receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WG_TEST_SINK_SECRET", SECRET)
    cfg = _config(tmp_path, [{"name": "w", "type": "webhook", "url": "http://127.0.0.1:9/in",
                              "secret": "env:WG_TEST_SINK_SECRET"}])
    (w,) = cfg.audit.sinks
    assert (w.max_backlog, w.batch_size, w.retries) == (10_000, 100, 5)


# --- records ---------------------------------------------------------------------------------------------------


SESSION = {"id": "s1", "user": "ann", "groups": '["eng"]', "auth_method": "token", "token_id": "t", "connection": "app",
           "protocol": "postgres", "client_addr": "127.0.0.1:5000", "application_name": "psql", "gateway": "g",
           "started_at": 1700000000.5, "ended_at": None, "end_reason": None, "bytes_from_client": 0,
           "bytes_to_client": 0, "masking": None, "issuer": "wardgate", "idp_subject": None}


def _statement(session_id: str, seq: int) -> Write:
    values = dict.fromkeys(INSERT_COLUMNS["statements"])
    values.update(session_id=session_id, seq=seq, started_at=1700000001.25, protocol="simple", kind="select",
                  text="select $1", param_count=1, status="ok", command_tag="SELECT 1", row_count=1,
                  duration_ms=0.5, decision="allow", rule="default")
    return Write("statements", tuple(values.values()))


def test_writes_become_export_records() -> None:
    asked: list[str] = []

    def lookup(sid: str) -> Any:
        asked.append(sid)
        return ("bob", "app", '["ops"]', "https://idp") if sid == "old" else UNKNOWN

    make = RecordMaker(lookup)
    out = make([
        Write("sessions", SESSION),
        _statement("s1", 1),
        Write("sessions", {"id": "s1", "application_name": "renamed"}, key="id"),
        Write("tokens", {"id": "x"}),
        Write("sessions", {"id": "s1", "ended_at": 1700000002.0, "end_reason": "client terminated",
                           "bytes_from_client": 10, "bytes_to_client": 20}, key="id"),
        _statement("old", 7),
        _statement("gone", 1),
        Write("events", {"at": 1700000003.0, "kind": "auth_failed", "subject": "eve", "connection": "app",
                         "client_addr": "1.2.3.4", "session_id": None, "detail": '{"why": "x"}'}),
    ])
    assert [r.type for r in out] == ["session_start", "statement", "session_end", "statement", "statement",
                                     "auth_failed"]
    assert asked == ["old", "gone"]  # the session seen starting was not looked up
    start, stmt, end, old, gone, ev = out
    assert start.fields == {k: v for k, v in {"time": "2023-11-14T22:13:20.500000Z",
                                               **session_start_record(SESSION)}.items() if v is not None}
    row = dict(zip(INSERT_COLUMNS["statements"], _statement("s1", 1).values, strict=True))
    assert stmt.line == json.dumps({k: v for k, v in {"time": "2023-11-14T22:13:21.250000Z",
                                                      **statement_record(row, ("ann", "app", '["eng"]', "wardgate"))
                                                      }.items() if v is not None}, sort_keys=True)
    assert (end.fields["user"], end.fields["connection"], json.loads(end.fields["detail"])) == (
        "ann", "app", {"bytes_from_client": 10, "bytes_to_client": 20})
    assert (old.fields["user"], old.fields["issuer"]) == ("bob", "https://idp")
    assert gone.fields["user"] == "" and "issuer" not in gone.fields
    assert ev.fields == {"time": "2023-11-14T22:13:23.000000Z", "type": "auth_failed", "user": "eve",
                         "connection": "app", "client_addr": "1.2.3.4", "detail": '{"why": "x"}'}


@pytest.mark.parametrize("at", [0.0, 1700000000.0, 1700000000.5, 1700000000.123456, 1764547199.999999, 4102444800.25])
def test_record_times_are_the_chains(at: float) -> None:
    assert record_time(at) == iso(at)
    assert record_time(datetime.fromtimestamp(at, UTC)) == iso(at)


def test_remembered_sessions_are_bounded() -> None:
    make = RecordMaker(lambda sid: UNKNOWN, max_sessions=2)
    for sid in ("a", "b", "c"):
        make([Write("sessions", {**SESSION, "id": sid})])
    assert make([_statement("a", 1)])[0].fields["user"] == ""  # forgotten: the oldest went first
    assert make([_statement("c", 1)])[0].fields["user"] == "ann"


def test_files_are_created_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        t = FileTransport(FileSinkConfig(name="f", type="file", path=tmp_path / "a.jsonl"))
        t.send([rec(seq=1)])
        t.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.jsonl").stat().st_mode) == 0o600


def test_closing_the_hub_is_bounded_and_counts_what_is_left() -> None:
    hang = threading.Event()
    stuck = Sink("stuck", "fake", FakeTransport(0, None, batch_size=2, hang=hang), 100)
    fine = Sink("fine", "fake", FakeTransport(0, None), 100)
    hub = SinkHub([stuck, fine], lambda writes: [rec(seq=i) for i in range(len(writes))])
    for s in hub.sinks:
        s.start()
    hub.offer([Write("events", {})] * 6)
    t0 = time.monotonic()
    hub.close(timeout=0.3)
    assert time.monotonic() - t0 < 1.5
    hang.set()
    assert (stuck.counts().delivered, stuck.counts().abandoned) == (0, 6)
    assert (fine.counts().delivered, fine.counts().lost) == (6, 0)
    hub.offer([Write("events", {})])  # closed: nothing more is taken
    assert fine.counts().delivered == 6


def test_sinks_that_no_longer_load_leave_the_store_shipping_and_say_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from wardgate.audit.shipper import _open_sinks
    from wardgate.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    monkeypatch.setenv("WG_TEST_SINK_SECRET", SECRET)
    arg = sinks_argument(_config(tmp_path, [{"name": "hook", "type": "webhook", "url": "https://siem.example/in",
                                             "secret": "env:WG_TEST_SINK_SECRET"}]).audit.sinks)
    monkeypatch.delenv("WG_TEST_SINK_SECRET")
    assert _open_sinks(arg, store, "gw.journal", "1") is None
    (event,) = store.events(kind="audit_sink_lost")
    assert event["detail"]["sinks"] == ["hook"] and "WG_TEST_SINK_SECRET is not set" in event["detail"]["error"]
    assert "could not be started" in caplog.text
