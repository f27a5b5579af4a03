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

    ws_db_stop(wsdb_t_db);
    uv_run(&loop, UV_RUN_DEFAULT);
    ws_db_free(wsdb_t_db);
    is_int(uv_loop_close(&loop), 0, "every handle closed after stop");
    return done_testing();
}
