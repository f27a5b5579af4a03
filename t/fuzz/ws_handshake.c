/*
 * Fuzzes what chat-wsd reads from a WebSocket handshake (wsd/ws_auth.c, #included for its
 * static functions): the {user_id} of the path, ?token= and ?since= among the query
 * arguments, the access_token cookie, the Origin check and X-Request-Id. The input is cut
 * at newlines into: request URI (path?args), Cookie, Origin, X-Request-Id; an empty line is
 * an absent header.
 *
 * libwebsockets is not running: its header accessors (lws_hdr_copy() and friends) are
 * renamed, for ws_auth.c only, to fakes over the input that keep the documented contracts
 * of lws 4.1 (lengths without the NUL, -1 when the buffer is too small, query arguments as
 * url-decoded '&' fragments), and time() to a fixed clock.
 *
 * Invariants: statuses 0/403/404 only; a user id is 36 lower-case UUID characters; the
 * request id is hex and '-' within its buffer; since is -1, -2 or 0..10^18; a token is
 * non-empty, terminated and shorter than its buffer; the close reason is one of WS.md's.
 */
#include "str.h"
#include "fuzz.h"

#include <libwebsockets.h>
#include <time.h>

/* A fixed clock for the token check (2023-11-14), so that the harness is deterministic. */
static time_t wh_clock(time_t *t)
{
    (void)t;
    return 1700000000;
}

static int wh_hdr_total_length(struct lws *wsi, enum lws_token_indexes h);
static int wh_hdr_copy(struct lws *wsi, char *dst, int len, enum lws_token_indexes h);
static int wh_hdr_fragment_length(struct lws *wsi, enum lws_token_indexes h, int frag_idx);
static int wh_hdr_copy_fragment(struct lws *wsi, char *dst, int len, enum lws_token_indexes h,
                                int frag_idx);
static int wh_hdr_custom_copy(struct lws *wsi, char *dst, int len, const char *name, int nlen);

#define lws_hdr_total_length wh_hdr_total_length
#define lws_hdr_copy wh_hdr_copy
#define lws_hdr_fragment_length wh_hdr_fragment_length
#define lws_hdr_copy_fragment wh_hdr_copy_fragment
#define lws_hdr_custom_copy wh_hdr_custom_copy
#define time(t) wh_clock(t)
#include "../../wsd/ws_auth.c"
#undef time
#undef lws_hdr_total_length
#undef lws_hdr_copy
#undef lws_hdr_fragment_length
#undef lws_hdr_copy_fragment
#undef lws_hdr_custom_copy

#define WH_MAX_ARGS 64

/* A header or fragment: bytes (NULs allowed after url-decoding) and their length. */
struct wh_val {
    char *s;
    int len;
};

/* The handshake as lws would hold it once parsed. */
struct wh_req {
    struct wh_val uri, cookie, origin, req_id;
    struct wh_val args[WH_MAX_ARGS];
    int nargs;
};

static const struct wh_val *wh_header(struct lws *wsi, enum lws_token_indexes h)
{
    const struct wh_req *r = (const struct wh_req *)wsi;
    switch (h) {
    case WSI_TOKEN_GET_URI:
        return &r->uri;
    case WSI_TOKEN_HTTP_COOKIE:
        return &r->cookie;
    case WSI_TOKEN_ORIGIN:
        return &r->origin;
    default:
        return NULL;
    }
}

static int wh_hdr_total_length(struct lws *wsi, enum lws_token_indexes h)
{
    const struct wh_req *r = (const struct wh_req *)wsi;
    if (h == WSI_TOKEN_HTTP_URI_ARGS) {
        int n = 0;
        for (int i = 0; i < r->nargs; i++)
            n += r->args[i].len + (i > 0);
        return n;
    }
    const struct wh_val *v = wh_header(wsi, h);
    return v ? v->len : 0;
}

/* lws 4.1: "" and 0 when absent, -1 when dst cannot take the value and a NUL. */
static int wh_put(char *dst, int len, const struct wh_val *v)
{
    if (len > 0)
        *dst = '\0';
    if (!v || !v->len)
        return 0;
    if (v->len >= len)
        return -1;
    memcpy(dst, v->s, (size_t)v->len);
    dst[v->len] = '\0';
    return v->len;
}

static int wh_hdr_copy(struct lws *wsi, char *dst, int len, enum lws_token_indexes h)
{
    FUZZ_CHECK(h != WSI_TOKEN_HTTP_URI_ARGS); /* ws_auth.c reads arguments one by one */
    return wh_put(dst, len, wh_header(wsi, h));
}

static int wh_hdr_fragment_length(struct lws *wsi, enum lws_token_indexes h, int frag_idx)
{
    const struct wh_req *r = (const struct wh_req *)wsi;
    if (h != WSI_TOKEN_HTTP_URI_ARGS)
        return frag_idx == 0 ? wh_hdr_total_length(wsi, h) : 0;
    return frag_idx >= 0 && frag_idx < r->nargs ? r->args[frag_idx].len : 0;
}

static int wh_hdr_copy_fragment(struct lws *wsi, char *dst, int len, enum lws_token_indexes h,
                                int frag_idx)
{
    const struct wh_req *r = (const struct wh_req *)wsi;
    FUZZ_CHECK(h == WSI_TOKEN_HTTP_URI_ARGS);
    if (frag_idx < 0 || frag_idx >= r->nargs)
        return -1;
    const struct wh_val *v = &r->args[frag_idx];
    if (v->len >= len)
        return -1;
    memcpy(dst, v->s, (size_t)v->len);
    dst[v->len] = '\0';
    return v->len;
}

/* Custom headers are stored lower-cased with their colon ("x-request-id:"). */
static int wh_hdr_custom_copy(struct lws *wsi, char *dst, int len, const char *name, int nlen)
{
    const struct wh_req *r = (const struct wh_req *)wsi;
    if (len > 0)
        *dst = '\0';
    if (nlen != 13 || strncmp(name, "x-request-id:", 13) || !r->req_id.len)
        return -1;
    if (r->req_id.len + 1 > len)
        return -1;
    memcpy(dst, r->req_id.s, (size_t)r->req_id.len);
    dst[r->req_id.len] = '\0';
    return r->req_id.len;
}

/* s[0..n) url-decoded (lws decodes the URI and its arguments), in a malloc'd buffer. */
static struct wh_val wh_decode(const char *s, size_t n)
{
    struct wh_val v = {malloc(n + 1), 0};
    FUZZ_CHECK(v.s);
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%' && i + 2 < n && str_hex((unsigned char)s[i + 1]) >= 0 &&
            str_hex((unsigned char)s[i + 2]) >= 0) {
            c = str_hex((unsigned char)s[i + 1]) << 4 | str_hex((unsigned char)s[i + 2]);
            i += 2;
        }
        v.s[v.len++] = (char)c;
    }
    v.s[v.len] = '\0';
    return v;
}

static struct wh_val wh_plain(const char *s)
{
    struct wh_val v = {strdup(s), (int)strlen(s)};
    FUZZ_CHECK(v.s);
    return v;
}

static void wh_parse(struct wh_req *r, char **part)
{
    const char *uri = part[0], *q = strchr(uri, '?');
    size_t plen = q ? (size_t)(q - uri) : strlen(uri);
    r->uri = wh_decode(uri, plen);
    for (const char *a = q ? q + 1 : NULL; a && *a && r->nargs < WH_MAX_ARGS;) {
        size_t n = strcspn(a, "&");
        if (n)
            r->args[r->nargs++] = wh_decode(a, n);
        a += n + (a[n] == '&');
    }
    r->cookie = wh_plain(part[1]);
    r->origin = wh_plain(part[2]);
    r->req_id = wh_plain(part[3]);
}

static void wh_free(struct wh_req *r)
{
    free(r->uri.s);
    free(r->cookie.s);
    free(r->origin.s);
    free(r->req_id.s);
    for (int i = 0; i < r->nargs; i++)
        free(r->args[i].s);
}

static void wh_checks(struct lws *wsi, const char *cookie)
{
    unsigned status = ws_auth_upgrade_status(wsi);
    FUZZ_CHECK(status == 0 || status == HTTP_STATUS_FORBIDDEN || status == HTTP_STATUS_NOT_FOUND);

    char user[37] = "";
    int rc = ws_auth_path_user(wsi, user);
    FUZZ_CHECK(rc == 0 || rc == -1 || rc == -2);
    FUZZ_CHECK(rc != 0 || status != HTTP_STATUS_NOT_FOUND);
    if (rc == 0) {
        FUZZ_CHECK(strlen(user) == 36 && str_is_uuid(user));
        for (int i = 0; i < 36; i++)
            FUZZ_CHECK(user[i] < 'A' || user[i] > 'F');
    }

    char req_id[65];
    ws_auth_request_id(wsi, req_id, sizeof(req_id));
    FUZZ_CHECK(strlen(req_id) < sizeof(req_id) &&
               strspn(req_id, "0123456789abcdefABCDEF-") == strlen(req_id));

    long long since = ws_auth_since(wsi);
    FUZZ_CHECK(since == -1 || since == -2 || (since >= 0 && since < 1000000000000000000LL));

    char *token = ws_auth_token(wsi);
    if (token) {
        size_t n = strnlen(token, WS_AUTH_COOKIE_MAX);
        FUZZ_CHECK(n > 0 && n < WS_AUTH_COOKIE_MAX);
        free(token);
    }

    struct tok_claims claims;
    const char *why = ws_auth_check_token(wsi, rc == 0 ? user : "", &claims);
    if (getenv("FUZZ_DEBUG")) /* what the handshake came to, to write a corpus */
        fprintf(stderr, "status %u user %d since %lld req_id \"%s\": %s\n", status, rc, since,
                req_id, why ? why : "accepted");
    FUZZ_CHECK(!why || !strcmp(why, "Missing token") || !strcmp(why, "Invalid or expired token") ||
               !strcmp(why, "Token user_id mismatch"));

    /* The cookie parser alone, with buffers around a typical token's size. */
    static const size_t sizes[] = {1, 2, 16, 512, WS_AUTH_COOKIE_MAX};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
        char *out = malloc(sizes[i]);
        FUZZ_CHECK(out);
        if (ws_auth_cookie(cookie, "access_token", out, sizes[i]) == 0)
            FUZZ_CHECK(out[0] && strlen(out) < sizes[i] && strlen(out) < strlen(cookie));
        free(out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char cors[] = "http://localhost:3000,http://127.0.0.1:8000";
    static char public_url[] = "http://chat.example";
    static int ready;
    if (!ready) {
        FUZZ_CHECK(cfg_split_list(cors, &cfg.cors_origins) == 0);
        cfg.public_url = public_url;
        cfg.secret_key = "fuzz-secret-key-0123456789abcdef0123456789abcdef";
        cfg.refresh_secret_key = "fuzz-refresh-key-fedcba9876543210fedcba9876543210";
        log_set_level(LOG_ERROR);
        ready = 1;
    }
    char *part[4];
    fuzz_split(data, size, part, 4);
    struct wh_req r;
    memset(&r, 0, sizeof(r));
    wh_parse(&r, part);
    wh_checks((struct lws *)&r, part[1]);
    wh_free(&r);
    fuzz_free_parts(part, 4);
    return 0;
}
