#ifndef CHATD_REQ_H
#define CHATD_REQ_H

#include <json-c/json.h>
#include <stddef.h>

#include "arena.h"

struct FCGX_Request;
struct auth_user;

#define REQ_MAX_PARAMS 4
#define REQ_MAX_HEADERS 16

struct req_kv {
    const char *key;
    const char *val;
};

/* One HTTP request and its response, all in the worker's arena. */
struct req {
    struct arena *a;
    struct FCGX_Request *fcgi;
    double t_start;

    const char *method;
    const char *path;   /* decoded, as nginx normalised it */
    const char *query;  /* raw query string, "" when none */
    const char *origin; /* NULL when absent */
    const char *req_id;
    const char *remote_addr;
    long content_length;
    char *body; /* NUL-terminated; NULL when empty */
    size_t body_len;
    json_object *json; /* parsed body of R_JSON routes; owned by the arena */

    const char *params[REQ_MAX_PARAMS]; /* typed path parameters, in order */
    int nparams;

    struct auth_user *user; /* set by authentication (R_AUTH routes) */
    int route;              /* metrics slot: 1 + index in route_table, 0 when none matched */

    /* response state */
    int answered;
    int status;
    const char *err_detail; /* "detail": "<text>" */
    json_object *err_json;  /* any other "detail" shape (422 list, {code, reason}) */
    struct req_kv out_hdr[REQ_MAX_HEADERS];
    int n_out_hdr;
};

/* Fills r from the FastCGI params. Returns 0. */
int req_init(struct req *r, struct arena *a, struct FCGX_Request *f);
/* A request header by its CGI name (e.g. "HTTP_ORIGIN"); NULL when absent. */
const char *req_param(struct req *r, const char *cgi_name);
/* A decoded query parameter; NULL when absent. First occurrence wins. */
const char *req_query(struct req *r, const char *name);
/*
 * An integer query parameter in [min, max]; def when absent. Returns 0, or
 * 422 (loc ["query", name]) when malformed or out of range.
 */
int req_query_long(struct req *r, const char *name, long min, long max, long def, long *out);
/*
 * The `limit` (1-100, default 50) and `offset` (0-100000) of a list, as text
 * for SQL parameters. Returns 0 or 422.
 */
int req_page(struct req *r, const char **limit, const char **offset);
/* A UUID query parameter, lower-cased; *out NULL when absent. Returns 0 or 422. */
int req_query_uuid(struct req *r, const char *name, const char **out);
/* A cookie's value; NULL when absent. */
const char *req_cookie(struct req *r, const char *name);
/*
 * Reads the body into r->body when it is at most limit bytes. Returns 0, or
 * 413 (the rest is drained so the connection stays sane).
 */
int req_read_body(struct req *r, size_t limit);
/* Reads and drops what is left of the request body. */
void req_drain(struct req *r);
/* Percent-decodes s[0..n) ('+' as space when form is set); NULL on a bad escape or NUL. */
char *req_decode(struct arena *a, const char *s, size_t n, int form);

/*
 * Error recording for handlers: each returns the status so a handler can
 * `return req_err(r, 404, "Not Found");`. resp_error() writes it.
 */
int req_err(struct req *r, int status, const char *detail);
/* {"detail": {"code": code, "reason": reason}} */
int req_err_code(struct req *r, int status, const char *code, const char *reason);
/* 422 {"detail": [{"loc": [where, field], "msg": msg, "type": type}]} */
int req_invalid(struct req *r, const char *where, const char *field, const char *msg,
                const char *type);

#endif
