#include "resp.h"

#include <fcgiapp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cfg.h"
#include "jx.h"
#include "log.h"
#include "req.h"

double resp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int resp_header(struct req *r, const char *key, const char *val)
{
    if (r->n_out_hdr == REQ_MAX_HEADERS)
        return -1;
    r->out_hdr[r->n_out_hdr].key = key;
    r->out_hdr[r->n_out_hdr].val = val;
    r->n_out_hdr++;
    return 0;
}

static const char *resp_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 302:
        return "Found";
    case 307:
        return "Temporary Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Request Entity Too Large";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 503:
        return "Service Unavailable";
    case 507:
        return "Insufficient Storage";
    default:
        return status >= 500 ? "Internal Server Error" : "Error";
    }
}

/* libfcgi's own printf knows no %zu and silently eats what follows: format with libc. */
static void resp_printf(FCGX_Stream *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void resp_printf(FCGX_Stream *out, const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        FCGX_PutStr(line, n < (int)sizeof(line) ? n : (int)sizeof(line) - 1, out);
}

/* Security, timing and CORS headers every response carries (API.md "Conventions"). */
static void resp_common_headers(struct req *r, FCGX_Stream *out)
{
    FCGX_PutS("X-Content-Type-Options: nosniff\r\n"
              "X-Frame-Options: DENY\r\n"
              "X-XSS-Protection: 1; mode=block\r\n"
              "Referrer-Policy: strict-origin-when-cross-origin\r\n",
              out);
    if (!cfg.debug)
        FCGX_PutS("Strict-Transport-Security: max-age=31536000; includeSubDomains\r\n", out);
    if (r->origin && cfg_origin_allowed(r->origin, strlen(r->origin)))
        resp_printf(out,
                    "Access-Control-Allow-Origin: %s\r\n"
                    "Access-Control-Allow-Credentials: true\r\n"
                    "Access-Control-Expose-Headers: X-Process-Time\r\n"
                    "Vary: Origin\r\n",
                    r->origin);
    resp_printf(out, "X-Process-Time: %.6f\r\n", resp_now() - r->t_start);
}

int resp_raw(struct req *r, int status, const char *ctype, const char *body, size_t len)
{
    FCGX_Stream *out = r->fcgi->out;
    r->answered = 1;
    r->status = status;
    resp_printf(out, "Status: %d %s\r\n", status, resp_reason(status));
    if (ctype)
        resp_printf(out, "Content-Type: %s\r\nContent-Length: %zu\r\n", ctype, len);
    for (int i = 0; i < r->n_out_hdr; i++) {
        FCGX_PutS(r->out_hdr[i].key, out);
        FCGX_PutS(": ", out);
        FCGX_PutS(r->out_hdr[i].val, out);
        FCGX_PutS("\r\n", out);
    }
    resp_common_headers(r, out);
    FCGX_PutS("\r\n", out);
    if (body && len && strcmp(r->method, "HEAD") != 0)
        FCGX_PutStr(body, (int)len, out);
    return 0;
}

int resp_json(struct req *r, int status, json_object *body)
{
    if (!body)
        return resp_raw(r, status, NULL, NULL, 0);
    size_t len;
    const char *s = jx_text(body, &len);
    return resp_raw(r, status, "application/json", s, len);
}

int resp_db_err(struct req *r, enum db_err err)
{
    switch (err) {
    case DB_UNAVAILABLE:
        return req_err(r, 503, "Database unavailable");
    case DB_TIMEOUT:
    case DB_RETRY:
        return req_err(r, 503, "Database busy");
    case DB_CONFLICT:
        return req_err(r, 409, "Conflict");
    case DB_INVALID:
        return req_invalid(r, "body", NULL, "Invalid value", "value_error");
    case DB_OK:
    case DB_ERROR:
        break;
    }
    log_error("db: %s %s failed on our side (SQL error %d); see the db: line above", r->method,
              r->path, (int)err);
    return req_err(r, 500, "Internal Server Error");
}

int resp_error(struct req *r, int status)
{
    json_object *o = json_object_new_object();
    if (r->err_json)
        json_object_object_add(o, "detail", json_object_get(r->err_json));
    else
        json_object_object_add(
            o, "detail",
            json_object_new_string(r->err_detail ? r->err_detail : resp_reason(status)));
    if (status >= 500)
        log_error("%s %s -> %d %s", r->method, r->path, status, r->err_detail ? r->err_detail : "");
    else
        log_info("%s %s -> %d %s", r->method, r->path, status, r->err_detail ? r->err_detail : "");
    if (status == 401 && !r->answered)
        resp_header(r, "WWW-Authenticate", "Bearer");
    resp_json(r, status, o);
    json_object_put(o);
    return 0;
}
