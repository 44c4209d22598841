"""The policy engine: classification facts, rule matching, decision order, configuration errors, startup settings.

The statement corpus (tests/policy_corpus.py) checks decisions end to end; these tests pin the semantics each
decision rests on.
"""

from __future__ import annotations

from typing import Any

import pytest

from wardgate.config import Config, ConfigError, load_config
from wardgate.policy.decide import decide_message, refused
from wardgate.policy.rules import Policy
from wardgate.policy.sql import StatementInfo, classify
from wardgate.policy.startup import UnsupportedOption, as_statement, split_options, startup_settings


def one(text: str) -> StatementInfo:
    (info,) = classify(text)
    return info


def config(**extra: Any) -> Config:
    data: dict[str, Any] = {
        "listen": {"allow_plaintext": True},
        "connections": {
            "shop": {"upstream": "postgresql://app@127.0.0.1:5432/shop"},
            "ro": {"upstream": "postgresql://app@127.0.0.1:5432/shop", "read_only": True},
        },
    }
    # review rules need approvers; these tests are about decisions, so every config has default ones
    data["policy"] = {"review": {"approvers": ["sre"]}, **extra.pop("policy", {})}
    data.update(extra)
    return Config.model_validate(data)


def decide(cfg: Config, text: str, groups: tuple[str, ...] = ("eng",), connection: str = "shop",
           prepared: dict[str, str] | None = None) -> tuple[str, str]:
    rules = Policy(cfg).scope(connection, groups)
    decisions = decide_message(rules, classify(text), prepared or {})
    bad = refused(decisions)
    d = decisions[bad][0] if bad >= 0 else decisions[0][0]
    return d.action, d.rule


# --- classification ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "kind", "kinds", "reads", "writes_to", "writes", "unbounded"), [
    ("SELECT * FROM a JOIN s.b ON true", "select", {"select"}, ("a", "s.b"), (), False, set()),
    ("WITH x AS (SELECT 1) SELECT * FROM x, y", "select", {"select"}, ("y",), (), False, set()),
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "select", {"select", "delete"}, (), ("t",), True,
     {"delete"}),
    ("UPDATE t SET a = 1 FROM u WHERE t.id = u.id", "update", {"update"}, ("u",), ("t",), True, set()),
    ("UPDATE t SET a = 1", "update", {"update"}, (), ("t",), True, {"update"}),
    ("DELETE FROM t WHERE 1 = 1", "delete", {"delete"}, (), ("t",), True, {"delete"}),
    ("DELETE FROM t WHERE true", "delete", {"delete"}, (), ("t",), True, {"delete"}),
    ("DELETE FROM t WHERE id = id", "delete", {"delete"}, (), ("t",), True, {"delete"}),
    ("DELETE FROM t WHERE 1 = 2", "delete", {"delete"}, (), ("t",), True, {"delete"}),  # no column: no bound
    ("DELETE FROM t WHERE 2 > 1 AND NOT false", "delete", {"delete"}, (), ("t",), True, {"delete"}),
    ("DELETE FROM t x WHERE EXISTS (SELECT 1 FROM u WHERE u.a = 1)", "delete", {"delete"}, ("u",), ("t",), True,
     {"delete"}),
    ("DELETE FROM t x WHERE EXISTS (SELECT 1 FROM u WHERE u.a = x.a)", "delete", {"delete"}, ("u",), ("t",), True,
     set()),
    ("DELETE FROM t WHERE id IN (SELECT id FROM u)", "delete", {"delete"}, ("u",), ("t",), True, set()),
    ("MERGE INTO t USING s ON true WHEN MATCHED THEN UPDATE SET a = 1", "merge", {"merge", "update"}, ("s",),
     ("t",), True, {"update"}),
    ("INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 2", "insert", {"insert", "update"}, (), ("t",),
     True, set()),
    ("SELECT * FROM secrets, (WITH secrets AS (SELECT 1) SELECT * FROM secrets) s", "select", {"select"},
     ("secrets",), (), False, set()),
    ("DELETE FROM t WHERE id = 7 OR 'a' = 'a'", "delete", {"delete"}, (), ("t",), True, {"delete"}),
    ("DELETE FROM t WHERE id = $1", "delete", {"delete"}, (), ("t",), True, set()),
    ("SELECT * INTO n FROM t", "select", {"select", "select_into"}, ("t",), ("n",), True, set()),
    ("SELECT * FROM t FOR UPDATE", "select", {"select", "locking"}, ("t",), (), True, set()),
    ("EXPLAIN DELETE FROM t", "explain", {"explain"}, ("t",), (), False, set()),
    ("EXPLAIN (ANALYZE) DELETE FROM t", "explain", {"explain", "explain_analyze", "delete"}, (), ("t",), True,
     {"delete"}),
    ("EXPLAIN (ANALYZE false) DELETE FROM t", "explain", {"explain"}, ("t",), (), False, set()),
    ("PREPARE p AS UPDATE t SET a = 1", "prepare", {"prepare", "update"}, (), ("t",), True, {"update"}),
    ("COPY t FROM STDIN", "copy", {"copy", "copy_from"}, (), ("t",), True, set()),
    ("COPY t TO STDOUT", "copy", {"copy", "copy_to"}, ("t",), (), False, set()),
    ("COPY t TO PROGRAM 'gzip > /tmp/x'", "copy", {"copy", "copy_to", "copy_program"}, ("t",), (), True, set()),
    ("COPY t FROM '/etc/passwd'", "copy", {"copy", "copy_from", "copy_file"}, (), ("t",), True, set()),
    ("SET ROLE admin", "set", {"set", "set_role"}, (), (), False, set()),
    ("RESET ROLE", "reset", {"reset"}, (), (), False, set()),
    ("SET SESSION AUTHORIZATION bob", "set", {"set", "set_session_authorization"}, (), (), False, set()),
    ("ALTER SYSTEM SET work_mem = '1GB'", "alter", {"alter", "alter_system", "ddl"}, (), (), True, set()),
    ("DROP TABLE a, s.b", "drop", {"drop", "ddl"}, (), ("a", "s.b"), True, set()),
    ("ALTER TABLE t DROP COLUMN c", "alter", {"alter", "ddl", "drop_column"}, (), ("t",), True, set()),
    ("GRANT SELECT ON t TO bob", "grant", {"grant"}, (), ("t",), True, set()),
    ("REVOKE SELECT ON t FROM bob", "revoke", {"revoke"}, (), ("t",), True, set()),
    ("CREATE ROLE x", "create", {"create", "ddl", "role"}, (), (), True, set()),
    ("VACUUM t", "vacuum", {"vacuum"}, (), ("t",), True, set()),
    ("ANALYZE t", "analyze", {"analyze"}, (), ("t",), True, set()),
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "merge", {"merge", "delete"}, ("s",),
     ("t",), True, set()),
    ("BEGIN", "transaction", {"transaction"}, (), (), False, set()),
    ("NOTIFY ch", "notify", {"notify"}, (), (), False, set()),
])
def test_facts(text: str, kind: str, kinds: set[str], reads: tuple[str, ...], writes_to: tuple[str, ...],
               writes: bool, unbounded: set[str]) -> None:
    info = one(text)
    assert (info.kind, set(info.kinds) - {"ddl"} | ({"ddl"} & kinds), info.reads, info.writes_to, info.writes,
            set(info.unbounded)) == (kind, kinds, reads, writes_to, writes, unbounded)


def test_functions_are_seen_wherever_they_are_called() -> None:
    info = one("SELECT (SELECT pg_catalog.pg_read_file('/etc/passwd')) FROM t WHERE x IN (SELECT lo_import('/x'))")
    assert info.functions == ("lo_import", "pg_catalog.pg_read_file")
    assert info.writes and "writing_function" in info.kinds  # lo_import writes a large object


def test_literal_values_do_not_leak_and_shapes_are_shared() -> None:
    a, b = one("DELETE FROM t WHERE id = 4111111111111111"), one("DELETE FROM t WHERE id = 5")
    assert a == b and a.redacted == "DELETE FROM t WHERE id = $1"
    # a WHERE that names no column bounds nothing, whatever its literals: the shape alone decides it
    assert one("DELETE FROM t WHERE 7 = 7").unbounded == {"delete"} == one("DELETE FROM t WHERE 7 = 8").unbounded


def test_unparsable_is_unparsed_with_the_parser_message_without_the_text() -> None:
    info = one("SELEC 'secret-value'")
    assert info.kind == "unparsed" and info.error and "secret-value" not in info.error
    assert info.redacted == "SELEC $1"


# --- matching and decisions --------------------------------------------------------------------------------------

def test_default_pack_decisions() -> None:
    cfg = config()
    assert decide(cfg, "SELECT 1") == ("allow", "default")
    assert decide(cfg, "TRUNCATE t") == ("deny", "no-truncate")
    assert decide(cfg, "select 1; /* x */ DrOp   TABLE \"T\"") == ("deny", "no-destructive-ddl")
    assert decide(cfg, "DO $$BEGIN EXECUTE 'DROP TABLE t'; END$$") == ("deny", "no-do-blocks")
    assert decide(cfg, "SELECT pg_catalog.PG_READ_FILE('x')") == ("deny", "no-server-functions")
    assert decide(cfg, "SET ROLE postgres") == ("deny", "no-role-changes")
    assert decide(cfg, "RESET ROLE") == ("allow", "default")
    assert decide(cfg, "SELEC 1") == ("deny", "unparsed-statement")
    assert decide(cfg, "EXECUTE nope") == ("deny", "unknown-prepared-statement")
    assert decide(cfg, "EXECUTE p(1)", prepared={"p": "DELETE FROM t"}) == ("deny", "no-delete-without-where")
    assert decide(cfg, "PREPARE p AS SELECT 1; EXECUTE p") == ("allow", "default")
    assert decide(cfg, "PREPARE p AS DELETE FROM t WHERE id = $1; EXECUTE p(1)") == ("allow", "default")


def test_deny_beats_review_beats_allow_and_specific_scope_names_the_rule() -> None:
    cfg = config(rules=[
        {"name": "allow-orders", "action": "allow", "when": {"tables": ["orders"]}},
        {"name": "review-writes", "action": "review", "when": {"writes": True}},
        {"name": "deny-orders-interns", "action": "deny", "groups": ["interns"], "when": {"tables": ["orders"]}},
        {"name": "deny-orders", "action": "deny", "when": {"tables": ["public.orders"], "kinds": ["delete"]}},
        {"name": "deny-orders-shop-interns", "action": "deny", "connections": ["shop"], "groups": ["interns"],
         "when": {"kinds": ["delete"]}},
    ])
    assert decide(cfg, "SELECT * FROM orders") == ("allow", "allow-orders")
    assert decide(cfg, "UPDATE orders SET a = 1 WHERE id = 1") == ("review", "review-writes")
    assert decide(cfg, "DELETE FROM orders WHERE id = 1") == ("deny", "deny-orders")
    assert decide(cfg, "DELETE FROM s.orders WHERE id = 1") == ("review", "review-writes")  # another schema
    assert decide(cfg, "DELETE FROM orders WHERE id = 1", ("interns",)) == ("deny", "deny-orders-shop-interns")
    assert decide(cfg, "SELECT * FROM orders", ("interns",)) == ("deny", "deny-orders-interns")


def test_names_match_with_wildcards_and_unqualified_names_match_any_schema() -> None:
    cfg = config(rules=[
        {"name": "pii", "action": "deny", "when": {"tables": ["crm.*_pii"]}},
        {"name": "fn", "action": "deny", "when": {"functions": ["pg_catalog.current_setting"]}},
        {"name": "rx", "action": "deny", "when": {"regex": "(?i)pg_sleep\\(\\$"}},
    ])
    assert decide(cfg, "SELECT * FROM crm.person_pii") == ("deny", "pii")
    assert decide(cfg, "SELECT * FROM person_pii") == ("deny", "pii")  # could be crm's, via search_path
    assert decide(cfg, "SELECT * FROM sales.person_pii") == ("allow", "default")
    assert decide(cfg, "SELECT current_setting('x')") == ("deny", "fn")
    assert decide(cfg, "SELECT other.current_setting('x')") == ("allow", "default")
    assert decide(cfg, "select PG_SLEEP(10)") == ("deny", "rx")


def test_exemptions_disabling_and_read_only() -> None:
    cfg = config(policy={"exempt_groups": ["dba"], "disable": ["no-truncate"], "read_only_groups": ["analysts"]})
    assert decide(cfg, "TRUNCATE t") == ("allow", "default")
    assert decide(cfg, "DROP TABLE t", ("eng", "dba")) == ("allow", "default")
    assert decide(cfg, "DROP TABLE t", ("eng",)) == ("deny", "no-destructive-ddl")
    assert decide(cfg, "INSERT INTO t VALUES (1)", ("analysts",)) == ("deny", "read-only")
    assert decide(cfg, "SELECT * FROM t FOR UPDATE", ("analysts",)) == ("deny", "read-only")
    assert decide(cfg, "SELECT nextval('s')", ("analysts",)) == ("deny", "read-only")
    assert decide(cfg, "SELECT * FROM t", ("analysts",)) == ("allow", "default")
    assert decide(cfg, "INSERT INTO t VALUES (1)", connection="ro") == ("deny", "read-only")
    assert decide(cfg, "SET search_path = x", connection="ro") == ("allow", "default")


def test_default_action_and_builtin_off() -> None:
    cfg = config(policy={"builtin": False, "default": "deny", "unparsed": "allow"},
                 rules=[{"name": "reads", "action": "allow", "when": {"writes": False}}])
    assert decide(cfg, "SELECT 1") == ("allow", "reads")
    assert decide(cfg, "TRUNCATE t") == ("deny", "default")
    assert decide(cfg, "SELEC 1") == ("allow", "reads")  # unparsed, and the policy lets it through: it writes nothing
    review = config(policy={"default": "review"})
    assert decide(review, "INSERT INTO t VALUES (1)") == ("review", "default")


def test_decisions_are_cached_per_scope() -> None:
    rules = Policy(config()).scope("shop", ["eng"])
    info = one("TRUNCATE t")
    assert rules.decide(info) is rules.decide(info)
    assert Policy(config()).scope("shop", ["eng"]) is not rules  # a new policy, new scopes
    p = Policy(config())
    assert p.scope("shop", ["eng", "x"]) is p.scope("shop", ["x", "eng"])


# --- configuration -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("extra", "message"), [
    ({"rules": [{"name": "x", "action": "deny", "when": {}}]}, "must match on something"),
    ({"rules": [{"name": "x", "action": "block", "when": {"writes": True}}]}, "rules.0.action"),
    ({"rules": [{"name": "x", "action": "deny", "connections": ["nope"], "when": {"writes": True}}]},
     "no such connection: nope"),
    ({"rules": [{"name": "x", "action": "deny", "when": {"writes": True}}] * 2}, "already taken"),
    ({"rules": [{"name": "no-truncate", "action": "allow", "when": {"writes": True}}]}, "already taken"),
    ({"rules": [{"name": "x", "action": "deny", "when": {"regex": "("}}]}, "not a valid regular expression"),
    ({"rules": [{"name": "X Y", "action": "deny", "when": {"writes": True}}]}, "rules.0.name"),
    ({"rules": [{"name": "x", "action": "deny", "when": {"kind": ["drop"]}}]}, "rules.0.when.kind"),
    ({"policy": {"disable": ["no-such-rule"]}}, "no built-in rule named no-such-rule"),
])
def test_bad_policy_configuration_is_refused_with_its_path(tmp_path: Any, extra: dict[str, Any], message: str) -> None:
    import yaml

    data = {"listen": {"allow_plaintext": True},
            "connections": {"shop": {"upstream": "postgresql://app@127.0.0.1:5432/shop"}}, **extra}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert message in str(err.value), str(err.value)


# --- startup settings ------------------------------------------------------------------------------------------------

def test_startup_options_are_split_like_the_server_does() -> None:
    assert split_options(r"-c search_path=a\ b  --work-mem=64MB -cgeqo=off") == [
        "-c", "search_path=a b", "--work-mem=64MB", "-cgeqo=off"]
    assert startup_settings({"application_name": "psql", "options": r"-c search_path=a\ b --work-mem=64MB"}) == [
        ("application_name", "psql"), ("search_path", "a b"), ("work_mem", "64MB")]
    with pytest.raises(UnsupportedOption):
        startup_settings({"options": "-B 100"})
    with pytest.raises(UnsupportedOption):
        startup_settings({"options": "-c role"})
    with pytest.raises(UnsupportedOption):
        startup_settings({"options": "-c 'x;drop'=1"})


def test_startup_settings_are_decided_as_set_statements() -> None:
    cfg = config()
    for name, value in [("role", "postgres"), ("session_authorization", "postgres")]:
        assert decide(cfg, as_statement(name, value)) == ("deny", "no-role-changes")
    assert decide(cfg, as_statement("search_path", "x', 'y")) == ("allow", "default")
    assert one(as_statement("search_path", "it's")).redacted == "SET search_path = $1"


def test_set_config_is_the_set_it_amounts_to() -> None:
    cfg = config(policy={"read_only_groups": ["analysts"]})
    assert decide(cfg, "SELECT set_config('role', 'postgres', false)") == ("deny", "no-role-changes")
    assert decide(cfg, "SELECT pg_catalog.set_config('SESSION_AUTHORIZATION', 'x', false)") == (
        "deny", "no-role-changes")
    assert decide(cfg, "SELECT set_config($1, $2, false)") == ("deny", "no-role-changes")  # could be either
    # asyncpg's type introspection and pg_dump's preamble change only their own session's settings
    jit = "SELECT current_setting('jit') AS cur, set_config('jit', 'off', false) AS new"
    assert one(jit).writes and "settings_only" in one(jit).kinds
    assert decide(cfg, jit, ("analysts",)) == ("allow", "default")
    assert decide(cfg, "SELECT pg_catalog.set_config('search_path', '', false)", ("analysts",)) == (
        "allow", "default")
    assert decide(cfg, "SELECT set_config('jit', 'off', false), nextval('s')", ("analysts",)) == (
        "deny", "read-only")


def test_lock_in_access_share_mode_is_a_read() -> None:
    cfg = config(policy={"read_only_groups": ["analysts"]})
    assert decide(cfg, "LOCK TABLE t IN ACCESS SHARE MODE", ("analysts",)) == ("allow", "default")
    assert decide(cfg, "LOCK TABLE t IN ROW SHARE MODE", ("analysts",)) == ("deny", "read-only")
    assert decide(cfg, "LOCK t", ("analysts",)) == ("deny", "read-only")


def test_except_kinds() -> None:
    cfg = config(rules=[{"name": "no-writes", "action": "deny", "when": {"writes": True, "except_kinds": ["insert"]}}])
    assert decide(cfg, "INSERT INTO t VALUES (1)") == ("allow", "default")
    assert decide(cfg, "UPDATE t SET a = 1 WHERE id = 1") == ("deny", "no-writes")


def test_set_config_of_a_column_pinned_by_the_where_clause() -> None:
    """pg_dump: SELECT set_config(name, ..., false) FROM pg_settings WHERE name = '...'."""
    cfg = config()
    dump = "SELECT set_config(name, 'view, foreign-table', false) FROM pg_settings WHERE name = 'restrict_{}'"
    assert decide(cfg, dump.format("nonsystem_relation_kind")) == ("allow", "default")
    evasion = "SELECT set_config(name, 'postgres', false) FROM pg_settings WHERE name = {}"
    assert decide(cfg, evasion.format("'role'")) == ("deny", "no-role-changes")
    assert decide(cfg, evasion.format("'x' OR name = 'role'")) == ("deny", "no-role-changes")
    assert decide(cfg, "SELECT set_config(name, 'x', false) FROM pg_settings") == ("deny", "no-role-changes")


def test_function_bodies_are_judged_by_what_they_run() -> None:
    cfg = config()
    plpgsql = "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'TRUNCATE t'; END $$"
    assert decide(cfg, plpgsql) == ("deny", "no-do-blocks")
    assert decide(cfg, "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ DELETE FROM t; SELECT 1 $$") == (
        "deny", "no-delete-without-where")
    assert decide(cfg, "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC DELETE FROM t; SELECT 1; END") \
        == ("deny", "no-delete-without-where")
    assert decide(cfg, "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql AS $$ SELECT a + 1 $$") == (
        "allow", "default")
    assert decide(cfg, "SELECT query_to_xml('SELECT 1', true, false, '')") == ("deny", "no-server-functions")
    rules = config(rules=[{"name": "secrets", "action": "deny", "when": {"tables": ["secrets"]}}])
    assert decide(rules, "SELECT table_to_xml('public.secrets', true, false, '')") == ("deny", "secrets")
    assert decide(rules, "SELECT table_to_xml(n, true, false, '') FROM x") == ("deny", "no-do-blocks")


def test_tables_written_matches_only_the_tables_a_statement_changes() -> None:
    cfg = config(rules=[{"name": "orders-changes", "action": "review", "when": {"tables_written": ["orders"]}}])
    assert decide(cfg, "UPDATE customers SET n = 1 FROM orders WHERE orders.c = customers.id") == ("allow", "default")
    assert decide(cfg, "UPDATE orders SET n = 1 FROM customers WHERE orders.c = customers.id") == (
        "review", "orders-changes")
    assert decide(cfg, "WITH d AS (DELETE FROM public.orders WHERE id = 1 RETURNING *) SELECT * FROM d") == (
        "review", "orders-changes")
    assert decide(cfg, "SELECT * FROM orders") == ("allow", "default")
