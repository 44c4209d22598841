"""Records as RFC 5424 syslog messages, over UDP (RFC 5426) or TCP with octet counting (RFC 6587).

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [wardgate@32473 type="..." user="..." ...] {json record}

MSGID is the record's type (``statement``, ``session_start``, ``auth_failed``...), so a collector can route on it
without parsing the message; the structured data repeats the few fields collectors filter on; MSG is the record's
JSON line (ASCII: JSON escapes the rest, so no BOM is needed). TIMESTAMP is the record's own time, not the time it
was sent. The SD-ID uses 32473, the enterprise number RFC 5612 reserves for documentation: wardgate has none of
its own, and a collector matches the name either way.

A message longer than ``max_message`` (UDP datagrams are lost whole when too large for the path or the receiver)
has its longest fields cut until it fits, and says ``"truncated": true``; the JSON stays valid. Formatting is
pure; the transport only moves bytes. TCP has no acknowledgements: a batch in flight when a connection breaks is
sent again on the next, so a receiver may see a few records twice, never a hole it is not told of.
"""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from ...config import SyslogSinkConfig
from .delivery import SinkError
from .records import SinkRecord

FACILITIES = {"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
              "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "audit": 13, "alert": 14, "clock": 15,
              **{f"local{i}": 16 + i for i in range(8)}}
INFO, NOTICE = 6, 5
SD_ID = "wardgate@32473"
SD_FIELDS = ("user", "connection", "session_id", "status", "decision", "rule")  # the ones worth filtering on
_NOTICE_SUFFIXES = ("_failed", "_refused", "_denied", "_lost", "_expired")


def severity(fields: Mapping[str, Any]) -> int:
    """Notice for what an operator should look at (refused statements, failures, losses), else informational."""
    if fields.get("type") == "statement":
        return NOTICE if fields.get("status") in ("denied", "refused", "lost") else INFO
    return NOTICE if str(fields.get("type", "")).endswith(_NOTICE_SUFFIXES) else INFO


def header_field(value: str, max_len: int) -> str:
    """A header field (HOSTNAME, APP-NAME, PROCID, MSGID): printable ASCII without spaces, bounded; "-" if empty."""
    clean = "".join(c if "!" <= c <= "~" else "_" for c in value[:max_len])
    return clean or "-"


def sd_escape(value: str) -> str:
    """An SD-PARAM value: RFC 5424 6.3.3 escapes exactly '"', '\\' and ']' with a backslash."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def structured_data(fields: Mapping[str, Any]) -> str:
    params = "".join(f' {k}="{sd_escape(str(fields[k]))}"' for k in SD_FIELDS if fields.get(k) not in (None, ""))
    return f'[{SD_ID} type="{sd_escape(str(fields.get("type", "")))}"{params}]'


def _render(fields: Mapping[str, Any], line: str, prefix: str) -> bytes:
    msgid = header_field(str(fields.get("type", "")), 32)
    return f"{prefix} {msgid} {structured_data(fields)} {line}".encode()


def format_message(rec: SinkRecord, *, facility: int, hostname: str, app_name: str, procid: str,
                   limit: int) -> bytes:
    """One RFC 5424 message of at most ``limit`` bytes."""
    pri = facility * 8 + severity(rec.fields)
    prefix = (f"<{pri}>1 {rec.time or '-'} {header_field(hostname, 255)} {header_field(app_name, 48)} "
              f"{header_field(procid, 128)}")
    out = _render(rec.fields, rec.line, prefix)
    if len(out) <= limit:
        return out
    fields: dict[str, Any] = {**rec.fields, "truncated": True}
    while True:
        out = _render(fields, json.dumps(fields, sort_keys=True, default=str), prefix)
        over = len(out) - limit
        if over <= 0:
            return out
        longest = max((k for k, v in fields.items() if isinstance(v, str) and v and k not in ("type", "time")),
                      key=lambda k: len(fields[k]), default=None)
        if longest is None:
            return out[:limit]  # nothing left to cut (a limit below any header): the receiver gets a stub
        # every character cut shortens the JSON by at least one byte (more when it was escaped), so one cut of
        # `over` characters fits unless the field is shorter than that; then the next longest is cut too
        value = fields[longest]
        fields[longest] = value[: max(len(value) - over, 0)]


def octet_frame(message: bytes) -> bytes:
    """RFC 6587 octet counting: the message's length in bytes, a space, the message."""
    return b"%d %b" % (len(message), message)


class SyslogTransport:
    batch_size = 500
    linger = 0.0
    retries: int | None = None  # a syslog receiver that is down is waited for; the backlog bounds the wait
    backoff = 0.5

    def __init__(self, cfg: SyslogSinkConfig, procid: str) -> None:
        self.cfg = cfg
        self.facility = FACILITIES[cfg.facility]
        self.hostname = socket.gethostname()
        self.procid = procid
        self._sock: socket.socket | None = None
        self.where = f"{cfg.protocol}://{cfg.host}:{cfg.port}"

    def _connect(self) -> socket.socket:
        kind = socket.SOCK_DGRAM if self.cfg.protocol == "udp" else socket.SOCK_STREAM
        try:
            infos = socket.getaddrinfo(self.cfg.host, self.cfg.port, type=kind)
            family, _, proto, _, addr = infos[0]
            sock = socket.socket(family, kind, proto)
            sock.settimeout(self.cfg.timeout)
            try:
                sock.connect(addr)
            except OSError:
                sock.close()
                raise
        except OSError as exc:
            raise SinkError(f"{self.where}: {exc.strerror or exc}") from None
        return sock

    def _messages(self, batch: Sequence[SinkRecord]) -> list[bytes]:
        return [format_message(r, facility=self.facility, hostname=self.hostname, app_name=self.cfg.app_name,
                               procid=self.procid, limit=self.cfg.max_message) for r in batch]

    def send(self, batch: Sequence[SinkRecord]) -> None:
        if self._sock is not None and self.cfg.protocol == "tcp" and _peer_closed(self._sock):
            self.close()  # the receiver hung up while idle: writing would vanish into a dead connection
        if self._sock is None:
            self._sock = self._connect()
        messages = self._messages(batch)
        sent = 0
        try:
            if self.cfg.protocol == "udp":
                for m in messages:
                    self._sock.send(m)
                    sent += 1
            else:
                self._sock.sendall(b"".join(octet_frame(m) for m in messages))
                sent = len(messages)
        except OSError as exc:
            self.close()
            raise SinkError(f"{self.where}: {exc.strerror or exc}", sent=sent) from None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _peer_closed(sock: socket.socket) -> bool:
    """Has the other end closed (or reset) a connection we only write to?"""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
