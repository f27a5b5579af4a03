#include "db.h"

#include "arena.h"
#include "cfg.h"
#include "log.h"
#include "metrics.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static PGconn *db_pg;
static char *db_url;
static unsigned db_gen; /* bumped on every new connection: forgets prepared statements */
static unsigned db_next_id;
static unsigned db_req_gen; /* connection a statement of this request ran on; 0 = none yet */
static char db_constraint[64];

const char *db_last_constraint(void)
{
    return db_constraint;
}

/* The url's own `options` (libpq URL or key=value), "" when none; the caller frees. */
static char *db_url_options(const char *url)
{
    PQconninfoOption *opts = PQconninfoParse(url, NULL);
    char *own = NULL;
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (!strcmp(o->keyword, "options") && o->val)
            own = strdup(o->val);
    PQconninfoFree(opts);
    return own ? own : strdup("");
}

PGconn *db_connect(const char *url, int async)
{
    char *own = db_url_options(url);
    if (!own)
        return NULL;
    char opts[1024];
    snprintf(opts, sizeof(opts), "%s -c lock_timeout=%d -c statement_timeout=%d", own,
             cfg.db_lock_timeout_ms, cfg.db_statement_timeout_ms);
    free(own);
    /* Later keywords override what the expanded dbname (the url) set. */
    const char *const keys[] = {"dbname", "options", NULL};
    const char *const vals[] = {url, opts, NULL};
    return async ? PQconnectStartParams(keys, vals, 1) : PQconnectdbParams(keys, vals, 1);
}

int db_open(const char *url)
{
    free(db_url);
    db_url = strdup(url);
    return db_conn() ? 0 : -1;
}

static void db_drop(void)
{
    if (db_pg)
        PQfinish(db_pg);
    db_pg = NULL;
}

void db_close(void)
{
    db_drop();
    free(db_url);
    db_url = NULL;
}

/*
 * A server that ended the session while we were idle (restart,
 * pg_terminate_backend) has left an error or EOF on the socket: notice it
 * before sending, when replacing the connection cannot run anything twice.
 */
static int db_idle_alive(PGconn *c)
{
    struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
    if (p.fd < 0)
        return 0;
    /* Nothing LISTENs, and every result was read: input now is the server saying goodbye. */
    return poll(&p, 1, 0) == 0;
}

PGconn *db_conn(void)
{
    if (db_pg && PQstatus(db_pg) == CONNECTION_OK &&
        (PQtransactionStatus(db_pg) != PQTRANS_IDLE || db_idle_alive(db_pg)))
        return db_pg;
    db_drop();
    if (db_req_gen) /* a statement of this request ran on the old one */
        return NULL;
    db_pg = db_connect(db_url ? db_url : "", 0);
    if (PQstatus(db_pg) != CONNECTION_OK) {
        log_warn("db: cannot connect: %s", db_pg ? PQerrorMessage(db_pg) : "out of memory");
        metrics_count(METRICS_PG_ERRORS);
        db_drop();
        return NULL;
    }
    db_gen++;
    metrics_count(METRICS_PG_CONNECTS);
    return db_pg;
}

void db_request_start(void)
{
    db_req_gen = 0;
}

enum db_err db_errclass_state(const char *state)
{
    if (!state || !*state)
        return DB_UNAVAILABLE;
    if (!strcmp(state, "23505"))
        return DB_CONFLICT;
    if (!strncmp(state, "22", 2) || !strcmp(state, "23503") || !strcmp(state, "23514") ||
        !strcmp(state, "23502"))
        return DB_INVALID;
    if (!strcmp(state, "40001") || !strcmp(state, "40P01"))
        return DB_RETRY;
    if (!strcmp(state, "57014") || !strcmp(state, "55P03"))
        return DB_TIMEOUT;
    /* 08 connection, 53 resources, 57P admin shutdown / crash / cannot connect now */
    if (!strncmp(state, "08", 2) || !strncmp(state, "53", 2) || !strncmp(state, "57P", 3))
        return DB_UNAVAILABLE;
    return DB_ERROR;
}

enum db_err db_errclass(const PGresult *res)
{
    return db_errclass_state(res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL);
}

/* NULL once st is prepared on c; else the failed result (the caller clears it). */
static PGresult *db_prepare(PGconn *c, struct db_stmt *st)
{
    if (st->gen == db_gen)
        return NULL;
    if (!st->id)
        st->id = ++db_next_id;
    char name[24];
    snprintf(name, sizeof(name), "s%u", st->id);
    PGresult *r = PQprepare(c, name, st->sql, st->nparams, NULL);
    if (!r)
        return PQmakeEmptyPGresult(c, PGRES_FATAL_ERROR);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return r;
    PQclear(r);
    st->gen = db_gen;
    return NULL;
}

static void db_clear(void *p)
{
    PQclear(p);
}

/* *retry: whether a broken connection may be replaced and the statement sent again. */
static PGresult *db_try(struct db_stmt *st, const char *const *params, int *retry)
{
    PGconn *c = db_conn();
    if (!c)
        return NULL;
    *retry = (st->flags & DB_IDEMPOTENT) && !db_req_gen && PQtransactionStatus(c) == PQTRANS_IDLE;
    db_req_gen = db_gen;
    PGresult *failed = db_prepare(c, st);
    if (failed)
        return failed;
    char name[24];
    snprintf(name, sizeof(name), "s%u", st->id);
    return PQexecPrepared(c, name, st->nparams, params, NULL, NULL, 0);
}

static int db_broken(const PGresult *r)
{
    return !r || (PQresultStatus(r) == PGRES_FATAL_ERROR && PQstatus(db_pg) != CONNECTION_OK);
}

/* Runs st; a statement whose connection broke under it is retried only when it may be. */
static PGresult *db_exec(struct db_stmt *st, const char *const *params)
{
    int retry = 0;
    PGresult *r = db_try(st, params, &retry);
    if (db_pg && db_broken(r)) {
        PQclear(r);
        r = NULL;
        db_drop();
        if (retry) {
            db_req_gen = 0;
            r = db_try(st, params, &retry);
        }
    }
    return r;
}

PGresult *db_run(struct arena *a, struct db_stmt *st, const char *const *params, enum db_err *err)
{
    db_constraint[0] = '\0';
    PGresult *r = db_exec(st, params);
    if (!r || (db_pg && PQstatus(db_pg) != CONNECTION_OK)) {
        PQclear(r);
        *err = DB_UNAVAILABLE;
        return NULL;
    }
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
        *err = db_errclass(r);
        const char *cn = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
        snprintf(db_constraint, sizeof(db_constraint), "%s", cn ? cn : "");
        if (*err == DB_ERROR)
            log_error("db: s%u: %s", st->id, PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    if (arena_defer(a, db_clear, r) < 0) {
        PQclear(r);
        *err = DB_UNAVAILABLE;
        return NULL;
    }
    *err = DB_OK;
    return r;
}

int db_exec_simple(const char *sql)
{
    PGconn *c = db_conn();
    if (!c)
        return -1;
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    PQclear(r);
    if (PQstatus(c) != CONNECTION_OK)
        db_drop();
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK ? 0 : -1;
}
