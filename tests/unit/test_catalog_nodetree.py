"""The pg_node_tree reader behind the catalog: which base-table columns a view's columns are plain references to.

The fixtures are ``pg_rewrite.ev_action::text`` exactly as PostgreSQL 15.20 stored it for these definitions, in a
fresh database where customers got OID 16500, orders 16507 and v_alias 16518 (re-capture: create the objects below
in an empty database and print ``SELECT ev_action::text FROM pg_rewrite WHERE ev_class = 'VIEW'::regclass``;
OIDs differ, so fix the constants). The definitions are ``CAPTURED_FROM`` below.

What they show: PostgreSQL records the origin (``:resorigtbl``/``:resorigcol``) of a plain column reference through
aliases, subqueries in FROM, CTEs and joins; nothing for expressions and sublinks; and, for a set operation, nothing
on the view's own columns (``:resorigtbl 0``) but the usual origins inside each branch. String constants are stored
as bytes (``:constvalue 22 [ 88 0 0 0 123 ... ]``), so quotes and braces in literals never reach the text; names
(column aliases, table aliases, CTE names) do, backslash-escaped, except ':' which is not escaped at all.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wardgate.catalog import view_origins

CUSTOMERS = 16500
ORDERS = 16507
V_ALIAS_OID = 16518
ID, NAME, EMAIL, ODD = ((CUSTOMERS, n) for n in (1, 2, 3, 4))

CAPTURED_FROM = r'''
CREATE TABLE customers (id int PRIMARY KEY, name text, email text, "Odd ""Col"" name" text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int, total numeric);
CREATE VIEW v_plain AS SELECT id, email FROM customers;
CREATE VIEW v_alias AS SELECT email AS contact, name FROM customers;
CREATE VIEW v_expr AS SELECT id, upper(email) AS up, id + 1 AS nxt, email FROM customers;
CREATE VIEW v_sub AS SELECT "s {x} (y)".e, "s {x} (y)".i
  FROM (SELECT email AS e, id AS i FROM customers WHERE id > 0) AS "s {x} (y)";
CREATE VIEW v_cte AS WITH "c (1) {2}" AS (SELECT email, id FROM customers) SELECT id, email FROM "c (1) {2}";
CREATE VIEW v_union AS SELECT email FROM customers UNION SELECT name FROM customers;
CREATE VIEW v_setnest AS SELECT email, id FROM customers
  UNION (SELECT name, id FROM customers EXCEPT SELECT email, id FROM customers);
CREATE VIEW v_over AS SELECT contact AS c2 FROM v_alias;
CREATE VIEW v_const AS SELECT '{a} (b) \c "d" e''f :resorigtbl 1' AS weird, email, '{x,y}'::text[] AS arr
  FROM customers;
CREATE VIEW v_odd AS SELECT "Odd ""Col"" name" AS "with space ""q""" FROM customers;
CREATE VIEW v_nasty AS SELECT email AS ":resorigtbl", name AS "}{TARGETENTRY :resjunk false",
  id AS "a\b (c) ""d""", email AS "<>", name AS "1x", id AS " lead" FROM customers;
CREATE VIEW v_sublink AS SELECT email, (SELECT max(total) FROM orders o WHERE o.customer_id = c.id) AS mx
  FROM customers c WHERE EXISTS (SELECT 1 FROM orders);
CREATE VIEW v_join AS SELECT c.email, o.total, o.id FROM customers c JOIN orders o ON o.customer_id = c.id;
CREATE MATERIALIZED VIEW mv AS SELECT id, email FROM customers;
'''

V_PLAIN = (
    '({QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <> :resultRelation 0 :hasAggs fal'
    'se :hasWindowFuncs false :hasTargetSRFs false :hasSubLinks false :hasDistinctOn false :hasRecursive '
    'false :hasModifyingCTE false :hasForUpdate false :hasRowSecurity false :isReturn false :cteList <> :'
    'rtable ({RANGETBLENTRY :alias {ALIAS :aliasname old :colnames <>} :eref {ALIAS :aliasname old :colna'
    'mes ("id" "email")} :rtekind 0 :relid 16514 :relkind v :rellockmode 1 :tablesample <> :lateral false'
    ' :inh false :inFromCl false :requiredPerms 0 :checkAsUser 0 :selectedCols (b) :insertedCols (b) :upd'
    'atedCols (b) :extraUpdatedCols (b) :securityQuals <>} {RANGETBLENTRY :alias {ALIAS :aliasname new :c'
    'olnames <>} :eref {ALIAS :aliasname new :colnames ("id" "email")} :rtekind 0 :relid 16514 :relkind v'
    ' :rellockmode 1 :tablesample <> :lateral false :inh false :inFromCl false :requiredPerms 0 :checkAsU'
    'ser 0 :selectedCols (b) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>} '
    '{RANGETBLENTRY :alias <> :eref {ALIAS :aliasname customers :colnames ("id" "name" "email" "Odd\\ "Col'
    '"\\ name")} :rtekind 0 :relid 16500 :relkind r :rellockmode 1 :tablesample <> :lateral false :inh tru'
    'e :inFromCl true :requiredPerms 2 :checkAsUser 0 :selectedCols (b 8 10) :insertedCols (b) :updatedCo'
    'ls (b) :extraUpdatedCols (b) :securityQuals <>}) :jointree {FROMEXPR :fromlist ({RANGETBLREF :rtinde'
    'x 3}) :quals <>} :targetList ({TARGETENTRY :expr {VAR :varno 3 :varattno 1 :vartype 23 :vartypmod -1'
    ' :varcollid 0 :varlevelsup 0 :varnosyn 3 :varattnosyn 1 :location 198} :resno 1 :resname id :ressort'
    'groupref 0 :resorigtbl 16500 :resorigcol 1 :resjunk false} {TARGETENTRY :expr {VAR :varno 3 :varattn'
    'o 3 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 3 :varattnosyn 3 :location 202'
    '} :resno 2 :resname email :ressortgroupref 0 :resorigtbl 16500 :resorigcol 3 :resjunk false}) :overr'
    'ide 0 :onConflict <> :returningList <> :groupClause <> :groupDistinct false :groupingSets <> :having'
    'Qual <> :windowClause <> :distinctClause <> :sortClause <> :limitOffset <> :limitCount <> :limitOpti'
    'on 0 :rowMarks <> :setOperations <> :constraintDeps <> :withCheckOptions <> :mergeActionList <> :mer'
    'geUseOuterJoin false :stmt_location 167 :stmt_len 55})'
)
V_ALIAS = (
    '({QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <> :resultRelation 0 :hasAggs fal'
    'se :hasWindowFuncs false :hasTargetSRFs false :hasSubLinks false :hasDistinctOn false :hasRecursive '
    'false :hasModifyingCTE false :hasForUpdate false :hasRowSecurity false :isReturn false :cteList <> :'
    'rtable ({RANGETBLENTRY :alias {ALIAS :aliasname old :colnames <>} :eref {ALIAS :aliasname old :colna'
    'mes ("contact" "name")} :rtekind 0 :relid 16518 :relkind v :rellockmode 1 :tablesample <> :lateral f'
    'alse :inh false :inFromCl false :requiredPerms 0 :checkAsUser 0 :selectedCols (b) :insertedCols (b) '
    ':updatedCols (b) :extraUpdatedCols (b) :securityQuals <>} {RANGETBLENTRY :alias {ALIAS :aliasname ne'
    'w :colnames <>} :eref {ALIAS :aliasname new :colnames ("contact" "name")} :rtekind 0 :relid 16518 :r'
    'elkind v :rellockmode 1 :tablesample <> :lateral false :inh false :inFromCl false :requiredPerms 0 :'
    'checkAsUser 0 :selectedCols (b) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQu'
    'als <>} {RANGETBLENTRY :alias <> :eref {ALIAS :aliasname customers :colnames ("id" "name" "email" "O'
    'dd\\ "Col"\\ name")} :rtekind 0 :relid 16500 :relkind r :rellockmode 1 :tablesample <> :lateral false '
    ':inh true :inFromCl true :requiredPerms 2 :checkAsUser 0 :selectedCols (b 9 10) :insertedCols (b) :u'
    'pdatedCols (b) :extraUpdatedCols (b) :securityQuals <>}) :jointree {FROMEXPR :fromlist ({RANGETBLREF'
    ' :rtindex 3}) :quals <>} :targetList ({TARGETENTRY :expr {VAR :varno 3 :varattno 3 :vartype 25 :vart'
    'ypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 3 :varattnosyn 3 :location 254} :resno 1 :resname c'
    'ontact :ressortgroupref 0 :resorigtbl 16500 :resorigcol 3 :resjunk false} {TARGETENTRY :expr {VAR :v'
    'arno 3 :varattno 2 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 3 :varattnosyn '
    '2 :location 272} :resno 2 :resname name :ressortgroupref 0 :resorigtbl 16500 :resorigcol 2 :resjunk '
    'false}) :override 0 :onConflict <> :returningList <> :groupClause <> :groupDistinct false :groupingS'
    'ets <> :havingQual <> :windowClause <> :distinctClause <> :sortClause <> :limitOffset <> :limitCount'
    ' <> :limitOption 0 :rowMarks <> :setOperations <> :constraintDeps <> :withCheckOptions <> :mergeActi'
    'onList <> :mergeUseOuterJoin false :stmt_location 223 :stmt_len 68})'
)
V_EXPR = (
    '({QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <> :resultRelation 0 :hasAggs fal'
    'se :hasWindowFuncs false :hasTargetSRFs false :hasSubLinks false :hasDistinctOn false :hasRecursive '
    'false :hasModifyingCTE false :hasForUpdate false :hasRowSecurity false :isReturn false :cteList <> :'
    'rtable ({RANGETBLENTRY :alias {ALIAS :aliasname old :colnames <>} :eref {ALIAS :aliasname old :colna'
    'mes ("id" "up" "nxt" "email")} :rtekind 0 :relid 16522 :relkind v :rellockmode 1 :tablesample <> :la'
    'teral false :inh false :inFromCl false :requiredPerms 0 :checkAsUser 0 :selectedCols (b) :insertedCo'
    'ls (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>} {RANGETBLENTRY :alias {ALIAS :alias'
    'name new :colnames <>} :eref {ALIAS :aliasname new :colnames ("id" "up" "nxt" "email")} :rtekind 0 :'
    'relid 16522 :relkind v :rellockmode 1 :tablesample <> :lateral false :inh false :inFromCl false :req'
    'uiredPerms 0 :checkAsUser 0 :selectedCols (b) :insertedCols (b) :updatedCols (b) :extraUpdatedCols ('
    'b) :securityQuals <>} {RANGETBLENTRY :alias <> :eref {ALIAS :aliasname customers :colnames ("id" "na'
    'me" "email" "Odd\\ "Col"\\ name")} :rtekind 0 :relid 16500 :relkind r :rellockmode 1 :tablesample <> :'
    'lateral false :inh true :inFromCl true :requiredPerms 2 :checkAsUser 0 :selectedCols (b 8 10) :inser'
    'tedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>}) :jointree {FROMEXPR :fromlist'
    ' ({RANGETBLREF :rtindex 3}) :quals <>} :targetList ({TARGETENTRY :expr {VAR :varno 3 :varattno 1 :va'
    'rtype 23 :vartypmod -1 :varcollid 0 :varlevelsup 0 :varnosyn 3 :varattnosyn 1 :location 322} :resno '
    '1 :resname id :ressortgroupref 0 :resorigtbl 16500 :resorigcol 1 :resjunk false} {TARGETENTRY :expr '
    '{FUNCEXPR :funcid 871 :funcresulttype 25 :funcretset false :funcvariadic false :funcformat 0 :funcco'
    'llid 100 :inputcollid 100 :args ({VAR :varno 3 :varattno 3 :vartype 25 :vartypmod -1 :varcollid 100 '
    ':varlevelsup 0 :varnosyn 3 :varattnosyn 3 :location 332}) :location 326} :resno 2 :resname up :resso'
    'rtgroupref 0 :resorigtbl 0 :resorigcol 0 :resjunk false} {TARGETENTRY :expr {OPEXPR :opno 551 :opfun'
    'cid 177 :opresulttype 23 :opretset false :opcollid 0 :inputcollid 0 :args ({VAR :varno 3 :varattno 1'
    ' :vartype 23 :vartypmod -1 :varcollid 0 :varlevelsup 0 :varnosyn 3 :varattnosyn 1 :location 346} {CO'
    'NST :consttype 23 :consttypmod -1 :constcollid 0 :constlen 4 :constbyval true :constisnull false :lo'
    'cation 351 :constvalue 4 [ 1 0 0 0 0 0 0 0 ]}) :location 349} :resno 3 :resname nxt :ressortgroupref'
    ' 0 :resorigtbl 0 :resorigcol 0 :resjunk false} {TARGETENTRY :expr {VAR :varno 3 :varattno 3 :vartype'
    ' 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 3 :varattnosyn 3 :location 361} :resno 4 :'
    'resname email :ressortgroupref 0 :resorigtbl 16500 :resorigcol 3 :resjunk false}) :override 0 :onCon'
    'flict <> :returningList <> :groupClause <> :groupDistinct false :groupingSets <> :havingQual <> :win'
    'dowClause <> :distinctClause <> :sortClause <> :limitOffset <> :limitCount <> :limitOption 0 :rowMar'
    'ks <> :setOperations <> :constraintDeps <> :withCheckOptions <> :mergeActionList <> :mergeUseOuterJo'
    'in false :stmt_location 292 :stmt_len 89})'
)
V_SUB = (
    '({QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <> :resultRelation 0 :hasAggs fal'
    'se :hasWindowFuncs false :hasTargetSRFs false :hasSubLinks false :hasDistinctOn false :hasRecursive '
    'false :hasModifyingCTE false :hasForUpdate false :hasRowSecurity false :isReturn false :cteList <> :'
    'rtable ({RANGETBLENTRY :alias {ALIAS :aliasname old :colnames <>} :eref {ALIAS :aliasname old :colna'
    'mes ("e" "i")} :rtekind 0 :relid 16526 :relkind v :rellockmode 1 :tablesample <> :lateral false :inh'
    ' false :inFromCl false :requiredPerms 0 :checkAsUser 0 :selectedCols (b) :insertedCols (b) :updatedC'
    'ols (b) :extraUpdatedCols (b) :securityQuals <>} {RANGETBLENTRY :alias {ALIAS :aliasname new :colnam'
    'es <>} :eref {ALIAS :aliasname new :colnames ("e" "i")} :rtekind 0 :relid 16526 :relkind v :rellockm'
    'ode 1 :tablesample <> :lateral false :inh false :inFromCl false :requiredPerms 0 :checkAsUser 0 :sel'
    'ectedCols (b) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>} {RANGETBLE'
    'NTRY :alias {ALIAS :aliasname s\\ \\{x\\}\\ \\(y\\) :colnames <>} :eref {ALIAS :aliasname s\\ \\{x\\}\\ \\(y'
    '\\) :colnames ("e" "i")} :rtekind 1 :subquery {QUERY :commandType 1 :querySource 0 :canSetTag true :u'
    'tilityStmt <> :resultRelation 0 :hasAggs false :hasWindowFuncs false :hasTargetSRFs false :hasSubLin'
    'ks false :hasDistinctOn false :hasRecursive false :hasModifyingCTE false :hasForUpdate false :hasRow'
    'Security false :isReturn false :cteList <> :rtable ({RANGETBLENTRY :alias <> :eref {ALIAS :aliasname'
    ' customers :colnames ("id" "name" "email" "Odd\\ "Col"\\ name")} :rtekind 0 :relid 16500 :relkind r :r'
    'ellockmode 1 :tablesample <> :lateral false :inh true :inFromCl true :requiredPerms 2 :checkAsUser 0'
    ' :selectedCols (b 8 10) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>})'
    ' :jointree {FROMEXPR :fromlist ({RANGETBLREF :rtindex 1}) :quals {OPEXPR :opno 521 :opfuncid 147 :op'
    'resulttype 16 :opretset false :opcollid 0 :inputcollid 0 :args ({VAR :varno 1 :varattno 1 :vartype 2'
    '3 :vartypmod -1 :varcollid 0 :varlevelsup 0 :varnosyn 1 :varattnosyn 1 :location 494} {CONST :constt'
    'ype 23 :consttypmod -1 :constcollid 0 :constlen 4 :constbyval true :constisnull false :location 499 '
    ':constvalue 4 [ 0 0 0 0 0 0 0 0 ]}) :location 497}} :targetList ({TARGETENTRY :expr {VAR :varno 1 :v'
    'arattno 3 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 1 :varattnosyn 3 :locati'
    'on 453} :resno 1 :resname e :ressortgroupref 0 :resorigtbl 16500 :resorigcol 3 :resjunk false} {TARG'
    'ETENTRY :expr {VAR :varno 1 :varattno 1 :vartype 23 :vartypmod -1 :varcollid 0 :varlevelsup 0 :varno'
    'syn 1 :varattnosyn 1 :location 465} :resno 2 :resname i :ressortgroupref 0 :resorigtbl 16500 :resori'
    'gcol 1 :resjunk false}) :override 0 :onConflict <> :returningList <> :groupClause <> :groupDistinct '
    'false :groupingSets <> :havingQual <> :windowClause <> :distinctClause <> :sortClause <> :limitOffse'
    't <> :limitCount <> :limitOption 0 :rowMarks <> :setOperations <> :constraintDeps <> :withCheckOptio'
    'ns <> :mergeActionList <> :mergeUseOuterJoin false :stmt_location 0 :stmt_len 0} :security_barrier f'
    'alse :lateral false :inh false :inFromCl true :requiredPerms 0 :checkAsUser 0 :selectedCols (b) :ins'
    'ertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>}) :jointree {FROMEXPR :fromli'
    'st ({RANGETBLREF :rtindex 3}) :quals <>} :targetList ({TARGETENTRY :expr {VAR :varno 3 :varattno 1 :'
    'vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 3 :varattnosyn 1 :location 411} :re'
    'sno 1 :resname e :ressortgroupref 0 :resorigtbl 16500 :resorigcol 3 :resjunk false} {TARGETENTRY :ex'
    'pr {VAR :varno 3 :varattno 2 :vartype 23 :vartypmod -1 :varcollid 0 :varlevelsup 0 :varnosyn 3 :vara'
    'ttnosyn 2 :location 426} :resno 2 :resname i :ressortgroupref 0 :resorigtbl 16500 :resorigcol 1 :res'
    'junk false}) :override 0 :onConflict <> :returningList <> :groupClause <> :groupDistinct false :grou'
    'pingSets <> :havingQual <> :windowClause <> :distinctClause <> :sortClause <> :limitOffset <> :limit'
    'Count <> :limitOption 0 :rowMarks <> :setOperations <> :constraintDeps <> :withCheckOptions <> :merg'
    'eActionList <> :mergeUseOuterJoin false :stmt_location 382 :stmt_len 134})'
)
V_CTE = (
    '({QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <> :resultRelation 0 :hasAggs fal'
    'se :hasWindowFuncs false :hasTargetSRFs false :hasSubLinks false :hasDistinctOn false :hasRecursive '
    'false :hasModifyingCTE false :hasForUpdate false :hasRowSecurity false :isReturn false :cteList ({CO'
    'MMONTABLEEXPR :ctename c\\ \\(1\\)\\ \\{2\\} :aliascolnames <> :ctematerialized 0 :ctequery {QUERY :comman'
    'dType 1 :querySource 0 :canSetTag false :utilityStmt <> :resultRelation 0 :hasAggs false :hasWindowF'
    'uncs false :hasTargetSRFs false :hasSubLinks false :hasDistinctOn false :hasRecursive false :hasModi'
    'fyingCTE false :hasForUpdate false :hasRowSecurity false :isReturn false :cteList <> :rtable ({RANGE'
    'TBLENTRY :alias <> :eref {ALIAS :aliasname customers :colnames ("id" "name" "email" "Odd\\ "Col"\\ nam'
    'e")} :rtekind 0 :relid 16500 :relkind r :rellockmode 1 :tablesample <> :lateral false :inh true :inF'
    'romCl true :requiredPerms 2 :checkAsUser 0 :selectedCols (b 8 10) :insertedCols (b) :updatedCols (b)'
    ' :extraUpdatedCols (b) :securityQuals <>}) :jointree {FROMEXPR :fromlist ({RANGETBLREF :rtindex 1}) '
    ':quals <>} :targetList ({TARGETENTRY :expr {VAR :varno 1 :varattno 3 :vartype 25 :vartypmod -1 :varc'
    'ollid 100 :varlevelsup 0 :varnosyn 1 :varattnosyn 3 :location 567} :resno 1 :resname email :ressortg'
    'roupref 0 :resorigtbl 16500 :resorigcol 3 :resjunk false} {TARGETENTRY :expr {VAR :varno 1 :varattno'
    ' 1 :vartype 23 :vartypmod -1 :varcollid 0 :varlevelsup 0 :varnosyn 1 :varattnosyn 1 :location 574} :'
    'resno 2 :resname id :ressortgroupref 0 :resorigtbl 16500 :resorigcol 1 :resjunk false}) :override 0 '
    ':onConflict <> :returningList <> :groupClause <> :groupDistinct false :groupingSets <> :havingQual <'
    '> :windowClause <> :distinctClause <> :sortClause <> :limitOffset <> :limitCount <> :limitOption 0 :'
    'rowMarks <> :setOperations <> :constraintDeps <> :withCheckOptions <> :mergeActionList <> :mergeUseO'
    'uterJoin false :stmt_location 0 :stmt_len 0} :search_clause <> :cycle_clause <> :location 544 :ctere'
    'cursive false :cterefcount 1 :ctecolnames ("email" "id") :ctecoltypes (o 25 23) :ctecoltypmods (i -1'
    ' -1) :ctecolcollations (o 100 0)}) :rtable ({RANGETBLENTRY :alias {ALIAS :aliasname old :colnames <>'
    '} :eref {ALIAS :aliasname old :colnames ("id" "email")} :rtekind 0 :relid 16530 :relkind v :rellockm'
    'ode 1 :tablesample <> :lateral false :inh false :inFromCl false :requiredPerms 0 :checkAsUser 0 :sel'
    'ectedCols (b) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>} {RANGETBLE'
    'NTRY :alias {ALIAS :aliasname new :colnames <>} :eref {ALIAS :aliasname new :colnames ("id" "email")'
    '} :rtekind 0 :relid 16530 :relkind v :rellockmode 1 :tablesample <> :lateral false :inh false :inFro'
    'mCl false :requiredPerms 0 :checkAsUser 0 :selectedCols (b) :insertedCols (b) :updatedCols (b) :extr'
    'aUpdatedCols (b) :securityQuals <>} {RANGETBLENTRY :alias <> :eref {ALIAS :aliasname c\\ \\(1\\)\\ \\{2\\}'
    ' :colnames ("email" "id")} :rtekind 6 :ctename c\\ \\(1\\)\\ \\{2\\} :ctelevelsup 0 :self_reference false '
    ':coltypes (o 25 23) :coltypmods (i -1 -1) :colcollations (o 100 0) :lateral false :inh false :inFrom'
    'Cl true :requiredPerms 0 :checkAsUser 0 :selectedCols (b) :insertedCols (b) :updatedCols (b) :extraU'
    'pdatedCols (b) :securityQuals <>}) :jointree {FROMEXPR :fromlist ({RANGETBLREF :rtindex 3}) :quals <'
    '>} :targetList ({TARGETENTRY :expr {VAR :varno 3 :varattno 2 :vartype 23 :vartypmod -1 :varcollid 0 '
    ':varlevelsup 0 :varnosyn 3 :varattnosyn 2 :location 600} :resno 1 :resname id :ressortgroupref 0 :re'
    'sorigtbl 16500 :resorigcol 1 :resjunk false} {TARGETENTRY :expr {VAR :varno 3 :varattno 1 :vartype 2'
    '5 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 3 :varattnosyn 1 :location 604} :resno 2 :re'
    'sname email :ressortgroupref 0 :resorigtbl 16500 :resorigcol 3 :resjunk false}) :override 0 :onConfl'
    'ict <> :returningList <> :groupClause <> :groupDistinct false :groupingSets <> :havingQual <> :windo'
    'wClause <> :distinctClause <> :sortClause <> :limitOffset <> :limitCount <> :limitOption 0 :rowMarks'
    ' <> :setOperations <> :constraintDeps <> :withCheckOptions <> :mergeActionList <> :mergeUseOuterJoin'
    ' false :stmt_location 517 :stmt_len 109})'
)
V_UNION = (
    '({QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <> :resultRelation 0 :hasAggs fal'
    'se :hasWindowFuncs false :hasTargetSRFs false :hasSubLinks false :hasDistinctOn false :hasRecursive '
    'false :hasModifyingCTE false :hasForUpdate false :hasRowSecurity false :isReturn false :cteList <> :'
    'rtable ({RANGETBLENTRY :alias {ALIAS :aliasname old :colnames <>} :eref {ALIAS :aliasname old :colna'
    'mes ("email")} :rtekind 0 :relid 16534 :relkind v :rellockmode 1 :tablesample <> :lateral false :inh'
    ' false :inFromCl false :requiredPerms 0 :checkAsUser 0 :selectedCols (b) :insertedCols (b) :updatedC'
    'ols (b) :extraUpdatedCols (b) :securityQuals <>} {RANGETBLENTRY :alias {ALIAS :aliasname new :colnam'
    'es <>} :eref {ALIAS :aliasname new :colnames ("email")} :rtekind 0 :relid 16534 :relkind v :rellockm'
    'ode 1 :tablesample <> :lateral false :inh false :inFromCl false :requiredPerms 0 :checkAsUser 0 :sel'
    'ectedCols (b) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>} {RANGETBLE'
    'NTRY :alias {ALIAS :aliasname *SELECT*\\ 1 :colnames <>} :eref {ALIAS :aliasname *SELECT*\\ 1 :colname'
    's ("email")} :rtekind 1 :subquery {QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt '
    '<> :resultRelation 0 :hasAggs false :hasWindowFuncs false :hasTargetSRFs false :hasSubLinks false :h'
    'asDistinctOn false :hasRecursive false :hasModifyingCTE false :hasForUpdate false :hasRowSecurity fa'
    'lse :isReturn false :cteList <> :rtable ({RANGETBLENTRY :alias <> :eref {ALIAS :aliasname customers '
    ':colnames ("id" "name" "email" "Odd\\ "Col"\\ name")} :rtekind 0 :relid 16500 :relkind r :rellockmode '
    '1 :tablesample <> :lateral false :inh true :inFromCl true :requiredPerms 2 :checkAsUser 0 :selectedC'
    'ols (b 10) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>}) :jointree {F'
    'ROMEXPR :fromlist ({RANGETBLREF :rtindex 1}) :quals <>} :targetList ({TARGETENTRY :expr {VAR :varno '
    '1 :varattno 3 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 1 :varattnosyn 3 :lo'
    'cation 658} :resno 1 :resname email :ressortgroupref 0 :resorigtbl 16500 :resorigcol 3 :resjunk fals'
    'e}) :override 0 :onConflict <> :returningList <> :groupClause <> :groupDistinct false :groupingSets '
    '<> :havingQual <> :windowClause <> :distinctClause <> :sortClause <> :limitOffset <> :limitCount <> '
    ':limitOption 0 :rowMarks <> :setOperations <> :constraintDeps <> :withCheckOptions <> :mergeActionLi'
    'st <> :mergeUseOuterJoin false :stmt_location 0 :stmt_len 0} :security_barrier false :lateral false '
    ':inh false :inFromCl false :requiredPerms 0 :checkAsUser 0 :selectedCols (b) :insertedCols (b) :upda'
    'tedCols (b) :extraUpdatedCols (b) :securityQuals <>} {RANGETBLENTRY :alias {ALIAS :aliasname *SELECT'
    '*\\ 2 :colnames <>} :eref {ALIAS :aliasname *SELECT*\\ 2 :colnames ("name")} :rtekind 1 :subquery {QUE'
    'RY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <> :resultRelation 0 :hasAggs false :h'
    'asWindowFuncs false :hasTargetSRFs false :hasSubLinks false :hasDistinctOn false :hasRecursive false'
    ' :hasModifyingCTE false :hasForUpdate false :hasRowSecurity false :isReturn false :cteList <> :rtabl'
    'e ({RANGETBLENTRY :alias <> :eref {ALIAS :aliasname customers :colnames ("id" "name" "email" "Odd\\ "'
    'Col"\\ name")} :rtekind 0 :relid 16500 :relkind r :rellockmode 1 :tablesample <> :lateral false :inh '
    'true :inFromCl true :requiredPerms 2 :checkAsUser 0 :selectedCols (b 9) :insertedCols (b) :updatedCo'
    'ls (b) :extraUpdatedCols (b) :securityQuals <>}) :jointree {FROMEXPR :fromlist ({RANGETBLREF :rtinde'
    'x 1}) :quals <>} :targetList ({TARGETENTRY :expr {VAR :varno 1 :varattno 2 :vartype 25 :vartypmod -1'
    ' :varcollid 100 :varlevelsup 0 :varnosyn 1 :varattnosyn 2 :location 692} :resno 1 :resname name :res'
    'sortgroupref 0 :resorigtbl 16500 :resorigcol 2 :resjunk false}) :override 0 :onConflict <> :returnin'
    'gList <> :groupClause <> :groupDistinct false :groupingSets <> :havingQual <> :windowClause <> :dist'
    'inctClause <> :sortClause <> :limitOffset <> :limitCount <> :limitOption 0 :rowMarks <> :setOperatio'
    'ns <> :constraintDeps <> :withCheckOptions <> :mergeActionList <> :mergeUseOuterJoin false :stmt_loc'
    'ation 0 :stmt_len 0} :security_barrier false :lateral false :inh false :inFromCl false :requiredPerm'
    's 0 :checkAsUser 0 :selectedCols (b) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :secur'
    'ityQuals <>}) :jointree {FROMEXPR :fromlist <> :quals <>} :targetList ({TARGETENTRY :expr {VAR :varn'
    'o 3 :varattno 1 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 3 :varattnosyn 1 :'
    'location 658} :resno 1 :resname email :ressortgroupref 0 :resorigtbl 0 :resorigcol 0 :resjunk false}'
    ') :override 0 :onConflict <> :returningList <> :groupClause <> :groupDistinct false :groupingSets <>'
    ' :havingQual <> :windowClause <> :distinctClause <> :sortClause <> :limitOffset <> :limitCount <> :l'
    'imitOption 0 :rowMarks <> :setOperations {SETOPERATIONSTMT :op 1 :all false :larg {RANGETBLREF :rtin'
    'dex 3} :rarg {RANGETBLREF :rtindex 4} :colTypes (o 25) :colTypmods (i -1) :colCollations (o 100) :gr'
    'oupClauses ({SORTGROUPCLAUSE :tleSortGroupRef 0 :eqop 98 :sortop 664 :nulls_first false :hashable tr'
    'ue})} :constraintDeps <> :withCheckOptions <> :mergeActionList <> :mergeUseOuterJoin false :stmt_loc'
    'ation 627 :stmt_len 84})'
)
V_SETNEST = (
    '({QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <> :resultRelation 0 :hasAggs fal'
    'se :hasWindowFuncs false :hasTargetSRFs false :hasSubLinks false :hasDistinctOn false :hasRecursive '
    'false :hasModifyingCTE false :hasForUpdate false :hasRowSecurity false :isReturn false :cteList <> :'
    'rtable ({RANGETBLENTRY :alias {ALIAS :aliasname old :colnames <>} :eref {ALIAS :aliasname old :colna'
    'mes ("email" "id")} :rtekind 0 :relid 16538 :relkind v :rellockmode 1 :tablesample <> :lateral false'
    ' :inh false :inFromCl false :requiredPerms 0 :checkAsUser 0 :selectedCols (b) :insertedCols (b) :upd'
    'atedCols (b) :extraUpdatedCols (b) :securityQuals <>} {RANGETBLENTRY :alias {ALIAS :aliasname new :c'
    'olnames <>} :eref {ALIAS :aliasname new :colnames ("email" "id")} :rtekind 0 :relid 16538 :relkind v'
    ' :rellockmode 1 :tablesample <> :lateral false :inh false :inFromCl false :requiredPerms 0 :checkAsU'
    'ser 0 :selectedCols (b) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>} '
    '{RANGETBLENTRY :alias {ALIAS :aliasname *SELECT*\\ 1 :colnames <>} :eref {ALIAS :aliasname *SELECT*\\ '
    '1 :colnames ("email" "id")} :rtekind 1 :subquery {QUERY :commandType 1 :querySource 0 :canSetTag tru'
    'e :utilityStmt <> :resultRelation 0 :hasAggs false :hasWindowFuncs false :hasTargetSRFs false :hasSu'
    'bLinks false :hasDistinctOn false :hasRecursive false :hasModifyingCTE false :hasForUpdate false :ha'
    'sRowSecurity false :isReturn false :cteList <> :rtable ({RANGETBLENTRY :alias <> :eref {ALIAS :alias'
    'name customers :colnames ("id" "name" "email" "Odd\\ "Col"\\ name")} :rtekind 0 :relid 16500 :relkind '
    'r :rellockmode 1 :tablesample <> :lateral false :inh true :inFromCl true :requiredPerms 2 :checkAsUs'
    'er 0 :selectedCols (b 8 10) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals '
    '<>}) :jointree {FROMEXPR :fromlist ({RANGETBLREF :rtindex 1}) :quals <>} :targetList ({TARGETENTRY :'
    'expr {VAR :varno 1 :varattno 3 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 1 :'
    'varattnosyn 3 :location 745} :resno 1 :resname email :ressortgroupref 0 :resorigtbl 16500 :resorigco'
    'l 3 :resjunk false} {TARGETENTRY :expr {VAR :varno 1 :varattno 1 :vartype 23 :vartypmod -1 :varcolli'
    'd 0 :varlevelsup 0 :varnosyn 1 :varattnosyn 1 :location 752} :resno 2 :resname id :ressortgroupref 0'
    ' :resorigtbl 16500 :resorigcol 1 :resjunk false}) :override 0 :onConflict <> :returningList <> :grou'
    'pClause <> :groupDistinct false :groupingSets <> :havingQual <> :windowClause <> :distinctClause <> '
    ':sortClause <> :limitOffset <> :limitCount <> :limitOption 0 :rowMarks <> :setOperations <> :constra'
    'intDeps <> :withCheckOptions <> :mergeActionList <> :mergeUseOuterJoin false :stmt_location 0 :stmt_'
    'len 0} :security_barrier false :lateral false :inh false :inFromCl false :requiredPerms 0 :checkAsUs'
    'er 0 :selectedCols (b) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>} {'
    'RANGETBLENTRY :alias {ALIAS :aliasname *SELECT*\\ 2 :colnames <>} :eref {ALIAS :aliasname *SELECT*\\ 2'
    ' :colnames ("name" "id")} :rtekind 1 :subquery {QUERY :commandType 1 :querySource 0 :canSetTag true '
    ':utilityStmt <> :resultRelation 0 :hasAggs false :hasWindowFuncs false :hasTargetSRFs false :hasSubL'
    'inks false :hasDistinctOn false :hasRecursive false :hasModifyingCTE false :hasForUpdate false :hasR'
    'owSecurity false :isReturn false :cteList <> :rtable ({RANGETBLENTRY :alias <> :eref {ALIAS :aliasna'
    'me customers :colnames ("id" "name" "email" "Odd\\ "Col"\\ name")} :rtekind 0 :relid 16500 :relkind r '
    ':rellockmode 1 :tablesample <> :lateral false :inh true :inFromCl true :requiredPerms 2 :checkAsUser'
    ' 0 :selectedCols (b 8 9) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>}'
    ') :jointree {FROMEXPR :fromlist ({RANGETBLREF :rtindex 1}) :quals <>} :targetList ({TARGETENTRY :exp'
    'r {VAR :varno 1 :varattno 2 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 1 :var'
    'attnosyn 2 :location 786} :resno 1 :resname name :ressortgroupref 0 :resorigtbl 16500 :resorigcol 2 '
    ':resjunk false} {TARGETENTRY :expr {VAR :varno 1 :varattno 1 :vartype 23 :vartypmod -1 :varcollid 0 '
    ':varlevelsup 0 :varnosyn 1 :varattnosyn 1 :location 792} :resno 2 :resname id :ressortgroupref 0 :re'
    'sorigtbl 16500 :resorigcol 1 :resjunk false}) :override 0 :onConflict <> :returningList <> :groupCla'
    'use <> :groupDistinct false :groupingSets <> :havingQual <> :windowClause <> :distinctClause <> :sor'
    'tClause <> :limitOffset <> :limitCount <> :limitOption 0 :rowMarks <> :setOperations <> :constraintD'
    'eps <> :withCheckOptions <> :mergeActionList <> :mergeUseOuterJoin false :stmt_location 0 :stmt_len '
    '0} :security_barrier false :lateral false :inh false :inFromCl false :requiredPerms 0 :checkAsUser 0'
    ' :selectedCols (b) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>} {RANG'
    'ETBLENTRY :alias {ALIAS :aliasname *SELECT*\\ 3 :colnames <>} :eref {ALIAS :aliasname *SELECT*\\ 3 :co'
    'lnames ("email" "id")} :rtekind 1 :subquery {QUERY :commandType 1 :querySource 0 :canSetTag true :ut'
    'ilityStmt <> :resultRelation 0 :hasAggs false :hasWindowFuncs false :hasTargetSRFs false :hasSubLink'
    's false :hasDistinctOn false :hasRecursive false :hasModifyingCTE false :hasForUpdate false :hasRowS'
    'ecurity false :isReturn false :cteList <> :rtable ({RANGETBLENTRY :alias <> :eref {ALIAS :aliasname '
    'customers :colnames ("id" "name" "email" "Odd\\ "Col"\\ name")} :rtekind 0 :relid 16500 :relkind r :re'
    'llockmode 1 :tablesample <> :lateral false :inh true :inFromCl true :requiredPerms 2 :checkAsUser 0 '
    ':selectedCols (b 8 10) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>}) '
    ':jointree {FROMEXPR :fromlist ({RANGETBLREF :rtindex 1}) :quals <>} :targetList ({TARGETENTRY :expr '
    '{VAR :varno 1 :varattno 3 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 1 :varat'
    'tnosyn 3 :location 824} :resno 1 :resname email :ressortgroupref 0 :resorigtbl 16500 :resorigcol 3 :'
    'resjunk false} {TARGETENTRY :expr {VAR :varno 1 :varattno 1 :vartype 23 :vartypmod -1 :varcollid 0 :'
    'varlevelsup 0 :varnosyn 1 :varattnosyn 1 :location 831} :resno 2 :resname id :ressortgroupref 0 :res'
    'origtbl 16500 :resorigcol 1 :resjunk false}) :override 0 :onConflict <> :returningList <> :groupClau'
    'se <> :groupDistinct false :groupingSets <> :havingQual <> :windowClause <> :distinctClause <> :sort'
    'Clause <> :limitOffset <> :limitCount <> :limitOption 0 :rowMarks <> :setOperations <> :constraintDe'
    'ps <> :withCheckOptions <> :mergeActionList <> :mergeUseOuterJoin false :stmt_location 0 :stmt_len 0'
    '} :security_barrier false :lateral false :inh false :inFromCl false :requiredPerms 0 :checkAsUser 0 '
    ':selectedCols (b) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>}) :join'
    'tree {FROMEXPR :fromlist <> :quals <>} :targetList ({TARGETENTRY :expr {VAR :varno 3 :varattno 1 :va'
    'rtype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 3 :varattnosyn 1 :location 745} :resn'
    'o 1 :resname email :ressortgroupref 0 :resorigtbl 0 :resorigcol 0 :resjunk false} {TARGETENTRY :expr'
    ' {VAR :varno 3 :varattno 2 :vartype 23 :vartypmod -1 :varcollid 0 :varlevelsup 0 :varnosyn 3 :varatt'
    'nosyn 2 :location 752} :resno 2 :resname id :ressortgroupref 0 :resorigtbl 0 :resorigcol 0 :resjunk '
    'false}) :override 0 :onConflict <> :returningList <> :groupClause <> :groupDistinct false :groupingS'
    'ets <> :havingQual <> :windowClause <> :distinctClause <> :sortClause <> :limitOffset <> :limitCount'
    ' <> :limitOption 0 :rowMarks <> :setOperations {SETOPERATIONSTMT :op 1 :all false :larg {RANGETBLREF'
    ' :rtindex 3} :rarg {SETOPERATIONSTMT :op 3 :all false :larg {RANGETBLREF :rtindex 4} :rarg {RANGETBL'
    'REF :rtindex 5} :colTypes (o 25 23) :colTypmods (i -1 -1) :colCollations (o 100 0) :groupClauses ({S'
    'ORTGROUPCLAUSE :tleSortGroupRef 0 :eqop 98 :sortop 664 :nulls_first false :hashable true} {SORTGROUP'
    'CLAUSE :tleSortGroupRef 0 :eqop 96 :sortop 97 :nulls_first false :hashable true})} :colTypes (o 25 2'
    '3) :colTypmods (i -1 -1) :colCollations (o 100 0) :groupClauses ({SORTGROUPCLAUSE :tleSortGroupRef 0'
    ' :eqop 98 :sortop 664 :nulls_first false :hashable true} {SORTGROUPCLAUSE :tleSortGroupRef 0 :eqop 9'
    '6 :sortop 97 :nulls_first false :hashable true})} :constraintDeps <> :withCheckOptions <> :mergeActi'
    'onList <> :mergeUseOuterJoin false :stmt_location 712 :stmt_len 137})'
)
V_OVER = (
    '({QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <> :resultRelation 0 :hasAggs fal'
    'se :hasWindowFuncs false :hasTargetSRFs false :hasSubLinks false :hasDistinctOn false :hasRecursive '
    'false :hasModifyingCTE false :hasForUpdate false :hasRowSecurity false :isReturn false :cteList <> :'
    'rtable ({RANGETBLENTRY :alias {ALIAS :aliasname old :colnames <>} :eref {ALIAS :aliasname old :colna'
    'mes ("c2")} :rtekind 0 :relid 16542 :relkind v :rellockmode 1 :tablesample <> :lateral false :inh fa'
    'lse :inFromCl false :requiredPerms 0 :checkAsUser 0 :selectedCols (b) :insertedCols (b) :updatedCols'
    ' (b) :extraUpdatedCols (b) :securityQuals <>} {RANGETBLENTRY :alias {ALIAS :aliasname new :colnames '
    '<>} :eref {ALIAS :aliasname new :colnames ("c2")} :rtekind 0 :relid 16542 :relkind v :rellockmode 1 '
    ':tablesample <> :lateral false :inh false :inFromCl false :requiredPerms 0 :checkAsUser 0 :selectedC'
    'ols (b) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>} {RANGETBLENTRY :'
    'alias <> :eref {ALIAS :aliasname v_alias :colnames ("contact" "name")} :rtekind 0 :relid 16518 :relk'
    'ind v :rellockmode 1 :tablesample <> :lateral false :inh true :inFromCl true :requiredPerms 2 :check'
    'AsUser 0 :selectedCols (b 8) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals'
    ' <>}) :jointree {FROMEXPR :fromlist ({RANGETBLREF :rtindex 3}) :quals <>} :targetList ({TARGETENTRY '
    ':expr {VAR :varno 3 :varattno 1 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 3 '
    ':varattnosyn 1 :location 880} :resno 1 :resname c2 :ressortgroupref 0 :resorigtbl 16518 :resorigcol '
    '1 :resjunk false}) :override 0 :onConflict <> :returningList <> :groupClause <> :groupDistinct false'
    ' :groupingSets <> :havingQual <> :windowClause <> :distinctClause <> :sortClause <> :limitOffset <> '
    ':limitCount <> :limitOption 0 :rowMarks <> :setOperations <> :constraintDeps <> :withCheckOptions <>'
    ' :mergeActionList <> :mergeUseOuterJoin false :stmt_location 850 :stmt_len 56})'
)
V_CONST = (
    '({QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <> :resultRelation 0 :hasAggs fal'
    'se :hasWindowFuncs false :hasTargetSRFs false :hasSubLinks false :hasDistinctOn false :hasRecursive '
    'false :hasModifyingCTE false :hasForUpdate false :hasRowSecurity false :isReturn false :cteList <> :'
    'rtable ({RANGETBLENTRY :alias {ALIAS :aliasname old :colnames <>} :eref {ALIAS :aliasname old :colna'
    'mes ("weird" "email" "arr")} :rtekind 0 :relid 16546 :relkind v :rellockmode 1 :tablesample <> :late'
    'ral false :inh false :inFromCl false :requiredPerms 0 :checkAsUser 0 :selectedCols (b) :insertedCols'
    ' (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>} {RANGETBLENTRY :alias {ALIAS :aliasna'
    'me new :colnames <>} :eref {ALIAS :aliasname new :colnames ("weird" "email" "arr")} :rtekind 0 :reli'
    'd 16546 :relkind v :rellockmode 1 :tablesample <> :lateral false :inh false :inFromCl false :require'
    'dPerms 0 :checkAsUser 0 :selectedCols (b) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :'
    'securityQuals <>} {RANGETBLENTRY :alias <> :eref {ALIAS :aliasname customers :colnames ("id" "name" '
    '"email" "Odd\\ "Col"\\ name")} :rtekind 0 :relid 16500 :relkind r :rellockmode 1 :tablesample <> :late'
    'ral false :inh true :inFromCl true :requiredPerms 2 :checkAsUser 0 :selectedCols (b 10) :insertedCol'
    's (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>}) :jointree {FROMEXPR :fromlist ({RAN'
    'GETBLREF :rtindex 3}) :quals <>} :targetList ({TARGETENTRY :expr {CONST :consttype 25 :consttypmod -'
    '1 :constcollid 100 :constlen -1 :constbyval false :constisnull false :location 938 :constvalue 36 [ '
    '-112 0 0 0 123 97 125 32 40 98 41 32 92 99 32 34 100 34 32 101 39 102 32 58 114 101 115 111 114 105 '
    '103 116 98 108 32 49 ]} :resno 1 :resname weird :ressortgroupref 0 :resorigtbl 0 :resorigcol 0 :resj'
    'unk false} {TARGETENTRY :expr {VAR :varno 3 :varattno 3 :vartype 25 :vartypmod -1 :varcollid 100 :va'
    'rlevelsup 0 :varnosyn 3 :varattnosyn 3 :location 984} :resno 2 :resname email :ressortgroupref 0 :re'
    'sorigtbl 16500 :resorigcol 3 :resjunk false} {TARGETENTRY :expr {CONST :consttype 1009 :consttypmod '
    '-1 :constcollid 100 :constlen -1 :constbyval false :constisnull false :location 991 :constvalue 40 ['
    ' -96 0 0 0 1 0 0 0 0 0 0 0 25 0 0 0 2 0 0 0 1 0 0 0 20 0 0 0 120 0 0 0 20 0 0 0 121 0 0 0 ]} :resno '
    '3 :resname arr :ressortgroupref 0 :resorigtbl 0 :resorigcol 0 :resjunk false}) :override 0 :onConfli'
    'ct <> :returningList <> :groupClause <> :groupDistinct false :groupingSets <> :havingQual <> :window'
    'Clause <> :distinctClause <> :sortClause <> :limitOffset <> :limitCount <> :limitOption 0 :rowMarks '
    '<> :setOperations <> :constraintDeps <> :withCheckOptions <> :mergeActionList <> :mergeUseOuterJoin '
    'false :stmt_location 907 :stmt_len 121})'
)
V_ODD = (
    '({QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <> :resultRelation 0 :hasAggs fal'
    'se :hasWindowFuncs false :hasTargetSRFs false :hasSubLinks false :hasDistinctOn false :hasRecursive '
    'false :hasModifyingCTE false :hasForUpdate false :hasRowSecurity false :isReturn false :cteList <> :'
    'rtable ({RANGETBLENTRY :alias {ALIAS :aliasname old :colnames <>} :eref {ALIAS :aliasname old :colna'
    'mes ("with\\ space\\ "q"")} :rtekind 0 :relid 16550 :relkind v :rellockmode 1 :tablesample <> :lateral'
    ' false :inh false :inFromCl false :requiredPerms 0 :checkAsUser 0 :selectedCols (b) :insertedCols (b'
    ') :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>} {RANGETBLENTRY :alias {ALIAS :aliasname '
    'new :colnames <>} :eref {ALIAS :aliasname new :colnames ("with\\ space\\ "q"")} :rtekind 0 :relid 1655'
    '0 :relkind v :rellockmode 1 :tablesample <> :lateral false :inh false :inFromCl false :requiredPerms'
    ' 0 :checkAsUser 0 :selectedCols (b) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securi'
    'tyQuals <>} {RANGETBLENTRY :alias <> :eref {ALIAS :aliasname customers :colnames ("id" "name" "email'
    '" "Odd\\ "Col"\\ name")} :rtekind 0 :relid 16500 :relkind r :rellockmode 1 :tablesample <> :lateral fa'
    'lse :inh true :inFromCl true :requiredPerms 2 :checkAsUser 0 :selectedCols (b 11) :insertedCols (b) '
    ':updatedCols (b) :extraUpdatedCols (b) :securityQuals <>}) :jointree {FROMEXPR :fromlist ({RANGETBLR'
    'EF :rtindex 3}) :quals <>} :targetList ({TARGETENTRY :expr {VAR :varno 3 :varattno 4 :vartype 25 :va'
    'rtypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 3 :varattnosyn 4 :location 1058} :resno 1 :resnam'
    'e with\\ space\\ "q" :ressortgroupref 0 :resorigtbl 16500 :resorigcol 4 :resjunk false}) :override 0 :'
    'onConflict <> :returningList <> :groupClause <> :groupDistinct false :groupingSets <> :havingQual <>'
    ' :windowClause <> :distinctClause <> :sortClause <> :limitOffset <> :limitCount <> :limitOption 0 :r'
    'owMarks <> :setOperations <> :constraintDeps <> :withCheckOptions <> :mergeActionList <> :mergeUseOu'
    'terJoin false :stmt_location 1029 :stmt_len 84})'
)
V_NASTY = (
    '({QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <> :resultRelation 0 :hasAggs fal'
    'se :hasWindowFuncs false :hasTargetSRFs false :hasSubLinks false :hasDistinctOn false :hasRecursive '
    'false :hasModifyingCTE false :hasForUpdate false :hasRowSecurity false :isReturn false :cteList <> :'
    'rtable ({RANGETBLENTRY :alias {ALIAS :aliasname old :colnames <>} :eref {ALIAS :aliasname old :colna'
    'mes (":resorigtbl" "\\}\\{TARGETENTRY\\ :resjunk\\ false" "a\\\\b\\ \\(c\\)\\ "d"" "\\<>" "\\1x" "\\ lead")}'
    ' :rtekind 0 :relid 16554 :relkind v :rellockmode 1 :tablesample <> :lateral false :inh false :inFrom'
    'Cl false :requiredPerms 0 :checkAsUser 0 :selectedCols (b) :insertedCols (b) :updatedCols (b) :extra'
    'UpdatedCols (b) :securityQuals <>} {RANGETBLENTRY :alias {ALIAS :aliasname new :colnames <>} :eref {'
    'ALIAS :aliasname new :colnames (":resorigtbl" "\\}\\{TARGETENTRY\\ :resjunk\\ false" "a\\\\b\\ \\(c\\)\\ "d"'
    '" "\\<>" "\\1x" "\\ lead")} :rtekind 0 :relid 16554 :relkind v :rellockmode 1 :tablesample <> :lateral '
    'false :inh false :inFromCl false :requiredPerms 0 :checkAsUser 0 :selectedCols (b) :insertedCols (b)'
    ' :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>} {RANGETBLENTRY :alias <> :eref {ALIAS :al'
    'iasname customers :colnames ("id" "name" "email" "Odd\\ "Col"\\ name")} :rtekind 0 :relid 16500 :relki'
    'nd r :rellockmode 1 :tablesample <> :lateral false :inh true :inFromCl true :requiredPerms 2 :checkA'
    'sUser 0 :selectedCols (b 8 9 10) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQ'
    'uals <>}) :jointree {FROMEXPR :fromlist ({RANGETBLREF :rtindex 3}) :quals <>} :targetList ({TARGETEN'
    'TRY :expr {VAR :varno 3 :varattno 3 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosy'
    'n 3 :varattnosyn 3 :location 1145} :resno 1 :resname :resorigtbl :ressortgroupref 0 :resorigtbl 1650'
    '0 :resorigcol 3 :resjunk false} {TARGETENTRY :expr {VAR :varno 3 :varattno 2 :vartype 25 :vartypmod '
    '-1 :varcollid 100 :varlevelsup 0 :varnosyn 3 :varattnosyn 2 :location 1169} :resno 2 :resname \\}\\{TA'
    'RGETENTRY\\ :resjunk\\ false :ressortgroupref 0 :resorigtbl 16500 :resorigcol 2 :resjunk false} {TARGE'
    'TENTRY :expr {VAR :varno 3 :varattno 1 :vartype 23 :vartypmod -1 :varcollid 0 :varlevelsup 0 :varnos'
    'yn 3 :varattnosyn 1 :location 1209} :resno 3 :resname a\\\\b\\ \\(c\\)\\ "d" :ressortgroupref 0 :resorigtb'
    'l 16500 :resorigcol 1 :resjunk false} {TARGETENTRY :expr {VAR :varno 3 :varattno 3 :vartype 25 :vart'
    'ypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 3 :varattnosyn 3 :location 1234} :resno 4 :resname '
    '\\<> :ressortgroupref 0 :resorigtbl 16500 :resorigcol 3 :resjunk false} {TARGETENTRY :expr {VAR :varn'
    'o 3 :varattno 2 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 3 :varattnosyn 2 :'
    'location 1249} :resno 5 :resname \\1x :ressortgroupref 0 :resorigtbl 16500 :resorigcol 2 :resjunk fal'
    'se} {TARGETENTRY :expr {VAR :varno 3 :varattno 1 :vartype 23 :vartypmod -1 :varcollid 0 :varlevelsup'
    ' 0 :varnosyn 3 :varattnosyn 1 :location 1263} :resno 6 :resname \\ lead :ressortgroupref 0 :resorigtb'
    'l 16500 :resorigcol 1 :resjunk false}) :override 0 :onConflict <> :returningList <> :groupClause <> '
    ':groupDistinct false :groupingSets <> :havingQual <> :windowClause <> :distinctClause <> :sortClause'
    ' <> :limitOffset <> :limitCount <> :limitOption 0 :rowMarks <> :setOperations <> :constraintDeps <> '
    ':withCheckOptions <> :mergeActionList <> :mergeUseOuterJoin false :stmt_location 1114 :stmt_len 177}'
    ')'
)
V_SUBLINK = (
    '({QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <> :resultRelation 0 :hasAggs fal'
    'se :hasWindowFuncs false :hasTargetSRFs false :hasSubLinks true :hasDistinctOn false :hasRecursive f'
    'alse :hasModifyingCTE false :hasForUpdate false :hasRowSecurity false :isReturn false :cteList <> :r'
    'table ({RANGETBLENTRY :alias {ALIAS :aliasname old :colnames <>} :eref {ALIAS :aliasname old :colnam'
    'es ("email" "mx")} :rtekind 0 :relid 16558 :relkind v :rellockmode 1 :tablesample <> :lateral false '
    ':inh false :inFromCl false :requiredPerms 0 :checkAsUser 0 :selectedCols (b) :insertedCols (b) :upda'
    'tedCols (b) :extraUpdatedCols (b) :securityQuals <>} {RANGETBLENTRY :alias {ALIAS :aliasname new :co'
    'lnames <>} :eref {ALIAS :aliasname new :colnames ("email" "mx")} :rtekind 0 :relid 16558 :relkind v '
    ':rellockmode 1 :tablesample <> :lateral false :inh false :inFromCl false :requiredPerms 0 :checkAsUs'
    'er 0 :selectedCols (b) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>} {'
    'RANGETBLENTRY :alias {ALIAS :aliasname c :colnames <>} :eref {ALIAS :aliasname c :colnames ("id" "na'
    'me" "email" "Odd\\ "Col"\\ name")} :rtekind 0 :relid 16500 :relkind r :rellockmode 1 :tablesample <> :'
    'lateral false :inh true :inFromCl true :requiredPerms 2 :checkAsUser 0 :selectedCols (b 8 10) :inser'
    'tedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>}) :jointree {FROMEXPR :fromlist'
    ' ({RANGETBLREF :rtindex 3}) :quals {SUBLINK :subLinkType 0 :subLinkId 0 :testexpr <> :operName <> :s'
    'ubselect {QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <> :resultRelation 0 :has'
    'Aggs false :hasWindowFuncs false :hasTargetSRFs false :hasSubLinks false :hasDistinctOn false :hasRe'
    'cursive false :hasModifyingCTE false :hasForUpdate false :hasRowSecurity false :isReturn false :cteL'
    'ist <> :rtable ({RANGETBLENTRY :alias <> :eref {ALIAS :aliasname orders :colnames ("id" "customer_id'
    '" "total")} :rtekind 0 :relid 16507 :relkind r :rellockmode 1 :tablesample <> :lateral false :inh tr'
    'ue :inFromCl true :requiredPerms 2 :checkAsUser 0 :selectedCols (b) :insertedCols (b) :updatedCols ('
    'b) :extraUpdatedCols (b) :securityQuals <>}) :jointree {FROMEXPR :fromlist ({RANGETBLREF :rtindex 1}'
    ') :quals <>} :targetList ({TARGETENTRY :expr {CONST :consttype 23 :consttypmod -1 :constcollid 0 :co'
    'nstlen 4 :constbyval true :constisnull false :location 1439 :constvalue 4 [ 1 0 0 0 0 0 0 0 ]} :resn'
    'o 1 :resname ?column? :ressortgroupref 0 :resorigtbl 0 :resorigcol 0 :resjunk false}) :override 0 :o'
    'nConflict <> :returningList <> :groupClause <> :groupDistinct false :groupingSets <> :havingQual <> '
    ':windowClause <> :distinctClause <> :sortClause <> :limitOffset <> :limitCount <> :limitOption 0 :ro'
    'wMarks <> :setOperations <> :constraintDeps <> :withCheckOptions <> :mergeActionList <> :mergeUseOut'
    'erJoin false :stmt_location 0 :stmt_len 0} :location 1424}} :targetList ({TARGETENTRY :expr {VAR :va'
    'rno 3 :varattno 3 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 3 :varattnosyn 3'
    ' :location 1325} :resno 1 :resname email :ressortgroupref 0 :resorigtbl 16500 :resorigcol 3 :resjunk'
    ' false} {TARGETENTRY :expr {SUBLINK :subLinkType 4 :subLinkId 0 :testexpr <> :operName <> :subselect'
    ' {QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <> :resultRelation 0 :hasAggs tru'
    'e :hasWindowFuncs false :hasTargetSRFs false :hasSubLinks false :hasDistinctOn false :hasRecursive f'
    'alse :hasModifyingCTE false :hasForUpdate false :hasRowSecurity false :isReturn false :cteList <> :r'
    'table ({RANGETBLENTRY :alias {ALIAS :aliasname o :colnames <>} :eref {ALIAS :aliasname o :colnames ('
    '"id" "customer_id" "total")} :rtekind 0 :relid 16507 :relkind r :rellockmode 1 :tablesample <> :late'
    'ral false :inh true :inFromCl true :requiredPerms 2 :checkAsUser 0 :selectedCols (b 9 10) :insertedC'
    'ols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>}) :jointree {FROMEXPR :fromlist ({R'
    'ANGETBLREF :rtindex 1}) :quals {OPEXPR :opno 96 :opfuncid 65 :opresulttype 16 :opretset false :opcol'
    'lid 0 :inputcollid 0 :args ({VAR :varno 1 :varattno 2 :vartype 23 :vartypmod -1 :varcollid 0 :varlev'
    'elsup 0 :varnosyn 1 :varattnosyn 2 :location 1371} {VAR :varno 3 :varattno 1 :vartype 23 :vartypmod '
    '-1 :varcollid 0 :varlevelsup 1 :varnosyn 3 :varattnosyn 1 :location 1387}) :location 1385}} :targetL'
    'ist ({TARGETENTRY :expr {AGGREF :aggfnoid 2130 :aggtype 1700 :aggcollid 0 :inputcollid 0 :aggtransty'
    'pe 0 :aggargtypes (o 1700) :aggdirectargs <> :args ({TARGETENTRY :expr {VAR :varno 1 :varattno 3 :va'
    'rtype 1700 :vartypmod -1 :varcollid 0 :varlevelsup 0 :varnosyn 1 :varattnosyn 3 :location 1344} :res'
    'no 1 :resname <> :ressortgroupref 0 :resorigtbl 0 :resorigcol 0 :resjunk false}) :aggorder <> :aggdi'
    'stinct <> :aggfilter <> :aggstar false :aggvariadic false :aggkind n :agglevelsup 0 :aggsplit 0 :agg'
    'no -1 :aggtransno -1 :location 1340} :resno 1 :resname max :ressortgroupref 0 :resorigtbl 0 :resorig'
    'col 0 :resjunk false}) :override 0 :onConflict <> :returningList <> :groupClause <> :groupDistinct f'
    'alse :groupingSets <> :havingQual <> :windowClause <> :distinctClause <> :sortClause <> :limitOffset'
    ' <> :limitCount <> :limitOption 0 :rowMarks <> :setOperations <> :constraintDeps <> :withCheckOption'
    's <> :mergeActionList <> :mergeUseOuterJoin false :stmt_location 0 :stmt_len 0} :location 1332} :res'
    'no 2 :resname mx :ressortgroupref 0 :resorigtbl 0 :resorigcol 0 :resjunk false}) :override 0 :onConf'
    'lict <> :returningList <> :groupClause <> :groupDistinct false :groupingSets <> :havingQual <> :wind'
    'owClause <> :distinctClause <> :sortClause <> :limitOffset <> :limitCount <> :limitOption 0 :rowMark'
    's <> :setOperations <> :constraintDeps <> :withCheckOptions <> :mergeActionList <> :mergeUseOuterJoi'
    'n false :stmt_location 1292 :stmt_len 161})'
)
V_JOIN = (
    '({QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <> :resultRelation 0 :hasAggs fal'
    'se :hasWindowFuncs false :hasTargetSRFs false :hasSubLinks false :hasDistinctOn false :hasRecursive '
    'false :hasModifyingCTE false :hasForUpdate false :hasRowSecurity false :isReturn false :cteList <> :'
    'rtable ({RANGETBLENTRY :alias {ALIAS :aliasname old :colnames <>} :eref {ALIAS :aliasname old :colna'
    'mes ("email" "total" "id")} :rtekind 0 :relid 16562 :relkind v :rellockmode 1 :tablesample <> :later'
    'al false :inh false :inFromCl false :requiredPerms 0 :checkAsUser 0 :selectedCols (b) :insertedCols '
    '(b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>} {RANGETBLENTRY :alias {ALIAS :aliasnam'
    'e new :colnames <>} :eref {ALIAS :aliasname new :colnames ("email" "total" "id")} :rtekind 0 :relid '
    '16562 :relkind v :rellockmode 1 :tablesample <> :lateral false :inh false :inFromCl false :requiredP'
    'erms 0 :checkAsUser 0 :selectedCols (b) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :se'
    'curityQuals <>} {RANGETBLENTRY :alias {ALIAS :aliasname c :colnames <>} :eref {ALIAS :aliasname c :c'
    'olnames ("id" "name" "email" "Odd\\ "Col"\\ name")} :rtekind 0 :relid 16500 :relkind r :rellockmode 1 '
    ':tablesample <> :lateral false :inh true :inFromCl true :requiredPerms 2 :checkAsUser 0 :selectedCol'
    's (b 8 10) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>} {RANGETBLENTR'
    'Y :alias {ALIAS :aliasname o :colnames <>} :eref {ALIAS :aliasname o :colnames ("id" "customer_id" "'
    'total")} :rtekind 0 :relid 16507 :relkind r :rellockmode 1 :tablesample <> :lateral false :inh true '
    ':inFromCl true :requiredPerms 2 :checkAsUser 0 :selectedCols (b 8 9 10) :insertedCols (b) :updatedCo'
    'ls (b) :extraUpdatedCols (b) :securityQuals <>} {RANGETBLENTRY :alias <> :eref {ALIAS :aliasname unn'
    'amed_join :colnames ("id" "name" "email" "Odd\\ "Col"\\ name" "id" "customer_id" "total")} :rtekind 2 '
    ':jointype 0 :joinmergedcols 0 :joinaliasvars ({VAR :varno 3 :varattno 1 :vartype 23 :vartypmod -1 :v'
    'arcollid 0 :varlevelsup 0 :varnosyn 3 :varattnosyn 1 :location -1} {VAR :varno 3 :varattno 2 :vartyp'
    'e 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 3 :varattnosyn 2 :location -1} {VAR :varn'
    'o 3 :varattno 3 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 3 :varattnosyn 3 :'
    'location -1} {VAR :varno 3 :varattno 4 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varn'
    'osyn 3 :varattnosyn 4 :location -1} {VAR :varno 4 :varattno 1 :vartype 23 :vartypmod -1 :varcollid 0'
    ' :varlevelsup 0 :varnosyn 4 :varattnosyn 1 :location -1} {VAR :varno 4 :varattno 2 :vartype 23 :vart'
    'ypmod -1 :varcollid 0 :varlevelsup 0 :varnosyn 4 :varattnosyn 2 :location -1} {VAR :varno 4 :varattn'
    'o 3 :vartype 1700 :vartypmod -1 :varcollid 0 :varlevelsup 0 :varnosyn 4 :varattnosyn 3 :location -1}'
    ') :joinleftcols (i 1 2 3 4) :joinrightcols (i 1 2 3) :join_using_alias <> :lateral false :inh false '
    ':inFromCl true :requiredPerms 0 :checkAsUser 0 :selectedCols (b) :insertedCols (b) :updatedCols (b) '
    ':extraUpdatedCols (b) :securityQuals <>}) :jointree {FROMEXPR :fromlist ({JOINEXPR :jointype 0 :isNa'
    'tural false :larg {RANGETBLREF :rtindex 3} :rarg {RANGETBLREF :rtindex 4} :usingClause <> :join_usin'
    'g_alias <> :quals {OPEXPR :opno 96 :opfuncid 65 :opresulttype 16 :opretset false :opcollid 0 :inputc'
    'ollid 0 :args ({VAR :varno 4 :varattno 2 :vartype 23 :vartypmod -1 :varcollid 0 :varlevelsup 0 :varn'
    'osyn 4 :varattnosyn 2 :location 1541} {VAR :varno 3 :varattno 1 :vartype 23 :vartypmod -1 :varcollid'
    ' 0 :varlevelsup 0 :varnosyn 3 :varattnosyn 1 :location 1557}) :location 1555} :alias <> :rtindex 5})'
    ' :quals <>} :targetList ({TARGETENTRY :expr {VAR :varno 3 :varattno 3 :vartype 25 :vartypmod -1 :var'
    'collid 100 :varlevelsup 0 :varnosyn 3 :varattnosyn 3 :location 1484} :resno 1 :resname email :ressor'
    'tgroupref 0 :resorigtbl 16500 :resorigcol 3 :resjunk false} {TARGETENTRY :expr {VAR :varno 4 :varatt'
    'no 3 :vartype 1700 :vartypmod -1 :varcollid 0 :varlevelsup 0 :varnosyn 4 :varattnosyn 3 :location 14'
    '93} :resno 2 :resname total :ressortgroupref 0 :resorigtbl 16507 :resorigcol 3 :resjunk false} {TARG'
    'ETENTRY :expr {VAR :varno 4 :varattno 1 :vartype 23 :vartypmod -1 :varcollid 0 :varlevelsup 0 :varno'
    'syn 4 :varattnosyn 1 :location 1502} :resno 3 :resname id :ressortgroupref 0 :resorigtbl 16507 :reso'
    'rigcol 1 :resjunk false}) :override 0 :onConflict <> :returningList <> :groupClause <> :groupDistinc'
    't false :groupingSets <> :havingQual <> :windowClause <> :distinctClause <> :sortClause <> :limitOff'
    'set <> :limitCount <> :limitOption 0 :rowMarks <> :setOperations <> :constraintDeps <> :withCheckOpt'
    'ions <> :mergeActionList <> :mergeUseOuterJoin false :stmt_location 1454 :stmt_len 107})'
)
MV = (
    '({QUERY :commandType 1 :querySource 0 :canSetTag true :utilityStmt <> :resultRelation 0 :hasAggs fal'
    'se :hasWindowFuncs false :hasTargetSRFs false :hasSubLinks false :hasDistinctOn false :hasRecursive '
    'false :hasModifyingCTE false :hasForUpdate false :hasRowSecurity false :isReturn false :cteList <> :'
    'rtable ({RANGETBLENTRY :alias {ALIAS :aliasname old :colnames <>} :eref {ALIAS :aliasname old :colna'
    'mes ("id" "email")} :rtekind 0 :relid 16566 :relkind m :rellockmode 1 :tablesample <> :lateral false'
    ' :inh false :inFromCl false :requiredPerms 0 :checkAsUser 0 :selectedCols (b) :insertedCols (b) :upd'
    'atedCols (b) :extraUpdatedCols (b) :securityQuals <>} {RANGETBLENTRY :alias {ALIAS :aliasname new :c'
    'olnames <>} :eref {ALIAS :aliasname new :colnames ("id" "email")} :rtekind 0 :relid 16566 :relkind m'
    ' :rellockmode 1 :tablesample <> :lateral false :inh false :inFromCl false :requiredPerms 0 :checkAsU'
    'ser 0 :selectedCols (b) :insertedCols (b) :updatedCols (b) :extraUpdatedCols (b) :securityQuals <>} '
    '{RANGETBLENTRY :alias <> :eref {ALIAS :aliasname customers :colnames ("id" "name" "email" "Odd\\ "Col'
    '"\\ name")} :rtekind 0 :relid 16500 :relkind r :rellockmode 1 :tablesample <> :lateral false :inh tru'
    'e :inFromCl true :requiredPerms 2 :checkAsUser 0 :selectedCols (b 8 10) :insertedCols (b) :updatedCo'
    'ls (b) :extraUpdatedCols (b) :securityQuals <>}) :jointree {FROMEXPR :fromlist ({RANGETBLREF :rtinde'
    'x 3}) :quals <>} :targetList ({TARGETENTRY :expr {VAR :varno 3 :varattno 1 :vartype 23 :vartypmod -1'
    ' :varcollid 0 :varlevelsup 0 :varnosyn 3 :varattnosyn 1 :location 1601} :resno 1 :resname id :ressor'
    'tgroupref 0 :resorigtbl 16500 :resorigcol 1 :resjunk false} {TARGETENTRY :expr {VAR :varno 3 :varatt'
    'no 3 :vartype 25 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 3 :varattnosyn 3 :location 16'
    '05} :resno 2 :resname email :ressortgroupref 0 :resorigtbl 16500 :resorigcol 3 :resjunk false}) :ove'
    'rride 0 :onConflict <> :returningList <> :groupClause <> :groupDistinct false :groupingSets <> :havi'
    'ngQual <> :windowClause <> :distinctClause <> :sortClause <> :limitOffset <> :limitCount <> :limitOp'
    'tion 0 :rowMarks <> :setOperations <> :constraintDeps <> :withCheckOptions <> :mergeActionList <> :m'
    'ergeUseOuterJoin false :stmt_location 0 :stmt_len 0})'
)


CASES = {
    "plain": (V_PLAIN, {1: (ID,), 2: (EMAIL,)}),
    "aliased column": (V_ALIAS, {1: (EMAIL,), 2: (NAME,)}),
    "expressions have no origin": (V_EXPR, {1: (ID,), 4: (EMAIL,)}),
    "subquery in FROM, odd alias": (V_SUB, {1: (EMAIL,), 2: (ID,)}),
    "CTE, odd name": (V_CTE, {1: (ID,), 2: (EMAIL,)}),
    "UNION: each branch": (V_UNION, {1: (EMAIL, NAME)}),
    "nested set operations": (V_SETNEST, {1: (EMAIL, NAME), 2: (ID,)}),
    "view over a view: the inner view": (V_OVER, {1: ((V_ALIAS_OID, 1),)}),
    "constants": (V_CONST, {2: (EMAIL,)}),
    "column named with spaces and quotes": (V_ODD, {1: (ODD,)}),
    "names that look like syntax": (V_NASTY, {1: (EMAIL,), 2: (NAME,), 3: (ID,), 4: (EMAIL,), 5: (NAME,), 6: (ID,)}),
    "sublinks: only the top-level target list": (V_SUBLINK, {1: (EMAIL,)}),
    "join": (V_JOIN, {1: (EMAIL,), 2: ((ORDERS, 3),), 3: ((ORDERS, 1),)}),
    "materialized view": (MV, {1: (ID,), 2: (EMAIL,)}),
}
FIXTURES = [text for text, _ in CASES.values()]


@pytest.mark.parametrize(("text", "expected"), list(CASES.values()), ids=list(CASES))
def test_origins_of_captured_views(text: str, expected: dict[int, tuple[tuple[int, int], ...]]) -> None:
    assert view_origins(text) == expected


def test_union_columns_record_no_origin_at_the_top() -> None:
    """The fact the set-operation handling rests on: the top-level entry says 0, the branches say where."""
    top = V_UNION[V_UNION.rindex(":targetList") :]
    assert ":resorigtbl 0 :resorigcol 0" in top
    assert f":resorigtbl {CUSTOMERS} :resorigcol 3" in V_UNION and f":resorigtbl {CUSTOMERS} :resorigcol 2" in V_UNION


def test_names_are_escaped_but_colons_are_not() -> None:
    """Why labels are told by position: a column may be called ':resorigtbl' and it is stored as such."""
    assert ":resname :resorigtbl :ressortgroupref" in V_NASTY
    assert r":resname \}\{TARGETENTRY\ :resjunk\ false " in V_NASTY
    assert r":resname a\\b\ \(c\)\ " in V_NASTY
    assert r":resname \<> " in V_NASTY and r":resname \1x " in V_NASTY and r":resname \ lead " in V_NASTY
    assert r":aliasname s\ \{x\}\ \(y\) " in V_SUB


# --- generated names never confuse the reader ----------------------------------------------------------------------


def out_token(s: str) -> str:
    """PostgreSQL's outToken (src/backend/nodes/outfuncs.c), which writes names into node trees."""
    if not s:
        return "<>"
    out = ""
    if s[0] in '<"' or s[0].isdigit() or (s[0] in "+-" and len(s) > 1 and (s[1].isdigit() or s[1] == ".")):
        out = "\\"
    for ch in s:
        out += "\\" + ch if ch in " \n\t(){}\\" else ch
    return out


# A value that outToken wrote: any run of escaped or ordinary characters.
NAME_FIELD = re.compile(r"(:(?:resname|aliasname|ctename) )((?:\\.|[^ \n\t(){}\\])+)", re.DOTALL)
STRING_ITEM = re.compile(r'(?<=[( ])"(?:\\.|[^ \n\t(){}\\])*"(?=[ )])', re.DOTALL)
SYNTAX = ["{", "}", "(", ")", "\\", " ", "\t", "\n", "\r", '"', "<>", ":", ":resorigtbl 0", "[", "]", "1", "-1", "é"]
names = st.lists(st.sampled_from(SYNTAX) | st.text(min_size=1, max_size=3), min_size=1, max_size=12).map("".join)


def rename(text: str, new: list[str]) -> str:
    """Every name in ``text`` (column, table and CTE names; the strings of column-name lists) replaced, in turn."""
    it = iter(new * (len(NAME_FIELD.findall(text)) + len(STRING_ITEM.findall(text))))
    text = NAME_FIELD.sub(lambda m: m.group(1) + out_token(next(it)), text)
    return STRING_ITEM.sub(lambda m: '"' + out_token(next(it)) + '"', text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(list(CASES)), st.lists(names, min_size=1, max_size=5))
@example("names that look like syntax", ["}{TARGETENTRY :resno 9 :resorigtbl 1 :resorigcol 1 :resjunk false}"])
@example("UNION: each branch", [") :setOperations <> (", "\\", "{QUERY"])
def test_any_names_leave_the_origins_alone(case: str, new: list[str]) -> None:
    text, expected = CASES[case]
    renamed = rename(text, new)
    assert renamed != text
    assert view_origins(renamed) == expected


def test_rename_reaches_every_kind_of_name() -> None:
    """The property above is only as good as the substitution: it must hit resname, aliasname, ctename, strings."""
    renamed = rename(V_CTE, ["Z"])
    assert ":ctename Z " in renamed and ":resname Z " in renamed and ":aliasname Z " in renamed
    assert '("Z" "Z")' in renamed
    assert rename(V_CTE, ["}"]).count(":ctename \\} ") == V_CTE.count(":ctename ") == 2


# --- malformed text is refused, never misread --------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FIXTURES), st.data())
def test_every_truncation_is_refused(text: str, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    with pytest.raises(ValueError, match="malformed"):
        view_origins(text[:cut])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FIXTURES), st.data())
def test_corruption_raises_value_error_or_reads(text: str, data: st.DataObject) -> None:
    at = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    ch = data.draw(st.sampled_from(["{", "}", "(", ")", "\\", " ", "[", "]", ":", "x", "0"]))
    try:
        got = view_origins(text[:at] + ch + text[at + 1 :])
    except ValueError:
        return
    assert isinstance(got, dict)


@pytest.mark.parametrize(
    "text",
    ["", "<>", "(", ")", "()", "({QUERY", "({QUERY})}", "({QUERY :targetList})", "({ :a 1})", "({QUERY 1})",
     "({QUERY :constvalue 4 [ 1 0 0 0 })", "({TARGETENTRY :resno 1})", "QUERY"],
)
def test_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="malformed"):
        view_origins(text)


def test_datum_bytes_are_skipped() -> None:
    text = (
        "({QUERY :targetList ({TARGETENTRY :expr {CONST :constvalue 8 [ 123 125 40 41 93 0 0 0 ]} :resno 1 "
        ":resname x :resorigtbl 0 :resorigcol 0 :resjunk false} {TARGETENTRY :expr <> :resno 2 :resname y "
        ":resorigtbl 7 :resorigcol 2 :resjunk false} {TARGETENTRY :resno 3 :resname z :resorigtbl 7 "
        ":resorigcol 1 :resjunk true}) :setOperations <>})"
    )
    assert view_origins(text) == {2: ((7, 2),)}


def test_deep_expressions_do_not_exhaust_the_stack() -> None:
    depth = 20_000
    expr = "{OPEXPR :args (" * depth + "{VAR :varno 1}" + ")}" * depth
    text = f"({{QUERY :targetList ({{TARGETENTRY :expr {expr} :resno 1 :resorigtbl 5 :resorigcol 2 :resjunk false}})}})"
    assert view_origins(text) == {1: ((5, 2),)}
