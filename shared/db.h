#ifndef CHATD_DB_H
#define CHATD_DB_H

#include <libpq-fe.h>

struct arena;

/* Error classes of a failed query, by SQLSTATE (db_errclass). */
enum db_err {
    DB_OK = 0,
    DB_CONFLICT = -1,    /* 23505 unique violation */
    DB_INVALID = -2,     /* 22xxx data exception, 23502/23503/23514 NOT NULL, FK, check */
    DB_RETRY = -3,       /* 40001 serialization, 40P01 deadlock */
    DB_UNAVAILABLE = -4, /* no connection, the connection broke or changed mid-request */
    DB_ERROR = -5,       /* anything else: a bug on our side (syntax, undefined column...) */
    DB_TIMEOUT = -6,     /* 57014 statement_timeout, 55P03 lock_timeout: the server is busy */
};

enum db_stmt_flags {
    /*
     * Running it twice does what running it once does (a SELECT without side
     * effects): the only kind db_run() retries after a broken connection.
     */
    DB_IDEMPOTENT = 1 << 0,
};

/*
 * A statement prepared lazily on each connection that runs it. Declare one
 * per query as a static: `static struct db_stmt q_user = DB_STMT("select ...");`
 */
struct db_stmt {
    const char *sql;
    int nparams;
    unsigned gen;   /* connection generation it was prepared on; 0 = never */
    unsigned id;    /* gives the statement its name on the server */
    unsigned flags; /* enum db_stmt_flags */
};
/* A statement that is never retried (the safe default: it may write). */
#define DB_STMT(sql_, n_)                                                                          \
    {                                                                                              \
        (sql_), (n_), 0, 0, 0                                                                      \
    }
/* A statement without side effects, retried once on a fresh connection. */
#define DB_STMT_IDEM(sql_, n_)                                                                     \
    {                                                                                              \
        (sql_), (n_), 0, 0, DB_IDEMPOTENT                                                          \
    }

/* Opens the process's connection (once per fcgi worker); -1 when unreachable (retried later). */
int db_open(const char *url);
void db_close(void);
/*
 * The connection, reconnected first when it broke (also when the server
 * closed it while idle); NULL when the server is unreachable, or when it
 * broke after a statement of the current request ran on it (the session
 * state that request relies on is gone).
 */
PGconn *db_conn(void);

/*
 * Opens a connection to url (libpq URL or key=value string) with this
 * deployment's session settings: lock_timeout and statement_timeout from
 * DB_LOCK_TIMEOUT_MS / DB_STATEMENT_TIMEOUT_MS, appended to any `options` the
 * url has. async: PQconnectStartParams (wsd's loop), else blocking. The caller
 * owns the result (PQfinish), which may be NULL when memory is short.
 */
PGconn *db_connect(const char *url, int async);

/*
 * Marks the start of a request (fcgi, before its first statement): the
 * connection may be replaced until a statement runs.
 */
void db_request_start(void);

/*
 * Runs a prepared statement with text parameters (NULL = SQL NULL). The
 * result is cleared at the next arena_reset. Returns NULL on failure and
 * sets *err (never NULL on success: *err = DB_OK). Only a DB_IDEMPOTENT
 * statement is retried on a fresh connection after the old one broke under
 * it, and never inside a transaction or once an earlier statement of the
 * request ran (*err = DB_UNAVAILABLE).
 */
PGresult *db_run(struct arena *a, struct db_stmt *st, const char *const *params, enum db_err *err);

/* Unprepared, parameterless SQL (BEGIN, COMMIT, health checks). */
int db_exec_simple(const char *sql);

/* The class of a SQLSTATE alone (wsd uses it too); NULL or "" = DB_UNAVAILABLE. */
enum db_err db_errclass_state(const char *sqlstate);
/* The class of a failed result: its SQLSTATE, or DB_UNAVAILABLE when it has none. */
enum db_err db_errclass(const PGresult *res);
/* The constraint named by the last failed db_run ("" when none): tells which unique key clashed. */
const char *db_last_constraint(void);

#endif
