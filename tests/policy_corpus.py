"""A corpus of query strings and what the policy must decide for each, under the configuration that
``tests/integration/test_policy_corpus.py`` builds (connections ``app`` and read-only ``app_ro``, exempt group
``dba``, read-only group ``analysts``, and the rules ``orders-need-review``, ``no-secrets-table`` and
``interns-no-writes``).

Each row is what a careful security product should decide, not necessarily what wardgate decides today: a row
with ``bug`` set names a suspected wardgate bug, and the test marks it ``xfail(strict=True)`` so that the gap
stays visible and the day it is fixed the suite says so.

The tables the rows name (``t``, ``orders``, ``customers``, ``secrets``, ``victim``, ``scratch_*``, ``other.orders``,
sequence ``s``, materialized view ``mv``) are created by the live test before the rows run; the rows are run in
this order, so an allowed row may rely on what an earlier one left (and rows that remove things come late or use
a scratch table of their own).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

Action = Literal["allow", "deny", "review"]

# The built-in pack, the parser's and the prepared-statement guard, the read-only scopes, and the test's rules.
DESTRUCTIVE = "no-destructive-ddl"
TRUNCATE = "no-truncate"
DELETE_NO_WHERE = "no-delete-without-where"
UPDATE_NO_WHERE = "no-update-without-where"
COPY_PROGRAM = "no-copy-program"
SERVER_FILE_COPY = "no-server-file-copy"
ALTER_SYSTEM = "no-alter-system"
DO_BLOCKS = "no-do-blocks"
ROLE_CHANGES = "no-role-changes"
SERVER_FUNCTIONS = "no-server-functions"
UNPARSED = "unparsed-statement"
UNKNOWN_PREPARED = "unknown-prepared-statement"
READ_ONLY = "read-only"
ORDERS_REVIEW = "orders-need-review"
SECRETS = "no-secrets-table"
INTERNS = "interns-no-writes"
DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class Case:
    """One query string as a client sends it, and the decision the policy must reach for it."""

    sql: str
    decision: Action
    rule: str
    groups: str = "eng"  # comma-separated, as ``wardgate policy check --groups`` takes them
    connection: str = "app"
    # Statements the session has prepared before (``--prepared NAME=SQL``; the live run sends PREPARE NAME AS SQL)
    prepared: tuple[tuple[str, str], ...] = ()
    # Values for $n: the live run then sends the row through the extended protocol with them
    params: tuple[object, ...] | None = None
    extended: bool = False  # also part of the live extended-protocol sample (Parse-time refusal)
    bug: str | None = None  # a suspected wardgate bug: the expectation is the secure one, the test xfails


def _case(
    sql: str,
    decision: Action,
    rule: str,
    *,
    groups: str = "eng",
    connection: str = "app",
    prepared: tuple[tuple[str, str], ...] = (),
    params: tuple[object, ...] | None = None,
    extended: bool = False,
    bug: str | None = None,
) -> Case:
    return Case(sql, decision, rule, groups, connection, prepared, params, extended, bug)


def allow(sql: str, **kw: Any) -> Case:
    return _case(sql, "allow", DEFAULT, **kw)


def deny(sql: str, rule: str, **kw: Any) -> Case:
    return _case(sql, "deny", rule, **kw)


def review(sql: str, rule: str = ORDERS_REVIEW, **kw: Any) -> Case:
    return _case(sql, "review", rule, **kw)


PSQL_DT = """SELECT n.nspname as "Schema",
  c.relname as "Name",
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index'
  WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table'
  WHEN 'I' THEN 'partitioned index' END as "Type",
  pg_catalog.pg_get_userbyid(c.relowner) as "Owner"
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
WHERE c.relkind IN ('r','p','')
      AND n.nspname <> 'pg_catalog'
      AND n.nspname !~ '^pg_toast'
      AND n.nspname <> 'information_schema'
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1,2;"""

PSQL_L = """SELECT
  d.datname as "Name",
  pg_catalog.pg_get_userbyid(d.datdba) as "Owner",
  pg_catalog.pg_encoding_to_char(d.encoding) as "Encoding",
  d.datcollate as "Collate",
  d.datctype as "Ctype",
  pg_catalog.array_to_string(d.datacl, E'\\n') AS "Access privileges"
FROM pg_catalog.pg_database d
ORDER BY 1;"""

PSQL_D_TABLE = """SELECT a.attname,
  pg_catalog.format_type(a.atttypid, a.atttypmod),
  (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true)
   FROM pg_catalog.pg_attrdef d
   WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef),
  a.attnotnull
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = 'public.orders'::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum;"""

JDBC_TYPES = (
    "SELECT t.typname,t.oid FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON (t.typnamespace = n.oid)  "
    "WHERE n.nspname  != 'pg_toast' AND  "
    "(t.typrelid = 0 OR (SELECT c.relkind = 'c' FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid))"
)

JDBC_TABLES = """SELECT NULL AS TABLE_CAT, n.nspname AS TABLE_SCHEM, c.relname AS TABLE_NAME,
 CASE n.nspname ~ '^pg_' OR n.nspname = 'information_schema' WHEN true THEN CASE
 WHEN n.nspname = 'pg_catalog' OR n.nspname = 'information_schema' THEN CASE c.relkind WHEN 'r' THEN 'SYSTEM TABLE'
 WHEN 'v' THEN 'SYSTEM VIEW' ELSE NULL END ELSE NULL END
 WHEN false THEN CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW'
 WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END ELSE NULL END AS TABLE_TYPE, d.description AS REMARKS
 FROM pg_catalog.pg_namespace n, pg_catalog.pg_class c
 LEFT JOIN pg_catalog.pg_description d ON (c.oid = d.objoid AND d.objsubid = 0 AND d.classoid = 'pg_class'::regclass)
 WHERE c.relnamespace = n.oid AND n.nspname LIKE 'public' AND c.relname LIKE '%'
 ORDER BY TABLE_TYPE,TABLE_SCHEM,TABLE_NAME"""


CASES: list[Case] = [
    # --- ordinary reads, catalog queries of psql and JDBC, harmless text that mentions dangerous words --------
    allow("SELECT 1", extended=True),
    allow("select * from customers where id = 1"),
    allow("SELECT c.name, sum(o.amount) FROM customers c JOIN orders o ON o.customer_id = c.id "
          "GROUP BY c.name ORDER BY 2 DESC LIMIT 10", extended=True),
    allow("SELECT * FROM orders WHERE id = 1"),
    allow('SELECT * FROM "public"."orders" WHERE "id" = 2'),
    allow("TABLE t"),
    allow("VALUES (1, 'a'), (2, 'b')"),
    allow("SeLeCt * FrOm \"t\" WhErE iD = 1"),
    allow("select\n  *\nfrom\n\tt\nwhere\n  id = 2\n;\n"),
    allow("SELECT 'a; DROP TABLE t; --' AS s"),
    allow("SELECT $$ ; DROP TABLE t; $$ AS s"),
    allow("SELECT $body$DELETE FROM orders$body$ AS txt"),
    allow("SELECT E'it\\'s; TRUNCATE t; --' AS s"),
    allow("SELECT 1 -- ; DROP TABLE t"),
    allow("SELECT 1 /* ; DROP TABLE t */"),
    allow("/* outer /* nested */ still a comment; DROP TABLE t */ SELECT 2"),
    allow("SELECT id, v FROM t WHERE v LIKE 'v1%' ORDER BY id LIMIT 5 OFFSET 0"),
    allow("SELECT id FROM t UNION ALL SELECT id FROM orders"),
    allow("WITH secrets AS (SELECT 1 AS x) SELECT x FROM secrets"),  # a CTE of that name, not the table
    allow("SELECT relname FROM pg_catalog.pg_class WHERE relname = 'secrets'"),
    allow(PSQL_DT),
    allow(PSQL_L),
    allow(PSQL_D_TABLE),
    allow(JDBC_TYPES, extended=True),
    allow(JDBC_TABLES),
    allow("SELECT current_schema(), current_user, session_user, version()"),
    allow("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"),
    allow("SELECT pg_size_pretty(pg_database_size(current_database()))"),
    allow("SELECT pg_catalog.pg_backend_pid()"),
    allow("SELECT count(*) FROM pg_stat_activity"),
    allow("SHOW search_path"),
    allow("SHOW TRANSACTION ISOLATION LEVEL"),
    allow("SELECT * FROM orders WHERE id = 1 FOR UPDATE", extended=True),
    allow("SELECT * FROM t FOR SHARE SKIP LOCKED"),
    # --- EXPLAIN plans without running; EXPLAIN ANALYZE of a read, or of a bounded write, is fine -------------
    allow("EXPLAIN DELETE FROM t"),
    allow("EXPLAIN UPDATE t SET v = 'x'"),
    allow("EXPLAIN (ANALYZE false) DELETE FROM t"),
    allow("EXPLAIN (ANALYZE off, VERBOSE) DELETE FROM t"),
    allow("EXPLAIN WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"),
    allow("EXPLAIN (FORMAT JSON) SELECT * FROM orders"),
    allow("EXPLAIN ANALYZE SELECT * FROM t WHERE id = 1"),
    allow("EXPLAIN ANALYZE DELETE FROM t WHERE id = 10"),
    # --- ordinary writes: INSERT, bounded UPDATE/DELETE, MERGE, DDL that creates -------------------------------
    allow("INSERT INTO t (id, v) VALUES (100, 'hundred')", extended=True),
    allow("INSERT INTO t (id, v) VALUES (101, 'x') ON CONFLICT (id) DO NOTHING"),
    allow("INSERT INTO t (id, v) SELECT id + 200, name FROM customers WHERE id < 3 RETURNING id"),
    allow("INSERT INTO orders (id, customer_id, amount) VALUES (100, 1, 9.99)"),
    allow("UPDATE t SET v = 'one' WHERE id = 1", extended=True),
    allow("update t set v = upper(v) where id in (select id from t where v = 'v2')"),
    allow("DELETE FROM t WHERE id = 3", extended=True),
    allow("DELETE FROM t WHERE id = 4 RETURNING *"),
    deny("DELETE FROM t WHERE 1 = 2", DELETE_NO_WHERE),  # names no column: the same for every row, refused
    allow("UPDATE t SET v = 'q' WHERE v = 'q'"),
    allow("DELETE FROM t WHERE id = 5 OR id = 6"),
    allow("WITH d AS (DELETE FROM t WHERE id = 7 RETURNING *) SELECT count(*) FROM d"),
    allow("WITH i AS (INSERT INTO t (id, v) VALUES (102, 'cte') RETURNING id) SELECT * FROM i"),
    allow("MERGE INTO t USING (VALUES (8, 'eight')) AS s(id, v) ON t.id = s.id "
          "WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT (id, v) VALUES (s.id, s.v)"),
    allow("MERGE INTO orders USING (VALUES (300, 1, 5.0)) AS s(id, c, a) ON orders.id = s.id "
          "WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.c, s.a)"),
    allow("DELETE FROM other.orders WHERE id = 1"),  # not public.orders
    allow("SELECT * INTO TEMP t_copy FROM t"),
    allow("SELECT * INTO corpus_into FROM t WHERE id < 5"),
    allow("CREATE TABLE IF NOT EXISTS corpus_new (id int PRIMARY KEY, note text)"),
    allow("CREATE TEMP TABLE corpus_tmp (id int)"),
    allow("CREATE INDEX IF NOT EXISTS t_v_idx ON t (v)"),
    allow("CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_customer_idx ON orders (customer_id)"),
    allow("CREATE OR REPLACE VIEW big_orders AS SELECT * FROM orders WHERE amount > 100"),
    allow("CREATE TABLE IF NOT EXISTS t_summary AS SELECT v, count(*) AS n FROM t GROUP BY v"),
    allow("ALTER TABLE t ADD COLUMN IF NOT EXISTS note text"),
    allow("ALTER TABLE corpus_new RENAME TO corpus_renamed"),
    allow("COMMENT ON TABLE t IS 'the corpus table'"),
    allow("CREATE SEQUENCE IF NOT EXISTS corpus_seq"),
    allow("SELECT nextval('s')"),
    allow("REFRESH MATERIALIZED VIEW mv"),
    allow("SELECT lo_from_bytea(0, '\\x00'::bytea) IS NOT NULL AS created"),
    # --- COPY through the client is fine ------------------------------------------------------------------------
    allow("COPY t TO STDOUT"),
    allow("COPY (SELECT id, v FROM t WHERE id < 3) TO STDOUT WITH (FORMAT csv, HEADER)"),
    allow("COPY t (id, v) FROM STDIN"),
    allow("copy orders to stdout"),
    # --- session settings, transactions, savepoints, maintenance, notifications, prepared statements -----------
    allow("SET application_name = 'corpus'", extended=True),
    allow("SET search_path TO public, pg_catalog"),
    allow("SET statement_timeout TO 0"),
    allow("SET extra_float_digits = 3"),
    allow("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED"),
    allow("RESET ROLE"),
    allow("RESET SESSION AUTHORIZATION"),
    allow("RESET ALL"),
    allow("BEGIN; SELECT 1; COMMIT"),
    allow("START TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"),
    allow("ROLLBACK"),
    allow("BEGIN; SAVEPOINT sp1; DELETE FROM t WHERE id = 9; ROLLBACK TO SAVEPOINT sp1; "
          "RELEASE SAVEPOINT sp1; COMMIT"),
    allow("BEGIN; UPDATE t SET v = 'tx' WHERE id = 11; COMMIT"),
    allow("VACUUM t"),
    allow("VACUUM (ANALYZE) orders"),
    allow("ANALYZE t"),
    allow("LISTEN corpus_channel"),
    allow("NOTIFY corpus_channel, 'hello'"),
    allow("SELECT pg_notify('corpus_channel', 'x')"),
    allow("UNLISTEN *"),
    allow("PREPARE corpus_sel AS SELECT * FROM t WHERE id = $1; EXECUTE corpus_sel(1)"),
    allow("PREPARE corpus_ins (int, text) AS INSERT INTO t VALUES ($1, $2); EXECUTE corpus_ins(103, 'p'); "
          "DEALLOCATE corpus_ins"),
    allow("EXECUTE corpus_del(12)", prepared=(("corpus_del", "DELETE FROM t WHERE id = $1"),)),
    allow("BEGIN; DECLARE corpus_cur CURSOR FOR SELECT * FROM t; FETCH 2 FROM corpus_cur; CLOSE corpus_cur; COMMIT"),
    allow("DEALLOCATE ALL"),
    allow("DISCARD ALL"),
    # --- empty-ish strings ---------------------------------------------------------------------------------------
    allow(";"),
    allow(";;  ;"),
    allow("-- only a comment"),
    allow("/* only /* a nested */ comment */"),
    allow("  \n\t  "),
    # --- the exempt group: the built-in pack does not apply, the file's rules still do ---------------------------
    allow("TRUNCATE scratch_a", groups="dba"),
    allow("DROP TABLE IF EXISTS scratch_b CASCADE", groups="dba"),
    allow("DELETE FROM scratch_c", groups="dba"),
    allow("ALTER TABLE scratch_d DROP COLUMN extra", groups="dba"),
    allow("DO $$ BEGIN RAISE NOTICE 'from a dba'; END $$", groups="dba"),
    review("DELETE FROM orders WHERE id = 12", groups="dba"),
    deny("SELECT * FROM secrets", SECRETS, groups="dba"),
    # --- the read-only group and the read-only connection --------------------------------------------------------
    allow("SELECT * FROM orders WHERE id < 3", groups="analysts"),
    allow("EXPLAIN ANALYZE SELECT count(*) FROM t", groups="analysts"),
    allow("COPY t TO STDOUT", groups="analysts"),
    allow("BEGIN; SELECT count(*) FROM orders; COMMIT", groups="analysts"),
    deny("INSERT INTO t VALUES (500, 'a')", READ_ONLY, groups="analysts", extended=True),
    deny("UPDATE t SET v = 'a' WHERE id = 1", READ_ONLY, groups="analysts"),
    deny("CREATE TABLE corpus_analyst (id int)", READ_ONLY, groups="analysts"),
    deny("ANALYZE t", READ_ONLY, groups="analysts"),
    deny("SELECT nextval('s')", READ_ONLY, groups="analysts"),
    deny("SELECT * FROM orders FOR NO KEY UPDATE", READ_ONLY, groups="analysts"),
    deny("SELECT id INTO TEMP corpus_analyst_tmp FROM t", READ_ONLY, groups="analysts"),
    deny("INSERT INTO t VALUES (501, 'a')", READ_ONLY, groups="analysts,dba"),  # exemption is from the pack only
    deny("SELECT * FROM secrets", SECRETS, groups="analysts"),
    allow("SELECT * FROM t WHERE id = 1", connection="app_ro", extended=True),
    allow("SET application_name = 'read-only'", connection="app_ro"),
    allow("EXPLAIN DELETE FROM t", connection="app_ro"),
    allow("EXPLAIN INSERT INTO t VALUES (1)", connection="app_ro"),
    allow("BEGIN READ ONLY; SELECT count(*) FROM t; COMMIT", connection="app_ro"),
    allow("COPY orders TO STDOUT", connection="app_ro"),
    allow("SELECT * FROM pg_catalog.pg_tables WHERE schemaname = 'public'", connection="app_ro"),
    deny("INSERT INTO t VALUES (600, 'ro')", READ_ONLY, connection="app_ro", extended=True),
    deny("UPDATE t SET v = 'b' WHERE id = 1", READ_ONLY, connection="app_ro"),
    deny("DELETE FROM orders WHERE id = 1", READ_ONLY, connection="app_ro"),  # orders-need-review is for app only
    deny("SELECT * FROM t WHERE id = 1 FOR UPDATE", READ_ONLY, connection="app_ro", extended=True),
    deny("WITH l AS (SELECT * FROM t FOR KEY SHARE) SELECT * FROM l", READ_ONLY, connection="app_ro"),
    deny("SELECT * INTO corpus_ro_copy FROM t", READ_ONLY, connection="app_ro"),
    deny("CREATE TEMP TABLE corpus_ro_tmp (id int)", READ_ONLY, connection="app_ro"),
    deny("WITH i AS (INSERT INTO t VALUES (601, 'x') RETURNING id) SELECT * FROM i", READ_ONLY,
         connection="app_ro"),
    deny("EXPLAIN ANALYZE INSERT INTO t VALUES (602, 'x')", READ_ONLY, connection="app_ro"),
    deny("COPY t FROM STDIN", READ_ONLY, connection="app_ro"),
    deny("SELECT setval('s', 1)", READ_ONLY, connection="app_ro"),
    deny("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", READ_ONLY, connection="app_ro"),
    deny("DO $$ BEGIN END $$", READ_ONLY, connection="app_ro"),
    deny("DROP TABLE t", READ_ONLY, connection="app_ro"),
    deny("TRUNCATE t", READ_ONLY, groups="dba", connection="app_ro"),
    deny("VACUUM t", READ_ONLY, connection="app_ro"),
    deny("SET ROLE postgres", ROLE_CHANGES, connection="app_ro"),
    deny("EXECUTE corpus_never_prepared", UNKNOWN_PREPARED, connection="app_ro"),
    # --- interns: the file's own rule scoped to a group ------------------------------------------------------
    allow("SELECT * FROM t WHERE id < 3", groups="interns"),
    allow("SET search_path TO public", groups="interns"),
    deny("INSERT INTO t VALUES (700, 'i')", INTERNS, groups="interns", extended=True),
    deny("DELETE FROM orders WHERE id = 1", INTERNS, groups="interns"),
    deny("DROP TABLE t", INTERNS, groups="interns"),
    deny("SELECT nextval('s')", INTERNS, groups="interns"),
    deny("SELECT * FROM t FOR SHARE", INTERNS, groups="interns"),
    deny("COPY t FROM STDIN", INTERNS, groups="interns"),
    deny("TRUNCATE t", INTERNS, groups="dba,interns"),
    deny("SELECT * FROM secrets", SECRETS, groups="interns"),
    # --- changes to orders need review, however they are spelled -------------------------------------------------
    review("DELETE FROM orders WHERE id = 1", extended=True),
    review("UPDATE orders SET amount = amount * 2 WHERE id = 2"),
    review("delete from public.orders where id = 3"),
    review('DELETE FROM "public"."orders" WHERE "id" = 4'),
    review("UPDATE \"orders\" SET status = 'x' WHERE id = 5"),
    review("DELETE\nFROM\n\tPUBLIC.ORDERS\nWHERE id=14"),
    review("/* fix a typo */ UPDATE ONLY orders AS o SET amount = 1 WHERE o.id = 10"),
    review("DELETE FROM somedb.public.orders WHERE id = 15"),
    review("WITH x AS (DELETE FROM orders WHERE id = 6 RETURNING *) SELECT * FROM x"),
    review("MERGE INTO orders USING (VALUES (7)) AS s(id) ON orders.id = s.id WHEN MATCHED THEN DELETE"),
    review("EXPLAIN ANALYZE DELETE FROM orders WHERE id = 8"),
    review("PREPARE corpus_rev AS UPDATE orders SET amount = 0 WHERE id = $1; EXECUTE corpus_rev(9)"),
    review("SELECT 1; DELETE FROM orders WHERE id = 11; SELECT 2"),
    review("BEGIN; UPDATE orders SET amount = 1 WHERE id = 17; COMMIT"),
    # The rule's tables match any table the statement touches: this UPDATE of customers only reads orders.
    review("UPDATE customers SET name = 'x' FROM orders WHERE customers.id = orders.customer_id AND orders.id = 13"),
    review("INSERT INTO orders (id, customer_id, amount) VALUES (1, 1, 2) ON CONFLICT (id) DO UPDATE SET amount = 0"),
    # --- destructive DDL -------------------------------------------------------------------------------------
    deny("DROP TABLE t", DESTRUCTIVE, extended=True),
    deny("drop table if exists t cascade", DESTRUCTIVE),
    deny('DROP TABLE "public"."t", orders', DESTRUCTIVE),
    deny("DrOp\n\tTaBlE\n  t", DESTRUCTIVE),
    deny("DROP\fTABLE\ft", DESTRUCTIVE),
    deny("/* cleanup */ DROP TABLE t", DESTRUCTIVE),
    deny("/* a /* nested */ comment */ DROP TABLE t", DESTRUCTIVE),
    deny("DROP SCHEMA public CASCADE", DESTRUCTIVE),
    deny("DROP DATABASE postgres", DESTRUCTIVE),
    deny("DROP DATABASE IF EXISTS somedb WITH (FORCE)", DESTRUCTIVE),
    deny("DROP INDEX t_v_idx", DESTRUCTIVE),
    deny("DROP INDEX CONCURRENTLY IF EXISTS t_v_idx", DESTRUCTIVE),
    deny("DROP VIEW big_orders", DESTRUCTIVE),
    deny("DROP MATERIALIZED VIEW mv", DESTRUCTIVE),
    deny("DROP FUNCTION IF EXISTS corpus_fn()", DESTRUCTIVE),
    deny("DROP SEQUENCE s", DESTRUCTIVE),
    deny("DROP TRIGGER IF EXISTS corpus_trg ON t", DESTRUCTIVE),
    deny("DROP ROLE corpus_role", DESTRUCTIVE),
    deny("DROP USER IF EXISTS corpus_role", DESTRUCTIVE),
    deny("DROP OWNED BY CURRENT_USER", DESTRUCTIVE),
    deny("ALTER TABLE t DROP COLUMN v", DESTRUCTIVE),
    deny("ALTER TABLE IF EXISTS t DROP COLUMN IF EXISTS v CASCADE", DESTRUCTIVE),
    deny("ALTER TABLE t ADD COLUMN x int, DROP COLUMN v", DESTRUCTIVE),
    # --- TRUNCATE ----------------------------------------------------------------------------------------------
    deny("TRUNCATE t", TRUNCATE, extended=True),
    deny("TRUNCATE TABLE ONLY t", TRUNCATE),
    deny("truncate t, orders restart identity cascade", TRUNCATE),
    deny('TRUNCATE "public"."t"', TRUNCATE),
    deny("TRUNCATE TABLE orders", TRUNCATE),
    # --- DELETE/UPDATE that bound nothing, also hidden in CTEs, EXPLAIN ANALYZE, PREPARE, COPY, rules --------------
    deny("DELETE FROM t", DELETE_NO_WHERE, extended=True),
    deny("delete from t -- where id = 1", DELETE_NO_WHERE),
    deny("DELETE FROM t /* WHERE id = 1 */", DELETE_NO_WHERE),
    deny("DELETE/**/FROM/**/t", DELETE_NO_WHERE),
    deny("DELETE FROM t WHERE 1=1", DELETE_NO_WHERE, extended=True),
    deny("DELETE FROM t WHERE true", DELETE_NO_WHERE),
    deny("DELETE FROM t WHERE 'a'='a'", DELETE_NO_WHERE),
    deny("DELETE FROM t WHERE id = id", DELETE_NO_WHERE),
    deny("DELETE FROM t WHERE 1=1 OR id=2", DELETE_NO_WHERE),
    deny("DELETE FROM t WHERE id = 2 OR TRUE", DELETE_NO_WHERE),
    deny("DELETE FROM orders", DELETE_NO_WHERE),  # deny beats review
    deny("UPDATE t SET v = 'x'", UPDATE_NO_WHERE),
    deny("UPDATE t SET v = 'x' WHERE 1 = 1", UPDATE_NO_WHERE),
    deny("UPDATE t SET v = 'x' WHERE 'true'::boolean", UPDATE_NO_WHERE),
    deny("UPDATE orders SET amount = 0 WHERE TRUE", UPDATE_NO_WHERE),
    deny("WITH x AS (DELETE FROM t RETURNING *) SELECT count(*) FROM x", DELETE_NO_WHERE),
    deny("WITH u AS (UPDATE t SET v = v RETURNING id) SELECT * FROM u", UPDATE_NO_WHERE),
    deny("SELECT * FROM (WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d) AS s", DELETE_NO_WHERE),
    deny("EXPLAIN ANALYZE DELETE FROM t", DELETE_NO_WHERE, extended=True),
    deny("EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET v = 'x'", UPDATE_NO_WHERE),
    deny("explain (analyze true, costs off) delete from t", DELETE_NO_WHERE),
    deny("PREPARE corpus_wipe AS DELETE FROM t", DELETE_NO_WHERE),
    deny("PREPARE corpus_wipe2 AS DELETE FROM t; EXECUTE corpus_wipe2", DELETE_NO_WHERE),
    deny("COPY (DELETE FROM t RETURNING *) TO STDOUT", DELETE_NO_WHERE),
    deny("BEGIN; DELETE FROM t; COMMIT", DELETE_NO_WHERE),
    deny("CREATE RULE corpus_rule AS ON INSERT TO t DO ALSO DELETE FROM orders", DELETE_NO_WHERE),
    deny("DELETE FROM victim WHERE 2 > 1", DELETE_NO_WHERE),
    deny("DELETE FROM victim WHERE NOT false", DELETE_NO_WHERE),
    deny("DELETE FROM victim WHERE 1 = 1.0", DELETE_NO_WHERE),
    deny("DELETE FROM victim WHERE 't'", DELETE_NO_WHERE),
    deny("UPDATE victim SET v = 'x' WHERE 1 = 1 AND 2 = 2", UPDATE_NO_WHERE),
    deny("DELETE FROM victim WHERE $1 = $2", DELETE_NO_WHERE, params=(1, 1)),
    deny("PREPARE corpus_pw (int, int) AS DELETE FROM victim WHERE $1 = $2; EXECUTE corpus_pw(1, 1)",
         DELETE_NO_WHERE),
    deny("MERGE INTO victim USING (SELECT 1 AS one) AS s ON true WHEN MATCHED THEN DELETE", DELETE_NO_WHERE),
    # --- COPY that runs programs or touches the server's files ---------------------------------------------
    deny("COPY t TO PROGRAM 'cat > /tmp/corpus_out'", COPY_PROGRAM),
    deny("COPY t FROM PROGRAM 'id'", COPY_PROGRAM),
    deny("copy (select * from t) to program 'gzip > /tmp/corpus.gz'", COPY_PROGRAM),
    deny("SELECT 1; COPY t FROM PROGRAM 'id'", COPY_PROGRAM),
    deny("COPY t FROM '/etc/passwd'", SERVER_FILE_COPY),
    deny("COPY t TO '/tmp/corpus.csv' WITH (FORMAT csv)", SERVER_FILE_COPY),
    deny("COPY secrets TO STDOUT", SECRETS),
    deny("COPY (SELECT * FROM public.secrets) TO STDOUT", SECRETS),
    deny("COPY (SELECT pg_read_file('/etc/passwd')) TO STDOUT", SERVER_FUNCTIONS),
    # --- ALTER SYSTEM, DO blocks, procedural code ------------------------------------------------------------------
    deny("ALTER SYSTEM SET log_statement = 'none'", ALTER_SYSTEM),
    deny("alter system reset all", ALTER_SYSTEM),
    deny("DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$", DO_BLOCKS),
    deny("do language plpgsql $body$ begin perform 1; end $body$", DO_BLOCKS),
    deny("DO $$ DECLARE r record; BEGIN FOR r IN SELECT id FROM t LOOP "
         "EXECUTE format('DELETE FROM t WHERE id = %s', r.id); END LOOP; END $$", DO_BLOCKS),
    deny("SELECT 1; DO $$ BEGIN PERFORM pg_sleep(0); END $$", DO_BLOCKS),
    deny("CREATE OR REPLACE FUNCTION corpus_dyn() RETURNS void LANGUAGE plpgsql AS "
         "$$ BEGIN EXECUTE 'TRUNCATE victim'; END $$", DO_BLOCKS),
    # --- functions that reach outside the database ---------------------------------------------------------------
    deny("SELECT pg_terminate_backend(12345)", SERVER_FUNCTIONS, extended=True),
    deny("SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_stat_activity "
         "WHERE usename = current_user AND pid <> pg_backend_pid()", SERVER_FUNCTIONS),
    deny("SELECT lo_import('/etc/passwd')", SERVER_FUNCTIONS),
    deny("SELECT lo_export(12345, '/tmp/corpus_lo')", SERVER_FUNCTIONS),
    deny("SELECT pg_read_file('/etc/passwd')", SERVER_FUNCTIONS),
    deny("SELECT pg_catalog.pg_read_file('/etc/passwd', 0, 100)", SERVER_FUNCTIONS),
    deny('SELECT "pg_catalog"."pg_read_binary_file"(\'/etc/passwd\')', SERVER_FUNCTIONS),
    deny("SeLeCt PG_READ_FILE('/etc/passwd')", SERVER_FUNCTIONS),
    deny("SELECT * FROM pg_ls_dir('.')", SERVER_FUNCTIONS),
    deny("SELECT pg_stat_file('/etc/passwd')", SERVER_FUNCTIONS),
    deny("SELECT pg_reload_conf()", SERVER_FUNCTIONS),
    deny("SELECT dblink_exec('dbname=postgres', 'DROP TABLE t')", SERVER_FUNCTIONS),
    deny("SELECT * FROM dblink('dbname=postgres', 'SELECT 1') AS x(a int)", SERVER_FUNCTIONS),
    deny("SELECT id FROM t WHERE EXISTS (SELECT pg_read_file('/etc/passwd'))", SERVER_FUNCTIONS),
    deny("EXPLAIN SELECT pg_read_file('/etc/passwd')", SERVER_FUNCTIONS),  # not run, but refused: the safe side
    deny("CREATE VIEW corpus_leak_view AS SELECT pg_read_file('/etc/passwd') AS f", SERVER_FUNCTIONS),
    deny("SELECT pg_terminate_backend(1)", INTERNS, groups="interns"),  # it writes: the more specific rule
    deny("SELECT pg_cancel_backend(1)", SERVER_FUNCTIONS),
    deny("SELECT * FROM pg_ls_logdir()", SERVER_FUNCTIONS),
    deny("SELECT query_to_xml('SELECT pg_read_file(''/etc/hostname'')', true, false, '')", SERVER_FUNCTIONS),
    # --- roles and privileges ------------------------------------------------------------------------------------
    deny("GRANT SELECT ON t TO PUBLIC", ROLE_CHANGES),
    deny("grant all privileges on all tables in schema public to public", ROLE_CHANGES),
    deny("REVOKE ALL ON orders FROM PUBLIC", ROLE_CHANGES),
    deny("GRANT pg_read_server_files TO CURRENT_USER", ROLE_CHANGES),
    deny("CREATE ROLE corpus_role LOGIN SUPERUSER", ROLE_CHANGES),
    deny("CREATE USER corpus_user WITH PASSWORD 'x'", ROLE_CHANGES),
    deny("ALTER ROLE CURRENT_USER SUPERUSER", ROLE_CHANGES),
    deny("ALTER USER corpus_user WITH PASSWORD 'y'", ROLE_CHANGES),
    deny("ALTER ROLE ALL SET search_path = public", ROLE_CHANGES),
    deny("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC", ROLE_CHANGES),
    deny("REASSIGN OWNED BY CURRENT_USER TO postgres", ROLE_CHANGES),
    deny("SET ROLE postgres", ROLE_CHANGES, extended=True),
    deny("set role = 'postgres'", ROLE_CHANGES),
    deny("SET LOCAL ROLE postgres", ROLE_CHANGES),
    deny("SET SESSION AUTHORIZATION postgres", ROLE_CHANGES),
    deny("SET application_name = 'x'; SET ROLE postgres", ROLE_CHANGES),
    deny("SELECT set_config('role', 'postgres', false)", ROLE_CHANGES),
    deny("SELECT pg_catalog.set_config('session_authorization', 'postgres', false)", ROLE_CHANGES),
    allow("SELECT set_config('application_name', 'corpus', false)"),
    allow("SELECT set_config('search_path', 'public', false)", connection="app_ro"),
    # --- the secrets table, however it is reached ---------------------------------------------------------------
    deny("SELECT * FROM secrets", SECRETS, extended=True),
    deny("select * from public.secrets", SECRETS),
    deny('SELECT * FROM "public"."secrets"', SECRETS),
    deny("SELECT * FROM PUBLIC.SECRETS", SECRETS),
    deny('SELECT * FROM U&"secr\\0065ts"', SECRETS),
    deny("TABLE secrets", SECRETS),
    deny("SELECT o.id, s.* FROM orders o JOIN secrets s ON s.id = o.id", SECRETS),
    deny("SELECT (SELECT count(*) FROM secrets) AS n", SECRETS),
    deny("SELECT * FROM t WHERE EXISTS (SELECT 1 FROM secrets WHERE secrets.id = t.id)", SECRETS),
    deny("WITH s AS (SELECT * FROM secrets) SELECT * FROM s", SECRETS),
    deny("WITH secrets AS (SELECT 1) SELECT * FROM public.secrets", SECRETS),
    deny('/* harmless */ SELECT\n*\nFROM\n"secrets"', SECRETS),
    deny("BEGIN; DECLARE corpus_sc CURSOR FOR SELECT * FROM secrets; FETCH ALL FROM corpus_sc; COMMIT", SECRETS),
    deny("SELECT 1; SELECT * FROM secrets", SECRETS),
    deny("INSERT INTO secrets VALUES (9, 'x')", SECRETS),
    deny("DROP TABLE secrets", SECRETS),  # the file's rule before the pack
    deny("ALTER TABLE secrets RENAME TO not_a_secret", SECRETS),
    deny("GRANT SELECT ON secrets TO PUBLIC", SECRETS),
    deny("SELECT * INTO corpus_leak FROM secrets", SECRETS),
    deny("CREATE TABLE corpus_leak2 AS SELECT * FROM secrets", SECRETS),
    deny("PREPARE corpus_sec AS SELECT * FROM secrets", SECRETS),
    deny("DELETE FROM secrets WHERE id = 1", READ_ONLY, connection="app_ro"),  # more specific rule first
    deny("SELECT * FROM secrets, (WITH secrets AS (SELECT 1 AS x) SELECT x FROM secrets) AS s", SECRETS),
    deny("SELECT table_to_xml('public.secrets', true, false, '')", SECRETS),
    # --- several statements in one string: one refused refuses the whole message, by its rule -----------------
    deny("SELECT 1; DROP TABLE t", DESTRUCTIVE),
    deny("SELECT 1;\n-- a comment\nDROP TABLE t", DESTRUCTIVE),
    deny("INSERT INTO t VALUES (1000, 'x'); DELETE FROM t; SELECT 1", DELETE_NO_WHERE),
    deny("DELETE FROM orders WHERE id = 16; TRUNCATE t", TRUNCATE),  # deny beats the earlier review
    deny("SELECT 1; SELECT pg_read_file('/etc/passwd'); SELECT 2", SERVER_FUNCTIONS),
    # --- prepared statements the gateway never saw ---------------------------------------------------------------
    deny("EXECUTE corpus_never_prepared", UNKNOWN_PREPARED, extended=True),
    deny("EXECUTE nope(1, 'a')", UNKNOWN_PREPARED),
    deny("SELECT 1; EXECUTE corpus_not_here", UNKNOWN_PREPARED),
    # --- text the parser cannot read -------------------------------------------------------------------------
    deny("SELEC 1", UNPARSED, extended=True),
    deny("DE/**/LETE FROM t", UNPARSED),
    deny("SELECT 'unterminated", UNPARSED),
    deny("\\dt", UNPARSED),
    deny("DELETE FROM", UNPARSED),
    deny("SELECT * FROM t WHERE (", UNPARSED),
    deny("dRoP tAbLe", UNPARSED),
    deny("DROP TABLE t; SELEC 1", UNPARSED),
]


def case_id(index: int, case: Case) -> str:
    """A short, readable, unique test id: position, scope and the start of the statement."""
    text = re.sub(r"\s+", " ", case.sql).strip() or "<blank>"
    scope = f"{case.groups}@{case.connection}"
    return f"{index:03d}-{scope}-{text[:60]}"
