#include "route.h"

#include <ctype.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "cfg.h"
#include "handlers.h"
#include "jx.h"
#include "log.h"
#include "metrics.h"
#include "req.h"
#include "resp.h"

/* Literal paths before patterns that could shadow them (t/unit/route.c checks). */
const struct route route_table[] = {
    {"GET", "/", h_root, 0, 0},
    {"GET", "/health", h_health, 0, 0},
    {"GET", "/metrics", h_metrics, 0, 0},
    {"POST", "/api/v1/auth/register", h_auth_register, R_JSON, 0},
    {"POST", "/api/v1/auth/login", h_auth_login, R_JSON, 0},
    {"POST", "/api/v1/auth/refresh", h_auth_refresh, R_JSON_OPT, 0},
    {"POST", "/api/v1/auth/logout", h_auth_logout, R_JSON_OPT, 0},
    {"POST", "/auth/register", h_fau_register, R_JSON, 0},
    {"POST", "/auth/jwt/login", h_fau_login, R_FORM, 0},
    {"POST", "/auth/jwt/logout", h_fau_logout, R_AUTH, 0},
    {"POST", "/auth/forgot-password", h_fau_forgot_password, R_JSON, 0},
    {"POST", "/auth/reset-password", h_fau_reset_password, R_JSON, 0},
    {"POST", "/auth/request-verify-token", h_fau_request_verify_token, R_JSON, 0},
    {"POST", "/auth/verify", h_fau_verify, R_JSON, 0},
    {"GET", "/auth/verify", h_fau_verify_link, 0, 0},
    {"GET", "/users/me", h_fau_me, R_AUTH, 0},
    {"PATCH", "/users/me", h_fau_me_update, R_AUTH | R_JSON, 0},
    {"GET", "/users/{id:uuid}", h_fau_user_get, R_AUTH, 0},
    {"PATCH", "/users/{id:uuid}", h_fau_user_update, R_AUTH | R_JSON, 0},
    {"DELETE", "/users/{id:uuid}", h_fau_user_delete, R_AUTH, 0},
    {"GET", "/api/v1/oauth/google/status", h_oauth_google_status, 0, 0},
    {"GET", "/api/v1/oauth/google/authorize", h_oauth_google_authorize, 0, 0},
    {"GET", "/api/v1/oauth/google/callback", h_oauth_google_callback, 0, 0},
    {"POST", "/api/v1/messages", h_msg_send, R_AUTH | R_JSON, 64 * 1024},
    {"GET", "/api/v1/messages", h_msg_list, R_AUTH, 0},
    {"PATCH", "/api/v1/messages/{message_id:uuid}/read", h_msg_read, R_AUTH, 0},
    {"PATCH", "/api/v1/messages/{message_id:uuid}", h_msg_edit, R_AUTH | R_JSON, 64 * 1024},
    {"DELETE", "/api/v1/messages/{message_id:uuid}", h_msg_delete, R_AUTH, 0},
    {"GET", "/api/v1/contacts/chats", h_msg_chats, R_AUTH, 0},
    {"GET", "/api/v1/conversations", h_msg_conversations, R_AUTH, 0},
    {"GET", "/api/v1/users/me", h_users_me, R_AUTH, 0},
    {"PATCH", "/api/v1/users/me", h_users_me_update, R_AUTH | R_JSON, 0},
    {"PATCH", "/api/v1/users/me/online", h_users_online, R_AUTH, 0},
    {"GET", "/api/v1/users/search", h_users_search, R_AUTH, 0},
    {"GET", "/api/v1/users/{user_id:uuid}", h_users_get, R_AUTH, 0},
    {"POST", "/api/v1/contacts", h_contacts_add, R_AUTH | R_JSON, 0},
    {"GET", "/api/v1/contacts", h_contacts_list, R_AUTH, 0},
    {"DELETE", "/api/v1/contacts/{contact_id:uuid}", h_contacts_delete, R_AUTH, 0},
    {"POST", "/api/v1/groups", h_groups_create, R_AUTH | R_JSON, 0},
    {"GET", "/api/v1/groups", h_groups_list, R_AUTH, 0},
    {"GET", "/api/v1/groups/{group_id:uuid}", h_groups_get, R_AUTH, 0},
    {"PATCH", "/api/v1/groups/{group_id:uuid}", h_groups_update, R_AUTH | R_JSON, 0},
    {"DELETE", "/api/v1/groups/{group_id:uuid}", h_groups_delete, R_AUTH, 0},
    {"POST", "/api/v1/groups/{group_id:uuid}/members", h_groups_member_add, R_AUTH, 0},
    {"DELETE", "/api/v1/groups/{group_id:uuid}/members/{user_id:uuid}", h_groups_member_remove,
     R_AUTH, 0},
    {"PATCH", "/api/v1/groups/{group_id:uuid}/members/{user_id:uuid}", h_groups_member_role,
     R_AUTH | R_JSON, 0},
    /* Bad names are 404 (h_upload_get checks them), not the 422 of a typed parameter. */
    {"POST", "/api/v1/upload", h_upload_create, R_AUTH | R_STREAM, 0},
    {"GET", "/api/v1/upload/{filename}", h_upload_get, 0, 0},
    /* Admin (API.md "Admin"): literal paths first, then the {model} patterns. */
    {"GET", "/api/v1/admin/stats", h_admin_stats, R_AUTH, 0},
    {"GET", "/api/v1/admin/audit", h_admin_audit, R_AUTH, 0},
    {"POST", "/api/v1/admin/users", h_admin_user_create, R_AUTH | R_JSON, 0},
    {"PUT", "/api/v1/admin/users/{id:uuid}/password", h_admin_user_password, R_AUTH | R_JSON, 0},
    {"GET", "/api/v1/admin/{model}/export.csv", h_admin_export, R_AUTH, 0},
    {"GET", "/api/v1/admin/{model}", h_admin_list, R_AUTH, 0},
    {"GET", "/api/v1/admin/{model}/{id:uuid}", h_admin_get, R_AUTH, 0},
    {"PATCH", "/api/v1/admin/{model}/{id:uuid}", h_admin_update, R_AUTH | R_JSON, 0},
    {"DELETE", "/api/v1/admin/{model}/{id:uuid}", h_admin_delete, R_AUTH, 0},
};
const size_t route_count = sizeof(route_table) / sizeof(route_table[0]);

static int route_is_uuid(const char *s, size_t n)
{
    if (n != 36)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

static int route_type_ok(const char *type, size_t tl, const char *s, size_t n)
{
    if (tl == 4 && !memcmp(type, "uuid", 4))
        return route_is_uuid(s, n);
    if (tl == 3 && !memcmp(type, "int", 3)) {
        if (n == 0 || n > 18)
            return 0;
        for (size_t i = 0; i < n; i++)
            if (!isdigit((unsigned char)s[i]))
                return 0;
        return 1;
    }
    if (tl == 4 && !memcmp(type, "file", 4)) {
        if (n == 0 || n > 100 || s[0] == '.')
            return 0;
        for (size_t i = 0; i < n; i++)
            if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
                return 0;
        return 1;
    }
    return n > 0;
}

int route_match(const char *pattern, const char *path, const char **params, int *nparams, char *bad,
                size_t badlen, struct req *r)
{
    int typed_ok = 1;
    *nparams = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p != *s && *p != '{')
            return 0;
        if (*p != '{') {
            p++, s++;
            continue;
        }
        const char *close = strchr(p, '}'), *colon = memchr(p, ':', (size_t)(close - p));
        size_t sl = strcspn(s, "/");
        if (sl == 0)
            return 0;
        if (colon && !route_type_ok(colon + 1, (size_t)(close - colon - 1), s, sl) && typed_ok) {
            typed_ok = 0;
            snprintf(bad, badlen, "%.*s", (int)((colon ? colon : close) - p - 1), p + 1);
        }
        if (*nparams < REQ_MAX_PARAMS && r)
            params[(*nparams)++] = arena_strndup(r->a, s, sl);
        p = close + 1;
        s += sl;
    }
    if (*p || *s)
        return 0;
    return typed_ok ? 1 : -1;
}

static int route_method_is(const struct route *rt, const char *method)
{
    return !strcmp(rt->method, method) || (!strcmp(method, "HEAD") && !strcmp(rt->method, "GET"));
}

/* CORS preflight as Starlette's CORSMiddleware answers it (API.md "CORS details"). */
static int route_preflight(struct req *r)
{
    if (!cfg_origin_allowed(r->origin, strlen(r->origin)))
        return req_err(r, 400, "Disallowed CORS origin");
    const char *hdrs = req_param(r, "HTTP_ACCESS_CONTROL_REQUEST_HEADERS");
    resp_header(r, "Access-Control-Allow-Methods", "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT");
    resp_header(r, "Access-Control-Max-Age", "600");
    if (hdrs && strlen(hdrs) < 1024 && !strpbrk(hdrs, "\r\n"))
        resp_header(r, "Access-Control-Allow-Headers", hdrs);
    resp_raw(r, 200, "text/plain; charset=utf-8", "OK", 2);
    return 0;
}

/* A collection path with a trailing slash redirects to the path without it. */
static int route_redirect_slash(struct req *r)
{
    size_t n = strlen(r->path);
    if (n < 2 || r->path[n - 1] != '/')
        return 0;
    char *bare = arena_strndup(r->a, r->path, n - 1);
    const char *params[REQ_MAX_PARAMS];
    int np;
    char bad[64];
    for (size_t i = 0; bare && i < route_count; i++) {
        if (route_match(route_table[i].pattern, bare, params, &np, bad, sizeof(bad), NULL) != 0) {
            const char *loc = *r->query ? arena_printf(r->a, "%s?%s", bare, r->query) : bare;
            if (!loc || strpbrk(loc, "\r\n"))
                return 0;
            resp_header(r, "Location", loc);
            resp_raw(r, 307, NULL, NULL, 0);
            return 1;
        }
    }
    return 0;
}

static const struct route *route_find(struct req *r, int *status)
{
    char allow[128] = "", bad[64] = "";
    const struct route *shape = NULL;
    for (size_t i = 0; i < route_count; i++) {
        const struct route *rt = &route_table[i];
        int m = route_match(rt->pattern, r->path, r->params, &r->nparams, bad, sizeof(bad), r);
        if (m == 0)
            continue;
        if (!route_method_is(rt, r->method)) {
            if (!strstr(allow, rt->method) &&
                strlen(allow) + strlen(rt->method) + 3 < sizeof(allow))
                strcat(strcat(allow, *allow ? ", " : ""), rt->method);
            continue;
        }
        if (m == 1)
            return rt;
        shape = shape ? shape : rt;
    }
    if (shape) {
        *status = req_invalid(r, "path", arena_strdup(r->a, bad), "Input should be a valid UUID",
                              "uuid_parsing");
    } else if (*allow) {
        resp_header(r, "Allow", arena_strdup(r->a, allow));
        *status = req_err(r, 405, "Method Not Allowed");
    } else {
        *status = route_redirect_slash(r) ? 0 : req_err(r, 404, "Not Found");
    }
    return NULL;
}

static int route_parse_json(struct req *r)
{
    const char *ct = req_param(r, "CONTENT_TYPE");
    if (!ct || strncasecmp(ct, "application/json", 16) != 0)
        return req_invalid(r, "body", NULL, "Input should be a valid dictionary or object",
                           "model_attributes_type");
    json_tokener *tok = json_tokener_new_ex(32);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = r->body ? json_tokener_parse_ex(tok, r->body, (int)r->body_len) : NULL;
    int complete = o && json_tokener_get_parse_end(tok) == r->body_len;
    json_tokener_free(tok);
    if (!complete) {
        json_object_put(o);
        return req_invalid(r, "body", NULL, "JSON decode error", "json_invalid");
    }
    /* jx_keep releases o when it cannot record it: nothing may keep the pointer then. */
    if (!(r->json = jx_keep(r->a, o)))
        return req_err(r, 500, "Out of memory");
    if (!json_object_is_type(o, json_type_object))
        return req_invalid(r, "body", NULL, "Input should be a valid dictionary or object",
                           "model_attributes_type");
    return 0;
}

static int route_run(struct req *r)
{
    if (r->origin && !strcmp(r->method, "OPTIONS") &&
        req_param(r, "HTTP_ACCESS_CONTROL_REQUEST_METHOD"))
        return route_preflight(r);
    int status = 0;
    const struct route *rt = route_find(r, &status);
    if (!rt)
        return status;
    r->route = (int)(rt - route_table) + 1;
    if (rt->flags & (R_JSON | R_JSON_OPT | R_FORM)) {
        int rc = req_read_body(r, rt->body_max ? rt->body_max : (size_t)cfg.max_body_size);
        if (rc)
            return rc;
    }
    if ((rt->flags & R_JSON) || ((rt->flags & R_JSON_OPT) && r->body_len)) {
        int rc = route_parse_json(r);
        if (rc)
            return rc;
    }
    int rc = (rt->flags & R_AUTH) ? auth_require(r) : 0;
    if (!rc)
        rc = rt->handler(r);
    /* A streamed body left unread (401, 429, a failed upload) would reset the connection. */
    if (rt->flags & R_STREAM)
        req_drain(r);
    return rc;
}

void route_dispatch(struct req *r)
{
    metrics_gauge_add(METRICS_HTTP_IN_FLIGHT, 1);
    int status = route_run(r);
    if (status >= 400)
        resp_error(r, status);
    else if (!r->answered) {
        log_error("%s %s: handler returned %d without answering", r->method, r->path, status);
        resp_error(r, 500);
    }
    metrics_http(r->route, r->status, resp_now() - r->t_start);
    metrics_gauge_add(METRICS_HTTP_IN_FLIGHT, -1);
}
