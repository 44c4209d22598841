"""Live audit sinks against real receivers: a real gateway streams every record to a rotating file, to syslog
over UDP and TCP (parsed here as RFC 5424, octet-counted on TCP), and to webhooks (signature checked, batches
counted; one that fails before it succeeds); and receivers that are dead cost the gateway nothing, while their
losses are counted and land in the tamper-evident audit.

The reference for "every record" is `wardgate audit export` of the same store after the gateway stopped: a live
record must be the exported one, line for line.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import socket
import stat
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import Gateway, UpstreamDB, flush_wait, run_gateway
from tests.ports import free_port

SECRET = "live-sink-secret-0123456789"
USER = 'ann]"sd'  # a user name that needs escaping in RFC 5424 structured data


# --- receivers -------------------------------------------------------------------------------------------------


class UdpSyslog:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.messages: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                self.messages.append(self.sock.recv(65535))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class TcpSyslog:
    """Accepts connections and splits each stream into RFC 6587 octet-counted frames."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.messages: list[bytes] = []
        self.broken: list[bytes] = []  # what was left of a stream that was not whole frames
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        buf = b""
        with contextlib.suppress(OSError):
            while chunk := conn.recv(65536):
                buf += chunk
                while (space := buf.find(b" ")) > 0 and buf[:space].isdigit():
                    end = space + 1 + int(buf[:space])
                    if len(buf) < end:
                        break
                    self.messages.append(buf[space + 1 : end])
                    buf = buf[end:]
        if buf:
            self.broken.append(buf)

    def hang_up(self) -> None:
        for c in self.connections:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.hang_up()
        self.listener.close()


class Hook(ThreadingHTTPServer):
    """A webhook receiver: checks each request's signature, fails the first ``fail`` with 503."""

    def __init__(self, fail: int = 0) -> None:
        super().__init__(("127.0.0.1", 0), HookHandler)
        self.fail = fail
        self.attempts: list[dict[str, str]] = []  # headers of every request
        self.batches: list[list[dict[str, Any]]] = []  # accepted ones
        self.bad_signatures = 0
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/ingest"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class HookHandler(BaseHTTPRequestHandler):
    server: Hook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        stamp = self.headers["X-Wardgate-Timestamp"]
        expected = "sha256=" + hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        hooks = self.server
        hooks.attempts.append(dict(self.headers.items()))
        if not hmac.compare_digest(expected, self.headers.get("X-Wardgate-Signature", "")) or \
                abs(time.time() - int(stamp)) > 60:
            hooks.bad_signatures += 1
            self.send_response(401)
        elif hooks.fail > 0:
            hooks.fail -= 1
            self.send_response(503)
        else:
            assert self.headers["X-Wardgate-Delivery"] == hashlib.sha256(body).hexdigest()[:32]
            hooks.batches.append(json.loads(body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


# --- RFC 5424 --------------------------------------------------------------------------------------------------

HEADER = re.compile(r"<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) ")
NAME = re.compile(r'[^ =\]"]{1,32}')


def parse_5424(raw: bytes) -> dict[str, Any]:
    """A syslog message per RFC 5424 section 6, structured data unescaped (section 6.3.3)."""
    text = raw.decode()
    m = HEADER.match(text)
    assert m, f"not RFC 5424: {text[:80]!r}"
    pri, ts, host, app, procid, msgid = m.groups()
    i = m.end()
    sd: dict[str, dict[str, str]] = {}
    assert text[i] == "[", "these messages always carry structured data"
    while text[i] == "[":
        sd_id = NAME.match(text, i + 1)
        assert sd_id
        i = sd_id.end()
        params: dict[str, str] = {}
        while text[i] == " ":
            name = NAME.match(text, i + 1)
            assert name and text[name.end() : name.end() + 2] == '="', text[i:]
            i = name.end() + 2
            value = []
            while text[i] != '"':
                if text[i] == "\\" and text[i + 1] in '"\\]':
                    i += 1
                else:
                    assert text[i] not in '"]', f"unescaped {text[i]!r} in an SD value"
                value.append(text[i])
                i += 1
            params[name.group()] = "".join(value)
            i += 1
        assert text[i] == "]"
        sd[sd_id.group()] = params
        i += 1
    assert text[i] == " "
    return {"facility": int(pri) // 8, "severity": int(pri) % 8, "timestamp": ts, "hostname": host, "app": app,
            "procid": procid, "msgid": msgid, "sd": sd, "msg": json.loads(text[i + 1 :])}


# --- helpers ---------------------------------------------------------------------------------------------------


def _export(gw: Gateway, fmt: str = "jsonl") -> list[str]:
    out = gw.cli("audit", "export", "--format", fmt).stdout
    return [line for line in out.splitlines() if line]


def _file_lines(path: Path, keep: int) -> list[str]:
    lines = []
    for n in range(keep, 0, -1):
        rotated = path.with_name(f"{path.name}.{n}")
        if rotated.exists():
            lines += rotated.read_text().splitlines()
    return lines + path.read_text().splitlines()


def _shipper_cmdline(gw: Gateway) -> str:
    assert gw.proc is not None
    for task in Path(f"/proc/{gw.proc.pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if "wardgate.audit.shipper" in cmd:
                return cmd
    raise AssertionError("no audit shipper process")


@pytest.fixture
def receivers() -> Iterator[tuple[UdpSyslog, TcpSyslog, Hook, Hook]]:
    udp, tcp, hook, flaky = UdpSyslog(), TcpSyslog(), Hook(), Hook(fail=3)
    yield udp, tcp, hook, flaky
    for r in (udp, tcp, hook, flaky):
        r.close()


def _run_statements(gw: Gateway, user: str, groups: str, n: int, *extra: str) -> float:
    """Runs ``n`` selects (and ``extra``, which may be refused); returns the seconds the selects took."""
    with psycopg.connect(gw.dsn(user, gw.token(user, groups)), autocommit=True) as conn:
        t0 = time.perf_counter()
        for i in range(n):
            conn.execute(f"select {i}, 'row {i}' as label")
        took = time.perf_counter() - t0
        for sql in extra:
            with contextlib.suppress(psycopg.Error):
                conn.execute(sql)
    return took


# --- tests -----------------------------------------------------------------------------------------------------


def test_every_record_reaches_every_sink(upstream: UpstreamDB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         receivers: tuple[UdpSyslog, TcpSyslog, Hook, Hook]) -> None:
    monkeypatch.setenv("WG_SINK_SECRET", SECRET)  # the gateway's and the CLI's (export)
    udp, tcp, hook, flaky = receivers
    audit_file = tmp_path / "sinks" / "audit.jsonl"
    short_file = tmp_path / "sinks" / "short.jsonl"
    ocsf_file = tmp_path / "sinks" / "ocsf.jsonl"
    sinks = [
        {"name": "file", "type": "file", "path": str(audit_file), "max_bytes": 4096, "keep": 100},
        {"name": "short", "type": "file", "path": str(short_file), "max_bytes": 4096, "keep": 1},
        {"name": "siem-file", "type": "file", "path": str(ocsf_file), "format": "ocsf"},
        {"name": "udp", "type": "syslog", "host": "127.0.0.1", "port": udp.port, "facility": "local3",
         "app_name": "wg-test"},
        {"name": "tcp", "type": "syslog", "host": "127.0.0.1", "port": tcp.port, "protocol": "tcp",
         "facility": "authpriv"},
        {"name": "hook", "type": "webhook", "url": hook.url, "secret": "env:WG_SINK_SECRET", "batch_size": 5,
         "flush_interval": "200ms"},
        {"name": "flaky", "type": "webhook", "url": flaky.url, "secret": "env:WG_SINK_SECRET", "batch_size": 1000,
         "flush_interval": "100ms", "retries": 5, "backoff": "50ms"},
    ]
    with run_gateway(tmp_path / "gw", upstream, extra={"audit": {"sinks": sinks}}) as gw:
        assert gw.proc is not None
        pid = str(gw.proc.pid)
        cmdline = _shipper_cmdline(gw)
        assert "--sinks" in cmdline and "env:WG_SINK_SECRET" in cmdline and SECRET not in cmdline
        _run_statements(gw, USER, "eng", 40, "TRUNCATE customers")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(gw.dsn("mallory", "not-a-token"), connect_timeout=10).close()
        # TCP: the receiver hangs up while the sink is idle (everything so far received); the next records go
        # over a new connection
        assert flush_wait(lambda: any(b" session_end " in m for m in tcp.messages) and
                          any(b" auth_failed " in m for m in tcp.messages)), "the first records did not come"
        tcp.hang_up()
        time.sleep(0.2)
        _run_statements(gw, "bob", "eng", 10)
        assert flush_wait(lambda: sum(b" session_end " in m for m in tcp.messages) == 2), "TCP did not reconnect"
        assert len(tcp.connections) == 2
    log = gw.log()
    expected = _export(gw)
    assert SECRET not in log and not any(SECRET in line for line in expected)
    kinds = Counter(json.loads(line)["type"] for line in expected)
    assert kinds["statement"] == 51 and kinds["session_start"] == 2 and kinds["auth_failed"] == 1, kinds
    assert kinds["config_loaded"] == 1 and "audit_sink_lost" not in kinds, kinds

    # file: exactly the export, in rotated files of at most max_bytes, private
    lines = _file_lines(audit_file, 100)
    assert Counter(lines) == Counter(expected)
    rotated = sorted(audit_file.parent.glob("audit.jsonl.*"))
    assert len(rotated) >= 3, "4 KiB files should have rotated several times"
    for f in [audit_file, *rotated]:
        assert f.stat().st_size <= 4096 and stat.S_IMODE(f.stat().st_mode) == 0o600
    # keep: 1 leaves the newest two files, which end with the same records as the long history
    assert sorted(p.name for p in short_file.parent.glob("short.jsonl*")) == ["short.jsonl", "short.jsonl.1"]
    short = _file_lines(short_file, 1)
    assert len(short) < len(lines) and lines[-len(short) :] == short
    # format: ocsf: exactly `audit export --format ocsf`, event for event (the client address included, which
    # statements take from their session's start)
    ocsf = _file_lines(ocsf_file, 0)
    assert Counter(ocsf) == Counter(_export(gw, "ocsf")) and len(ocsf) == len(expected)
    assert any(json.loads(e)["class_uid"] == 6005 and json.loads(e).get("src_endpoint") for e in ocsf)

    # syslog: every record as one RFC 5424 message, MSGID its type, SD its key fields, MSG its JSON line
    for receiver, facility, app in ((udp, 19, "wg-test"), (tcp, 10, "wardgate")):
        parsed = [parse_5424(m) for m in receiver.messages]
        assert Counter(json.dumps(p["msg"], sort_keys=True) for p in parsed) == Counter(expected), receiver
        for p in parsed:
            rec = p["msg"]
            assert (p["facility"], p["app"], p["msgid"], p["timestamp"]) == (facility, app, rec["type"], rec["time"])
            assert p["procid"] == pid
            params = p["sd"]["wardgate@32473"]
            assert params["type"] == rec["type"]
            for key in ("user", "connection", "session_id", "status", "rule"):
                assert params.get(key) == (str(rec[key]) if rec.get(key) not in (None, "") else None)
            refused = rec["type"] == "auth_failed" or rec.get("status") == "denied"
            assert p["severity"] == (5 if refused else 6)
        assert any(p["sd"]["wardgate@32473"].get("user") == USER for p in parsed)
    assert tcp.broken == [], "a frame was cut"

    # webhooks: signed, batched, every record once; the flaky one was retried with the same delivery id
    assert hook.bad_signatures == 0 and flaky.bad_signatures == 0
    assert max(len(b) for b in hook.batches) == 5 and len(hook.batches) >= len(expected) // 5
    for receiver in (hook, flaky):
        got = [json.dumps(r, sort_keys=True) for b in receiver.batches for r in b]
        assert Counter(got) == Counter(expected)
    assert len(flaky.attempts) == len(flaky.batches) + 3
    assert len({a["X-Wardgate-Delivery"] for a in flaky.attempts[:4]}) == 1, "the failed batch is retried as is"
    assert "audit sink flaky (webhook) is failing: http://127.0.0.1" in log and "HTTP 503" in log
    assert "audit sink flaky (webhook) delivers again" in log
    for name in ("file", "short", "siem-file", "udp", "tcp", "hook", "flaky"):
        assert re.search(rf"audit sink {name} \(\w+\): \d+ delivered, 0 dropped \(backlog full\), 0 failed, "
                         r"0 abandoned", log), name


def test_dead_sinks_cost_the_gateway_nothing_and_their_losses_are_audited(
        upstream: UpstreamDB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WG_SINK_SECRET", SECRET)
    n = 400
    with run_gateway(tmp_path / "plain", upstream) as gw:
        _run_statements(gw, "warm", "eng", 50)
        baseline = _run_statements(gw, "carol", "eng", n)
    dead_port = free_port()  # nothing listens there
    sinks = [
        {"name": "dead-hook", "type": "webhook", "url": f"http://127.0.0.1:{dead_port}/",
         "secret": "env:WG_SINK_SECRET", "max_backlog": 5, "batch_size": 5, "flush_interval": "50ms",
         "retries": 1, "backoff": "50ms"},
        {"name": "dead-tcp", "type": "syslog", "host": "127.0.0.1", "port": dead_port, "protocol": "tcp",
         "max_backlog": 5},
    ]
    store_url = f"sqlite:///{tmp_path / 'dead' / 'wardgate.db'}"
    with run_gateway(tmp_path / "dead", upstream, store_url=store_url, extra={"audit": {"sinks": sinks}}) as gw:
        _run_statements(gw, "warm", "eng", 50)
        # both sinks are down and their backlogs full before the statements that are timed
        assert flush_wait(lambda: gw.log().count("is failing") == 2), gw.log()
        dead = _run_statements(gw, "dave", "eng", n)
        store = gw.store()
        assert flush_wait(lambda: len(store.sessions(user="dave")) == 1 and
                          len(store.statements(store.sessions(user="dave")[0]["id"])) == n), "the store fell behind"

        def lost() -> dict[str, dict[str, Any]]:
            return {e["detail"]["sink"]: e["detail"] for e in store.events(kind="audit_sink_lost")}

        assert flush_wait(lambda: set(lost()) == {"dead-hook", "dead-tcp"}), store.events(kind="audit_sink_lost")
        assert gw.log().count("is failing") == 2  # once each: a sink that keeps failing is not logged again
    # the relay never waits for a sink: statements ran as fast as without any (with room for a busy machine)
    assert dead < baseline * 1.5 + 0.5, (dead, baseline)

    events = [e["detail"] for e in store.events(kind="audit_sink_lost", limit=100)]
    final = {d["sink"]: d for d in events if d["final"]}
    assert set(final) == {"dead-hook", "dead-tcp"}
    hook, tcp = final["dead-hook"], final["dead-tcp"]
    # every record offered is accounted for: all of the store's but the two final events, which come after
    offered = len(_export(gw)) - 2
    for d in (hook, tcp):
        assert d["delivered"] == 0 and d["lost"] == d["dropped"] + d["failed"] + d["abandoned"] == offered, d
    assert hook["failed"] > 0 and hook["dropped"] > 0  # a few batches were tried (and retried), the rest dropped
    assert tcp["failed"] == 0 and tcp["abandoned"] <= 10  # syslog retries forever: its backlog and one batch
    assert "Connection refused" in tcp["last_error"] and "cannot reach the receiver" in hook["last_error"]
    assert len(events) <= 4, "at most one loss event per sink a minute, plus the final ones"
    assert not any(SECRET in json.dumps(d) for d in events) and SECRET not in gw.log()
    # the loss events are in the hash chain like any record, and signed
    res = gw.cli("audit", "verify", "--json", check=False)
    report = json.loads(res.stdout)
    assert res.returncode == 0 and report["ok"] and report["tables_checked"], res.stdout + res.stderr
    assert not report["unattested"], "the chain's head (final loss events included) is signed at shutdown"
