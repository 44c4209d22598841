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

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import compress, groupby
from operator import itemgetter
from typing import Protocol, cast

from .bulk import ORDER, UNSURE, candidates, partial_kinds, partial_many, whole_kinds
from .detectors import Match, Prefilter, Scanner
from .maskers import Style, mask_matches, mask_text, mask_whole
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
    def spans(self, buf: bytes | bytearray, pos: int) -> tuple[list[tuple[int, int] | None], int]: ...
    def walk(self, buf: bytes, columns: tuple[int, ...]) -> tuple[list[int], list[int]]:
        """Every row of the run: ``rows`` = [start, end, start, end, ...]; ``offsets`` = for each row, for each
        of ``columns`` in order, the value's start and end (-1, -1 for NULL)."""
    def encode(self, values: Sequence[bytes | None]) -> bytes: ...
    def may_match(self, buf: bytes, columns: tuple[int, ...], skips: tuple[int, ...], prefilter: Prefilter) -> bool:
        """Does the value at ``columns[k]`` of any row, after ``skips[k]`` bytes, pass ``prefilter``?"""


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

    __slots__ = ("columns", "detector_rules", "key", "partial_kinds", "scan_columns", "scan_skips", "scanner", "scans",
                 "steps", "styles", "whole", "whole_steps")

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
        # the values the prefilter reads before anything else: only those the detectors would scan
        scan_steps = [s for s in steps if s.action in (Action.SCAN, Action.SCAN_OR_NULL)]
        self.scan_columns = tuple(s.index for s in scan_steps)
        self.scan_skips = tuple(s.skip for s in scan_steps)
        # per kind (bulk.ORDER): is that detector's style partial here, so that a value that is one such match
        # can be masked in C (see _whole_values)? Empty when none is.
        partial = [self.styles.get(name) is Style.PARTIAL for name in ORDER]
        self.partial_kinds = partial if any(partial) else []

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

        One walk gives the offsets of every value the plan touches; then each column is handled for the whole
        run at once: marked columns in the partial style are masked in place in one call, scanned columns go
        through the prefilter value by value in one call and the scanner runs once over the values that may
        hold something (joined). Replacements that keep their length are written in place; rows with one that
        does not are re-framed."""
        steps = self.steps
        if not steps:
            return buf
        scanner = self.scanner
        if not (scanner is not None and self.scans
                and codec.may_match(buf, self.scan_columns, self.scan_skips, scanner.prefilter)):
            if not self.whole:
                return buf
            steps = self.whole_steps
        rows, offsets = codec.walk(buf, tuple(st.index for st in steps))
        width = 2 * len(steps)
        out = bytearray(buf)
        changed = False
        edits: dict[int, list[tuple[int, bytes | None]]] = {}  # row -> (column, value) that re-frame it
        masked: list[bytes | None] = []  # values masked by detectors, which a second scan must find clean
        where: list[tuple[int, int, int, int, int]] = []  # their (row, column, start, end, skip)
        settle: list[int] = []  # those of them a second scan must look at (see _glued)
        for k, st in enumerate(steps):
            starts = offsets[2 * k :: width]
            ends = offsets[2 * k + 1 :: width]
            action = st.action
            if action is Action.WHOLE and st.style is Style.PARTIAL:
                n = partial_many(out, starts, ends)
                if n:
                    changed = True
                    self._add(counts, (st.rule, st.label, "column"), n)
            elif action is Action.WHOLE or action is Action.NULL:
                key = (st.rule, st.label, "column" if action is Action.WHOLE else "column:null")
                for r, (s, e) in enumerate(zip(starts, ends, strict=True)):
                    if s >= 0:
                        self._add(counts, key, 1)
                        new = mask_whole(buf[s:e], st.style, self.key) if action is Action.WHOLE else None
                        edits.setdefault(r, []).append((st.index, new))
            else:
                assert scanner is not None
                picked = candidates(buf, starts, ends, scanner.prefilter, st.skip)
                if picked and action is Action.SCAN and self.partial_kinds:
                    before = len(picked)
                    picked = self._whole_values(out, buf, st, picked, starts, ends, counts)
                    changed = changed or len(picked) < before
                if not picked:
                    continue
                values = [buf[starts[r] + st.skip : ends[r]] for r in picked]
                builtin = scanner.prefilter.native_bits != 0
                for vi, matches in _by_value(scanner.find_many(values)):
                    r = picked[vi]
                    value = values[vi]
                    new = self._scanned(st, value, matches, counts)
                    if new is None:
                        edits.setdefault(r, []).append((st.index, None))
                    else:
                        if not builtin or any(_glued(value, m) for m in matches):
                            settle.append(len(masked))
                        masked.append(new)
                        where.append((r, st.index, starts[r], ends[r], st.skip))
        if settle:
            self._settle(masked, settle, where, counts)
        for new, (r, col, s, e, skip) in zip(masked, where, strict=True):
            if new is not None and len(new) == e - s - skip:
                out[s + skip : e] = new
                changed = True
            else:
                edits.setdefault(r, []).append((col, None if new is None else buf[s : s + skip] + new))
        if not edits:
            return bytes(out) if changed else buf
        pieces: list[bytes] = []
        done = 0
        view = memoryview(out)
        for r in sorted(edits):
            start, end = rows[2 * r], rows[2 * r + 1]
            spans, _ = codec.spans(out, start)
            row: list[bytes | None] = [None if sp is None else bytes(view[sp[0] : sp[1]]) for sp in spans]
            for col, v in edits[r]:
                row[col] = v
            pieces.append(bytes(view[done:start]))
            pieces.append(codec.encode(row))
            done = end
        pieces.append(bytes(view[done:]))
        view.release()
        return b"".join(pieces)

    def _whole_values(self, out: bytearray, buf: bytes, st: _Step, picked: list[int], starts: list[int],
                      ends: list[int], counts: Counts) -> list[int]:
        """Values that are one sensitive value each (an e-mail address alone in its field...), recognised in C
        and masked in place in the partial style; returns the rest, for the scanner."""
        sp = [starts[r] for r in picked]
        ep = [ends[r] for r in picked]
        assert self.scanner is not None
        kinds = whole_kinds(buf, sp, ep, self.scanner.prefilter, st.skip)
        if kinds is None:
            return picked
        partial = self.partial_kinds
        if not all(partial):
            # a detector of another style: the scanner's way
            kinds = [k if k >= 0 and partial[k] else UNSURE for k in kinds]
        partial_kinds(out, sp, ep, kinds, st.skip)
        for k, n in Counter(kinds).items():
            if k >= 0:
                self._count(counts, st.label, ORDER[k], n)
        return list(compress(picked, map(UNSURE.__eq__, kinds)))

    @staticmethod
    def _add(counts: Counts, key: tuple[str, str, str], n: int) -> None:
        counts[key] = counts.get(key, 0) + n

    def _scanned(self, st: _Step, body: bytes, matches: list[Match], counts: Counts) -> bytes | None:
        """A scanned value with matches, masked where they are (one round; see _settle), or NULL (opaque binary,
        or a detector in the null style)."""
        suffix = ":null" if st.action is Action.SCAN_OR_NULL else ""
        for m in matches:
            self._count(counts, st.label, m.detector + suffix, 1)
        if suffix or any(self.styles[m.detector] is Style.NULL for m in matches):
            return None
        return mask_matches(body, matches, self.styles, self.key)

    def _settle(self, masked: list[bytes | None], settle: list[int], where: list[tuple[int, int, int, int, int]],
                counts: Counts) -> None:
        """Masking can uncover a value glued to a match (see maskers.mask_text): one scan over the values masked
        in this run that had a glued match finds those, and only they go through mask_text's loop (``masked`` is
        updated in place; None: the value became NULL)."""
        scanner = self.scanner
        assert scanner is not None
        again = scanner.find_many([cast(bytes, masked[i]) for i in settle])
        for si, matches in _by_value(again):
            vi = settle[si]
            value, detected = mask_text(cast(bytes, masked[vi]), scanner, self.styles, self.key, matches)
            label = self.columns[where[vi][1]].label
            for det, count in detected:
                self._count(counts, label, det, count)
            masked[vi] = value

    def _count(self, counts: Counts, label: str, detector: str, n: int) -> None:
        key = (self.detector_rules.get(detector.partition(":")[0], ""), label, detector)
        counts[key] = counts.get(key, 0) + n

    # --- free text (errors, notices, notifications, COPY data) -------------------------------------------------

    def mask_free_text(self, value: bytes, label: str, counts: Counts) -> bytes | None:
        """Mask detector matches in a piece of text that is not a column value."""
        return mask_free_text(self.scanner, self.styles, self.detector_rules, self.key, value, label, counts)


#: Bytes that end any built-in match's neighbour on their own: a match between two of these (or the ends of its
#: value) cannot, once masked, change what the built-in detectors find around it, so no second scan is needed.
#: Not "(": a phone number may start with one. Not space or tab: phone numbers and card groups are written with
#: them, so the bytes a partial mask keeps (an e-mail's first character, a card's last four digits) can complete
#: a number across one ("+44 20 7946 0958jane@x.org" -> "+44 20 7946 0***...": a phone number).
_SEPARATORS = frozenset(b"\r\n,;\")[]{}<>|=!?&*/")


def _glued(value: bytes, m: Match) -> bool:
    """Is this match glued to something a detector could read as part of a neighbour?"""
    return (m.start > 0 and value[m.start - 1] not in _SEPARATORS) or (
        m.end < len(value) and value[m.end] not in _SEPARATORS)


def _by_value(found: list[tuple[int, Match]]) -> Iterator[tuple[int, list[Match]]]:
    """find_many's matches grouped by the value they are in."""
    for vi, group in groupby(found, key=itemgetter(0)):
        yield vi, [m for _, m in group]


def mask_free_text(scanner: Scanner | None, styles: dict[str, Style], detector_rules: dict[str, str], key: bytes,
                   value: bytes, label: str, counts: Counts) -> bytes | None:
    if scanner is None or not scanner.may_match(value):
        return value
    masked, detected = mask_text(value, scanner, styles, key)
    for det, n in detected:
        k = (detector_rules.get(det, ""), label, det)
        counts[k] = counts.get(k, 0) + n
    return masked


