// A JDBC client doing what applications and DBeaver do; test_fidelity.py runs it directly and through the
// gateway and compares everything it prints. Usage: java -cp postgresql.jar:. FidelityClient URL USER [PASSWORD]
import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Arrays;
import java.util.Properties;

public final class FidelityClient {
    private FidelityClient() {}

    private static void print(String label, ResultSet rs, String... columns) throws SQLException {
        ResultSetMetaData md = rs.getMetaData();
        if (columns.length == 0) {
            StringBuilder head = new StringBuilder(label + " columns:");
            for (int i = 1; i <= md.getColumnCount(); i++) {
                head.append(' ').append(md.getColumnLabel(i)).append('/').append(md.getColumnTypeName(i));
            }
            System.out.println(head);
        }
        int n = 0;
        while (rs.next()) {
            StringBuilder row = new StringBuilder(label + " row:");
            if (columns.length == 0) {
                for (int i = 1; i <= md.getColumnCount(); i++) {
                    row.append(" | ").append(rs.getString(i));
                }
            } else {
                for (String c : columns) {
                    row.append(" | ").append(c).append('=').append(rs.getString(c));
                }
            }
            System.out.println(row);
            n++;
        }
        System.out.println(label + " rows: " + n);
    }

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        if (args.length > 2) {
            props.setProperty("password", args[2]);
        }
        props.setProperty("ApplicationName", "jdbc-fidelity");
        try (Connection conn = DriverManager.getConnection(args[0], props)) {
            // A PreparedStatement run many times: after prepareThreshold (5) pgjdbc switches to a named
            // server-side statement, bound again for each execution.
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT id, name, email, balance, active, joined, tags, profile FROM customers "
                    + "WHERE id = ? AND balance >= ?")) {
                for (int i = 1; i <= 8; i++) {
                    ps.setInt(1, i * 6);
                    ps.setBigDecimal(2, new BigDecimal("1.00"));
                    try (ResultSet rs = ps.executeQuery()) {
                        print("prepared " + i, rs);
                    }
                }
            }
            // With autocommit off and a fetch size, pgjdbc reads through a portal, 7 rows at a time.
            conn.setAutoCommit(false);
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT id, email, card_number FROM customers WHERE id > ? ORDER BY id")) {
                ps.setFetchSize(7);
                ps.setInt(1, 0);
                try (ResultSet rs = ps.executeQuery()) {
                    print("fetch", rs);
                }
            }
            conn.commit();
            // What DBeaver asks when it opens a connection and a table.
            DatabaseMetaData md = conn.getMetaData();
            System.out.println("product: " + md.getDatabaseProductName() + " " + md.getDatabaseMajorVersion());
            System.out.println("user: " + md.getUserName());
            try (ResultSet rs = md.getSchemas()) {
                print("schemas", rs, "TABLE_SCHEM");
            }
            try (ResultSet rs = md.getTables(null, "public", "%", new String[] {"TABLE", "VIEW"})) {
                print("tables", rs, "TABLE_SCHEM", "TABLE_NAME", "TABLE_TYPE");
            }
            try (ResultSet rs = md.getColumns(null, "public", "customers", "%")) {
                print("columns", rs, "COLUMN_NAME", "TYPE_NAME", "DATA_TYPE", "COLUMN_SIZE", "DECIMAL_DIGITS",
                      "NULLABLE", "ORDINAL_POSITION", "IS_NULLABLE");
            }
            try (ResultSet rs = md.getPrimaryKeys(null, "public", "customers")) {
                print("pk", rs, "COLUMN_NAME", "KEY_SEQ", "PK_NAME");
            }
            try (ResultSet rs = md.getIndexInfo(null, "public", "customers", false, true)) {
                print("indexes", rs, "INDEX_NAME", "NON_UNIQUE", "COLUMN_NAME");
            }
            conn.commit();
            // A batch insert, committed; another, rolled back; an error in a transaction, rolled back.
            try (Statement st = conn.createStatement()) {
                st.execute("CREATE TEMP TABLE jdbc_batch (id int PRIMARY KEY, email text, amount numeric(10,2))");
            }
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO jdbc_batch VALUES (?, ?, ?)")) {
                for (int i = 1; i <= 20; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, "batch" + i + "@example.com");
                    ps.setBigDecimal(3, new BigDecimal(i + ".25"));
                    ps.addBatch();
                }
                System.out.println("batch: " + Arrays.toString(ps.executeBatch()));
                conn.commit();
                ps.setInt(1, 21);
                ps.setString(2, "gone@example.com");
                ps.setBigDecimal(3, BigDecimal.ONE);
                ps.addBatch();
                System.out.println("batch 2: " + Arrays.toString(ps.executeBatch()));
                conn.rollback();
            }
            try (Statement st = conn.createStatement()) {
                try {
                    st.executeQuery("SELECT 1 / 0");
                } catch (SQLException e) {
                    System.out.println("error: " + e.getSQLState() + " " + e.getMessage());
                }
                conn.rollback();
                try (ResultSet rs = st.executeQuery("SELECT count(*), sum(amount) FROM jdbc_batch")) {
                    print("after", rs);
                }
            }
            conn.commit();
        }
    }
}
