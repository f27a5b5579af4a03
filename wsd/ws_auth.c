#include "ws_auth.h"

#include "cfg.h"
#include "log.h"
#include "str.h"
#include "tok.h"
#include "ws_bus.h"
#include "ws_conn.h"
#include "ws_hub.h"
#include "ws_presence.h"
#include "ws_proto.h"
#include "ws_srv.h"
#include "ws_sync.h"
#include "ws_tail.h"

#include <ctype.h>
#include <json-c/json.h>
#include <stdio.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Longest query argument or cookie header read (an access token is ~400 bytes). */
#define WS_AUTH_ARG_MAX 2048
#define WS_AUTH_COOKIE_MAX 8192

/*
 * Handshake and `auth` frame alike: $1 user, $2 sid (NULL without one), $3
 * iat; the sid and $4 (exp) come back so the callback applies exactly what
 * the database approved.
 */
static const char ws_auth_sql[] = "SELECT w.is_active, w.session_ok, w.groups, $2::uuid::text,"
                                  " $4::bigint FROM chatd_ws_user($1, $2, $3) w";
/* The longest an `auth` frame's token may be (the handshake's query argument limit). */
#define WS_AUTH_TOKEN_MAX WS_AUTH_ARG_MAX

/*
 * The {user_id} of the request path, lower-cased, into out[37]. Returns 0,
 * -1 when the path is not ours, -2 when the segment is not a UUID.
 */
static int ws_auth_path_user(struct lws *wsi, char out[37])
{
    char path[256];
    static const size_t plen = sizeof(WS_PROTO_PATH) - 1;
    if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) <= 0 ||
        strncmp(path, WS_PROTO_PATH, plen) != 0)
        return -1;
    const char *user = path + plen;
    if (!*user || strchr(user, '/'))
        return -1;
    if (!str_is_uuid(user))
        return -2;
    for (int i = 0; i <= 36; i++)
        out[i] = (char)tolower((unsigned char)user[i]);
    return 0;
}

/*
 * WS.md: an Origin header, when present, must be one of CORS_ORIGINS_STR or
 * our own (PUBLIC_URL), against cross-site WebSocket hijacking of cookie logins.
 */
static int ws_auth_origin_ok(struct lws *wsi)
{
    char origin[256];
    int len = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (len <= 0)
        return 1;
    if (len >= (int)sizeof(origin) ||
        lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) < 0)
        return 0;
    return cfg_origin_allowed(origin, strlen(origin)) || !strcmp(origin, cfg.public_url);
}

unsigned ws_auth_upgrade_status(struct lws *wsi)
{
    char user[37];
    int rc = ws_auth_path_user(wsi, user);
    if (rc == -1)
        return HTTP_STATUS_NOT_FOUND;
    if (rc == -2 || !ws_auth_origin_ok(wsi))
        return HTTP_STATUS_FORBIDDEN;
    return 0;
}

/* nginx's $request_id (hex); anything else is not logged. */
static void ws_auth_request_id(struct lws *wsi, char *out, size_t size)
{
    static const char name[] = "x-request-id:";
    char buf[128];
    out[0] = '\0';
    if (lws_hdr_custom_copy(wsi, buf, sizeof(buf), name, (int)sizeof(name) - 1) <= 0)
        return;
    const char *p = buf + strspn(buf, " \t");
    size_t n = strspn(p, "0123456789abcdefABCDEF-");
    if (n && n < size && (p[n] == '\0' || p[n] == ' ' || p[n] == '\t')) {
        memcpy(out, p, n);
        out[n] = '\0';
    }
}

/*
 * The value of query argument name ("token=") copied into buf, or NULL.
 * Not lws_get_urlarg_by_name(): it stops at the first argument longer than
 * its buffer, so a long token would hide the arguments after it.
 */
static const char *ws_auth_arg(struct lws *wsi, const char *name, char *buf, int size)
{
    size_t nlen = strlen(name);
    int len;
    for (int i = 0; (len = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i)) > 0; i++)
        if (len < size && lws_hdr_copy_fragment(wsi, buf, size, WSI_TOKEN_HTTP_URI_ARGS, i) >= 0 &&
            !strncmp(buf, name, nlen))
            return buf + nlen;
    return NULL;
}

/* ?since=: -1 when absent, -2 when not a non-negative integer. */
static long long ws_auth_since(struct lws *wsi)
{
    char buf[64];
    const char *v = ws_auth_arg(wsi, "since=", buf, (int)sizeof(buf));
    if (!v)
        return -1;
    size_t n = strlen(v);
    if (!n || n > 18 || strspn(v, "0123456789") != n)
        return -2;
    return strtoll(v, NULL, 10);
}

/* The value of cookie name in the Cookie header s ("a=1; b=2"), copied into out. */
static int ws_auth_cookie(const char *s, const char *name, char *out, size_t size)
{
    size_t vlen;
    const char *v = str_cookie(s, name, &vlen);
    if (!v || !vlen || vlen >= size)
        return -1;
    memcpy(out, v, vlen);
    out[vlen] = '\0';
    return 0;
}

/* The access token: ?token=, else the access_token cookie. NULL when there is none. */
static char *ws_auth_token(struct lws *wsi)
{
    char *buf = malloc(WS_AUTH_COOKIE_MAX);
    if (!buf)
        return NULL;
    const char *v = ws_auth_arg(wsi, "token=", buf, WS_AUTH_ARG_MAX);
    if (v && *v) {
        memmove(buf, v, strlen(v) + 1);
        return buf;
    }
    int len = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COOKIE);
    char *cookie = len > 0 && len < WS_AUTH_COOKIE_MAX ? malloc((size_t)len + 1) : NULL;
    int ok = cookie && lws_hdr_copy(wsi, cookie, len + 1, WSI_TOKEN_HTTP_COOKIE) >= 0 &&
             ws_auth_cookie(cookie, "access_token", buf, WS_AUTH_COOKIE_MAX) == 0;
    free(cookie);
    if (!ok) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* WS.md's close reasons; NULL when token is good for user (*claims filled). */
static const char *ws_auth_verify(const char *token, const char *user, struct tok_claims *claims)
{
    if (!token || !*token)
        return "Missing token";
    if (tok_verify(TOK_ACCESS, token, (long)time(NULL), claims) < 0)
        return "Invalid or expired token";
    if (strcasecmp(claims->sub, user) != 0)
        return "Token user_id mismatch";
    return NULL;
}

static const char *ws_auth_check_token(struct lws *wsi, const char *user, struct tok_claims *claims)
{
    char *token = ws_auth_token(wsi);
    const char *why = ws_auth_verify(token, user, claims);
    free(token);
    return why;
}

/* Asks Postgres whether the token of claims may (still) speak for c's user. */
static int ws_auth_query(struct ws_conn *c, const struct tok_claims *claims, ws_conn_db_fn *fn)
{
    char iat[24], exp[24];
    snprintf(iat, sizeof(iat), "%ld", claims->iat);
    snprintf(exp, sizeof(exp), "%ld", claims->exp);
    const char *params[] = {c->user_id, str_is_uuid(claims->sid) ? claims->sid : NULL, iat, exp};
    return ws_conn_query(c, ws_auth_sql, 4, params, fn);
}

/* Takes sid and exp from a row of ws_auth_sql; 0, or -1 when the token may not be used. */
static int ws_auth_adopt(struct ws_conn *c, PGresult *res)
{
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0 || strcmp(PQgetvalue(res, 0, 1), "t") != 0)
        return -1;
    snprintf(c->sid, sizeof(c->sid), "%s", PQgetvalue(res, 0, 3));
    c->token_exp = strtoll(PQgetvalue(res, 0, 4), NULL, 10); /* ws_proto_sweep() watches it */
    return 0;
}

static void ws_auth_fail(struct ws_conn *c, int code, const char *reason)
{
    log_info("ws: refused: %s", reason);
    ws_conn_close_later(c, code, reason);
}

static void ws_auth_on_user(struct ws_conn *c, PGresult *res)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        ws_auth_fail(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "Database unavailable");
        return;
    }
    /* An unknown or inactive user, a revoked session: WS.md puts all under the token's reason. */
    if (PQntuples(res) != 1 || ws_auth_adopt(c, res) < 0) {
        ws_auth_fail(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "Invalid or expired token");
        return;
    }
    if (ws_hub_add(c->srv->hub, c, PQgetvalue(res, 0, 2)) < 0) {
        ws_auth_fail(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "Out of memory");
        return;
    }
    c->ready = 1;
    if (c->srv->presence)
        ws_presence_open(c->srv->presence, c->user_id);
    log_debug("ws: authenticated");
    if (c->since == -2)
        ws_conn_error(c, "since must be a non-negative integer", NULL);
    /* The client's messages wait for the startup replay: it calls ws_proto_done(). */
    ws_sync_begin(c, c->since >= 0 ? c->since : c->tail0, c->since < 0);
}

/*
 * Before the first query: c holds every event from now on (ws_sync_open) and
 * its user's channel is subscribed at once, so what is published while it
 * authenticates is either held or replayed (WS.md: nothing after the handshake
 * is lost). The mark is the tail's position as c joins the local routing:
 * every message above it reaches c live or through the startup replay, which
 * reads up to a stable position at least as high as the tail's when c's
 * groups are linked (README "The message path without a deployment-wide lock").
 */
static const char *ws_auth_link(struct ws_conn *c)
{
    struct ws_srv *srv = c->srv;
    if (cfg.wsd_max_conn_per_user &&
        ws_hub_user_conns(srv->hub, c->user_id) >= (unsigned)cfg.wsd_max_conn_per_user)
        return "Too many connections";
    ws_sync_open(c);
    if (!c->sync || ws_hub_add(srv->hub, c, NULL) < 0)
        return "Out of memory";
    c->tail0 = ws_tail_pos(srv->tail);
    ws_bus_flush(srv->sub);
    return NULL;
}

void ws_auth_start(struct ws_conn *c)
{
    struct lws *wsi = c->wsi;
    c->busy = 1;
    ws_auth_request_id(wsi, c->req_id, sizeof(c->req_id));
    if (ws_auth_path_user(wsi, c->user_id) < 0) {
        ws_auth_fail(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "Invalid path");
        return;
    }
    ws_conn_log(c);
    c->lane = (unsigned)ws_conn_hash(c->user_id, strlen(c->user_id));
    c->since = ws_auth_since(wsi);
    struct tok_claims claims;
    const char *why = ws_auth_check_token(wsi, c->user_id, &claims);
    if (why) {
        ws_auth_fail(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, why);
        return;
    }
    if ((why = ws_auth_link(c))) {
        ws_auth_fail(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, why);
        return;
    }
    if (ws_auth_query(c, &claims, ws_auth_on_user) < 0)
        ws_auth_fail(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "Server busy");
}

void ws_auth_expired(struct ws_conn *c)
{
    ws_auth_fail(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "Token expired");
}

static void ws_auth_on_renew(struct ws_conn *c, PGresult *res)
{
    char buf[64];
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        ws_conn_error(c, "Database unavailable", NULL); /* the current token still holds */
    } else if (PQntuples(res) != 1 || ws_auth_adopt(c, res) < 0) {
        ws_auth_fail(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "Invalid or expired token");
    } else {
        int n =
            snprintf(buf, sizeof(buf), "{\"type\":\"authed\",\"expires_at\":%lld}", c->token_exp);
        ws_conn_send(c, buf, (size_t)n);
    }
    ws_proto_done(c);
}

int ws_auth_cmd(struct ws_conn *c, struct json_object *msg)
{
    struct json_object *v;
    const char *token = NULL;
    if (json_object_object_get_ex(msg, "token", &v) && json_object_is_type(v, json_type_string) &&
        json_object_get_string_len(v) <= WS_AUTH_TOKEN_MAX)
        token = json_object_get_string(v);
    struct tok_claims claims;
    const char *why = ws_auth_verify(token, c->user_id, &claims);
    if (why) {
        ws_auth_fail(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, why);
        return 0;
    }
    if (ws_auth_query(c, &claims, ws_auth_on_renew) < 0) {
        ws_conn_error(c, "Server busy", NULL);
        return 0;
    }
    return 1;
}

int ws_auth_is_event(const char *type)
{
    return !strcmp(type, "session_revoked") || !strcmp(type, "user_inactive");
}

/* A string member of o, or NULL. */
static const char *ws_auth_member(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

void ws_auth_on_event(struct ws_conn *c, const char *type, struct json_object *ev)
{
    if (!strcmp(type, "user_inactive")) {
        ws_auth_fail(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "User inactive");
        return;
    }
    const char *only = ws_auth_member(ev, "sid"), *keep = ws_auth_member(ev, "keep_sid");
    /* A connection whose token has no sid belongs to no session that could be kept. */
    int hit = only ? !strcmp(c->sid, only) : !(keep && *c->sid && !strcmp(c->sid, keep));
    if (hit)
        ws_auth_fail(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "Session revoked");
}
