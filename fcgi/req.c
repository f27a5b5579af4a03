#include "req.h"

#include <ctype.h>
#include <errno.h>
#include <fcgiapp.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"
#include "str.h"
#include "jx.h"
#include "resp.h"

const char *req_param(struct req *r, const char *cgi_name)
{
    return FCGX_GetParam(cgi_name, r->fcgi->envp);
}

static const char *req_param_or(struct req *r, const char *name, const char *def)
{
    const char *v = req_param(r, name);
    return v ? v : def;
}

int req_init(struct req *r, struct arena *a, struct FCGX_Request *f)
{
    memset(r, 0, sizeof(*r));
    r->a = a;
    r->fcgi = f;
    r->t_start = resp_now();
    r->method = req_param_or(r, "REQUEST_METHOD", "GET");
    r->query = req_param_or(r, "QUERY_STRING", "");
    r->origin = req_param(r, "HTTP_ORIGIN");
    r->req_id = req_param_or(r, "REQUEST_ID", "-");
    r->remote_addr = req_param_or(r, "REMOTE_ADDR", "");
    /* nginx's $uri: already percent-decoded and with dot segments resolved. */
    const char *path = req_param(r, "DOCUMENT_URI");
    if (!path) {
        const char *uri = req_param_or(r, "REQUEST_URI", "/");
        size_t n = strcspn(uri, "?");
        path = req_decode(a, uri, n, 0);
    }
    r->path = path && *path ? path : "/";
    const char *cl = req_param(r, "CONTENT_LENGTH");
    r->content_length = cl && *cl ? strtol(cl, NULL, 10) : 0;
    if (r->content_length < 0)
        r->content_length = 0;
    return 0;
}

char *req_decode(struct arena *a, const char *s, size_t n, int form)
{
    char *out = arena_alloc(a, n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 1 < n ? str_hex((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? str_hex((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return NULL;
            c = hi << 4 | lo;
            i += 2;
        } else if (c == '+' && form) {
            c = ' ';
        }
        if (c == 0)
            return NULL;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
}

/* A value that does not percent-decode (a bad escape, %00) reads as "", which every typed
 * reader refuses with a 422, rather than as absent, which would mean "use the default". */
static const char *req_query_value(struct req *r, const char *s, size_t n)
{
    const char *v = req_decode(r->a, s, n, 1);
    return v ? v : "";
}

const char *req_query(struct req *r, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = r->query; *p;) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        size_t kl = eq ? (size_t)(eq - p) : len;
        char *key = req_decode(r->a, p, kl, 1);
        if (key && strlen(key) == nl && !memcmp(key, name, nl))
            return eq ? req_query_value(r, eq + 1, len - kl - 1) : "";
        p += len;
        if (*p == '&')
            p++;
    }
    return NULL;
}

int req_query_long(struct req *r, const char *name, long min, long max, long def, long *out)
{
    const char *v = req_query(r, name);
    *out = def;
    if (!v)
        return 0;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (!*v || *end || errno)
        return req_invalid(r, "query", name, "Input should be a valid integer", "int_parsing");
    if (n < min)
        return req_invalid(r, "query", name,
                           arena_printf(r->a, "Input should be greater than or equal to %ld", min),
                           "greater_than_equal");
    if (n > max)
        return req_invalid(r, "query", name,
                           arena_printf(r->a, "Input should be less than or equal to %ld", max),
                           "less_than_equal");
    *out = n;
    return 0;
}

int req_page(struct req *r, const char **limit, const char **offset)
{
    long l, o;
    int rc = req_query_long(r, "limit", 1, 100, 50, &l);
    if (!rc)
        rc = req_query_long(r, "offset", 0, 100000, 0, &o);
    if (rc)
        return rc;
    *limit = arena_printf(r->a, "%ld", l);
    *offset = arena_printf(r->a, "%ld", o);
    return *limit && *offset ? 0 : req_err(r, 413, "Request too large");
}

int req_query_uuid(struct req *r, const char *name, const char **out)
{
    const char *v = req_query(r, name);
    *out = NULL;
    if (!v)
        return 0;
    if (!str_is_uuid(v))
        return req_invalid(r, "query", name, "Input should be a valid UUID", "uuid_parsing");
    char *low = arena_alloc(r->a, 37);
    *out = low ? str_lower(low, v, 36) : NULL;
    return 0;
}

const char *req_cookie(struct req *r, const char *name)
{
    size_t n;
    const char *v = str_cookie(req_param(r, "HTTP_COOKIE"), name, &n);
    return v ? arena_strndup(r->a, v, n) : NULL;
}

void req_drain(struct req *r)
{
    char buf[16384];
    while (FCGX_GetStr(buf, sizeof(buf), r->fcgi->in) > 0)
        ;
}

int req_read_body(struct req *r, size_t limit)
{
    if (r->content_length == 0)
        return 0;
    if ((size_t)r->content_length > limit) {
        req_drain(r);
        return req_err(r, 413, "Request body too large");
    }
    char *buf = arena_alloc(r->a, (size_t)r->content_length + 1);
    if (!buf) {
        req_drain(r);
        return req_err(r, 413, "Request body too large");
    }
    int got = FCGX_GetStr(buf, (int)r->content_length, r->fcgi->in);
    r->body = buf;
    r->body_len = got > 0 ? (size_t)got : 0;
    buf[r->body_len] = '\0';
    return 0;
}

int req_err(struct req *r, int status, const char *detail)
{
    r->err_detail = detail;
    r->err_json = NULL;
    return status;
}

static int req_err_obj(struct req *r, int status, json_object *detail)
{
    r->err_json = jx_keep(r->a, detail); /* NULL: resp_error falls back to the status text */
    r->err_detail = NULL;
    return status;
}

int req_err_code(struct req *r, int status, const char *code, const char *reason)
{
    json_object *d = json_object_new_object();
    json_object_object_add(d, "code", json_object_new_string(code));
    json_object_object_add(d, "reason", json_object_new_string(reason));
    return req_err_obj(r, status, d);
}

int req_invalid(struct req *r, const char *where, const char *field, const char *msg,
                const char *type)
{
    json_object *loc = json_object_new_array();
    json_object_array_add(loc, json_object_new_string(where));
    if (field)
        json_object_array_add(loc, json_object_new_string(field));
    json_object *e = json_object_new_object();
    json_object_object_add(e, "loc", loc);
    json_object_object_add(e, "msg", json_object_new_string(msg));
    json_object_object_add(e, "type", json_object_new_string(type));
    json_object *list = json_object_new_array();
    json_object_array_add(list, e);
    return req_err_obj(r, 422, list);
}
