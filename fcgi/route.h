#ifndef CHATD_ROUTE_H
#define CHATD_ROUTE_H

#include <stddef.h>

struct req;

enum route_flags {
    R_JSON = 1 << 0,     /* body is a JSON object: parsed before the handler, 422 when malformed */
    R_FORM = 1 << 1,     /* body is application/x-www-form-urlencoded */
    R_AUTH = 1 << 2,     /* needs an access token (Bearer, then cookie) */
    R_JSON_OPT = 1 << 3, /* a JSON object body is optional: parsed when present */
    R_STREAM = 1 << 4,   /* the handler streams the body itself; what it leaves is drained */
};

/*
 * A handler answers with resp_json()/resp_raw() and returns 0, or returns an
 * HTTP status >= 400 after recording the detail with req_err*().
 */
typedef int (*route_handler)(struct req *r);

struct route {
    const char *method;
    const char *pattern; /* segments; "{name:uuid}", "{name:int}", "{name:file}" are typed */
    route_handler handler;
    unsigned flags;
    size_t body_max; /* 0: the MAX_BODY_SIZE setting */
};

extern const struct route route_table[];
extern const size_t route_count;

/* Answers one request: CORS preflight, routing, body, auth, handler, errors. */
void route_dispatch(struct req *r);

/*
 * Matches path against pattern. Returns 1 on a match (params filled), 0 when
 * the shape differs, -1 when the shape matches but a typed parameter does
 * not (*bad names it).
 */
int route_match(const char *pattern, const char *path, const char **params, int *nparams, char *bad,
                size_t badlen, struct req *r);

#endif
