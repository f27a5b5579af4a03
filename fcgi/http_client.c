#include "http_client.h"

#include <curl/curl.h>
#include <string.h>

#include "arena.h"
#include "jx.h"
#include "log.h"

/* Where a response body lands: a fixed HTTPC_MAX_BODY + 1 buffer in the arena. */
struct httpc_sink {
    char *buf;
    size_t len;
    int overflow;
};

static int httpc_ready;

/*
 * curl_global_init is not thread-safe; fcgi workers are single-threaded
 * processes, so the first call in each one does it.
 */
static int httpc_init(void)
{
    if (!httpc_ready && curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK)
        httpc_ready = 1;
    return httpc_ready ? 0 : -1;
}

static size_t httpc_write(char *data, size_t size, size_t n, void *userp)
{
    struct httpc_sink *s = userp;
    size_t len = size * n;
    if (len > HTTPC_MAX_BODY - s->len) {
        s->overflow = 1;
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    return len;
}

static CURL *httpc_easy(const char *url, struct httpc_sink *sink)
{
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)HTTPC_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)HTTPC_TIMEOUT_MS / 2);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE, (long)HTTPC_MAX_BODY);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "chatd/" CHATD_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, httpc_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
    return c;
}

/* Runs the prepared handle and frees it and headers; 0 with *out filled, or -1. */
static int httpc_perform(CURL *c, struct curl_slist *headers, struct httpc_sink *sink,
                         struct httpc_resp *out)
{
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK)
        log_warn("http client: request failed: %s%s", sink->overflow ? "response too large: " : "",
                 curl_easy_strerror(rc));
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK)
        return -1;
    sink->buf[sink->len] = '\0';
    out->status = status;
    out->body = sink->buf;
    out->len = sink->len;
    return 0;
}

static int httpc_start(struct arena *a, const char *url, struct httpc_sink *sink, CURL **c)
{
    memset(sink, 0, sizeof(*sink));
    if (httpc_init() < 0 || !(sink->buf = arena_alloc(a, HTTPC_MAX_BODY + 1)))
        return -1;
    *c = httpc_easy(url, sink);
    return *c ? 0 : -1;
}

int httpc_post_form(struct arena *a, const char *url, const char *form, struct httpc_resp *out)
{
    struct httpc_sink sink;
    CURL *c;
    if (httpc_start(a, url, &sink, &c) < 0)
        return -1;
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(form));
    return httpc_perform(c, h, &sink, out);
}

int httpc_get_bearer(struct arena *a, const char *url, const char *bearer, struct httpc_resp *out)
{
    struct httpc_sink sink;
    CURL *c;
    if (strpbrk(bearer, "\r\n"))
        return -1;
    char *auth = arena_printf(a, "Authorization: Bearer %s", bearer);
    if (!auth || httpc_start(a, url, &sink, &c) < 0)
        return -1;
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    struct curl_slist *h2 = h ? curl_slist_append(h, auth) : NULL;
    if (!h2) {
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        return -1;
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h2);
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    return httpc_perform(c, h2, &sink, out);
}

json_object *httpc_json(struct arena *a, const struct httpc_resp *res)
{
    if (!res->body || res->len == 0 || strlen(res->body) != res->len)
        return NULL;
    json_tokener *tok = json_tokener_new_ex(32);
    if (!tok)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, res->body, (int)res->len);
    size_t end = o ? json_tokener_get_parse_end(tok) : 0;
    json_tokener_free(tok);
    /* Providers often end the body with a newline. */
    while (o && end < res->len && strchr(" \t\r\n", res->body[end]))
        end++;
    int complete = o && end == res->len;
    if (!complete || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return NULL;
    }
    return jx_keep(a, o);
}

char *httpc_escape(struct arena *a, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *out = arena_alloc(a, 3 * n + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p)) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}
