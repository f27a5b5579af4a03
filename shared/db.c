#include "db.h"

#include "arena.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static PGconn *db_pg;
static char *db_url;
static unsigned db_gen; /* bumped on every new connection: forgets prepared statements */
static unsigned db_next_id;
static char db_constraint[64];

const char *db_last_constraint(void)
{
    return db_constraint;
}

int db_open(const char *url)
{
    free(db_url);
    db_url = strdup(url);
    return db_conn() ? 0 : -1;
}

void db_close(void)
{
    if (db_pg)
        PQfinish(db_pg);
    db_pg = NULL;
    free(db_url);
    db_url = NULL;
}

PGconn *db_conn(void)
{
    if (db_pg && PQstatus(db_pg) == CONNECTION_OK)
        return db_pg;
    if (db_pg)
        PQfinish(db_pg);
    db_pg = PQconnectdb(db_url ? db_url : "");
    if (PQstatus(db_pg) != CONNECTION_OK) {
        log_warn("db: cannot connect: %s", PQerrorMessage(db_pg));
        PQfinish(db_pg);
        db_pg = NULL;
        return NULL;
    }
    db_gen++;
    return db_pg;
}

enum db_err db_errclass(const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!state || (db_pg && PQstatus(db_pg) != CONNECTION_OK))
        return DB_UNAVAILABLE;
    if (!strcmp(state, "23505"))
        return DB_CONFLICT;
    if (!strncmp(state, "22", 2) || !strcmp(state, "23503") || !strcmp(state, "23514") ||
        !strcmp(state, "23502"))
        return DB_INVALID;
    if (!strcmp(state, "40001") || !strcmp(state, "40P01"))
        return DB_RETRY;
    if (!strncmp(state, "08", 2) || !strncmp(state, "57P", 3))
        return DB_UNAVAILABLE;
    return DB_ERROR;
}

static int db_prepare(PGconn *c, struct db_stmt *st)
{
    if (st->gen == db_gen)
        return 0;
    if (!st->id)
        st->id = ++db_next_id;
    char name[24];
    snprintf(name, sizeof(name), "s%u", st->id);
    PGresult *r = PQprepare(c, name, st->sql, st->nparams, NULL);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        log_error("db: prepare s%u failed: %s", st->id, PQresultErrorMessage(r));
    PQclear(r);
    if (ok)
        st->gen = db_gen;
    return ok ? 0 : -1;
}

static void db_clear(void *p)
{
    PQclear(p);
}

static PGresult *db_try(struct db_stmt *st, const char *const *params)
{
    PGconn *c = db_conn();
    if (!c || db_prepare(c, st) < 0)
        return NULL;
    char name[24];
    snprintf(name, sizeof(name), "s%u", st->id);
    return PQexecPrepared(c, name, st->nparams, params, NULL, NULL, 0);
}

PGresult *db_run(struct arena *a, struct db_stmt *st, const char *const *params, enum db_err *err)
{
    PGresult *r = db_try(st, params);
    /* A connection that died since the last request is retried once; a live one never. */
    if (!r || (PQresultStatus(r) == PGRES_FATAL_ERROR && PQstatus(db_pg) != CONNECTION_OK)) {
        PQclear(r);
        r = db_try(st, params);
    }
    if (!r) {
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
    *err = DB_OK;
    arena_defer(a, db_clear, r);
    return r;
}

int db_exec_simple(const char *sql)
{
    PGconn *c = db_conn();
    if (!c)
        return -1;
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) == PGRES_FATAL_ERROR && PQstatus(c) != CONNECTION_OK) {
        PQclear(r);
        if (!(c = db_conn()))
            return -1;
        r = PQexec(c, sql);
    }
    ExecStatusType s = PQresultStatus(r);
    PQclear(r);
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK ? 0 : -1;
}
