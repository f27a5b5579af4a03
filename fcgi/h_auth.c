/* /api/v1/auth/... : the cookie-based JSON login of API.md "Authentication". */
#include <ctype.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "body.h"
#include "cfg.h"
#include "db.h"
#include "handlers.h"
#include "jx.h"
#include "req.h"
#include "resp.h"
#include "tok.h"
#include "users.h"

/* Rotates the refresh token of a live session, or revokes a session whose old token is replayed. */
static struct db_stmt q_rotate =
    DB_STMT("WITH cur AS (SELECT id, refresh_jti, revoked_at FROM auth_sessions WHERE id = $1 "
            "             FOR UPDATE), "
            "rot AS (UPDATE auth_sessions s SET refresh_jti = $3, last_used_at = now() FROM cur "
            "        WHERE s.id = cur.id AND cur.refresh_jti = $2 AND cur.revoked_at IS NULL "
            "        RETURNING s.user_id), "
            "rev AS (UPDATE auth_sessions s SET revoked_at = now() FROM cur "
            "        WHERE s.id = cur.id AND cur.refresh_jti <> $2 AND cur.revoked_at IS NULL "
            "        RETURNING s.id) "
            "SELECT u.id, u.email, u.username, u.is_active, (SELECT count(*) FROM rev) "
            "FROM (SELECT 1) one LEFT JOIN rot ON true LEFT JOIN users u ON u.id = rot.user_id",
            3);
static struct db_stmt q_revoke =
    DB_STMT("UPDATE auth_sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", 1);

/* Adds a JSON text column (built by SQL) to out under key. */
static void h_auth_embed(json_object *out, const char *key, const char *json_text)
{
    json_object_object_add(out, key, json_tokener_parse(json_text));
}

/*
 * Starts a login session for the user of res (id, email, username in its
 * first columns) and answers tokens, cookies and the user JSON of user_col.
 */
static int h_auth_session(struct req *r, int status, PGresult *res, int user_col)
{
    json_object *out = jx_obj(r->a);
    int rc =
        auth_login(r, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), out, 1);
    if (rc)
        return rc;
    h_auth_embed(out, "user", PQgetvalue(res, 0, user_col));
    return resp_json(r, status, out);
}

int h_auth_register(struct req *r)
{
    int rc = auth_register_limit(r);
    struct users_new nu;
    if (rc || (rc = users_parse_new(r, &nu)))
        return rc;
    if (str_utf8_len(nu.password) < 8)
        return req_invalid(r, "body", "password", "String should have at least 8 characters",
                           "string_too_short");
    const char *clash;
    PGresult *res = users_insert(r, &nu, &clash, &rc);
    if (!res && clash)
        return req_err(r, 400,
                       !strcmp(clash, "email") ? "Email already registered"
                                               : "Username already taken");
    if (!res)
        return rc;
    return h_auth_session(r, 201, res, 3);
}

int h_auth_login(struct req *r)
{
    const char *login, *password;
    int rc = body_str(r, "username", 1, 320, BODY_REQUIRED, &login);
    if (!rc)
        rc = body_str(r, "password", 1, 128, BODY_REQUIRED, &password);
    if (rc)
        return rc;
    if ((rc = auth_login_limit(r, login)))
        return rc;
    PGresult *res = auth_check_password(r, login, password, &rc);
    if (!res)
        return rc == 401 ? req_err(r, 401, "Incorrect username or password") : rc;
    if (PQgetvalue(res, 0, 4)[0] != 't')
        return req_err(r, 403, "User account is inactive");
    return h_auth_session(r, 200, res, 5);
}

/* The refresh token from the cookie, else from an optional JSON body. */
static const char *h_auth_refresh_token(struct req *r)
{
    const char *t = req_cookie(r, "refresh_token");
    if (t && *t)
        return t;
    if (r->json && !body_str(r, "refresh_token", 1, 8192, 0, &t) && t)
        return t;
    return NULL;
}

int h_auth_refresh(struct req *r)
{
    const char *token = h_auth_refresh_token(r);
    struct tok_claims c;
    if (!token)
        return req_err(r, 401, "Refresh token not provided");
    if (tok_verify(TOK_REFRESH, token, time(NULL), &c) < 0 || !str_is_uuid(c.sid) ||
        !str_is_uuid(c.jti))
        return req_err(r, 401, "Invalid or expired refresh token");
    struct tok_claims next;
    memset(&next, 0, sizeof(next));
    tok_uuid(next.jti);
    const char *params[] = {c.sid, c.jti, next.jti};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_rotate, params, &err);
    if (!res)
        return resp_db_err(r, err);
    if (PQgetisnull(res, 0, 0)) {
        /* Reuse: the session is revoked now, so are its access tokens and sockets. */
        if (strcmp(PQgetvalue(res, 0, 4), "0") != 0 && str_is_uuid(c.sub))
            auth_session_revoked(r, c.sub, NULL, c.sid);
        return req_err(r, 401, "Invalid or expired refresh token"); /* unknown, or reused */
    }
    if (PQgetvalue(res, 0, 3)[0] != 't')
        return req_err(r, 403, "User account is inactive");
    snprintf(next.sub, sizeof(next.sub), "%s", PQgetvalue(res, 0, 0));
    snprintf(next.sid, sizeof(next.sid), "%s", c.sid);
    char *refresh = tok_issue(TOK_REFRESH, &next, time(NULL), cfg.refresh_ttl_days * 86400L);
    char *access = auth_access_token(r, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
                                     PQgetvalue(res, 0, 2), c.sid);
    if (!refresh || !access) {
        free(refresh);
        return req_err(r, 503, "Cannot issue tokens");
    }
    json_object *out = jx_obj(r->a);
    json_object_object_add(out, "access_token", json_object_new_string(access));
    json_object_object_add(out, "refresh_token", json_object_new_string(refresh));
    json_object_object_add(out, "token_type", json_object_new_string("bearer"));
    auth_set_cookies(r, access, refresh);
    free(refresh);
    return resp_json(r, 200, out);
}

int h_auth_logout(struct req *r)
{
    const char *token = h_auth_refresh_token(r);
    struct tok_claims c;
    if (token && tok_verify(TOK_REFRESH, token, time(NULL), &c) == 0 && str_is_uuid(c.sid)) {
        const char *params[] = {c.sid};
        enum db_err err;
        /* The access tokens of the session die with it: close its WebSockets too. */
        if (db_run(r->a, &q_revoke, params, &err) && str_is_uuid(c.sub))
            auth_session_revoked(r, c.sub, NULL, c.sid);
    }
    auth_clear_cookies(r);
    json_object *out = jx_obj(r->a);
    json_object_object_add(out, "message", json_object_new_string("Successfully logged out"));
    return resp_json(r, 200, out);
}
