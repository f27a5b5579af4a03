/*
 * /api/v1/admin/... reads (API.md "Admin"): stats, lists, one row, the audit
 * log and the streamed CSV export. Lists are built in SQL from a fixed
 * description per model (chatd_admin_query, schema/0017_admin.sql); this file
 * only gathers the query parameters and answers.
 */
#include <fcgiapp.h>
#include <string.h>

#include "auth.h"
#include "db.h"
#include "handlers.h"
#include "jx.h"
#include "log.h"
#include "req.h"
#include "resp.h"

#define ADMIN_SEARCH_MAX 200
#define ADMIN_OFFSET_MAX 1000000
#define ADMIN_STR_(x) #x
#define ADMIN_STR(x) ADMIN_STR_(x)

static struct db_stmt q_stats = DB_STMT_IDEM("SELECT chatd_admin_stats()::text", 0);
static struct db_stmt q_list =
    DB_STMT_IDEM("SELECT bad, msg, body::text FROM chatd_admin_list($1, $2, $3, $4, $5, $6)", 6);
static struct db_stmt q_get = DB_STMT_IDEM("SELECT chatd_admin_get($1, $2)::text", 2);
static struct db_stmt q_query = DB_STMT_IDEM(
    "SELECT bad, msg, rowfn, header, sql_from, sql_order FROM chatd_admin_query($1, $2, $3, $4)",
    4);

int h_admin_require(struct req *r)
{
    /* r->user was read from the database for this request: a demotion counts at once. */
    return r->user->is_superuser ? 0 : req_err(r, 403, "Superuser required");
}

/* The parameters of a list or export: model, search, sort and the filters as a JSON object. */
struct admin_q {
    const char *model;
    const char *search;
    const char *sort;
    const char *filters;
};

static int admin_is_param(const char *key)
{
    static const char *const fixed[] = {"search", "sort", "offset", "limit"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (!strcmp(key, fixed[i]))
            return 1;
    return 0;
}

/* Every query parameter but search/sort/offset/limit is a column=value filter (first wins). */
static int admin_filters(struct req *r, const char **out)
{
    json_object *f = jx_obj(r->a);
    if (!f)
        return req_err(r, 500, "Out of memory");
    for (const char *p = r->query; *p;) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        size_t kl = eq ? (size_t)(eq - p) : len;
        char *key = req_decode(r->a, p, kl, 1);
        char *val = eq ? req_decode(r->a, eq + 1, len - kl - 1, 1) : "";
        if (!key || !val)
            return req_invalid(r, "query", NULL, "Invalid percent-encoding", "value_error");
        if (*key && !admin_is_param(key) && !json_object_object_get_ex(f, key, NULL))
            json_object_object_add(f, key, json_object_new_string(val));
        p += len;
        if (*p == '&')
            p++;
    }
    *out = jx_text(f, NULL);
    return 0;
}

static int admin_parse(struct req *r, const char *model, struct admin_q *q)
{
    q->model = model;
    q->search = req_query(r, "search");
    q->sort = req_query(r, "sort");
    if (q->search && strlen(q->search) > ADMIN_SEARCH_MAX)
        return req_invalid(r, "query", "search", "String should have at most 200 characters",
                           "string_too_long");
    return admin_filters(r, &q->filters);
}

/* A wrong parameter named by chatd_admin_query: 404 for the model, else 422 on it. */
static int admin_bad(struct req *r, PGresult *res, int col)
{
    const char *bad = PQgetvalue(res, 0, col);
    if (!strcmp(bad, "model"))
        return req_err(r, 404, "Not Found");
    return req_invalid(r, "query", arena_strdup(r->a, bad),
                       arena_strdup(r->a, PQgetvalue(res, 0, col + 1)), "value_error");
}

static int admin_text(struct req *r, int status, PGresult *res, int col)
{
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, col))
        return req_err(r, 404, "Not Found");
    return resp_raw(r, status, "application/json", PQgetvalue(res, 0, col),
                    (size_t)PQgetlength(res, 0, col));
}

static int admin_list(struct req *r, const char *model)
{
    struct admin_q q;
    long lim, off;
    int rc = h_admin_require(r);
    if (!rc)
        rc = req_query_long(r, "limit", 1, 200, 50, &lim);
    if (!rc)
        rc = req_query_long(r, "offset", 0, ADMIN_OFFSET_MAX, 0, &off);
    if (!rc)
        rc = admin_parse(r, model, &q);
    if (rc)
        return rc;
    const char *p[] = {q.model,
                       q.search,
                       q.sort,
                       q.filters,
                       arena_printf(r->a, "%ld", off),
                       arena_printf(r->a, "%ld", lim)};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_list, p, &err);
    if (!res)
        return resp_db_err(r, err);
    if (!PQgetisnull(res, 0, 0))
        return admin_bad(r, res, 0);
    return admin_text(r, 200, res, 2);
}

int h_admin_list(struct req *r)
{
    /* The audit log has its own path: one URL per resource. */
    if (!strcmp(r->params[0], "audit")) {
        int rc = h_admin_require(r);
        return rc ? rc : req_err(r, 404, "Not Found");
    }
    return admin_list(r, r->params[0]);
}

int h_admin_audit(struct req *r)
{
    return admin_list(r, "audit");
}

int h_admin_stats(struct req *r)
{
    int rc = h_admin_require(r);
    if (rc)
        return rc;
    enum db_err err;
    PGresult *res = db_run(r->a, &q_stats, NULL, &err);
    return res ? admin_text(r, 200, res, 0) : resp_db_err(r, err);
}

int h_admin_get(struct req *r)
{
    int rc = h_admin_require(r);
    if (rc)
        return rc;
    if (!strcmp(r->params[0], "audit"))
        return req_err(r, 404, "Not Found");
    const char *p[] = {r->params[0], r->params[1]};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_get, p, &err);
    return res ? admin_text(r, 200, res, 0) : resp_db_err(r, err);
}

#define ADMIN_CSV_BATCH 500

/*
 * One CSV cell (RFC 4180), neutralised against formula injection: a value
 * starting with = + - @ (or tab / CR, which spreadsheets skip first) gets a
 * leading apostrophe; a cell with a quote, comma or line break is quoted,
 * quotes doubled.
 */
static void admin_csv_cell(FCGX_Stream *out, const char *v, size_t n)
{
    int quote = 0;
    for (size_t i = 0; i < n && !quote; i++)
        quote = v[i] == '"' || v[i] == ',' || v[i] == '\n' || v[i] == '\r';
    if (quote)
        FCGX_PutChar('"', out);
    if (n && strchr("=+-@\t\r", v[0]))
        FCGX_PutChar('\'', out);
    for (const char *q; n && (q = memchr(v, '"', n)); n -= (size_t)(q + 1 - v), v = q + 1) {
        FCGX_PutStr(v, (int)(q + 1 - v), out);
        FCGX_PutChar('"', out);
    }
    FCGX_PutStr(v, (int)n, out);
    if (quote)
        FCGX_PutChar('"', out);
}

/* A row's JSON object (in column order) as one CSV line; null is an empty cell. */
static void admin_csv_line(FCGX_Stream *out, const char *json)
{
    json_object *o = json_tokener_parse(json);
    int first = 1;
    if (!o)
        return;
    json_object_object_foreach(o, key, val)
    {
        (void)key;
        if (!first)
            FCGX_PutChar(',', out);
        first = 0;
        if (json_object_is_type(val, json_type_string))
            admin_csv_cell(out, json_object_get_string(val),
                           (size_t)json_object_get_string_len(val));
        else if (val)
            admin_csv_cell(out, json_object_to_json_string(val),
                           strlen(json_object_to_json_string(val)));
    }
    FCGX_PutStr("\r\n", 2, out);
    json_object_put(o);
}

/* Ends the export's transaction; before the first row the error is still an answer. */
static int admin_csv_fail(struct req *r, PGconn *c, PGresult *res, int started)
{
    enum db_err err = db_errclass(res);
    log_warn("admin export%s: %s", started ? " cut short" : "",
             res ? PQresultErrorMessage(res) : PQerrorMessage(c));
    PQclear(res);
    PQclear(PQexec(c, "ROLLBACK"));
    return started ? 0 : resp_db_err(r, err);
}

static int admin_csv_ok(PGresult *res, ExecStatusType want)
{
    return res && PQresultStatus(res) == want;
}

/*
 * Streams the rows of sql to the client as CSV lines through a cursor,
 * ADMIN_CSV_BATCH rows per FETCH: the worker holds one batch whatever the
 * table's size, and each FETCH is its own statement under
 * DB_STATEMENT_TIMEOUT_MS, so no row limit is needed. The status line goes
 * out with the first batch, so an error before it is still a proper answer;
 * one after it can only cut the file short (logged).
 */
static int admin_csv_stream(struct req *r, const char *sql, const char *header, struct admin_q *q)
{
    static const Oid types[] = {25 /* text */, 3802 /* jsonb */};
    const char *p[] = {q->search, q->filters};
    PGconn *c = db_conn();
    if (!c)
        return req_err(r, 503, "Database unavailable");
    PGresult *res = PQexec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (!admin_csv_ok(res, PGRES_COMMAND_OK))
        return admin_csv_fail(r, c, res, 0);
    PQclear(res);
    res = PQexecParams(c, arena_printf(r->a, "DECLARE admin_csv NO SCROLL CURSOR FOR %s", sql), 2,
                       types, p, NULL, NULL, 0);
    if (!admin_csv_ok(res, PGRES_COMMAND_OK))
        return admin_csv_fail(r, c, res, 0);
    PQclear(res);
    int started = 0, n = ADMIN_CSV_BATCH, head = !strcmp(r->method, "HEAD");
    while (n == ADMIN_CSV_BATCH) {
        res = PQexec(c, "FETCH " ADMIN_STR(ADMIN_CSV_BATCH) " FROM admin_csv");
        if (!admin_csv_ok(res, PGRES_TUPLES_OK))
            return admin_csv_fail(r, c, res, started);
        if (!started++) {
            resp_raw(r, 200, NULL, NULL, 0);
            if (!head)
                FCGX_PutS(header, r->fcgi->out);
        }
        n = PQntuples(res);
        for (int i = 0; i < n && !head; i++)
            admin_csv_line(r->fcgi->out, PQgetvalue(res, i, 0));
        PQclear(res);
        /* The client went away (nginx closed the request): stop reading the table. */
        if (FCGX_GetError(r->fcgi->out))
            break;
    }
    PQclear(PQexec(c, "COMMIT"));
    return 0;
}

int h_admin_export(struct req *r)
{
    struct admin_q q;
    int rc = h_admin_require(r);
    if (!rc && !strcmp(r->params[0], "audit"))
        rc = req_err(r, 404, "Not Found");
    if (!rc)
        rc = admin_parse(r, r->params[0], &q);
    if (rc)
        return rc;
    const char *p[] = {q.model, q.search, q.sort, q.filters};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_query, p, &err);
    if (!res)
        return resp_db_err(r, err);
    if (!PQgetisnull(res, 0, 0))
        return admin_bad(r, res, 0);
    const char *sql = arena_printf(r->a, "SELECT %s(t) %s %s", PQgetvalue(res, 0, 2),
                                   PQgetvalue(res, 0, 4), PQgetvalue(res, 0, 5));
    const char *header = arena_printf(r->a, "%s\r\n", PQgetvalue(res, 0, 3));
    if (!sql || !header)
        return req_err(r, 500, "Out of memory");
    resp_header(r, "Content-Type", "text/csv; charset=utf-8");
    resp_header(r, "Content-Disposition",
                arena_printf(r->a, "attachment; filename=\"%s.csv\"", q.model));
    resp_header(r, "Cache-Control", "no-store");
    return admin_csv_stream(r, sql, header, &q);
}
