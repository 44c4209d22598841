"""Decisions: which rule, if any, stops a statement, sends it for review, or lets it through.

Order (deterministic, documented in docs/policy.md): **deny beats review beats allow**. Among rules of the same
action the more specific scope wins (a rule naming connections and groups before one naming either, before one
naming neither), then the order of the file, user rules before the built-in pack. No rule: ``policy.default``.

A session's rules are chosen once, when it opens (its connection and groups); its decisions are then cached by
statement, so a repeated statement costs a dict lookup.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from ..config import Config, RuleConfig, RuleMatch
from .sql import StatementInfo

_RANK = {"deny": 0, "review": 1, "allow": 2}
_BOUNDED_KINDS = frozenset({"delete", "update"})


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # "allow" | "deny" | "review"
    rule: str  # the rule that decided; "default" when none matched
    reason: str

    @property
    def allowed(self) -> bool:
        return self.action == "allow"


def _split(name: str) -> tuple[str | None, str]:
    schema, _, obj = name.rpartition(".")
    return (schema or None), obj


def _name_matches(pattern: str, name: str) -> bool:
    """``schema.object`` patterns with shell wildcards. A name written without a schema may live in any schema,
    so it matches on its object part alone (broader, which is the safe side for a guardrail)."""
    p_schema, p_obj = _split(pattern)
    n_schema, n_obj = _split(name.lower())
    if not fnmatchcase(n_obj, p_obj):
        return False
    return p_schema is None or n_schema is None or fnmatchcase(n_schema, p_schema)


@dataclass(frozen=True, slots=True)
class Match:
    kinds: frozenset[str] = frozenset()
    tables: tuple[str, ...] = ()
    no_where: bool | None = None
    writes: bool | None = None
    functions: tuple[str, ...] = ()
    regex: re.Pattern[str] | None = None
    except_kinds: frozenset[str] = frozenset()
    tables_written: tuple[str, ...] = ()

    @classmethod
    def of(cls, m: RuleMatch) -> Match:
        return cls(
            frozenset(m.kinds),
            tuple(m.tables),
            m.no_where,
            m.writes,
            tuple(m.functions),
            re.compile(m.regex) if m.regex else None,
            frozenset(m.except_kinds),
            tuple(m.tables_written),
        )

    def matches(self, info: StatementInfo) -> bool:
        if self.kinds and not self.kinds & info.kinds:
            return False
        if self.except_kinds and self.except_kinds & info.kinds:
            return False
        if self.no_where is not None:
            relevant = (self.kinds & _BOUNDED_KINDS) or _BOUNDED_KINDS
            if bool(info.unbounded & relevant) != self.no_where:
                return False
        if self.writes is not None and info.writes != self.writes:
            return False
        if self.tables and not any(
            _name_matches(p, t) for p in self.tables for t in (*info.reads, *info.writes_to)
        ):
            return False
        if self.tables_written and not any(_name_matches(p, t) for p in self.tables_written for t in info.writes_to):
            return False
        if self.functions and not any(_name_matches(p, f) for p in self.functions for f in info.functions):
            return False
        return not (self.regex is not None and not self.regex.search(info.redacted or ""))


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    action: str
    match: Match
    reason: str
    connections: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    except_groups: frozenset[str] = frozenset()
    builtin: bool = False

    def applies(self, connection: str, groups: frozenset[str]) -> bool:
        if self.connections and connection not in self.connections:
            return False
        if self.groups and not self.groups & groups:
            return False
        return not self.except_groups & groups

    @property
    def specificity(self) -> int:
        return bool(self.connections) + bool(self.groups)


SERVER_FUNCTIONS = (
    # other sessions (every gateway user shares the upstream role) and the server itself
    "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile", "pg_promote",
    "pg_switch_wal",
    # the server's files
    "lo_import", "lo_export", "pg_read_file", "pg_read_binary_file", "pg_stat_file", "pg_file_write",
    "pg_file_rename", "pg_file_unlink", "pg_ls_dir", "pg_ls_logdir", "pg_ls_waldir", "pg_ls_tmpdir",
    "pg_ls_archive_statusdir", "pg_ls_logicalsnapdir", "pg_ls_logicalmapdir", "pg_ls_replslotdir",
    # other databases
    "dblink", "dblink_exec", "dblink_connect", "dblink_connect_u", "dblink_send_query", "dblink_open",
    "dblink_fetch",
    # SQL given as text, run inside the server where the gateway cannot see it
    "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "schema_to_xml", "schema_to_xmlschema",
    "schema_to_xml_and_xmlschema", "database_to_xml", "database_to_xmlschema", "database_to_xml_and_xmlschema",
)


def _builtin(name: str, reason: str, **match: object) -> Rule:
    return Rule(name, "deny", Match(**match), reason, builtin=True)  # type: ignore[arg-type]


# The default rule pack: guardrails every connection gets unless policy.builtin is false, a rule is named in
# policy.disable, or the user is in policy.exempt_groups.
BUILTIN: tuple[Rule, ...] = (
    _builtin("no-destructive-ddl", "dropping database objects or columns destroys data; run it as a reviewed "
             "migration", kinds=frozenset({"drop", "drop_column"})),
    _builtin("no-truncate", "TRUNCATE removes every row of a table", kinds=frozenset({"truncate"})),
    _builtin("no-delete-without-where", "DELETE without a WHERE clause that bounds it removes every row",
             kinds=frozenset({"delete"}), no_where=True),
    _builtin("no-update-without-where", "UPDATE without a WHERE clause that bounds it changes every row",
             kinds=frozenset({"update"}), no_where=True),
    _builtin("no-copy-program", "COPY ... PROGRAM runs a shell command on the database server",
             kinds=frozenset({"copy_program"})),
    _builtin("no-server-file-copy", "COPY to or from a file reads or writes the database server's own files; "
             "use COPY ... FROM STDIN / TO STDOUT (psql \\copy)", kinds=frozenset({"copy_file"})),
    _builtin("no-alter-system", "ALTER SYSTEM changes the server's configuration",
             kinds=frozenset({"alter_system"})),
    _builtin("no-do-blocks", "DO blocks, procedural function bodies and tables chosen at run time are code the "
             "gateway cannot inspect", kinds=frozenset({"do", "procedural_code", "dynamic_sql"})),
    _builtin("no-role-changes", "roles and privileges are managed outside the gateway (GRANT, REVOKE, "
             "CREATE/ALTER/DROP ROLE, SET ROLE, SET SESSION AUTHORIZATION)",
             kinds=frozenset({"grant", "revoke", "role", "set_role", "set_session_authorization"})),
    _builtin("no-server-functions", "the function reaches outside what the gateway can check (server files, "
             "other sessions, other databases, the server's configuration, SQL given as text)",
             functions=SERVER_FUNCTIONS),
)
BUILTIN_NAMES = frozenset(r.name for r in BUILTIN)  # the pack; "unparsed-statement" etc. are not in it
UNPARSED_RULE = "unparsed-statement"
UNKNOWN_PREPARED_RULE = "unknown-prepared-statement"
READ_ONLY_RULE = "read-only"
UNREADABLE_RULE = "unreadable-session"  # standard_conforming_strings off, or a client encoding other than UTF-8
RESERVED_NAMES = BUILTIN_NAMES | {UNPARSED_RULE, UNKNOWN_PREPARED_RULE, READ_ONLY_RULE, UNREADABLE_RULE, "default"}


# Read-only: nothing that writes, except changing one's own session settings (set_config(), as SET would).
_WRITES = Match(writes=True, except_kinds=frozenset({"settings_only"}))
# ... nor turn the session's or a transaction's read-only mode off (the upstream enforces it: see read_only()).
_READ_WRITE = Match(kinds=frozenset({"read_write"}))


def _from_config(rc: RuleConfig) -> Rule:
    return Rule(
        rc.name,
        rc.action,
        Match.of(rc.when),
        rc.reason,
        frozenset(rc.connections),
        frozenset(rc.groups),
        frozenset(rc.except_groups),
    )


class Policy:
    """Every rule of a configuration; ``scope`` picks those of one session."""

    def __init__(self, config: Config) -> None:
        pc = config.policy
        rules = [_from_config(r) for r in config.rules]
        if pc.builtin:
            exempt = frozenset(pc.exempt_groups)
            rules += [
                Rule(r.name, r.action, r.match, r.reason, except_groups=exempt, builtin=True)
                for r in BUILTIN
                if r.name not in pc.disable
            ]
        if pc.unparsed == "deny":
            rules.append(Rule(UNPARSED_RULE, "deny", Match(kinds=frozenset({"unparsed"})),
                              "the gateway cannot parse the statement, so it cannot check it", builtin=True))
        rules.append(Rule(UNKNOWN_PREPARED_RULE, "deny", Match(kinds=frozenset({"unknown"})),
                          "it executes a prepared statement the gateway never saw prepared, so it cannot check "
                          "what would run", builtin=True))
        self.read_only_connections = frozenset(name for name, c in config.connections.items() if c.read_only)
        self.read_only_groups = frozenset(pc.read_only_groups)
        for match in (_WRITES, _READ_WRITE):
            if self.read_only_connections:
                rules.append(Rule(READ_ONLY_RULE, "deny", match, "the connection is read-only",
                                  connections=self.read_only_connections, builtin=True))
            if self.read_only_groups:
                rules.append(Rule(READ_ONLY_RULE, "deny", match, "your group has read-only access",
                                  groups=self.read_only_groups, builtin=True))
        self.rules = tuple(rules)
        self.default = pc.default
        self._scopes: dict[tuple[str, frozenset[str]], RuleSet] = {}

    def read_only(self, connection: str, groups: Iterable[str]) -> bool:
        """Is a session of these groups on this connection read-only? Then the upstream session also runs with
        ``default_transaction_read_only = on``, so what the gateway cannot see (a function that writes) fails
        at the server."""
        return connection in self.read_only_connections or bool(self.read_only_groups & set(groups))

    def scope(self, connection: str, groups: Iterable[str]) -> RuleSet:
        key = (connection, frozenset(groups))
        rs = self._scopes.get(key)
        if rs is None:
            ordered = sorted(
                (r for r in self.rules if r.applies(*key)),
                key=lambda r: (_RANK[r.action], -r.specificity, r.builtin),  # stable: file order within
            )
            rs = RuleSet(tuple(ordered), self.default)
            if len(self._scopes) > 10_000:
                self._scopes.clear()
            self._scopes[key] = rs
        return rs


class RuleSet:
    """The rules of one scope (connection, groups), in decision order, with decisions cached by statement."""

    __slots__ = ("_by_id", "_cache", "default", "rules")

    def __init__(self, rules: tuple[Rule, ...], default: str) -> None:
        self.rules = rules
        self.default = default
        self._cache: dict[StatementInfo, Decision] = {}
        self._by_id: dict[int, tuple[StatementInfo, Decision]] = {}

    def decide(self, info: StatementInfo) -> Decision:
        # First by identity: the classifier caches by text, so a repeated statement brings the very same info.
        # Hashing it costs ~2,300 instructions (a generated dataclass __hash__, interpreted, over 11 fields);
        # its id costs nothing. The entry keeps the info alive, so its id cannot be reused while it is cached.
        hit = self._by_id.get(id(info))
        if hit is not None and hit[0] is info:
            return hit[1]
        d = self._cache.get(info)
        if d is None:
            d = self._decide(info)
            if len(self._cache) > 8192:
                self._cache.clear()
            self._cache[info] = d
        if len(self._by_id) > 8192:
            self._by_id.clear()
        self._by_id[id(info)] = (info, d)
        return d

    def _decide(self, info: StatementInfo) -> Decision:
        for rule in self.rules:
            if rule.match.matches(info):
                reason = rule.reason
                if rule.name == UNPARSED_RULE and info.error:
                    reason = f"{reason} ({info.error})"
                return Decision(rule.action, rule.name, reason)
        return Decision(self.default, "default", "no rule matched" if self.default == "allow" else
                        f"no rule allows it and the policy's default is {self.default}")
