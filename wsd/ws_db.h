#ifndef CHATD_WS_DB_H
#define CHATD_WS_DB_H

#include <libpq-fe.h>
#include <uv.h>

/*
 * Default of the most jobs waiting per lane (WSD_DB_QUEUE_MAX); ws_db_query()
 * refuses more (the caller answers "busy"); ws_db_query_on() never does.
 */
#define WS_DB_MAX_QUEUED 4096

/*
 * Called once per job: res is the statement's result (check PQresultStatus),
 * or NULL when the job could not run (connection lost, shutting down). res is
 * cleared after the call returns.
 */
typedef void ws_db_fn(void *arg, PGresult *res);

struct ws_db;

/*
 * Opens `lanes` Postgres connections (non-blocking, on loop). Each lane runs
 * its jobs one at a time in the order they were queued, so jobs that must not
 * overtake each other (one user's sends) go to the same lane. A lost
 * connection is reopened with a backoff of 200 ms doubling to 2 s; queued jobs
 * wait for it. Returns NULL when memory is short. The caller owns the
 * result: ws_db_stop(), run the loop until its handles are closed, ws_db_free().
 */
struct ws_db *ws_db_new(uv_loop_t *loop, const char *url, unsigned lanes);

/*
 * Queues sql with text parameters (copied; NULL = SQL NULL) on lane
 * (lane % lanes). sql must outlive the job (a string literal). Returns 0, or
 * -1 when the lane's queue is full or memory is short (fn is not called).
 */
int ws_db_query(struct ws_db *d, unsigned lane, const char *sql, int nparams,
                const char *const *params, ws_db_fn *fn, void *arg);

/*
 * The lane's connection generation: bumped on every new connection, so a job
 * can be tied to the session that holds a lock (0 before the first connect).
 */
unsigned ws_db_gen(const struct ws_db *d, unsigned lane);

/*
 * Like ws_db_query(), for work that must follow session state (releasing a
 * session lock, the INSERT made under it): never refused by the queue cap,
 * and run only while the lane is still on connection gen (0 = any); on a
 * later connection fn gets NULL instead, since the state died with the old
 * one. fn is never called from inside this call. Returns -1 (fn is not
 * called) when stopped, when the lane already left connection gen (the state
 * is gone), or when memory is short: then the lane's connection is reset,
 * which ends that state too.
 */
int ws_db_query_on(struct ws_db *d, unsigned lane, unsigned gen, const char *sql, int nparams,
                   const char *const *params, ws_db_fn *fn, void *arg);

/*
 * Closes the lane's connection (after its running job), which releases every
 * session lock it held; queued jobs wait for the new one, pinned ones fail.
 */
void ws_db_reset(struct ws_db *d, unsigned lane);

/* Changes the queue cap (WSD_DB_QUEUE_MAX; tests use a tiny one). */
void ws_db_set_max_queued(struct ws_db *d, unsigned n);

/* 1 when every lane is connected. */
int ws_db_is_up(const struct ws_db *d);

/* Fails every queued job (fn with NULL), disconnects, stops retrying. */
void ws_db_stop(struct ws_db *d);
void ws_db_free(struct ws_db *d);

#endif
