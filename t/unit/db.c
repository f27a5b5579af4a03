/*
 * Unit tests for shared/db.c: db_errclass_state() on SQLSTATE alone (no connection needed);
 * then, against the run's Postgres (CHATD_TEST_PG_URL), the session timeouts of db_connect()
 * and the retry rules of db_run() (issue 8 items 5, 9 and 15).
 */
#include "tap.h"

#include <stdlib.h>
#include <unistd.h>
#include <time.h>

#include "arena.h"
#include "cfg.h"
#include "db.h"
#include "log.h"

static const struct {
    const char *state;
    enum db_err want;
} db_t_cases[] = {
    {NULL, DB_UNAVAILABLE},    {"", DB_UNAVAILABLE},      {"23505", DB_CONFLICT},
    {"22P02", DB_INVALID},     {"22001", DB_INVALID},     {"23503", DB_INVALID},
    {"23514", DB_INVALID},     {"23502", DB_INVALID},     {"40001", DB_RETRY},
    {"40P01", DB_RETRY},       {"57014", DB_TIMEOUT},     {"55P03", DB_TIMEOUT},
    {"08006", DB_UNAVAILABLE}, {"57P01", DB_UNAVAILABLE}, {"53300", DB_UNAVAILABLE},
    {"42601", DB_ERROR},       {"42703", DB_ERROR},       {"42P01", DB_ERROR},
    {"XX000", DB_ERROR},
};

static struct db_stmt db_t_pid = DB_STMT_IDEM("SELECT pg_backend_pid()", 0);
static struct db_stmt db_t_idem = DB_STMT_IDEM("SELECT 1", 0);
static struct db_stmt db_t_write = DB_STMT("SELECT nextval('db_t_seq')", 0);
static struct db_stmt db_t_setting = DB_STMT_IDEM("SELECT current_setting($1)", 1);
static struct db_stmt db_t_bug = DB_STMT("SELECT no_such_column FROM pg_class", 0);
static struct db_stmt db_t_lock = DB_STMT("SELECT pg_advisory_lock(7002)", 0);

/* Terminates the session with pid `pid` from a second connection; waits until it is gone. */
static void db_t_kill(const char *url, const char *pid)
{
    PGconn *c = PQconnectdb(url);
    const char *p[] = {pid};
    PQclear(PQexecParams(c, "SELECT pg_terminate_backend($1::int)", 1, NULL, p, NULL, NULL, 0));
    for (int i = 0; i < 200; i++) {
        PGresult *r = PQexecParams(c, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int",
                                   1, NULL, p, NULL, NULL, 0);
        int n = atoi(PQgetvalue(r, 0, 0));
        PQclear(r);
        if (!n)
            break;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    PQfinish(c);
}

static const char *db_t_run_pid(struct arena *a, enum db_err *err)
{
    PGresult *r = db_run(a, &db_t_pid, NULL, err);
    return r ? PQgetvalue(r, 0, 0) : NULL;
}

static void db_t_live(const char *url)
{
    struct arena a;
    arena_init(&a, 1 << 20);
    enum db_err err;
    cfg.db_lock_timeout_ms = 1234;
    cfg.db_statement_timeout_ms = 5678;
    ok(db_open(url) == 0, "db_open");
    const char *lp[] = {"lock_timeout"}, *sp[] = {"statement_timeout"};
    PGresult *r = db_run(&a, &db_t_setting, lp, &err);
    is_str(r ? PQgetvalue(r, 0, 0) : NULL, "1234ms", "lock_timeout comes from DB_LOCK_TIMEOUT_MS");
    r = db_run(&a, &db_t_setting, sp, &err);
    is_str(r ? PQgetvalue(r, 0, 0) : NULL, "5678ms",
           "statement_timeout comes from DB_STATEMENT_TIMEOUT_MS");
    ok(db_exec_simple("CREATE SEQUENCE db_t_seq") == 0, "a sequence counts executions");

    ok(!db_run(&a, &db_t_bug, NULL, &err) && err == DB_ERROR, "an undefined column is DB_ERROR");

    /* Killed while idle between requests: noticed before sending, nothing runs twice. */
    db_request_start();
    char *pid = strdup(db_t_run_pid(&a, &err));
    db_t_kill(url, pid);
    db_request_start();
    r = db_run(&a, &db_t_write, NULL, &err);
    ok(r != NULL, "a write after the idle connection died runs on a new one");
    is_str(r ? PQgetvalue(r, 0, 0) : NULL, "1", "and runs once");
    (void)r;

    /* Killed mid-request: the connection changed under the request, nothing is retried. */
    db_request_start();
    free(pid);
    pid = strdup(db_t_run_pid(&a, &err));
    db_t_kill(url, pid);
    ok(!db_run(&a, &db_t_idem, NULL, &err), "mid-request: even a read is not retried");
    is_int(err, DB_UNAVAILABLE, "mid-request: DB_UNAVAILABLE (503)");
    ok(!db_run(&a, &db_t_idem, NULL, &err), "mid-request: no new connection for that request");
    db_request_start();
    ok(db_run(&a, &db_t_idem, NULL, &err) != NULL, "the next request gets a new connection");

    /* A lock held elsewhere: lock_timeout, not a hang. */
    PGconn *other = PQconnectdb(url);
    PQclear(PQexec(other, "SELECT pg_advisory_lock(7002)"));
    db_request_start();
    time_t t0 = time(NULL);
    ok(!db_run(&a, &db_t_lock, NULL, &err), "a lock held elsewhere: the statement fails");
    is_int(err, DB_TIMEOUT, "with DB_TIMEOUT (503 Database busy)");
    ok(time(NULL) - t0 < 10, "within the lock timeout");
    PQfinish(other);
    db_request_start();
    ok(db_run(&a, &db_t_lock, NULL, &err) != NULL, "released elsewhere: the lock is taken");
    free(pid);
    db_close();
    arena_release(&a);
}

/* url with its database replaced by db (a URL without a query string, as test-run makes). */
static char *db_t_url(const char *url, const char *db)
{
    const char *slash = strrchr(url, '/');
    size_t n = slash ? (size_t)(slash - url) : strlen(url);
    char *u = malloc(n + strlen(db) + 2);
    snprintf(u, n + strlen(db) + 2, "%.*s/%s", (int)n, url, db);
    return u;
}

static int db_t_admin(const char *url, const char *sql)
{
    char *admin = db_t_url(url, "postgres");
    PGconn *c = PQconnectdb(admin);
    PGresult *r = PQexec(c, sql);
    int okay = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!okay)
        diag("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    free(admin);
    return okay;
}

int main(void)
{
    for (size_t i = 0; i < sizeof(db_t_cases) / sizeof(db_t_cases[0]); i++)
        is_int(db_errclass_state(db_t_cases[i].state), db_t_cases[i].want, "SQLSTATE %s",
               db_t_cases[i].state ? db_t_cases[i].state : "(none)");
    const char *url = getenv("CHATD_TEST_PG_URL");
    if (url && *url) {
        /* Its own database: sessions are killed here, and the run's template stays untouched. */
        char name[64], sql[160];
        snprintf(name, sizeof(name), "t_unit_db_%d", (int)getpid());
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s TEMPLATE template0", name);
        char *mine = db_t_url(url, name);
        log_init("unit-db", LOG_ERROR);
        if (ok(db_t_admin(url, sql), "a database of its own"))
            db_t_live(mine);
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
        db_t_admin(url, sql);
        free(mine);
    } else {
        diag("CHATD_TEST_PG_URL is not set: the live checks are skipped");
    }
    return done_testing();
}
