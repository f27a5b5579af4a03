#include "auth.h"

#include <ctype.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "body.h"
#include "bus.h"
#include "cfg.h"
#include "db.h"
#include "log.h"
#include "pw.h"
#include "rds.h"
#include "req.h"
#include "resp.h"
#include "tok.h"

/* $2, $3: the token's sid (NULL without one) and iat; see chatd_session_ok() in 0009_sessions.sql.
 */
static struct db_stmt q_caller =
    DB_STMT_IDEM("SELECT id, email, username, is_active, is_superuser, is_verified, "
                 "chatd_session_ok(u, $2, $3) FROM users u WHERE id = $1",
                 3);
static struct db_stmt q_login_user =
    DB_STMT("SELECT id, email, username, hashed_password, is_active, chatd_user_auth(u) "
            "FROM users u WHERE lower(username) = lower($1) OR lower(email) = lower($1) "
            "ORDER BY lower(username) = lower($1) DESC LIMIT 1",
            1);
static struct db_stmt q_session =
    DB_STMT("INSERT INTO auth_sessions (id, user_id, refresh_jti, user_agent, ip) "
            "VALUES ($1, $2, $3, left($4, 300), $5)",
            5);

static struct db_stmt q_end = DB_STMT("SELECT chatd_sessions_end($1, $2, $3)", 3);

/* "Bearer <token>" from the header wins over the cookie (API.md (fixed)). */
static const char *auth_token(struct req *r, int *from_header)
{
    const char *h = req_param(r, "HTTP_AUTHORIZATION");
    *from_header = 0;
    if (h && !strncasecmp(h, "Bearer ", 7) && h[7]) {
        *from_header = 1;
        return h + 7;
    }
    return req_cookie(r, "access_token");
}

/* resp_error() adds WWW-Authenticate: Bearer to every 401. */
static int auth_deny(struct req *r, const char *detail)
{
    return req_err(r, 401, detail);
}

static int auth_token_ok(const char *token, struct tok_claims *c)
{
    return tok_verify(TOK_ACCESS, token, time(NULL), c) == 0 && str_is_uuid(c->sub);
}

int auth_require(struct req *r)
{
    int from_header;
    const char *token = auth_token(r, &from_header);
    struct tok_claims c;
    if (!token || !*token)
        return auth_deny(r, "Missing or invalid authorization");
    if (!auth_token_ok(token, &c)) {
        /* API.md: the header when present and valid, else the cookie. */
        const char *cookie = from_header ? req_cookie(r, "access_token") : NULL;
        if (!cookie || !*cookie || !auth_token_ok(cookie, &c))
            return auth_deny(r, "Invalid or expired token");
    }
    enum db_err err;
    const char *iat = arena_printf(r->a, "%ld", c.iat);
    const char *params[] = {c.sub, str_is_uuid(c.sid) ? c.sid : NULL, iat};
    PGresult *res = db_run(r->a, &q_caller, params, &err);
    if (!res)
        return resp_db_err(r, err);
    if (PQntuples(res) == 0)
        return auth_deny(r, "User not found");
    if (PQgetvalue(res, 0, 3)[0] != 't')
        return req_err(r, 403, "User account is inactive");
    /* Its login session was revoked (logout, password change or reset, deactivation). */
    if (PQgetvalue(res, 0, 6)[0] != 't')
        return auth_deny(r, "Invalid or expired token");
    struct auth_user *u = arena_alloc(r->a, sizeof(*u));
    if (!u)
        return req_err(r, 413, "Request too large");
    u->sid = str_is_uuid(c.sid) ? arena_strdup(r->a, c.sid) : NULL;
    u->id = PQgetvalue(res, 0, 0);
    u->email = PQgetvalue(res, 0, 1);
    u->username = PQgetvalue(res, 0, 2);
    u->is_superuser = PQgetvalue(res, 0, 4)[0] == 't';
    u->is_verified = PQgetvalue(res, 0, 5)[0] == 't';
    r->user = u;
    log_set_context(r->req_id, u->id);
    return 0;
}

static char *auth_keep(struct req *r, char *s)
{
    if (!s)
        return NULL;
    char *copy = arena_strdup(r->a, s);
    free(s);
    return copy;
}

char *auth_access_token(struct req *r, const char *user_id, const char *email, const char *username,
                        const char *sid)
{
    struct tok_claims c;
    memset(&c, 0, sizeof(c));
    snprintf(c.sub, sizeof(c.sub), "%s", user_id);
    snprintf(c.sid, sizeof(c.sid), "%s", sid ? sid : "");
    snprintf(c.email, sizeof(c.email), "%s", email);
    snprintf(c.username, sizeof(c.username), "%s", username);
    return auth_keep(r, tok_issue(TOK_ACCESS, &c, time(NULL), cfg.access_ttl_min * 60L));
}

int auth_session_start(struct req *r, const char *user_id, char sid[37], char jti[37])
{
    tok_uuid(sid);
    tok_uuid(jti);
    const char *ua = req_param(r, "HTTP_USER_AGENT");
    const char *params[] = {sid, user_id, jti, ua ? ua : "", r->remote_addr};
    enum db_err err;
    if (!db_run(r->a, &q_session, params, &err))
        return resp_db_err(r, err);
    return 0;
}

int auth_login(struct req *r, const char *user_id, const char *email, const char *username,
               json_object *out, int cookies)
{
    struct tok_claims rc;
    memset(&rc, 0, sizeof(rc));
    snprintf(rc.sub, sizeof(rc.sub), "%s", user_id);
    int status = auth_session_start(r, user_id, rc.sid, rc.jti);
    if (status)
        return status;
    char *access = auth_access_token(r, user_id, email, username, rc.sid);
    char *refresh =
        auth_keep(r, tok_issue(TOK_REFRESH, &rc, time(NULL), cfg.refresh_ttl_days * 86400L));
    if (!access || !refresh)
        return req_err(r, 503, "Cannot issue tokens");
    json_object_object_add(out, "access_token", json_object_new_string(access));
    json_object_object_add(out, "refresh_token", json_object_new_string(refresh));
    json_object_object_add(out, "token_type", json_object_new_string("bearer"));
    if (cookies)
        auth_set_cookies(r, access, refresh);
    return 0;
}

static const char *auth_cookie(struct req *r, const char *name, const char *val, long max_age)
{
    return arena_printf(r->a, "%s=%s; HttpOnly; Max-Age=%ld; Path=/; SameSite=Lax%s%s", name, val,
                        max_age, max_age ? "" : "; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                        cfg.debug ? "" : "; Secure");
}

void auth_set_cookies(struct req *r, const char *access, const char *refresh)
{
    resp_header(r, "Set-Cookie", auth_cookie(r, "access_token", access, cfg.access_ttl_min * 60L));
    if (refresh)
        resp_header(r, "Set-Cookie",
                    auth_cookie(r, "refresh_token", refresh, cfg.refresh_ttl_days * 86400L));
}

void auth_clear_cookies(struct req *r)
{
    resp_header(r, "Set-Cookie", auth_cookie(r, "access_token", "", 0));
    resp_header(r, "Set-Cookie", auth_cookie(r, "refresh_token", "", 0));
}

int auth_register_limit(struct req *r)
{
    const char *key = arena_printf(r->a, "rl:register:%s", r->remote_addr);
    return key ? auth_rate_limit(r, key, cfg.rate_register_per_hour, 3600) : 0;
}

int auth_login_limit(struct req *r, const char *login)
{
    char *key = arena_printf(r->a, "rl:login:%s:%s", r->remote_addr, login);
    for (char *p = key; p && *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return key ? auth_rate_limit(r, key, cfg.rate_login_per_minute, 60) : 0;
}

int auth_rate_limit(struct req *r, const char *key, int limit, int window_s)
{
    return auth_rate_limit_n(r, key, 1, limit, window_s);
}

int auth_rate_limit_n(struct req *r, const char *key, long count, int limit, int window_s)
{
    if (limit <= 0 || count <= 0)
        return 0;
    long ttl = 0;
    long n = rds_incrby_window(key, count, window_s, &ttl);
    if (n < 0) {
        log_warn("rate limit: redis unreachable, letting %s through", r->path);
        return 0;
    }
    if (n <= limit)
        return 0;
    resp_header(r, "Retry-After", arena_printf(r->a, "%ld", ttl > 0 ? ttl : window_s));
    return req_err(r, 429, "Too Many Requests");
}

/*
 * The per-account login budget, whatever the IP: keyed on the resolved
 * account, so its username and email share it; an unknown login name gets a
 * bucket of its own, so the limit does not tell which accounts exist.
 */
static int auth_account_limit(struct req *r, const char *user_id, const char *login)
{
    char *key = arena_printf(r->a, "rl:login:acct:%s", user_id ? user_id : login);
    for (char *p = key; p && *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return key ? auth_rate_limit(r, key, cfg.rate_login_account_per_minute, 60) : 0;
}

/*
 * Finds the user by username or email and checks the password; an unknown
 * user costs one Argon2 verification too. Returns the row or NULL with *status.
 */
PGresult *auth_check_password(struct req *r, const char *login, const char *password, int *status)
{
    enum db_err err;
    const char *params[] = {login};
    PGresult *res = db_run(r->a, &q_login_user, params, &err);
    if (!res) {
        *status = resp_db_err(r, err);
        return NULL;
    }
    const char *hash = PQntuples(res) ? PQgetvalue(res, 0, 3) : NULL;
    int limited = auth_account_limit(r, PQntuples(res) ? PQgetvalue(res, 0, 0) : NULL, login);
    if (limited) {
        *status = limited;
        return NULL;
    }
    if (!pw_verify(hash, password, strlen(password))) {
        *status = 401;
        return NULL;
    }
    return res;
}

/*
 * The events of WS.md "Connecting" on the user's channel; wsd instances act on
 * them and never forward them. Publishing never fails the request: the
 * sessions are already ended in the database, and a socket that missed the
 * event is refused at its next `auth` or when its token expires.
 */
static void auth_publish(struct req *r, const char *user_id, const char *payload)
{
    if (!payload || bus_publish(r->a, "user", user_id, payload) < 0)
        log_warn("auth: session event for %s not published", user_id);
}

int auth_sessions_end(struct req *r, const char *user_id, const char *keep_sid, const char *hash)
{
    const char *params[] = {user_id, keep_sid, hash};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_end, params, &err);
    if (!res)
        return resp_db_err(r, err);
    return PQgetvalue(res, 0, 0)[0] == 't' ? 0 : 404;
}

void auth_session_revoked(struct req *r, const char *user_id, const char *keep_sid,
                          const char *only_sid)
{
    const char *keep = keep_sid ? arena_printf(r->a, "\"%s\"", keep_sid) : "null";
    const char *only = only_sid ? arena_printf(r->a, ",\"sid\":\"%s\"", only_sid) : "";
    auth_publish(
        r, user_id,
        keep && only
            ? arena_printf(r->a, "{\"type\":\"session_revoked\",\"keep_sid\":%s%s}", keep, only)
            : NULL);
}

void auth_user_inactive(struct req *r, const char *user_id)
{
    auth_publish(r, user_id, "{\"type\":\"user_inactive\"}");
}
