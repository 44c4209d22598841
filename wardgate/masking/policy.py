"""Masking rules: which sessions see which values masked, and how. Pure: names and bytes, no catalog, no I/O.

A rule marks **columns** (by ``schema.table.column`` pattern, matched against the names of the column a result
value comes from, views followed to their tables) and/or turns on **detectors** (values of any column that can
hold text are scanned). Rules are scoped like policy rules: ``connections`` and ``groups`` (empty: all), and
``exempt_groups`` see full values; an exemption is recorded with the session.

Several rules can apply to one session. A column takes the first matching rule in file order. Detectors are
merged into one scanner; a detector named by several rules takes the style of the first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from .detectors import BUILTIN_DETECTORS, Detector, Scanner
from .maskers import Style


@dataclass(frozen=True, slots=True)
class ColumnName:
    """Where a result column's values come from. A column of a view has the view's name and the names of the
    table column it shows, so a rule on ``customers.email`` covers a view over it."""

    schema: str
    table: str
    column: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}.{self.column}"


@dataclass(frozen=True, slots=True)
class ColumnPattern:
    """``table.column`` (any schema) or ``schema.table.column``; ``*`` and ``?`` are wildcards, case-sensitive
    as PostgreSQL's own names are (unquoted names are lower case)."""

    schema: str
    table: str
    column: str

    @classmethod
    def parse(cls, text: str) -> ColumnPattern:
        parts = text.split(".")
        if len(parts) == 2:
            return cls("*", parts[0], parts[1])
        if len(parts) == 3:
            return cls(parts[0], parts[1], parts[2])
        raise ValueError(f"{text!r} is not table.column or schema.table.column")

    def matches(self, name: ColumnName) -> bool:
        return (
            fnmatchcase(name.column, self.column)
            and fnmatchcase(name.table, self.table)
            and fnmatchcase(name.schema, self.schema)
        )

    @property
    def any_table(self) -> bool:
        """``*.email``: a rule on a column name wherever it appears, so it also covers an expression column that
        carries the name (``SELECT lower(email) AS email``), which no table names."""
        return self.table == "*" and self.schema == "*"

    def may_read(self, table: str) -> bool:
        """Could a statement that reads ``table`` (as written in it: ``customers`` or ``shop.customers``) read a
        column this pattern marks?"""
        schema, _, name = table.rpartition(".")
        return fnmatchcase(name, self.table) and (not schema or fnmatchcase(schema, self.schema))

    def __str__(self) -> str:
        return f"{self.table}.{self.column}" if self.schema == "*" else f"{self.schema}.{self.table}.{self.column}"


@dataclass(frozen=True, slots=True)
class MaskRule:
    name: str
    style: Style
    columns: tuple[ColumnPattern, ...] = ()
    detectors: tuple[str, ...] = ()
    connections: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    exempt_groups: frozenset[str] = frozenset()

    def applies(self, connection: str, groups: frozenset[str]) -> bool:
        if self.connections and connection not in self.connections:
            return False
        return not self.groups or bool(self.groups & groups)

    def column(self, names: Sequence[ColumnName], result_name: str, from_table: bool) -> bool:
        """Does this rule mark a result column known by ``names`` (empty for an expression) and called
        ``result_name`` in the result?"""
        for p in self.columns:
            if any(p.matches(n) for n in names):
                return True
            if not from_table and p.any_table and fnmatchcase(result_name, p.column):
                return True
        return False


@dataclass(slots=True)
class SessionMasking:
    """What one session's results go through: its rules, one scanner for their detectors, and each detector's
    style and rule."""

    rules: tuple[MaskRule, ...]
    key: bytes
    scanner: Scanner | None
    styles: dict[str, Style] = field(default_factory=dict)
    detector_rules: dict[str, str] = field(default_factory=dict)

    @property
    def has_columns(self) -> bool:
        return any(r.columns for r in self.rules)

    def column_rule(self, names: Sequence[ColumnName], result_name: str, from_table: bool) -> MaskRule | None:
        for r in self.rules:
            if r.columns and r.column(names, result_name, from_table):
                return r
        return None

    def copy_rule(self, tables_read: Iterable[str]) -> MaskRule | None:
        """The rule that forbids ``COPY ... TO STDOUT`` of these tables: COPY sends no column descriptions, so
        marked columns in it cannot be found and masked (detectors still run over its data)."""
        tables = list(tables_read)
        for r in self.rules:
            for p in r.columns:
                if any(p.may_read(t) for t in tables):
                    return r
        return None


class MaskingPolicy:
    """The configured masking rules; builds (and caches) each session scope's :class:`SessionMasking`."""

    def __init__(self, rules: Sequence[MaskRule], custom: Sequence[Detector] = (), key: bytes = b"") -> None:
        self.rules = tuple(rules)
        self.custom = {d.name: d for d in custom}
        self.key = key
        self._cache: dict[tuple[str, frozenset[str]], tuple[SessionMasking | None, tuple[str, ...]]] = {}

    def for_session(self, connection: str, groups: Iterable[str]) -> tuple[SessionMasking | None, tuple[str, ...]]:
        """The masking of a session, or None when no rule applies; and the rules its groups are exempt from."""
        scope = (connection, frozenset(groups))
        hit = self._cache.get(scope)
        if hit is None:
            hit = self._cache[scope] = self._build(*scope)
        return hit

    def _build(self, connection: str, groups: frozenset[str]) -> tuple[SessionMasking | None, tuple[str, ...]]:
        applied: list[MaskRule] = []
        exempt: list[str] = []
        for r in self.rules:
            if not r.applies(connection, groups):
                continue
            if r.exempt_groups & groups:
                exempt.append(r.name)
            else:
                applied.append(r)
        if not applied:
            return None, tuple(exempt)
        styles: dict[str, Style] = {}
        detector_rules: dict[str, str] = {}
        chosen: list[Detector] = []
        for r in applied:
            for name in r.detectors:
                if name in styles:
                    continue
                styles[name] = r.style
                detector_rules[name] = r.name
                chosen.append(self.custom[name] if name in self.custom else BUILTIN_DETECTORS[name])
        # custom detectors first: at one position a custom match beats a built-in one (see Scanner)
        chosen.sort(key=lambda d: d.name not in self.custom)
        scanner = Scanner(chosen) if chosen else None
        return SessionMasking(tuple(applied), self.key, scanner, styles, detector_rules), tuple(exempt)


def expand_detectors(names: Iterable[str]) -> tuple[str, ...]:
    """``all`` stands for every built-in detector, in the scanner's order."""
    out: list[str] = []
    for n in names:
        for x in BUILTIN_DETECTORS if n == "all" else (n,):
            if x not in out:
                out.append(x)
    return tuple(out)
