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

/*
 * Streams the rows of sql to the client as CSV lines while libpq hands them
 * over one at a time (single-row mode): memory stays one row whatever the
 * table's size. The status line is written with the first result, so an
 * error before any row is still a proper error answer; one after the first
 * row can only cut the file short (logged).
 */
static int admin_csv_stream(struct req *r, const char *sql, const char *header, struct admin_q *q)
{
    static const Oid types[] = {25 /* text */, 3802 /* jsonb */};
    const char *p[] = {q->search, q->filters};
    PGconn *c = db_conn();
    if (!c || !PQsendQueryParams(c, sql, 2, types, p, NULL, NULL, 0) || !PQsetSingleRowMode(c))
        return req_err(r, 503, "Database unavailable");
    int started = 0, head = !strcmp(r->method, "HEAD");
    PGresult *res;
    while ((res = PQgetResult(c))) {
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK) {
            enum db_err err = db_errclass(res);
            log_error("admin export: %s", PQresultErrorMessage(res));
            PQclear(res);
            while ((res = PQgetResult(c)))
                PQclear(res);
            return started ? 0 : resp_db_err(r, err);
        }
        if (!started) {
            started = 1;
            resp_raw(r, 200, NULL, NULL, 0);
            if (!head)
                FCGX_PutS(header, r->fcgi->out);
        }
        if (st == PGRES_SINGLE_TUPLE && !head)
            FCGX_PutStr(PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0), r->fcgi->out);
        PQclear(res);
    }
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
    const char *sql =
        arena_printf(r->a, "SELECT chatd_csv_line(%s(t)) %s %s", PQgetvalue(res, 0, 2),
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
