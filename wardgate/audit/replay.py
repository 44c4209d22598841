"""`wardgate sessions replay`: a recorded session shown as it happened, in a terminal or as an asciicast.

A replay is built only from the audit: the session's record, its statements (text with literals redacted, the
decision and rule, outcome, timing, and the first rows of each result as the client received them, masked) and
its events (reviews held, votes, grants ending the session...). Each item becomes a frame: a time offset from
the session's start and the text it prints. The same frames feed the terminal player and the asciicast v2
writer, so what an auditor replays in a terminal and what they attach to a ticket are one thing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from sqlalchemy import select

from ..store import Store, schema
from ..store.db import utc
from .samples import readable

_WIDE = 48  # a value wider than this is cut in the replay's table (the store keeps up to audit.replay.value_bytes)


@dataclass(frozen=True, slots=True)
class Frame:
    at: float  # seconds since the session started
    text: str  # lines separated by "\n", ending with one


def _seconds(value: Any, start: datetime) -> float:
    at = utc(value) if isinstance(value, datetime) else None
    return max(0.0, (at - start).total_seconds()) if at is not None else 0.0


def _statements(store: Store, session_id: str) -> Iterator[dict[str, Any]]:
    st = schema.statements
    q = select(st).where(st.c.session_id == session_id).order_by(st.c.seq)
    with store._guard(), store.engine.connect() as conn:
        yield from (dict(r._mapping) for r in conn.execute(q.execution_options(yield_per=1000)))


def _events(store: Store, session_id: str) -> list[dict[str, Any]]:
    ev = schema.events
    q = select(ev).where(ev.c.session_id == session_id).order_by(ev.c.at, ev.c.id)
    with store._guard(), store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def frames(store: Store, session: dict[str, Any], *, color: bool = False) -> Iterator[Frame]:
    """The session's frames in time order. ``session`` is a row of ``Store.session``."""
    paint = _Paint(color)
    start = utc(session["started_at"])
    assert start is not None
    yield Frame(0.0, _header(session, paint))
    prompt = f"{session['user']}@{session['connection']}"
    events = [(_seconds(e["at"], start), i, e) for i, e in enumerate(_events(store, session["id"]))]
    pending = iter(events)
    nxt = next(pending, None)
    for s in _statements(store, session["id"]):
        began = _seconds(s["started_at"], start)
        # events up to this statement's start come first (a review held the statement before this one...)
        while nxt is not None and nxt[0] <= began:
            yield Frame(nxt[0], _event(nxt[2], paint))
            nxt = next(pending, None)
        yield Frame(began, paint.bold(f"{prompt}> ") + _oneline(s["text"]) + "\n")
        done = began + (s["duration_ms"] or 0.0) / 1000.0
        while nxt is not None and nxt[0] <= done:
            yield Frame(nxt[0], _event(nxt[2], paint))
            nxt = next(pending, None)
        yield Frame(done, _outcome(s, paint))
    while nxt is not None:
        yield Frame(nxt[0], _event(nxt[2], paint))
        nxt = next(pending, None)
    if session["ended_at"] is not None:
        end = _seconds(session["ended_at"], start)
        why = f" ({session['end_reason']})" if session["end_reason"] else ""
        yield Frame(end, paint.dim(f"-- session ended{why} after {end:.1f} s --") + "\n")
    else:
        yield Frame(0.0, paint.dim("-- session still open: replayed up to its last recorded statement --") + "\n")


def _header(session: dict[str, Any], paint: _Paint) -> str:
    groups = ", ".join(session["groups"]) or "no groups"
    via = session["auth_method"] + (f" at {session['issuer']}" if session.get("issuer") else "")
    app = f", {session['application_name']}" if session.get("application_name") else ""
    started = utc(session["started_at"])
    assert started is not None
    return paint.dim(
        f"-- session {session['id']}: {session['user']} ({groups}; {via}) on {session['connection']} "
        f"from {session['client_addr']}{app}, {started.strftime('%Y-%m-%d %H:%M:%S')} UTC --") + "\n"


def _oneline(text: str | None) -> str:
    return " ".join((text or "<statement the gateway could not read>").split())


def _outcome(s: dict[str, Any], paint: _Paint) -> str:
    lines: list[str] = []
    decision = s["decision"] or "allow"
    ms = f"{s['duration_ms']:.1f} ms" if s["duration_ms"] is not None else ""
    rule = s["rule"] or "default"
    if s["status"] == "denied":
        lines.append(paint.red(f"DENIED by rule {rule}: {s['reason'] or ''}".rstrip(": ")))
    elif s["status"] in ("refused", "lost"):
        lines.append(paint.red(f"{s['status'].upper()}: {s['reason'] or s['error_message'] or ''}".rstrip(": ")))
    elif decision == "review":
        lines.append(paint.yellow(f"reviewed (rule {rule}): {s['reason'] or ''}".rstrip(": ")))
    sample = _sample(s["result_sample"]) if s.get("result_sample") else None
    if sample is not None and sample["columns"]:
        lines.extend(_table(sample, s["row_count"]))
    if s["sqlstate"] and s["status"] == "error":
        lines.append(paint.red(f"ERROR {s['sqlstate']}: {s['error_message'] or ''}".rstrip(": ")))
    elif s["status"] == "skipped":
        lines.append(paint.dim("(skipped: an earlier statement of its batch failed)"))
    tail = [t for t in (s["command_tag"], ms, _masked(s["masked"])) if t]
    if tail and s["status"] not in ("denied", "skipped"):
        lines.append(paint.dim("  " + " · ".join(tail)))
    return "".join(line + "\n" for line in lines)


def _sample(text: str) -> dict[str, Any] | None:
    try:
        return readable(text)
    except ValueError:
        return {"columns": [{"name": "?"}], "rows": [["<a result sample the replay cannot read>"]]}


def _masked(masked: str | None) -> str:
    if not masked:
        return ""
    parts = []
    for m in json.loads(masked):
        how = "column rule" if m["detector"] == "column" else m["detector"]
        parts.append(f"{m['column'].rsplit('.', 1)[-1]} ({how}, rule {m['rule']}): {m['values']}")
    return "masked " + ", ".join(parts)


def _cell(value: str | None) -> str:
    if value is None:
        return ""
    flat = value.replace("\n", "\\n").replace("\r", "\\r").replace("\t", " ")
    flat = "".join(c if c.isprintable() else "?" for c in flat)
    return flat if len(flat) <= _WIDE else flat[: _WIDE - 1] + "…"


def _table(sample: dict[str, Any], row_count: int | None) -> list[str]:
    """A result as psql prints it (aligned), with a line saying how many rows were kept of how many."""
    names = [c["name"] for c in sample["columns"]]
    rows = [[_cell(v) for v in r] for r in sample["rows"]]
    widths = [max([len(n), *(len(r[i]) for r in rows if i < len(r))]) for i, n in enumerate(names)]
    out = [" " + " | ".join(n.center(w) for n, w in zip(names, widths, strict=True)),
           "-" + "-+-".join("-" * w for w in widths) + "-"]
    out += [" " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) for r in rows]
    total = sample.get("total", row_count)
    kept = len(rows)
    if total is not None and total > kept:
        out.append(f"({total} rows; the audit kept the first {kept})")
    else:
        out.append(f"({kept} row{'s' if kept != 1 else ''})")
    if sample.get("cut"):
        out.append(f"({sample['cut']} values cut to the recorded length)")
    return out


def _event(e: dict[str, Any], paint: _Paint) -> str:
    d = json.loads(e["detail"]) if e["detail"] else {}
    kind = e["kind"]
    who = e["subject"] or "?"
    if kind == "review_requested":
        approvers = ", ".join(d.get("approvers") or [])
        text = f"HELD for review {d.get('review')} (rule {d.get('rule')}): waiting for {approvers or 'a reviewer'}"
        return paint.yellow(text) + "\n"
    if kind == "review_vote":
        why = f": {d['reason']}" if d.get("reason") else ""
        return paint.yellow(f"{who} voted to {d.get('vote')} review {d.get('review')}{why}") + "\n"
    if kind == "review_approved":
        return paint.green(f"review {d.get('review')} approved by {', '.join(d.get('approved_by') or [])}") + "\n"
    if kind == "review_denied":
        why = f": {d['reason']}" if d.get("reason") else ""
        return paint.red(f"review {d.get('review')} denied by {d.get('denied_by')}{why}") + "\n"
    if kind == "review_executed":
        return paint.green(f"review {d.get('review')}: the approved statement runs") + "\n"
    rest = ", ".join(f"{k}={v}" for k, v in sorted(d.items()) if k not in ("token", "secret"))
    return paint.dim(f"[{kind}] {who}" + (f": {rest}" if rest else "")) + "\n"


class _Paint:
    def __init__(self, on: bool) -> None:
        self.on = on

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.on else text

    def bold(self, t: str) -> str:
        return self._wrap("1", t)

    def dim(self, t: str) -> str:
        return self._wrap("2", t)

    def red(self, t: str) -> str:
        return self._wrap("31", t)

    def green(self, t: str) -> str:
        return self._wrap("32", t)

    def yellow(self, t: str) -> str:
        return self._wrap("33", t)


def play(frames_: Iterable[Frame], out: IO[str], *, speed: float = 1.0, max_wait: float | None = 2.0,
         sleep: Any = time.sleep) -> None:
    """Print frames as they happened: ``speed`` 2 is twice as fast, 0 prints at once; a pause longer than
    ``max_wait`` seconds (after speed-up) is shortened to it, so an idle hour does not stall a replay."""
    last = 0.0
    for f in frames_:
        gap = max(0.0, f.at - last)
        last = max(last, f.at)
        if speed > 0 and gap > 0:
            wait = gap / speed
            sleep(min(wait, max_wait) if max_wait is not None else wait)
        out.write(f.text)
        out.flush()


def asciicast(frames_: Iterable[Frame], out: IO[str], *, title: str, timestamp: float, speed: float = 1.0,
              max_wait: float | None = None, width: int = 120, height: int = 40) -> int:
    """Write an asciicast v2 file (a JSON header line, then ``[time, "o", text]`` lines); returns the events."""
    header = {"version": 2, "width": width, "height": height, "timestamp": int(timestamp), "title": title,
              "env": {"TERM": "xterm-256color"}}
    out.write(json.dumps(header) + "\n")
    clock, last, n = 0.0, 0.0, 0
    for f in frames_:
        gap = max(0.0, f.at - last)
        last = max(last, f.at)
        step = gap / speed if speed > 0 else 0.0
        clock += min(step, max_wait) if max_wait is not None else step
        out.write(json.dumps([round(clock, 6), "o", f.text.replace("\n", "\r\n")]) + "\n")
        n += 1
    return n
