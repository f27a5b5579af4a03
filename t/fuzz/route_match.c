/*
 * Fuzzes what fcgi reads from the request line and headers before any handler runs. The
 * input is cut at newlines into: path (nginx's decoded $uri), query string, Cookie header,
 * Origin header, and a CORS_ORIGINS_STR value. The method comes from a hash of the input.
 *
 *   - route_match() of the path against every pattern of the route table, and the router's
 *     own lookup (route_find(), static in fcgi/route.c) with its 404/405/422/307 answers and
 *     the CORS preflight, written to an in-memory FastCGI stream; no handler runs;
 *   - req_decode() of the path, req_query()/req_query_long()/req_page()/req_query_uuid() of
 *     the query, req_cookie() of the cookie;
 *   - cfg_split_list() of the CORS list and cfg_origin_allowed() of the Origin.
 *
 * Invariants: matcher results in range and parameters within the segment; decoded strings no
 * longer than their input; integers within their bounds; every answer has a CRLF-clean header
 * block and an error answer a JSON body with "detail".
 */
#include "fuzz.h"

#include <fcgiapp.h>
#include <json-c/json.h>

#include "../../fcgi/route.c"
#include "log.h"
#include "str.h"

enum { RM_PATH, RM_QUERY, RM_COOKIE, RM_ORIGIN, RM_CORS, RM_PARTS };

static struct arena rm_arena;
static int rm_ready;
static unsigned char rm_out[1 << 20];
static int rm_overflow;

/* The writer's buffer is full: the answer is too big to check, forget it. */
static void rm_flush(FCGX_Stream *s, int close)
{
    (void)close;
    rm_overflow = 1;
    s->wrNext = rm_out;
}

/* The matcher alone, with and without a request to copy parameters into. */
static void rm_match_all(struct req *r, const char *path)
{
    size_t plen = strlen(path);
    for (size_t i = 0; i < route_count; i++) {
        const char *params[REQ_MAX_PARAMS] = {0};
        char bad[64] = "", bad2[64] = "";
        int n = -1, n2 = -1;
        int m = route_match(route_table[i].pattern, path, params, &n, bad, sizeof(bad), r);
        int m2 = route_match(route_table[i].pattern, path, NULL, &n2, bad2, sizeof(bad2), NULL);
        FUZZ_CHECK(m >= -1 && m <= 1 && m == m2);
        FUZZ_CHECK(n >= 0 && n <= REQ_MAX_PARAMS && n2 == 0);
        FUZZ_CHECK(strlen(bad) < sizeof(bad) && !strcmp(bad, bad2));
        if (m == -1)
            FUZZ_CHECK(bad[0] != '\0');
        for (int k = 0; m == 1 && k < n; k++)
            FUZZ_CHECK(params[k] && params[k][0] && !strchr(params[k], '/') &&
                       strlen(params[k]) < plen);
    }
}

static void rm_decode(struct req *r, const char *s)
{
    size_t n = strlen(s);
    for (int form = 0; form <= 1; form++) {
        const char *d = req_decode(r->a, s, n, form);
        if (d)
            FUZZ_CHECK(strlen(d) <= n);
        if (!strpbrk(s, form ? "%+" : "%"))
            FUZZ_CHECK(d && !strcmp(d, s));
    }
}

static void rm_query(struct req *r)
{
    static const char *const names[] = {"limit",     "offset", "query", "receiver_id", "group_id",
                                        "user_id",   "token",  "state", "code",        "error",
                                        "is_online", "before", ""};
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
        const char *v = req_query(r, names[i]);
        if (v)
            FUZZ_CHECK(strlen(v) <= strlen(r->query));
    }
    long v;
    int rc = req_query_long(r, "limit", 1, 100, 50, &v);
    FUZZ_CHECK((rc == 0 && v >= 1 && v <= 100) || (rc == 422 && r->err_json));
    rc = req_query_long(r, "offset", 0, 100000, 0, &v);
    FUZZ_CHECK((rc == 0 && v >= 0 && v <= 100000) || rc == 422);
    const char *limit, *offset;
    rc = req_page(r, &limit, &offset);
    FUZZ_CHECK(rc == 0 || rc == 422 || rc == 413);
    if (rc == 0)
        FUZZ_CHECK(atol(limit) >= 1 && atol(limit) <= 100 && atol(offset) >= 0 &&
                   atol(offset) <= 100000);
    const char *names_uuid[] = {"receiver_id", "group_id", "user_id"};
    for (size_t i = 0; i < 3; i++) {
        const char *u;
        rc = req_query_uuid(r, names_uuid[i], &u);
        FUZZ_CHECK(rc == 0 || rc == 422);
        if (rc == 0 && u)
            FUZZ_CHECK(strlen(u) == 36 && str_is_uuid(u));
    }
}

static void rm_cookie(struct req *r, const char *cookie)
{
    static const char *const names[] = {"access_token", "refresh_token", "a"};
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
        const char *v = req_cookie(r, names[i]);
        if (v)
            FUZZ_CHECK(strlen(v) + strlen(names[i]) < strlen(cookie));
    }
}

/* The answer written to rm_out: a clean header block, and JSON with "detail" for an error. */
static void rm_check_answer(const struct req *r, size_t len)
{
    if (rm_overflow)
        return;
    const char *out = (const char *)rm_out;
    const char *end = memmem(out, len, "\r\n\r\n", 4);
    FUZZ_CHECK(end && !strncmp(out, "Status: ", 8));
    for (const char *p = out; p < end; p++)
        if (*p == '\r' || *p == '\n')
            FUZZ_CHECK(p[0] == '\r' ? p[1] == '\n' : p[-1] == '\r');
    if (r->status < 400 || !strcmp(r->method, "HEAD"))
        return;
    const char *body = end + 4;
    size_t blen = len - (size_t)(body - out);
    json_tokener *tok = json_tokener_new();
    FUZZ_CHECK(tok);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, body, (int)blen);
    int complete = o && json_tokener_get_parse_end(tok) == blen;
    json_tokener_free(tok);
    json_object *detail;
    if (!complete)
        fprintf(stderr, "answer: %.*s\n", (int)len, out);
    FUZZ_CHECK(complete && json_object_object_get_ex(o, "detail", &detail));
    json_object_put(o);
}

/* route_dispatch() without the handler: preflight, lookup, and the error answers. */
static void rm_route(struct req *r)
{
    int status = 0;
    if (r->origin && !strcmp(r->method, "OPTIONS") &&
        req_param(r, "HTTP_ACCESS_CONTROL_REQUEST_METHOD")) {
        status = route_preflight(r);
    } else {
        const struct route *rt = route_find(r, &status);
        if (rt) {
            FUZZ_CHECK(route_method_is(rt, r->method));
            const char *params[REQ_MAX_PARAMS];
            int n;
            char bad[64];
            FUZZ_CHECK(route_match(rt->pattern, r->path, params, &n, bad, sizeof(bad), NULL) == 1);
            return;
        }
    }
    if (status >= 400)
        resp_error(r, status);
    FUZZ_CHECK(r->answered);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET",  "POST", "PATCH",   "DELETE",
                                          "HEAD", "PUT",  "OPTIONS", "OPTIONS"};
    if (!rm_ready) {
        arena_init(&rm_arena, 64u << 20);
        log_set_level(LOG_ERROR);
        rm_ready = 1;
    }
    char *part[RM_PARTS];
    fuzz_split(data, size, part, RM_PARTS);
    uint32_t h = fuzz_hash(data, size);

    char *cookie = NULL, *origin = NULL;
    if (asprintf(&cookie, "HTTP_COOKIE=%s", part[RM_COOKIE]) < 0 ||
        asprintf(&origin, "HTTP_ORIGIN=%s", part[RM_ORIGIN]) < 0)
        abort();
    char *envp[] = {cookie, origin, "HTTP_ACCESS_CONTROL_REQUEST_METHOD=POST",
                    "HTTP_ACCESS_CONTROL_REQUEST_HEADERS=content-type", NULL};
    FCGX_Stream out = {
        .wrNext = rm_out, .stop = rm_out + sizeof(rm_out), .emptyBuffProc = rm_flush};
    FCGX_Request fr = {.out = &out, .envp = envp};
    struct req r;
    memset(&r, 0, sizeof(r));
    r.a = &rm_arena;
    r.fcgi = &fr;
    r.method = methods[h % 8];
    r.path = *part[RM_PATH] ? part[RM_PATH] : "/";
    r.query = part[RM_QUERY];
    /* HTTP header values carry no CR or LF (nginx refuses them), so neither does an Origin. */
    r.origin = (h >> 3) % 2 && !strchr(part[RM_ORIGIN], '\r') ? part[RM_ORIGIN] : NULL;
    r.req_id = "-";
    r.remote_addr = "127.0.0.1";
    rm_overflow = 0;

    rm_match_all(&r, r.path);
    rm_decode(&r, r.path);
    rm_decode(&r, r.query);
    rm_query(&r);
    rm_cookie(&r, part[RM_COOKIE]);

    struct cfg_list saved = cfg.cors_origins;
    char *list = strdup(part[RM_CORS]);
    FUZZ_CHECK(list);
    struct cfg_list l = {0};
    if (cfg_split_list(list, &l) == 0) {
        FUZZ_CHECK(l.n <= CFG_LIST_MAX && (l.n > 0 || !*part[RM_CORS]));
        for (int i = 0; i < l.n; i++)
            FUZZ_CHECK(l.item[i][0] && !strpbrk(l.item[i], " \t[]\"',"));
        cfg.cors_origins = l;
        for (int i = 0; i < l.n; i++)
            FUZZ_CHECK(cfg_origin_allowed(l.item[i], strlen(l.item[i])));
    }
    (void)cfg_origin_allowed(part[RM_ORIGIN], strlen(part[RM_ORIGIN]));

    r.err_json = NULL;
    r.err_detail = NULL;
    rm_route(&r);
    if (r.answered)
        rm_check_answer(&r, (size_t)(out.wrNext - rm_out));

    cfg.cors_origins = saved;
    free(list);
    free(cookie);
    free(origin);
    fuzz_free_parts(part, RM_PARTS);
    arena_reset(&rm_arena);
    return 0;
}
