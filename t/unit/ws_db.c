/* Unit tests for wsd/ws_db.c against the run's Postgres (CHATD_TEST_PG_URL): order, errors,
 * reconnects. */
#include "tap.h"

#include <stdlib.h>

#include "../../wsd/ws_db.c"

static int wsdb_t_seen[2][50], wsdb_t_count[2], wsdb_t_order_ok = 1, wsdb_t_pending;
static int wsdb_t_failed, wsdb_t_errors, wsdb_t_after_kill = -1;
static struct ws_db *wsdb_t_db;

static void wsdb_t_on_value(void *arg, PGresult *res)
{
    intptr_t v = (intptr_t)arg;
    int lane = (int)(v / 1000), i = (int)(v % 1000);
    wsdb_t_pending--;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        wsdb_t_failed++;
        return;
    }
    if (atoi(PQgetvalue(res, 0, 0)) != i + 1)
        wsdb_t_order_ok = 0;
    if (wsdb_t_count[lane] != i) /* each lane answers in queue order */
        wsdb_t_order_ok = 0;
    wsdb_t_seen[lane][wsdb_t_count[lane]++] = i;
}

static void wsdb_t_on_error(void *arg, PGresult *res)
{
    (void)arg;
    wsdb_t_pending--;
    if (res && PQresultStatus(res) == PGRES_FATAL_ERROR)
        wsdb_t_errors++;
}

static void wsdb_t_on_after(void *arg, PGresult *res)
{
    (void)arg;
    wsdb_t_pending--;
    wsdb_t_after_kill =
        res && PQresultStatus(res) == PGRES_TUPLES_OK ? atoi(PQgetvalue(res, 0, 0)) : 0;
}

static void wsdb_t_on_kill(void *arg, PGresult *res)
{
    (void)arg;
    (void)res; /* the connection died under the job: NULL or an error, never a result */
    wsdb_t_pending--;
    const char *p[] = {"41"};
    wsdb_t_pending++;
    ws_db_query(wsdb_t_db, 0, "SELECT $1::int + 1", 1, p, wsdb_t_on_after, NULL);
}

static int wsdb_t_locked = -1, wsdb_t_unlocked = -1, wsdb_t_pinned_null = -1;
static unsigned wsdb_t_gen;

static void wsdb_t_on_lock(void *arg, PGresult *res)
{
    (void)arg;
    wsdb_t_pending--;
    wsdb_t_locked = res && PQresultStatus(res) == PGRES_TUPLES_OK;
    wsdb_t_gen = ws_db_gen(wsdb_t_db, 0);
}

static void wsdb_t_on_unlock(void *arg, PGresult *res)
{
    (void)arg;
    wsdb_t_pending--;
    wsdb_t_unlocked =
        res && PQresultStatus(res) == PGRES_TUPLES_OK && *PQgetvalue(res, 0, 0) == 't';
}

static void wsdb_t_on_pinned(void *arg, PGresult *res)
{
    (void)arg;
    wsdb_t_pending--;
    wsdb_t_pinned_null = res == NULL;
}

static void wsdb_t_on_count(void *arg, PGresult *res)
{
    wsdb_t_pending--;
    *(int *)arg = res && PQresultStatus(res) == PGRES_TUPLES_OK ? atoi(PQgetvalue(res, 0, 0)) : -1;
}

static void wsdb_t_on_ignore(void *arg, PGresult *res)
{
    (void)arg;
    (void)res;
    wsdb_t_pending--;
}

#define WSDB_T_HELD                                                                                \
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = 7001"       \
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"

static void wsdb_t_run(uv_loop_t *loop);

/*
 * Issue 8 item 5: with the lane's queue full, the release of a session lock
 * is still queued (it used to be refused, leaving the lock held forever), and
 * a job pinned to a connection that died fails instead of running unlocked.
 */
static void wsdb_t_full_queue(uv_loop_t *loop)
{
    ws_db_set_max_queued(wsdb_t_db, 1);
    wsdb_t_pending++;
    ws_db_query(wsdb_t_db, 0, "SELECT pg_advisory_lock(7001)", 0, NULL, wsdb_t_on_lock, NULL);
    wsdb_t_run(loop);
    ok(wsdb_t_locked == 1 && wsdb_t_gen > 0, "the lock is taken on lane 0");
    /* Fill the queue behind a slow job; the cap refuses the next one. */
    wsdb_t_pending += 2;
    ws_db_query(wsdb_t_db, 0, "SELECT pg_sleep(0.2)", 0, NULL, wsdb_t_on_ignore, NULL);
    ws_db_query(wsdb_t_db, 0, "SELECT 1", 0, NULL, wsdb_t_on_ignore, NULL);
    is_int(ws_db_query(wsdb_t_db, 0, "SELECT 1", 0, NULL, wsdb_t_on_ignore, NULL), -1,
           "a full lane refuses an ordinary job");
    wsdb_t_pending++;
    is_int(ws_db_query_on(wsdb_t_db, 0, wsdb_t_gen, "SELECT pg_advisory_unlock(7001)", 0, NULL,
                          wsdb_t_on_unlock, NULL),
           0, "a full lane still queues the release of the lock");
    wsdb_t_run(loop);
    is_int(wsdb_t_unlocked, 1, "the release ran on the locking session");
    int held = -2;
    wsdb_t_pending++;
    ws_db_query(wsdb_t_db, 1, WSDB_T_HELD, 0, NULL, wsdb_t_on_count, &held);
    wsdb_t_run(loop);
    is_int(held, 0, "no session holds the publish lock afterwards");

    /* The session dies between the lock and the pinned job: the job must not run. */
    wsdb_t_pending += 2;
    ws_db_query(wsdb_t_db, 0, "SELECT pg_advisory_lock(7001)", 0, NULL, wsdb_t_on_lock, NULL);
    ws_db_query(wsdb_t_db, 0, "SELECT pg_terminate_backend(pg_backend_pid())", 0, NULL,
                wsdb_t_on_ignore, NULL);
    wsdb_t_run(loop);
    wsdb_t_pending++;
    ws_db_query_on(wsdb_t_db, 0, wsdb_t_gen, "SELECT 1", 0, NULL, wsdb_t_on_pinned, NULL);
    wsdb_t_run(loop);
    is_int(wsdb_t_pinned_null, 1, "a job pinned to a dead session fails (fn gets NULL)");
    wsdb_t_pinned_null = -1;
    is_int(ws_db_query_on(wsdb_t_db, 0, wsdb_t_gen, "SELECT 1", 0, NULL, wsdb_t_on_pinned, NULL), -1,
           "once the lane is on a new connection, a job pinned to the old one is refused");
    is_int(wsdb_t_pinned_null, -1, "and its fn is not called");
    ok(ws_db_gen(wsdb_t_db, 0) != wsdb_t_gen || !ws_db_is_up(wsdb_t_db),
       "the lane is on a new connection");
    ws_db_set_max_queued(wsdb_t_db, WS_DB_MAX_QUEUED);
}

static void wsdb_t_run(uv_loop_t *loop)
{
    /* Bounded: the loop runs until every job answered or 10 s passed. */
    for (int i = 0; i < 1000 && wsdb_t_pending > 0; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int main(void)
{
    const char *url = getenv("CHATD_TEST_PG_URL");
    if (!url || !*url) {
        printf("1..0 # SKIP CHATD_TEST_PG_URL is not set (run through make test)\n");
        return 0;
    }
    log_init("unit-ws-db", LOG_ERROR);
    uv_loop_t loop;
    uv_loop_init(&loop);
    wsdb_t_db = ws_db_new(&loop, url, 2);
    ok(wsdb_t_db != NULL, "ws_db_new");

    char buf[16];
    for (int i = 0; i < 50; i++)
        for (int lane = 0; lane < 2; lane++) {
            snprintf(buf, sizeof(buf), "%d", i);
            const char *p[] = {buf};
            wsdb_t_pending++;
            if (ws_db_query(wsdb_t_db, (unsigned)lane, "SELECT $1::int + 1", 1, p, wsdb_t_on_value,
                            (void *)(intptr_t)(lane * 1000 + i)) < 0)
                wsdb_t_pending--;
        }
    wsdb_t_pending++;
    ws_db_query(wsdb_t_db, 1, "SELECT * FROM no_such_table", 0, NULL, wsdb_t_on_error, NULL);
    wsdb_t_run(&loop);
    is_int(wsdb_t_count[0] + wsdb_t_count[1], 100, "every query answered (queued before connect)");
    ok(wsdb_t_order_ok, "each lane answers in queue order with the right values");
    is_int(wsdb_t_failed, 0, "no query failed");
    is_int(wsdb_t_errors, 1, "an SQL error reaches the callback as a FATAL_ERROR result");
    ok(ws_db_is_up(wsdb_t_db), "both lanes connected");

    /* The server ends the session under a job: it fails, the lane reconnects, the next job runs. */
    wsdb_t_pending++;
    ws_db_query(wsdb_t_db, 0, "SELECT pg_terminate_backend(pg_backend_pid())", 0, NULL,
                wsdb_t_on_kill, NULL);
    wsdb_t_run(&loop);
    is_int(wsdb_t_after_kill, 42, "a job queued after the connection died runs on a new one");

    const char *nullp[] = {NULL};
    wsdb_t_pending++;
    ws_db_query(wsdb_t_db, 1, "SELECT coalesce($1::int, 7)", 1, nullp, wsdb_t_on_after, NULL);
    wsdb_t_run(&loop);
    is_int(wsdb_t_after_kill, 7, "a NULL parameter is SQL NULL");

    wsdb_t_full_queue(&loop);

    ws_db_stop(wsdb_t_db);
    uv_run(&loop, UV_RUN_DEFAULT);
    ws_db_free(wsdb_t_db);
    is_int(uv_loop_close(&loop), 0, "every handle closed after stop");
    return done_testing();
}
