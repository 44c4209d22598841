// What a JDBC tool (DBeaver, an IDE's database browser) asks when it opens a connection and browses a schema:
// DatabaseMetaData calls, read-only and isolation switches, and DBeaver's own start-up queries. Prints a
// deterministic summary that test_policy_clients.py compares between a direct run and a run through the gateway.
// Usage: java -cp postgresql.jar:. MetadataClient URL USER [PASSWORD]
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Properties;

public final class MetadataClient {
    private MetadataClient() {}

    /** One line per row: the label and the named columns' values, in the order the driver returned them. */
    private static void print(String label, ResultSet rs, String... columns) throws SQLException {
        int n = 0;
        while (rs.next()) {
            StringBuilder row = new StringBuilder(label + ":");
            for (String c : columns) {
                row.append(' ').append(c).append('=').append(rs.getString(c));
            }
            System.out.println(row);
            n++;
        }
        System.out.println(label + " rows: " + n);
    }

    /** The values of one column, sorted: for listings whose order the driver does not fix. */
    private static void printSorted(String label, ResultSet rs, String column) throws SQLException {
        List<String> values = new ArrayList<>();
        while (rs.next()) {
            values.add(rs.getString(column));
        }
        Collections.sort(values);
        System.out.println(label + ": " + values);
    }

    private static String one(Connection conn, String query) throws SQLException {
        try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery(query)) {
            StringBuilder out = new StringBuilder();
            while (rs.next()) {
                for (int i = 1; i <= rs.getMetaData().getColumnCount(); i++) {
                    out.append(i > 1 ? " | " : "").append(rs.getString(i));
                }
            }
            return out.toString();
        }
    }

    private static void dbeaverStartup(Connection conn) throws SQLException {
        System.out.println("current_schema, session_user: " + one(conn, "SELECT current_schema(), session_user"));
        System.out.println("search_path: " + one(conn, "SHOW search_path"));
        try (Statement st = conn.createStatement()) {
            st.execute("SET application_name = 'DBeaver 24.0.0 - Main'");
        }
        System.out.println("application_name: " + one(conn, "SHOW application_name"));
        System.out.println("standard_conforming_strings: " + one(conn,
                "SELECT name, setting FROM pg_catalog.pg_settings WHERE name = 'standard_conforming_strings'"));
        try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery(
                "SELECT * FROM pg_catalog.pg_settings WHERE name = 'standard_conforming_strings'")) {
            print("pg_settings", rs, "name", "setting", "context");
        }
        System.out.println("version: " + one(conn, "SELECT split_part(version(), ' ', 1)"));
        // DBeaver's database list: every connectable database; print our own row (other tests create others)
        String current = one(conn, "SELECT current_database()");
        int seen = 0;
        try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery(
                "SELECT db.oid, db.* FROM pg_catalog.pg_database db WHERE datallowconn AND NOT datistemplate "
                + "OR db.datname = current_database() ORDER BY db.datname")) {
            while (rs.next()) {
                if (rs.getString("datname").equals(current)) {
                    seen++;
                    System.out.println("database: encoding=" + rs.getInt("encoding") + " datallowconn="
                            + rs.getBoolean("datallowconn") + " datistemplate=" + rs.getBoolean("datistemplate"));
                }
            }
        }
        System.out.println("own database listed: " + seen);
        try (PreparedStatement ps = conn.prepareStatement(
                "SELECT n.oid, n.*, d.description FROM pg_catalog.pg_namespace n "
                + "LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid = n.oid AND d.objsubid = 0 "
                + "AND d.classoid = 'pg_namespace'::regclass WHERE nspname NOT LIKE ? ORDER BY nspname")) {
            ps.setString(1, "pg_temp%");
            try (ResultSet rs = ps.executeQuery()) {
                printSorted("namespaces", rs, "nspname");
            }
        }
        try (PreparedStatement ps = conn.prepareStatement(
                "SELECT c.oid, c.*, d.description, pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS partition_expr, "
                + "pg_catalog.pg_get_partkeydef(c.oid) AS partition_key FROM pg_catalog.pg_class c "
                + "LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid = c.oid AND d.objsubid = 0 "
                + "AND d.classoid = 'pg_class'::regclass "
                + "WHERE c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = ?) "
                + "AND c.relkind NOT IN ('i', 'I', 'c')")) {
            ps.setString(1, "public");
            try (ResultSet rs = ps.executeQuery()) {
                printSorted("classes", rs, "relname");
            }
        }
        System.out.println("keywords: " + one(conn,
                "SELECT count(*) > 100 FROM pg_catalog.pg_get_keywords() WHERE catcode <> 'U'"));
        System.out.println("view definition: " + one(conn,
                "SELECT pg_catalog.pg_get_viewdef('public.pc_order_totals'::regclass, true) IS NOT NULL"));
    }

    private static void metadata(Connection conn) throws SQLException {
        DatabaseMetaData md = conn.getMetaData();
        System.out.println("product: " + md.getDatabaseProductName() + " " + md.getDatabaseMajorVersion());
        try (ResultSet rs = md.getCatalogs()) {
            print("catalogs", rs, "TABLE_CAT");
        }
        try (ResultSet rs = md.getSchemas()) {
            printSorted("schemas", rs, "TABLE_SCHEM");
        }
        try (ResultSet rs = md.getTableTypes()) {
            printSorted("table types", rs, "TABLE_TYPE");
        }
        try (ResultSet rs = md.getTables(null, "public", "%", new String[] {"TABLE", "VIEW"})) {
            print("table", rs, "TABLE_SCHEM", "TABLE_NAME", "TABLE_TYPE");
        }
        for (String table : new String[] {"customers", "pc_orders"}) {
            try (ResultSet rs = md.getColumns(null, "public", table, "%")) {
                print("column " + table, rs, "COLUMN_NAME", "TYPE_NAME", "DATA_TYPE", "COLUMN_SIZE",
                      "DECIMAL_DIGITS", "IS_NULLABLE", "IS_AUTOINCREMENT", "COLUMN_DEF");
            }
            try (ResultSet rs = md.getPrimaryKeys(null, "public", table)) {
                print("pk " + table, rs, "COLUMN_NAME", "KEY_SEQ", "PK_NAME");
            }
            try (ResultSet rs = md.getIndexInfo(null, "public", table, false, false)) {
                print("index " + table, rs, "INDEX_NAME", "NON_UNIQUE", "ORDINAL_POSITION", "COLUMN_NAME");
            }
        }
        try (ResultSet rs = md.getImportedKeys(null, "public", "pc_orders")) {
            print("imported", rs, "PKTABLE_NAME", "PKCOLUMN_NAME", "FKTABLE_NAME", "FKCOLUMN_NAME", "FK_NAME",
                  "PK_NAME", "UPDATE_RULE", "DELETE_RULE");
        }
        try (ResultSet rs = md.getExportedKeys(null, "public", "pc_accounts")) {
            print("exported", rs, "FKTABLE_NAME", "FKCOLUMN_NAME", "FK_NAME");
        }
        try (ResultSet rs = md.getFunctions(null, "public", "pc_%")) {
            print("function", rs, "FUNCTION_NAME", "FUNCTION_TYPE");
        }
        try (ResultSet rs = md.getFunctionColumns(null, "public", "pc_total", "%")) {
            print("function column", rs, "COLUMN_NAME", "COLUMN_TYPE", "TYPE_NAME");
        }
        try (ResultSet rs = md.getProcedures(null, "public", "pc_%")) {
            print("procedure", rs, "PROCEDURE_NAME");
        }
        try (ResultSet rs = md.getUDTs(null, "public", "pc_%", null)) {
            print("udt", rs, "TYPE_NAME", "DATA_TYPE");
        }
        int types = 0;
        List<String> wanted = new ArrayList<>();
        try (ResultSet rs = md.getTypeInfo()) {
            while (rs.next()) {
                types++;
                String name = rs.getString("TYPE_NAME");
                if (name.equals("int4") || name.equals("jsonb") || name.equals("pc_mood") || name.equals("text")) {
                    wanted.add(name + "/" + rs.getInt("DATA_TYPE"));
                }
            }
        }
        Collections.sort(wanted);
        System.out.println("type info: " + (types > 50) + " " + wanted);
        try (ResultSet rs = md.getTablePrivileges(null, "public", "pc_accounts")) {
            printSorted("privileges", rs, "PRIVILEGE");
        }
        try (ResultSet rs = md.getColumnPrivileges(null, "public", "pc_accounts", "code")) {
            printSorted("column privileges", rs, "PRIVILEGE");
        }
        try (ResultSet rs = md.getCrossReference(null, "public", "pc_accounts", null, "public", "pc_orders")) {
            print("cross reference", rs, "PKCOLUMN_NAME", "FKCOLUMN_NAME", "FK_NAME");
        }
        try (ResultSet rs = md.getVersionColumns(null, "public", "pc_accounts")) {
            print("version columns", rs, "COLUMN_NAME", "TYPE_NAME");
        }
        try (ResultSet rs = md.getBestRowIdentifier(null, "public", "pc_accounts", DatabaseMetaData.bestRowSession,
                                                     true)) {
            print("best row", rs, "COLUMN_NAME", "TYPE_NAME");
        }
    }

    private static void connectionCalls(Connection conn) throws SQLException {
        // what a pool or a tool checks and sets on a connection it hands out
        System.out.println("valid: " + conn.isValid(5));
        conn.setClientInfo("ApplicationName", "DBeaver 24.0.0 - SQLEditor");
        System.out.println("client info: " + conn.getClientInfo("ApplicationName") + " / "
                           + one(conn, "SHOW application_name"));
        conn.setSchema("public");
        System.out.println("schema: " + conn.getSchema());
        conn.setCatalog(conn.getCatalog());  // a no-op in pgjdbc, as DBeaver calls it
        System.out.println("holdability: " + conn.getHoldability());
        try (Statement st = conn.createStatement()) {
            st.setQueryTimeout(30);
            st.setFetchSize(100);
            st.setMaxRows(1);
            try (ResultSet rs = st.executeQuery("SELECT code FROM pc_accounts ORDER BY id")) {
                print("max rows", rs, "code");
            }
        }
    }

    private static void transactions(Connection conn) throws SQLException {
        // read-only: in autocommit mode pgjdbc (readOnlyMode=transaction) sends nothing; in a transaction it
        // begins it READ ONLY
        conn.setReadOnly(true);
        System.out.println("read only (autocommit): " + one(conn, "SHOW transaction_read_only"));
        conn.setAutoCommit(false);
        System.out.println("read only (transaction): " + one(conn, "SHOW transaction_read_only"));
        System.out.println("accounts: " + one(conn, "SELECT count(*) FROM pc_accounts"));
        conn.commit();
        conn.setReadOnly(false);
        System.out.println("read write (transaction): " + one(conn, "SHOW transaction_read_only"));
        conn.rollback();
        for (int level : new int[] {Connection.TRANSACTION_SERIALIZABLE, Connection.TRANSACTION_REPEATABLE_READ,
                                    Connection.TRANSACTION_READ_COMMITTED}) {
            conn.setTransactionIsolation(level);
            System.out.println("isolation " + level + ": " + conn.getTransactionIsolation() + " "
                               + one(conn, "SHOW transaction_isolation"));
            conn.commit();
        }
        try (Statement st = conn.createStatement()) {
            st.executeUpdate("UPDATE pc_accounts SET mood = 'happy' WHERE id = 1");
        }
        conn.rollback();
        System.out.println("after rollback: " + one(conn, "SELECT mood FROM pc_accounts WHERE id = 1"));
        conn.commit();
        conn.setAutoCommit(true);
        System.out.println("autocommit: " + conn.getAutoCommit());
    }

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        if (args.length > 2) {
            props.setProperty("password", args[2]);
        }
        props.setProperty("ApplicationName", "DBeaver 24.0.0 - Metadata");
        try (Connection conn = java.sql.DriverManager.getConnection(args[0], props)) {
            dbeaverStartup(conn);
            metadata(conn);
            connectionCalls(conn);
            transactions(conn);
        }
    }
}
