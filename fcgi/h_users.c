/* /api/v1/users/... (API.md "Users"): the caller's profile, other users, search, presence. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "body.h"
#include "bus.h"
#include "db.h"
#include "handlers.h"
#include "req.h"
#include "resp.h"

static struct db_stmt q_me =
    DB_STMT("SELECT chatd_user_public(u, true)::text FROM users u WHERE u.id = $1", 1);
static struct db_stmt q_get =
    DB_STMT("SELECT chatd_user_for(u, $2, $3)::text FROM users u WHERE u.id = $1", 3);
/* $2k: whether the field was given, $2k+1: its value (NULL clears it). */
static struct db_stmt q_update =
    DB_STMT("UPDATE users u SET "
            " username = CASE WHEN $2 THEN $3 ELSE u.username END,"
            " first_name = CASE WHEN $4 THEN $5 ELSE u.first_name END,"
            " last_name = CASE WHEN $6 THEN $7 ELSE u.last_name END,"
            " avatar_url = CASE WHEN $8 THEN $9 ELSE u.avatar_url END,"
            " bio = CASE WHEN $10 THEN $11 ELSE u.bio END,"
            " updated_at = now() "
            "WHERE u.id = $1 RETURNING chatd_user_public(u, true)::text",
            11);
/* The online_status frame and its channels (schema/0005_presence.sql). */
static struct db_stmt q_online = DB_STMT("SELECT frame, channels FROM chatd_set_online($1, $2)", 2);
static struct db_stmt q_search = DB_STMT("SELECT chatd_user_search($1, $2, $3, $4)::text", 4);

static const char *users_super(struct req *r)
{
    return r->user->is_superuser ? "t" : "f";
}

/* Answers with the JSON text in the first cell of res, or 404 detail when there is no row. */
static int users_reply(struct req *r, PGresult *res, int status, const char *missing)
{
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0))
        return req_err(r, 404, missing);
    return resp_raw(r, status, "application/json", PQgetvalue(res, 0, 0),
                    (size_t)PQgetlength(res, 0, 0));
}

int h_users_me(struct req *r)
{
    const char *p[] = {r->user->id};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_me, p, &err);
    if (!res)
        return resp_db_err(r, err);
    return users_reply(r, res, 200, "User not found");
}

int h_users_get(struct req *r)
{
    const char *p[] = {r->params[0], r->user->id, users_super(r)};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_get, p, &err);
    if (!res)
        return resp_db_err(r, err);
    return users_reply(r, res, 200, "User not found");
}

/* Reads one optional profile field into p[0] (given: "t"/"f") and p[1] (value or NULL). */
static int users_field(struct req *r, const char *field, size_t min, size_t max, unsigned flags,
                       const char **p)
{
    int rc = body_str(r, field, min, max, flags, &p[1]);
    p[0] = body_has(r, field) ? "t" : "f";
    return rc;
}

/* Only the profile fields are read: is_superuser, is_active, email, password... are ignored. */
int h_users_me_update(struct req *r)
{
    const char *p[11] = {r->user->id};
    int rc = users_field(r, "username", 3, 50, 0, &p[1]);
    if (!rc && p[1][0] == 't' && (!p[2] || !body_is_username(p[2])))
        rc = p[2] ? req_invalid(r, "body", "username",
                                "String should match pattern '^[A-Za-z0-9_.-]+$'",
                                "string_pattern_mismatch")
                  : req_invalid(r, "body", "username", "Input should be a valid string",
                                "string_type");
    if (!rc)
        rc = users_field(r, "first_name", 0, 100, BODY_NULLABLE, &p[3]);
    if (!rc)
        rc = users_field(r, "last_name", 0, 100, BODY_NULLABLE, &p[5]);
    if (!rc)
        rc = users_field(r, "avatar_url", 0, 500, BODY_NULLABLE, &p[7]);
    if (!rc)
        rc = users_field(r, "bio", 0, 500, BODY_NULLABLE, &p[9]);
    if (rc)
        return rc;
    enum db_err err;
    PGresult *res = db_run(r->a, &q_update, p, &err);
    if (!res && err == DB_CONFLICT)
        return req_err(r, 400, "Username already taken");
    if (!res && err == DB_INVALID)
        return req_invalid(r, "body", NULL, "Invalid value", "value_error");
    if (!res)
        return resp_db_err(r, err);
    return users_reply(r, res, 200, "User not found");
}

/* A query boolean as pydantic reads one: 1 / 0, or -1 when it is not a boolean. */
static int users_bool(const char *v)
{
    static const char *const yes[] = {"true", "1", "yes", "on", "t", "y"};
    static const char *const no[] = {"false", "0", "no", "off", "f", "n"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (!strcasecmp(v, yes[i]))
            return 1;
        if (!strcasecmp(v, no[i]))
            return 0;
    }
    return -1;
}

int h_users_online(struct req *r)
{
    const char *v = req_query(r, "is_online");
    if (!v)
        return req_invalid(r, "query", "is_online", "Field required", "missing");
    int on = users_bool(v);
    if (on < 0)
        return req_invalid(r, "query", "is_online",
                           "Input should be a valid boolean, unable to interpret input",
                           "bool_parsing");
    const char *p[] = {r->user->id, on ? "t" : "f"};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_online, p, &err);
    if (!res)
        return resp_db_err(r, err);
    if (PQntuples(res) == 1)
        bus_fanout(r->a, PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 0));
    return resp_raw(r, 204, NULL, NULL, 0);
}

/* q without leading and trailing whitespace, in the arena. */
static char *users_trim(struct req *r, const char *q)
{
    while (*q && isspace((unsigned char)*q))
        q++;
    size_t n = strlen(q);
    while (n && isspace((unsigned char)q[n - 1]))
        n--;
    return arena_strndup(r->a, q, n);
}

int h_users_search(struct req *r)
{
    const char *q = req_query(r, "query");
    long limit;
    if (!q)
        return req_invalid(r, "query", "query", "Field required", "missing");
    size_t n = str_utf8_len(q);
    if (n < 1)
        return req_invalid(r, "query", "query", "String should have at least 1 character",
                           "string_too_short");
    if (n > 100)
        return req_invalid(r, "query", "query", "String should have at most 100 characters",
                           "string_too_long");
    int rc = req_query_long(r, "limit", 1, 50, 20, &limit);
    if (rc)
        return rc;
    char *trimmed = users_trim(r, q);
    if (!trimmed)
        return req_err(r, 413, "Request too large");
    static const char empty[] = "{\"users\":[],\"total\":0}";
    if (!*trimmed)
        return resp_raw(r, 200, "application/json", empty, sizeof(empty) - 1);
    const char *p[] = {r->user->id, users_super(r), trimmed, arena_printf(r->a, "%ld", limit)};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_search, p, &err);
    if (!res && err == DB_INVALID)
        return req_invalid(r, "query", "query", "Input should be a valid string", "string_type");
    if (!res)
        return resp_db_err(r, err);
    return users_reply(r, res, 200, "User not found");
}
