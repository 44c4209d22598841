/* SQLite's own floor for the shipper's writes (bench/shipper_floor.py builds and runs this): a statements row bound
   from C for each record, and one chain entry a batch holding the records' canonical texts, committed every B
   records, on a store wardgate migrated. What the shipper costs beyond this is its own work on the records. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double cpu(void) { struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec / 1e9; }
#define CK(x) do { int rc_ = (x); if (rc_ != SQLITE_OK && rc_ != SQLITE_DONE && rc_ != SQLITE_ROW) { fprintf(stderr, "%s: %s\n", #x, sqlite3_errmsg(db)); exit(1); } } while (0)
int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s STORE.db SESSION_ID RECORDS BATCH [ENTRY 1|0]\n", argv[0]);
        return 2;
    }
    const char *path = argv[1]; const char *session = argv[2]; int N = atoi(argv[3]), B = atoi(argv[4]);
    int with_entry = argc > 5 ? atoi(argv[5]) : 1;
    sqlite3 *db; CK(sqlite3_open(path, &db));
    CK(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", 0, 0, 0));
    sqlite3_stmt *ins, *ent;
    CK(sqlite3_prepare_v2(db, "INSERT INTO statements (session_id, seq, started_at, protocol, kind, text, param_count, status, command_tag, row_count, sqlstate, error_message, duration_ms, decision, rule, reason, masked, result_sample) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &ins, 0));
    CK(sqlite3_prepare_v2(db, "INSERT INTO audit_entries (chain, seq, at, prev, record, hash) VALUES (?,?,?,?,?,?)", -1, &ent, 0));
    const char *sample = "{\"v\":1,\"description\":\"VAAAABsAAWFiYWxhbmNlAAAAQA0AAwAAABcABP////8AAQ==\",\"rows\":\"RAAAAA4AAQAAAAQAAAAA\",\"kept\":1,\"total\":1}";
    const char *rec = "[\"statements\",null,[\"5ea28c08-b7d5-4593-b36e-031fb8c6f0b3\",1,1796694350.8404715,\"extended\",\"select\",\"SELECT abalance FROM pgbench_accounts WHERE aid = $1\",1,\"ok\",\"SELECT 1\",1,null,null,0.081,\"allow\",\"default\",null,null,\"sha256:902030e7f77886ebd96c9a6d657f239c28870557dfdce46a86b2b8dc97640616\"]]";
    size_t rl = strlen(rec); char *entry = malloc((rl + 1) * B + 1);
    double t0 = cpu(); int seq = 0, eseq = 0; char ts[32];
    for (int i = 0; i < N; i += B) {
        CK(sqlite3_exec(db, "BEGIN", 0, 0, 0));
        size_t el = 0;
        for (int j = 0; j < B; j++) {
            seq++;
            snprintf(ts, sizeof ts, "2026-12-08 02:%02d:%02d.%06d", (seq / 60000) % 60, (seq / 1000) % 60, seq % 1000000);
            sqlite3_bind_text(ins, 1, session, -1, SQLITE_STATIC); sqlite3_bind_int64(ins, 2, seq);
            sqlite3_bind_text(ins, 3, ts, -1, SQLITE_TRANSIENT); sqlite3_bind_text(ins, 4, "extended", -1, SQLITE_STATIC);
            sqlite3_bind_text(ins, 5, "select", -1, SQLITE_STATIC);
            sqlite3_bind_text(ins, 6, "SELECT abalance FROM pgbench_accounts WHERE aid = $1", -1, SQLITE_STATIC);
            sqlite3_bind_int64(ins, 7, 1); sqlite3_bind_text(ins, 8, "ok", -1, SQLITE_STATIC);
            sqlite3_bind_text(ins, 9, "SELECT 1", -1, SQLITE_STATIC); sqlite3_bind_int64(ins, 10, 1);
            sqlite3_bind_null(ins, 11); sqlite3_bind_null(ins, 12); sqlite3_bind_double(ins, 13, 0.081);
            sqlite3_bind_text(ins, 14, "allow", -1, SQLITE_STATIC); sqlite3_bind_text(ins, 15, "default", -1, SQLITE_STATIC);
            sqlite3_bind_null(ins, 16); sqlite3_bind_null(ins, 17); sqlite3_bind_text(ins, 18, sample, -1, SQLITE_STATIC);
            CK(sqlite3_step(ins)); sqlite3_reset(ins);
            memcpy(entry + el, rec, rl); el += rl; entry[el++] = '\n';
        }
        if (with_entry) {
            eseq++;
            sqlite3_bind_text(ent, 1, "floor", -1, SQLITE_STATIC); sqlite3_bind_int64(ent, 2, eseq);
            sqlite3_bind_text(ent, 3, "2026-12-08T02:00:00.000000Z", -1, SQLITE_STATIC);
            sqlite3_bind_text(ent, 4, "0000000000000000000000000000000000000000000000000000000000000000", -1, SQLITE_STATIC);
            sqlite3_bind_text(ent, 5, entry, (int)el - 1, SQLITE_STATIC);
            sqlite3_bind_text(ent, 6, "0000000000000000000000000000000000000000000000000000000000000000", -1, SQLITE_STATIC);
            CK(sqlite3_step(ent)); sqlite3_reset(ent);
        }
        CK(sqlite3_exec(db, "COMMIT", 0, 0, 0));
    }
    printf("%d records, batches of %d, entry %d: %.2f us CPU a record\n", N, B, with_entry, (cpu() - t0) / N * 1e6);
    return 0;
}
