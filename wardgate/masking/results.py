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

from .detectors import Scanner
from .maskers import PARTIAL, Style, full_token, hash_token, keep_ends, mask_text
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

    __slots__ = ("columns", "detector_rules", "key", "scanner", "steps", "styles", "whole")

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
        self.whole = any(s.action in (Action.WHOLE, Action.NULL) for s in steps)

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
        """Mask a run of whole rows; returns ``buf`` itself when nothing in it changes. Adds to ``counts``."""
        steps = self.steps
        if not steps:
            return buf
        if self.scanner is None or not self.scanner.may_match(buf):
            if not self.whole:
                return buf
            steps = tuple(s for s in steps if s.action in (Action.WHOLE, Action.NULL))
        out: bytearray | None = None  # in-place edits while every replacement keeps its length
        pieces: list[bytes] = []  # re-framed output once one does not
        done = 0  # bytes of buf already accounted for in pieces
        pos = 0
        end = len(buf)
        while pos < end:
            spans, row_end = codec.spans(buf, pos)
            edits: list[tuple[int, int, int, bytes | None]] | None = None
            same_size = True
            for st in steps:
                span = spans[st.index]
                if span is None:
                    continue
                s, e = span
                new = self._value(st, buf, s, e, counts)
                if new is not _SAME:
                    if edits is None:
                        edits = []
                    value = new if isinstance(new, bytes) else None
                    same_size = same_size and value is not None and len(value) == e - s
                    edits.append((st.index, s, e, value))
            if edits is not None:
                if same_size and not pieces:
                    if out is None:
                        out = bytearray(buf)
                    for _, s, e, v in edits:
                        out[s:e] = v or b""  # same_size: never None here
                else:
                    if out is not None:  # switch from in-place to re-framing: take what was edited so far
                        pieces.append(bytes(out[done:pos]))
                        out = None
                    else:
                        pieces.append(buf[done:pos])
                    values = [None if sp is None else buf[sp[0] : sp[1]] for sp in spans]
                    for i, _, _, v in edits:
                        values[i] = v
                    pieces.append(codec.encode(values))
                    done = row_end
            pos = row_end
        if pieces:
            pieces.append(buf[done:] if out is None else bytes(out[done:]))
            return b"".join(pieces)
        return buf if out is None else bytes(out)

    def _value(self, st: _Step, buf: bytes, s: int, e: int, counts: Counts) -> bytes | object | None:
        action = st.action
        if action is Action.WHOLE:
            key = (st.rule, st.label, "column")
            counts[key] = counts.get(key, 0) + 1
            return mask_whole(buf[s:e], st.style, self.key)
        if action is Action.NULL:
            key = (st.rule, st.label, "column:null")  # recorded as NULLed: the type could not hold a mask
            counts[key] = counts.get(key, 0) + 1
            return None
        scanner = self.scanner
        assert scanner is not None
        found = scanner.find(buf, s + st.skip, e)
        if not found:
            return _SAME
        if action is Action.SCAN_OR_NULL:
            for m in found:
                self._count(counts, st.label, m.detector + ":null", 1)
            return None
        value = buf[s:e]
        base = s
        head = value[: st.skip]
        body = value[st.skip :]
        matches = [m._replace(start=m.start - base - st.skip, end=m.end - base - st.skip) for m in found]
        masked, detected = mask_text(body, scanner, self.styles, self.key, matches)
        for det, n in detected:
            self._count(counts, st.label, det, n)
        return None if masked is None else head + masked

    def _count(self, counts: Counts, label: str, detector: str, n: int) -> None:
        key = (self.detector_rules.get(detector.partition(":")[0], ""), label, detector)
        counts[key] = counts.get(key, 0) + n

    # --- free text (errors, notices, notifications, COPY data) -------------------------------------------------

    def mask_free_text(self, value: bytes, label: str, counts: Counts) -> bytes | None:
        """Mask detector matches in a piece of text that is not a column value."""
        return mask_free_text(self.scanner, self.styles, self.detector_rules, self.key, value, label, counts)


_SAME = object()
_WHOLE_SCANNER: list[Scanner] = []


def _whole_scanner() -> Scanner:
    if not _WHOLE_SCANNER:
        _WHOLE_SCANNER.append(Scanner.builtin())
    return _WHOLE_SCANNER[0]


def _whole_kind(value: bytes) -> str | None:
    """The detector that recognises all of ``value``, if one does: its partial shape is kept."""
    found = _whole_scanner().find(value)
    if len(found) == 1 and found[0].start == 0 and found[0].end == len(value):
        return found[0].detector
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


