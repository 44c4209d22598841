"""Masking result rows: a plan per result shape, applied to whole runs of rows at once. Pure: bytes in, bytes out.

A result's columns are described once (names, where they come from, what kind of value each holds); the plan
says per column what happens to its values: masked whole (a column a rule marks), scanned by the detectors
(any column that can hold text), or left alone. A run of rows is first put to the scanner's prefilter, which
clears a buffer with no possible match in one pass; only a run that may hold something is walked row by row,
and only rows that change are rewritten: in place when every replacement keeps its length (the partial style),
re-framed otherwise.

How values are laid out in a row is the caller's (``RowCodec``): this module knows no protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from .detectors import Match, Scanner
from .maskers import PARTIAL, Style, full_token, hash_token, keep_ends, mask_matches, mask_text
from .policy import ColumnName, SessionMasking


class Kind(Enum):
    """What a column's values are, as far as masking is concerned (decided by the front-end from the type)."""

    TEXT = "text"  # plain text: masked whole in any style, scanned
    STRUCTURED = "structured"  # text with a syntax (JSON, arrays, XML, records): scanned; masked whole -> NULL
    JSONB_BINARY = "jsonb_binary"  # a version byte, then JSON text: scanned after the first byte
    OPAQUE = "opaque"  # binary with a structure of its own: a match anywhere -> NULL
    NOT_TEXT = "not_text"  # numbers, dates, ...: not scanned; masked whole -> NULL


@dataclass(frozen=True, slots=True)
class Column:
    name: str  # as the result calls it
    names: tuple[ColumnName, ...]  # where it comes from (empty: an expression)
    from_table: bool
    kind: Kind

    @property
    def label(self) -> str:
        return str(self.names[0]) if self.names else self.name


class Action(Enum):
    KEEP = 0
    SCAN = 1  # detectors over the value
    WHOLE = 2  # a marked column, masked whole in its rule's style
    NULL = 3  # a marked column whose type cannot hold a masked value
    SCAN_OR_NULL = 4  # opaque binary: a match anywhere makes it NULL


#: Counts per (rule, column label, detector or "column")
Counts = dict[tuple[str, str, str], int]


class RowCodec(Protocol):
    def spans(self, buf: bytes, pos: int) -> tuple[list[tuple[int, int] | None], int]: ...
    def encode(self, values: Sequence[bytes | None]) -> bytes: ...


@dataclass(slots=True)
class _Step:
    index: int
    action: Action
    rule: str
    label: str
    style: Style
    skip: int = 0  # bytes before the text (the jsonb version byte)


class ResultPlan:
    """How one result shape is masked. ``steps`` covers only the columns that are not kept as they are."""

    __slots__ = ("columns", "detector_rules", "key", "scanner", "scans", "steps", "styles", "whole", "whole_steps")

    def __init__(self, masking: SessionMasking, columns: Sequence[Column]) -> None:
        self.columns = tuple(columns)
        self.scanner = masking.scanner
        self.styles = masking.styles
        self.detector_rules = masking.detector_rules
        self.key = masking.key
        steps: list[_Step] = []
        for i, c in enumerate(columns):
            rule = masking.column_rule(c.names, c.name, c.from_table) if masking.has_columns else None
            if rule is not None:
                action = Action.WHOLE if c.kind is Kind.TEXT else Action.NULL
                steps.append(_Step(i, action, rule.name, c.label, rule.style))
            elif self.scanner is not None and c.kind is not Kind.NOT_TEXT:
                action = Action.SCAN_OR_NULL if c.kind is Kind.OPAQUE else Action.SCAN
                skip = 1 if c.kind is Kind.JSONB_BINARY else 0
                steps.append(_Step(i, action, "", c.label, Style.PARTIAL, skip))
        self.steps = tuple(steps)
        self.whole_steps = tuple(s for s in steps if s.action in (Action.WHOLE, Action.NULL))
        self.whole = bool(self.whole_steps)
        self.scans = len(self.whole_steps) < len(self.steps)

    @property
    def idle(self) -> bool:
        """Nothing in this result can be masked: its rows are relayed untouched."""
        return not self.steps

    def marked(self) -> list[tuple[str, str, str]]:
        """(column label, rule, what happens) for the columns masked whole: what `policy check` shows."""
        out = []
        for s in self.steps:
            if s.action is Action.WHOLE:
                out.append((self.columns[s.index].name, s.rule, f"masked ({s.style.value}), from {s.label}"))
            elif s.action is Action.NULL:
                out.append((self.columns[s.index].name, s.rule, f"NULL (its type cannot hold a mask), from {s.label}"))
        return out

    def scanned(self) -> list[str]:
        return [self.columns[s.index].name for s in self.steps if s.action in (Action.SCAN, Action.SCAN_OR_NULL)]

    # --- rows ---------------------------------------------------------------------------------------------------

    def mask_rows(self, buf: bytes, codec: RowCodec, counts: Counts) -> bytes:
        """Mask a run of whole rows; returns ``buf`` itself when nothing in it changes. Adds to ``counts``.

        Three passes, so that the scanner runs once over all the run's scanned values (joined) rather than
        once per value: walk the rows (marked columns are masked on the way), scan, then write the edits (in
        place when no length changes, else the edited rows are re-framed)."""
        steps = self.steps
        if not steps:
            return buf
        scanner = self.scanner
        scan = scanner is not None and self.scans and scanner.may_match(buf)
        if not scan:
            if not self.whole:
                return buf
            steps = self.whole_steps
        rows: list[tuple[int, int, list[tuple[int, int] | None]]] = []
        edits: dict[int, list[tuple[int, int, int, bytes | None]]] = {}
        values: list[bytes] = []
        refs: list[tuple[int, _Step, int, int]] = []
        pos = 0
        end = len(buf)
        r = 0
        whole, null = Action.WHOLE, Action.NULL
        while pos < end:
            spans, row_end = codec.spans(buf, pos)
            rows.append((pos, row_end, spans))
            for st in steps:
                span = spans[st.index]
                if span is None:
                    continue
                s, e = span
                action = st.action
                if action is whole or action is null:
                    key = (st.rule, st.label, "column" if action is whole else "column:null")
                    counts[key] = counts.get(key, 0) + 1
                    new = mask_whole(buf[s:e], st.style, self.key) if action is whole else None
                    edits.setdefault(r, []).append((st.index, s, e, new))
                else:
                    values.append(buf[s + st.skip : e])
                    refs.append((r, st, s, e))
            pos = row_end
            r += 1
        if values:
            assert scanner is not None
            masked: list[bytes] = []  # values masked once, which a second scan must find clean
            where: list[tuple[int, int]] = []  # (row, index in its edits) of each
            found = scanner.find_many(values)
            i = 0
            while i < len(found):
                vi = found[i][0]
                j = i + 1
                while j < len(found) and found[j][0] == vi:
                    j += 1
                r, st, s, e = refs[vi]
                new = self._scanned(st, values[vi], [m for _, m in found[i:j]], counts)
                row_edits = edits.setdefault(r, [])
                if new is not None:
                    masked.append(new)
                    where.append((r, len(row_edits)))
                    new = buf[s : s + st.skip] + new
                row_edits.append((st.index, s, e, new))
                i = j
            if masked:
                self._settle(masked, where, edits, counts)
        if not edits:
            return buf
        if all(v is not None and len(v) == e - s for ed in edits.values() for _, s, e, v in ed):
            out = bytearray(buf)
            for ed in edits.values():
                for _, s, e, v in ed:
                    out[s:e] = v or b""  # all replacements are bytes of the same length here
            return bytes(out)
        pieces: list[bytes] = []
        done = 0
        for r in sorted(edits):
            start, row_end, spans = rows[r]
            row = [None if sp is None else buf[sp[0] : sp[1]] for sp in spans]
            for col, _, _, v in edits[r]:
                row[col] = v
            pieces.append(buf[done:start])
            pieces.append(codec.encode(row))
            done = row_end
        pieces.append(buf[done:])
        return b"".join(pieces)

    def _scanned(self, st: _Step, body: bytes, matches: list[Match], counts: Counts) -> bytes | None:
        """A scanned value with matches, masked where they are (one round; see _settle), or NULL (opaque binary,
        or a detector in the null style)."""
        suffix = ":null" if st.action is Action.SCAN_OR_NULL else ""
        for m in matches:
            self._count(counts, st.label, m.detector + suffix, 1)
        if suffix or any(self.styles[m.detector] is Style.NULL for m in matches):
            return None
        return mask_matches(body, matches, self.styles, self.key)

    def _settle(self, masked: list[bytes], where: list[tuple[int, int]],
                edits: dict[int, list[tuple[int, int, int, bytes | None]]], counts: Counts) -> None:
        """Masking can uncover a value glued to a match (see maskers.mask_text): one scan over every value masked
        in this run finds those, and only they go through mask_text's loop."""
        scanner = self.scanner
        assert scanner is not None
        again = scanner.find_many(masked)
        i = 0
        while i < len(again):
            vi = again[i][0]
            j = i + 1
            while j < len(again) and again[j][0] == vi:
                j += 1
            r, n = where[vi]
            col, s, e, old = edits[r][n]
            assert old is not None
            head = old[: len(old) - len(masked[vi])]
            value, detected = mask_text(masked[vi], scanner, self.styles, self.key, [m for _, m in again[i:j]])
            label = self.columns[col].label
            for det, count in detected:
                self._count(counts, label, det, count)
            edits[r][n] = (col, s, e, None if value is None else head + value)
            i = j

    def _count(self, counts: Counts, label: str, detector: str, n: int) -> None:
        key = (self.detector_rules.get(detector.partition(":")[0], ""), label, detector)
        counts[key] = counts.get(key, 0) + n

    # --- free text (errors, notices, notifications, COPY data) -------------------------------------------------

    def mask_free_text(self, value: bytes, label: str, counts: Counts) -> bytes | None:
        """Mask detector matches in a piece of text that is not a column value."""
        return mask_free_text(self.scanner, self.styles, self.detector_rules, self.key, value, label, counts)


def _whole_kind(value: bytes) -> str | None:
    """The detector whose partial shape fits a whole marked value, judged by its shape alone (a marked column is
    masked whatever it holds, so nothing needs validating, and this runs for every value of the column)."""
    if b"@" in value:
        return "email"
    digits = value.translate(None, b" -.()+")
    if not digits.isdigit():
        return None
    n = len(digits)
    if value[:1] in (b"+", b"("):
        return "phone"
    if 13 <= n <= 19:
        return "credit_card"
    if n == 9 and len(value) == 11:
        return "ssn"
    if 10 <= n <= 12 and n < len(value):
        return "phone"
    return None


def mask_whole(value: bytes, style: Style, key: bytes) -> bytes | None:
    """A value of a marked column. ``partial`` keeps the shape of what it holds when a detector recognises the
    whole value (``j***@*******.com``), else its first and last characters; ``full`` and ``hash`` name the
    detector when one recognises it, else ``column``."""
    if style is Style.NULL:
        return None
    kind = _whole_kind(value)
    if style is Style.PARTIAL:
        return PARTIAL.get(kind, keep_ends)(value) if kind else keep_ends(value)
    if style is Style.FULL:
        return full_token(kind or "column")
    return hash_token(value, kind or "column", key)


def mask_free_text(scanner: Scanner | None, styles: dict[str, Style], detector_rules: dict[str, str], key: bytes,
                   value: bytes, label: str, counts: Counts) -> bytes | None:
    if scanner is None or not scanner.may_match(value):
        return value
    masked, detected = mask_text(value, scanner, styles, key)
    for det, n in detected:
        k = (detector_rules.get(det, ""), label, det)
        counts[k] = counts.get(k, 0) + n
    return masked


