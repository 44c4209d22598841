"""The evidence report as one self-contained HTML file: what an auditor opens, prints, and files.

One file and nothing else: the CSS is inline, the activity chart is an SVG drawn here, there is no script and no
link to anything outside the file (a Content-Security-Policy in the page forbids loading any), so it opens the
same offline, in an archive, or years from now. Every value from the store goes through ``_cell``, which escapes
it unless it is ``Safe`` markup made here: statement text, user names, reasons and rule names are all typed by
someone, and a ``<script>`` in any of them must reach the reader as text.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

from .evidence import (
    AccessRequest,
    ActivityBucket,
    Bounded,
    ChainCoverage,
    CheckpointRef,
    Evidence,
    ReviewItem,
    Vote,
)


class Safe(str):
    """Markup built here from escaped parts; ``_cell`` passes it through."""

    __slots__ = ()


def _e(value: Any) -> str:
    return html.escape("-" if value is None else str(value), quote=True)


def _cell(value: Any) -> str:
    return value if isinstance(value, Safe) else _e(value)


def _n(value: int) -> Safe:
    return Safe(f"{value:,}")


def _t(value: str | None) -> str:
    """An ISO time as the report prints it: to the second, UTC (the JSON keeps the microseconds)."""
    if not value:
        return "-"
    return value.replace("T", " ")[:19]


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


def _join(values: Iterable[Any]) -> str:
    return ", ".join(str(v) for v in values) or "-"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Iterable[int] = (),
           empty: str = "None in the period.") -> str:
    nums = set(numeric)
    body = []
    for row in rows:
        cells = "".join(f'<td class="num">{_cell(v)}</td>' if i in nums else f"<td>{_cell(v)}</td>"
                        for i, v in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    if not body:
        return f'<p class="empty">{_e(empty)}</p>'
    head = "".join(f'<th class="num">{_e(h)}</th>' if i in nums else f"<th>{_e(h)}</th>"
                   for i, h in enumerate(headers))
    return f'<table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _facts(rows: Iterable[tuple[str, Any]]) -> str:
    """A two-column table of labelled values."""
    return '<table class="facts"><tbody>' + "".join(f"<tr><th>{_e(k)}</th><td>{_cell(v)}</td></tr>"
                                                   for k, v in rows) + "</tbody></table>"


def _more(b: Bounded[Any], what: str) -> str:
    if not b.omitted:
        return ""
    return (f'<p class="more">Showing the first {len(b.items):,} of {b.total:,} {_e(what)}: and {b.omitted:,} more '
            f"not listed here (raise <code>--max-items</code>, or read them with <code>wardgate audit export</code>)."
            f"</p>")


def _sql(text: str | None) -> Safe:
    return Safe(f'<code class="sql">{_e(text if text is not None else "<unreadable>")}</code>')


def _match(ok: bool, note: str | None) -> Safe:
    if ok:
        return Safe('<span class="badge ok">matches</span>')
    return Safe(f'<span class="badge bad">MISMATCH</span> {_e(note)}')


def _votes(votes: Sequence[Vote]) -> Safe:
    if not votes:
        return Safe("-")
    lines = []
    for v in votes:
        cls = "ok" if v.vote == "approve" else "bad"
        groups = f" ({_e(', '.join(v.groups))})" if v.groups else ""
        reason = f": {_e(v.reason)}" if v.reason else ""
        lines.append(f'<span class="badge {cls}">{_e(v.vote)}</span> {_e(v.reviewer)}{groups} {_e(_t(v.at))}'
                     f"{reason}")
    return Safe("<br>".join(lines))


def _section(anchor: str, title: str, criteria: str, intro: str, body: str) -> str:
    return (f'<section id="{_e(anchor)}"><h2>{_e(title)} <span class="criteria">{_e(criteria)}</span></h2>'
            f'<p class="intro">{_e(intro)}</p>{body}</section>')


# --- the chart -------------------------------------------------------------------------------------------------------

_SERIES = (("allowed", "Allowed", "#4c78a8"), ("reviewed", "Reviewed", "#e39b2d"), ("denied", "Denied", "#c8373f"),
           ("other", "No decision recorded", "#9aa0a6"))


def _nice(value: int) -> int:
    """The axis maximum: the first 1, 2 or 5 times a power of ten at or above ``value``."""
    if value <= 0:
        return 1
    power: int = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)


def _label(start: str, grain: str) -> str:
    if grain == "hour":
        return f"{start[5:10]} {start[11:16]}"
    return start[:10] if grain == "day" else start[:7]


def chart(buckets: Sequence[ActivityBucket], grain: str) -> str:
    """Statements per bucket as stacked bars (allowed, reviewed, denied, no decision), an inline SVG."""
    if not buckets:
        return '<p class="empty">No statements in the period.</p>'
    width, height, left, right, top, bottom = 960, 250, 56, 10, 12, 44
    pw, ph = width - left - right, height - top - bottom
    peak = _nice(max(b.allowed + b.denied + b.reviewed + b.other for b in buckets))
    step = pw / len(buckets)
    gap = min(1.0, step * 0.15)
    bar = min(step - 2 * gap, 48.0)  # a few buckets make slots wider than a bar should be: centred in them
    pad = (step - bar) / 2
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="Statements per {_e(grain)} by decision" xmlns="http://www.w3.org/2000/svg">']
    ticks = 5 if peak >= 5 else peak  # peak is 1, 2 or 5 times a power of ten: every tick is a whole number
    for i in range(ticks + 1):
        value = peak * i // ticks
        y = top + ph - ph * i / ticks
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:,}</text>')
    every = max(1, math.ceil(len(buckets) / 8))
    for i, b in enumerate(buckets):
        x = left + i * step
        y = top + ph
        tip = f"{_label(b.start, grain)} UTC: " + ", ".join(
            f"{getattr(b, key):,} {name.lower()}" for key, name, _ in _SERIES if getattr(b, key))
        for key, _, color in _SERIES:
            value = getattr(b, key)
            if not value:
                continue
            h = ph * value / peak
            y -= h
            out.append(f'<rect x="{x + pad:.2f}" y="{y:.2f}" width="{max(bar, 0.5):.2f}" '
                       f'height="{h:.2f}" fill="{color}"><title>{_e(tip)}</title></rect>')
        if i % every == 0:
            out.append(f'<text x="{x + step / 2:.1f}" y="{top + ph + 16}" text-anchor="middle">'
                       f"{_e(_label(b.start, grain))}</text>")
    out.append(f'<line x1="{left}" y1="{top + ph}" x2="{width - right}" y2="{top + ph}" class="axis"/>')
    lx = left
    for key, name, color in _SERIES:
        if key == "other" and not any(b.other for b in buckets):
            continue
        out.append(f'<rect x="{lx}" y="{height - 14}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{lx + 14}" y="{height - 5}">{_e(name)}</text>')
        lx += 24 + 7 * len(name)
    out.append("</svg>")
    return "".join(out)


# --- the page --------------------------------------------------------------------------------------------------------

_CSS = """
@page { size: A4 landscape; margin: 12mm; }
* { box-sizing: border-box; }
body { font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1f2328; margin: 24px auto; max-width: 1280px; padding: 0 18px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 4px; padding-bottom: 3px; border-bottom: 2px solid #d0d7de; }
h3 { font-size: 14px; margin: 16px 0 4px; }
.criteria { font-size: 12px; font-weight: normal; color: #57606a; margin-left: 6px; }
.meta, .intro, .more, .empty { color: #57606a; margin: 4px 0 8px; }
.more { color: #9a6700; }
.verdict { border-radius: 6px; padding: 12px 16px; margin: 16px 0; border-left: 10px solid; }
.verdict.ok { background: #e6f4ea; border-color: #1a7f37; }
.verdict.failed { background: #ffebe9; border-color: #cf222e; }
.verdict .big { font-size: 20px; font-weight: 700; }
.verdict.ok .big { color: #1a7f37; } .verdict.failed .big { color: #cf222e; }
.verdict ul { margin: 6px 0 0 18px; padding: 0; }
.warn { background: #fff8c5; border-left: 4px solid #bf8700; padding: 6px 10px; margin: 8px 0; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 8px; margin: 12px 0; }
.tile { border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 10px; }
.tile .v { font-size: 20px; font-weight: 700; font-variant-numeric: tabular-nums; }
.tile .k { color: #57606a; font-size: 12px; }
.tile.bad { border-color: #cf222e; } .tile.bad .v { color: #cf222e; }
nav.toc { columns: 3; font-size: 12px; margin: 8px 0 0; }
nav.toc a { color: #0969da; text-decoration: none; display: block; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; font-size: 12px; }
th, td { border-bottom: 1px solid #d8dee4; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; white-space: nowrap; }
table.facts { width: auto; } table.facts th { text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 11.5px; }
code.sql { white-space: pre-wrap; word-break: break-word; }
.badge { display: inline-block; border-radius: 3px; padding: 0 5px; font-size: 11px; font-weight: 600; }
.badge.ok { background: #dafbe1; color: #116329; } .badge.bad { background: #ffebe9; color: #a40e26; }
.badge.neutral { background: #eaeef2; color: #424a53; }
svg.chart { width: 100%; height: auto; max-height: 300px; font: 10px system-ui, sans-serif; fill: #57606a; }
svg.chart .grid { stroke: #eaeef2; } svg.chart .axis { stroke: #8c959f; }
footer { margin-top: 32px; color: #57606a; font-size: 12px; border-top: 1px solid #d0d7de; padding-top: 8px; }
@media print {
  body { margin: 0; max-width: none; padding: 0; font-size: 11px; }
  nav.toc { display: none; }
  h2 { break-after: avoid; }
  tr, .tile, .verdict { break-inside: avoid; }
  thead { display: table-header-group; }
  a { color: inherit; text-decoration: none; }
  .verdict, .badge, .tile, svg { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""

_TOC = (("verification", "Audit integrity"), ("activity", "Activity over time"), ("access", "Access"),
        ("denials", "Denied statements"), ("reviews", "Reviewed statements"), ("jit", "Just-in-time access"),
        ("masking", "Masking"), ("auth", "Failed logins"), ("config", "Configuration changes"),
        ("admin", "Administrative changes"))


def _cp(cp: CheckpointRef | None) -> str:
    if cp is None:
        return "none"
    state = "" if cp.verified else " (NOT verified)"
    return f"chain {cp.chain} #{cp.seq:,}, signed {_t(cp.at)} UTC with key {cp.kid}{state}"


def _verdict(ev: Evidence) -> str:
    v = ev.verification
    if v.ok:
        head = '<div class="verdict ok"><div class="big">Audit record verified: OK</div>'
    else:
        head = (f'<div class="verdict failed"><div class="big">Audit record verification FAILED: '
                f"{v.problems.total:,} problem(s)</div>")
    tables = "; the sessions, statements and events tables compared with the chain" if v.tables_checked else ""
    lines = [f"<div>{v.chains:,} chain(s), {v.entries:,} entries and {v.checkpoints:,} signed checkpoint(s) of the "
             f"whole store checked{tables}.</div>",
             f"<div>Last signed checkpoint covering the period: {_e(_cp(v.last_checkpoint))}.</div>"]
    if not v.ok:
        shown = v.problems.items[:25]
        lines.append("<ul>" + "".join(f"<li>{_e(p.what)}: {_e(p.chain)} #{p.seq}: {_e(p.detail)}</li>"
                                      for p in shown) + "</ul>")
        if v.problems.total > len(shown):
            lines.append(f'<div>and {v.problems.total - len(shown):,} more: see <a href="#verification">'
                         f"Audit integrity</a>.</div>")
    warns = []
    if v.keys_from != "files":
        warns.append("Checkpoint signatures were checked with the keys the store itself lists, which proves only as "
                     "much as the store: generate the report with --public-key and the key you were given.")
    if not v.period_fully_signed and v.period_coverage:
        unsigned = sum(c.unsigned_entries for c in v.period_coverage)
        warns.append(f"{unsigned:,} audit entries of the period come after their chain's last signed checkpoint "
                     f"(written, not signed yet)." if unsigned else
                     "A checkpoint covering the period did not verify.")
    if v.uncovered_rows:
        warns.append(f"{v.uncovered_rows:,} table rows predate the audit chain and are not covered by it.")
    if ev.summary.audit_mismatches:
        warns.append(f"{ev.summary.audit_mismatches:,} review(s) or grant(s) disagree with the chained events that "
                     f"recorded them (marked MISMATCH below).")
    return head + "".join(lines) + "</div>" + "".join(f'<div class="warn">{_e(w)}</div>' for w in warns)


def _tiles(ev: Evidence) -> str:
    s = ev.summary
    tiles = [
        ("People", s.people, False), ("Connections", s.connections, False), ("Sessions", s.sessions, False),
        ("Statements", s.statements, False), ("Allowed", s.allowed, False), ("Denied", s.denied, False),
        ("Reviewed", s.reviewed, False), ("Review requests", s.review_requests, False),
        ("Access requests", s.access_requests, False), ("Grants started", s.grants, False),
        ("Failed logins", s.auth_failures, False), ("Config loads", s.config_loads, False),
        ("Config changes", s.config_changes, False), ("Values masked", s.masked_values, False),
        ("Audit mismatches", s.audit_mismatches, s.audit_mismatches > 0),
    ]
    return '<div class="tiles">' + "".join(
        f'<div class="tile{" bad" if bad else ""}"><div class="v">{value:,}</div><div class="k">{_e(key)}</div></div>'
        for key, value, bad in tiles) + "</div>"


def _verification(ev: Evidence) -> str:
    v = ev.verification

    def coverage(c: ChainCoverage) -> list[Any]:
        return [Safe(f'<span class="mono">{_e(c.chain)}</span>'), _n(c.entries), f"#{c.first_seq:,}-#{c.last_seq:,}",
                _cp(c.checkpoint), _n(c.unsigned_entries)]

    verdict = Safe('<span class="badge ok">OK</span>' if v.ok else '<span class="badge bad">FAILED</span>')
    source = "the files given" if v.keys_from == "files" else "the store"
    body = [
        _facts([
            ("Verdict", verdict),
            ("Scope", "the whole store (a full verification compares the tables this report is built from with the "
                      "chain; the period's entries are a part of it)"),
            ("Chains / entries / checkpoints", f"{v.chains:,} / {v.entries:,} / {v.checkpoints:,}"),
            ("Tables compared with the chain", "yes" if v.tables_checked else "no"),
            ("Checkpoint keys", f"{_join(v.keys)} (from {source})"),
            ("Rows older than the chain", _n(v.uncovered_rows)),
            ("Entries not signed yet", _join(f"{c}: {n:,}" for c, n in sorted(v.unattested.items()))),
        ]),
        "<h3>The period's entries and the checkpoints that cover them</h3>",
        _table(["Chain", "Entries", "Sequence", "Covering checkpoint", "Unsigned"],
               [coverage(c) for c in v.period_coverage], numeric=(1, 4), empty="No audit entries in the period."),
    ]
    if v.problems.total:
        body += ["<h3>Problems</h3>",
                 _table(["Chain", "Entry", "What", "Detail"],
                        [[p.chain, _n(p.seq), p.what, p.detail] for p in v.problems.items], numeric=(1,)),
                 _more(v.problems, "problems")]
    return _section("verification", "Audit integrity", "CC7.2, CC4.1",
                    "Every audit record is appended to a hash chain whose heads are signed (Ed25519) with a key kept "
                    "outside the store: an altered, removed, moved or inserted record breaks the chain, and a "
                    "rewritten chain no longer matches its signed checkpoints.", "".join(body))


def _access(ev: Evidence) -> str:
    a = ev.access
    people = _table(
        ["Person", "Sessions", "Statements", "First seen", "Last seen", "Authenticated by", "Issuer", "Groups",
         "Connections"],
        [[p.user, _n(p.sessions), _n(p.statements), _t(p.first_seen), _t(p.last_seen), _join(p.auth_methods),
          _join(p.issuers), _join(p.groups), _join(p.connections)] for p in a.by_person.items], numeric=(1, 2))
    conns = _table(
        ["Connection", "Sessions", "Statements", "People", "First seen", "Last seen", "Authenticated by"],
        [[c.connection, _n(c.sessions), _n(c.statements), _n(c.people), _t(c.first_seen), _t(c.last_seen),
          _join(c.auth_methods)] for c in a.by_connection.items], numeric=(1, 2, 3))
    return _section("access", "Access", "CC6.1, CC6.2, CC6.3",
                    "Who reached which database through the gateway, how they proved who they were, and with which "
                    "groups: sessions opened and statements run in the period.",
                    f"<h3>By person</h3>{people}{_more(a.by_person, 'people')}"
                    f"<h3>By connection</h3>{conns}{_more(a.by_connection, 'connections')}")


def _denials(ev: Evidence) -> str:
    d = ev.denials
    rules = _table(["Rule", "Denied"], [[r.rule, _n(r.count)] for r in d.by_rule], numeric=(1,))
    items = _table(
        ["Time (UTC)", "Person", "Connection", "Session", "Kind", "Rule", "Reason", "SQLSTATE", "Statement"],
        [[_t(x.at), x.user, x.connection, Safe(f'<span class="mono">{_e(x.session_id[:8])}</span> #{x.seq}'), x.kind,
          x.rule, x.reason, x.sqlstate, _sql(x.statement)] for x in d.items.items])
    return _section("denials", "Denied statements", "CC6.1, CC7.2",
                    "Statements the policy refused before they reached the database. Statement text is as recorded: "
                    "literals are replaced by $n.",
                    f"<h3>By rule</h3>{rules}<h3>Each denial</h3>{items}{_more(d.items, 'denials')}")


def _review_row(r: ReviewItem) -> list[Any]:
    tone = "ok" if r.status in ("approved", "executed") else "bad" if r.status == "denied" else "neutral"
    status = Safe(f'<span class="badge {tone}">{_e(r.status)}</span>')
    decided = _t(r.decided_at) + (f" by {_join(r.decided_by)}" if r.decided_by else "")
    if r.decision_reason and not r.votes:  # with votes, their reasons are the decision's (and listed with them)
        decided += f": {r.decision_reason}"
    return [Safe(f'<span class="mono">{_e(r.id)}</span>'), _t(r.requested_at), r.requester, r.connection, r.rule,
            _sql(r.statement), r.reason, status, decided, _votes(r.votes), _t(r.executed_at),
            _match(r.audit_match, r.audit_note)]


def _reviews(ev: Evidence) -> str:
    r = ev.reviews
    counts = ", ".join(f"{n:,} {s}" for s, n in sorted(r.by_status.items())) or "none"
    table = _table(["Review", "Requested", "Requester", "Connection", "Rule", "Statement", "Requester's reason",
                    "Outcome", "Decided", "Votes", "Executed", "Audit trail"],
                   [_review_row(x) for x in r.items.items])
    return _section("reviews", "Reviewed statements", "CC6.1, CC8.1",
                    "Statements a rule held until other people approved them: the requester, each reviewer's vote, "
                    "the outcome and when. A requester can never approve their own request.",
                    f"<p>{r.items.total:,} request(s) in the period: {_e(counts)}. Refused votes (self-approval, "
                    f"outside the approver groups, a second vote): {r.refused_votes:,}.</p>{table}"
                    f"{_more(r.items, 'review requests')}")


def _jit_row(a: AccessRequest) -> list[Any]:
    asked = _dur(a.duration) + (f" with groups {_join(a.groups)}" if a.groups else "")
    grant: Any = "-"
    revoked: Any = "-"
    sessions: Any = "-"
    if a.grant is not None:
        g = a.grant
        grant = Safe(f'<span class="mono">{_e(g.id)}</span> {_e(_t(g.started_at))} to {_e(_t(g.expires_at))}')
        revoked = (f"{_t(g.revoked_at)} by {g.revoked_by or '-'}" + (f": {g.revoke_reason}" if g.revoke_reason
                                                                     else "")) if g.revoked_at else "no"
        sessions = _n(g.sessions)
    return [Safe(f'<span class="mono">{_e(a.id)}</span>'), _t(a.requested_at), a.requester, a.connection, asked,
            a.reason, a.status, _votes(a.votes), grant, revoked, sessions, _match(a.audit_match, a.audit_note)]


def _jit(ev: Evidence) -> str:
    j = ev.jit_access
    counts = ", ".join(f"{n:,} {s}" for s, n in sorted(j.by_status.items())) or "none"
    table = _table(["Request", "Requested", "Requester", "Connection", "Asked for", "Reason", "Status", "Votes",
                    "Grant (first use to expiry)", "Revoked", "Sessions", "Audit trail"],
                   [_jit_row(a) for a in j.requests.items], numeric=(10,))
    return _section("jit", "Just-in-time access", "CC6.2, CC6.3",
                    "Temporary access asked for, approved by other people, and used: a grant starts at its first "
                    "session and ends at expiry or revocation.",
                    f"<p>{j.requests.total:,} request(s): {_e(counts)}; {j.grants:,} grant(s) started and "
                    f"{j.revoked:,} revoked in the period.</p>{table}{_more(j.requests, 'access requests')}")


def _masking(ev: Evidence) -> str:
    m = ev.masking
    counts = _table(["Connection", "Rule", "Column", "Found by", "Statements", "Values masked"],
                    [[c.connection, c.rule, c.column, c.detector, _n(c.statements), _n(c.values)]
                     for c in m.by_rule.items], numeric=(4, 5))
    exempt = _table(["Person", "Connection", "Exempt from rules", "Sessions"],
                    [[x.user, x.connection, _join(x.rules), _n(x.sessions)] for x in m.exemptions.items],
                    numeric=(3,), empty="No session was exempt from masking.")
    return _section("masking", "Masking", "CC6.1, C1.1",
                    "Sensitive values replaced in query results before they reached the client: how many, where, by "
                    "which rule (no value is recorded, only counts).",
                    f"<p>{m.values:,} value(s) masked in {m.statements:,} statement(s).</p>{counts}"
                    f"{_more(m.by_rule, 'rows')}<h3>Sessions exempt from masking by their groups</h3>{exempt}"
                    f"{_more(m.exemptions, 'exemptions')}")


def _auth(ev: Evidence) -> str:
    f = ev.auth_failures
    refusals = ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in sorted(f.refusals.items()))
    after = f" Sessions refused after login: {_e(refusals)}." if refusals else ""
    table = _table(["Time (UTC)", "Claimed user", "Claimed issuer", "Connection", "Client", "Via", "Reason"],
                   [[_t(x.at), x.user, x.issuer, x.connection, x.client_addr, x.via, x.reason] for x in f.items.items])
    return _section("auth", "Failed logins", "CC6.1, CC7.2",
                    "Credentials the gateway refused: the user and issuer are what the attempt claimed, not proven. "
                    "No credential is ever recorded.",
                    f"<p>{f.items.total:,} failed login(s).{after}</p>"
                    f"{table}{_more(f.items, 'failed logins')}")


def _config(ev: Evidence) -> str:
    c = ev.config_changes
    before = ""
    if c.in_effect_at_start is not None:
        s = c.in_effect_at_start
        before = (f"<p>In effect when the period began: configuration <code>{_e(s.sha256)}</code>, loaded "
                  f"{_e(_t(s.at))} UTC.</p>")
    rows = []
    for x in c.loads.items:
        what = (Safe(f'<span class="badge bad">changed</span> {_e(_join(x.changed_sections or []))}') if x.changed
                else Safe('<span class="badge neutral">first recorded</span>') if not x.previous_sha256
                else Safe('<span class="badge ok">unchanged</span>'))
        rows.append([_t(x.at), x.gateway, Safe(f"<code>{_e(x.sha256)}</code>"),
                     Safe(f"<code>{_e(x.previous_sha256)}</code>"), what])
    table = _table(["Time (UTC)", "Gateway", "SHA-256", "Previous SHA-256", "Changed sections"], rows)
    return _section("config", "Configuration changes", "CC8.1",
                    "Each gateway start records the SHA-256 of its whole configuration (secrets only as references) "
                    "and which top-level sections differ from the start before it.",
                    f"{before}<p>{c.loads.total:,} load(s), {c.changes:,} with a changed configuration.</p>{table}"
                    f"{_more(c.loads, 'loads')}")


def _admin(ev: Evidence) -> str:
    a = ev.admin_changes
    events = _table(["Time (UTC)", "Change", "Subject", "By", "Detail"],
                    [[_t(x.at), x.kind.replace("_", " "), x.subject, x.by,
                      _join(f"{k}={v}" for k, v in x.detail.items())] for x in a.events.items])
    tokens = _table(["Token id", "Subject", "Service account", "Groups", "Issued by", "Issued", "Expires", "Revoked"],
                    [[Safe(f'<span class="mono">{_e(t.id)}</span>'), t.subject, t.account, _join(t.groups),
                      t.created_by, _t(t.created_at), _t(t.expires_at), _t(t.revoked_at)] for t in a.tokens.items])
    return _section("admin", "Administrative changes", "CC6.2, CC6.3",
                    "Service accounts created, changed or disabled, audit retention pruning, and gateway tokens "
                    "issued or revoked (their ids and holders; a token itself is never stored).",
                    f"{events}{_more(a.events, 'changes')}<h3>Tokens</h3><p>{a.tokens_issued:,} issued and "
                    f"{a.tokens_revoked:,} revoked in the period.</p>{tokens}{_more(a.tokens, 'tokens')}")


def _activity(ev: Evidence) -> str:
    a = ev.activity
    s = ev.summary
    return _section("activity", "Activity over time", "CC7.2",
                    f"Statements per {a.grain} (UTC) by the policy's decision.",
                    f"<p>{s.statements:,} statement(s): {s.allowed:,} allowed, {s.reviewed:,} reviewed, "
                    f"{s.denied:,} denied.</p>{chart(a.buckets, a.grain)}")


def render(ev: Evidence) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    p = ev.period
    period = f"{_t(p.start) if p.start else 'the first record'} to {_t(p.end) if p.end else 'the time of the report'}"
    toc = "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in _TOC)
    exclusive = " (the end is exclusive)" if p.end else ""
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="generator" content="wardgate {_e(p.wardgate_version)}">',
        f"<title>wardgate evidence report: {_e(period)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>Access evidence report</h1><div class=\"meta\">Period (UTC): <strong>{_e(period)}</strong>"
        f"{exclusive}. Generated {_e(_t(p.generated_at))} UTC by wardgate {_e(p.wardgate_version)} "
        f"from the store <code>{_e(p.store)}</code>. Report format {_e(ev.format)}.</div></header>",
        _verdict(ev), _tiles(ev), f'<nav class="toc">{toc}</nav>',
        _activity(ev), _access(ev), _denials(ev), _reviews(ev), _jit(ev), _masking(ev), _auth(ev), _config(ev),
        _admin(ev), _verification(ev),
        "<footer>Sources: the sessions, statements and events tables (each row recorded on the hash chain and "
        "compared with it by the verification above), and the reviews, review votes and grants tables (not chained "
        "themselves: each listed review and grant is matched against the chained events of its votes, decision, "
        "grant and revocation). Times are UTC. The same report as JSON: <code>wardgate evidence -o report.json"
        "</code> (keys in docs/evidence.md).</footer></body></html>\n",
    ])
