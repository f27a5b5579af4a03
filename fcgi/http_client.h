#ifndef CHATD_HTTP_CLIENT_H
#define CHATD_HTTP_CLIENT_H

#include <json-c/json.h>
#include <stddef.h>

struct arena;

/* Largest response body read from an outside service; a longer one is a failure. */
#define HTTPC_MAX_BODY (64 * 1024)
/* Whole-request timeout (connect included), in milliseconds. */
#define HTTPC_TIMEOUT_MS 10000

/* A finished exchange: the status and the NUL-terminated body (in the arena). */
struct httpc_resp {
    long status;
    char *body;
    size_t len;
};

/*
 * POSTs form (already application/x-www-form-urlencoded) to url. Only http and
 * https, no redirects followed. Returns 0 with *out filled, whatever the
 * status, or -1 when the exchange failed (unreachable, timeout, a body over
 * HTTPC_MAX_BODY). Logs the failure's class, never the request's content.
 */
int httpc_post_form(struct arena *a, const char *url, const char *form, struct httpc_resp *out);

/* GETs url with "Authorization: Bearer <bearer>"; as httpc_post_form otherwise. */
int httpc_get_bearer(struct arena *a, const char *url, const char *bearer, struct httpc_resp *out);

/*
 * Parses a response body that must be one JSON object (strict, valid UTF-8).
 * Returns it, owned by the arena, or NULL.
 */
json_object *httpc_json(struct arena *a, const struct httpc_resp *res);

/*
 * s percent-encoded for a query string or form (RFC 3986 unreserved kept);
 * NULL past the cap, or when s is NULL.
 */
char *httpc_escape(struct arena *a, const char *s);

#endif
