#ifndef CHATD_DB_H
#define CHATD_DB_H

#include <libpq-fe.h>

struct arena;

/*
 * Session advisory lock held from a message INSERT to its PUBLISH, by every
 * publisher (fcgi and wsd): seq order = commit order = publish order, so a
 * client's highest seen seq is a true watermark for sync (README "Ordering").
 */
#define DB_LOCK_PUBLISH "7001"

/* Error classes of a failed query, by SQLSTATE (db_errclass). */
enum db_err {
    DB_OK = 0,
    DB_CONFLICT = -1,    /* 23505 unique violation */
    DB_INVALID = -2,     /* 22xxx data exception, 23503/23514 FK or check violation */
    DB_RETRY = -3,       /* 40001 serialization, 40P01 deadlock */
    DB_UNAVAILABLE = -4, /* no connection, or the connection broke */
    DB_ERROR = -5,       /* anything else: a bug on our side */
};

/*
 * A statement prepared lazily on each connection that runs it. Declare one
 * per query as a static: `static struct db_stmt q_user = DB_STMT("select ...");`
 */
struct db_stmt {
    const char *sql;
    int nparams;
    unsigned gen; /* connection generation it was prepared on; 0 = never */
    unsigned id;  /* gives the statement its name on the server */
};
#define DB_STMT(sql_, n_)                                                                          \
    {                                                                                              \
        (sql_), (n_), 0, 0                                                                         \
    }

/* Opens the process's connection (once per fcgi worker); -1 when unreachable (retried later). */
int db_open(const char *url);
void db_close(void);
/* The connection, reconnected first when it broke; NULL when the server is unreachable. */
PGconn *db_conn(void);

/*
 * Runs a prepared statement with text parameters (NULL = SQL NULL). The
 * result is cleared at the next arena_reset. Returns NULL on failure and
 * sets *err (never NULL on success: *err = DB_OK). Retries once on a fresh
 * connection when the old one had broken.
 */
PGresult *db_run(struct arena *a, struct db_stmt *st, const char *const *params, enum db_err *err);
/* Unprepared, parameterless SQL (BEGIN, COMMIT, health checks). */
int db_exec_simple(const char *sql);

enum db_err db_errclass(const PGresult *res);
/* The constraint named by the last failed db_run ("" when none): tells which unique key clashed. */
const char *db_last_constraint(void);

#endif
