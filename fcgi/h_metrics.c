/*
 * GET /metrics: the Prometheus text format (0.0.4) of the whole host, summed
 * over every live counter file of METRICS_DIR (shared/metrics.h): the fcgi
 * master's (all its workers) and each chat-wsd instance's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "db.h"
#include "handlers.h"
#include "metrics.h"
#include "req.h"
#include "resp.h"
#include "route.h"

/* Exact addresses of METRICS_ALLOW (comma-separated); nginx's location has the same list. */
static int h_metrics_allowed(const char *addr)
{
    size_t n = strlen(addr);
    for (const char *p = cfg.metrics_allow; *p;) {
        size_t l = strcspn(p, ",");
        if (l == n && n && !memcmp(p, addr, n))
            return 1;
        p += l + (p[l] == ',');
    }
    return 0;
}

/* The labels of route slot i: route="/api/v1/groups/{group_id}",method="GET". */
static void h_metrics_labels(FILE *f, int i)
{
    if (i == 0) {
        fputs("route=\"unmatched\",method=\"\"", f);
        return;
    }
    const struct route *rt = &route_table[i - 1];
    fputs("route=\"", f);
    for (const char *p = rt->pattern; *p; p++) {
        if (*p == ':') /* {name:uuid} -> {name}: the label names the parameter only */
            p += strcspn(p, "}") - 1;
        else
            fputc(*p, f);
    }
    fprintf(f, "\",method=\"%s\"", rt->method);
}

static void h_metrics_requests(FILE *f, const struct metrics_shm *m)
{
    fputs("# HELP chatd_http_requests_total HTTP requests answered by chat-fcgi.\n"
          "# TYPE chatd_http_requests_total counter\n",
          f);
    for (int i = 0; i < METRICS_ROUTES && (size_t)i <= route_count; i++)
        for (int s = 0; s < METRICS_STATUS_N; s++) {
            if (!m->route[i].status[s])
                continue;
            fputs("chatd_http_requests_total{", f);
            h_metrics_labels(f, i);
            fprintf(f, ",status=\"%d\"} %llu\n", s + METRICS_STATUS_MIN,
                    (unsigned long long)m->route[i].status[s]);
        }
}

static void h_metrics_bucket(FILE *f, int i, const char *le, unsigned long long n)
{
    fputs("chatd_http_request_duration_seconds_bucket{", f);
    h_metrics_labels(f, i);
    fprintf(f, ",le=\"%s\"} %llu\n", le, n);
}

static void h_metrics_histograms(FILE *f, const struct metrics_shm *m)
{
    fputs("# HELP chatd_http_request_duration_seconds Time chat-fcgi took to answer.\n"
          "# TYPE chatd_http_request_duration_seconds histogram\n",
          f);
    for (int i = 0; i < METRICS_ROUTES && (size_t)i <= route_count; i++) {
        const struct metrics_route *rt = &m->route[i];
        unsigned long long n = 0;
        for (int b = 0; b < METRICS_BUCKETS; b++)
            n += rt->bucket[b];
        if (!n)
            continue;
        unsigned long long cum = 0;
        char le[32];
        for (int b = 0; b < METRICS_BUCKETS - 1; b++) {
            cum += rt->bucket[b];
            snprintf(le, sizeof(le), "%g", metrics_bucket_le[b]);
            h_metrics_bucket(f, i, le, cum);
        }
        h_metrics_bucket(f, i, "+Inf", n);
        fputs("chatd_http_request_duration_seconds_sum{", f);
        h_metrics_labels(f, i);
        fprintf(f, "} %.6f\nchatd_http_request_duration_seconds_count{", (double)rt->sum_us / 1e6);
        h_metrics_labels(f, i);
        fprintf(f, "} %llu\n", n);
    }
}

static void h_metrics_one(FILE *f, const char *name, const char *type, const char *help,
                          long long v)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", name, help, name, type, name, v);
}

/* A counter both programs keep: one sample per program. */
static void h_metrics_both(FILE *f, const char *name, const char *help, enum metrics_counter c,
                           const struct metrics_total *fcgi, const struct metrics_total *wsd)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    fprintf(f, "%s{program=\"chat-fcgi\"} %llu\n", name, (unsigned long long)fcgi->sum.counter[c]);
    fprintf(f, "%s{program=\"chat-wsd\"} %llu\n", name, (unsigned long long)wsd->sum.counter[c]);
}

static void h_metrics_processes(FILE *f, const struct metrics_total *fcgi,
                                const struct metrics_total *wsd)
{
    const struct metrics_shm *w = &wsd->sum;
    fputs("# HELP chatd_metrics_sources Process groups summed in this scrape.\n"
          "# TYPE chatd_metrics_sources gauge\n",
          f);
    fprintf(f, "chatd_metrics_sources{program=\"chat-fcgi\"} %d\n", fcgi->sources);
    fprintf(f, "chatd_metrics_sources{program=\"chat-wsd\"} %d\n", wsd->sources);
    h_metrics_one(f, "chatd_http_requests_in_flight", "gauge",
                  "Requests chat-fcgi workers are answering.",
                  (long long)fcgi->sum.gauge[METRICS_HTTP_IN_FLIGHT]);
    h_metrics_one(f, "chatd_ws_connections", "gauge", "Open WebSockets.",
                  (long long)w->gauge[METRICS_WS_CONNECTIONS]);
    h_metrics_one(f, "chatd_ws_frames_received_total", "counter", "Complete client messages.",
                  (long long)w->counter[METRICS_WS_FRAMES_IN]);
    h_metrics_one(f, "chatd_ws_frames_sent_total", "counter", "Frames queued to clients.",
                  (long long)w->counter[METRICS_WS_FRAMES_OUT]);
    h_metrics_one(f, "chatd_ws_slow_client_drops_total", "counter",
                  "WebSockets closed for falling behind.",
                  (long long)w->counter[METRICS_WS_SLOW_DROPS]);
    h_metrics_both(f, "chatd_postgres_connects_total", "Postgres connections made.",
                   METRICS_PG_CONNECTS, fcgi, wsd);
    h_metrics_both(f, "chatd_postgres_errors_total", "Postgres connections lost or refused.",
                   METRICS_PG_ERRORS, fcgi, wsd);
    h_metrics_both(f, "chatd_redis_connects_total", "Redis connections made.",
                   METRICS_REDIS_CONNECTS, fcgi, wsd);
    h_metrics_both(f, "chatd_redis_errors_total", "Redis connections lost or refused.",
                   METRICS_REDIS_ERRORS, fcgi, wsd);
}

static struct db_stmt h_metrics_q_online =
    DB_STMT_IDEM("SELECT count(*) FROM users WHERE is_online", 0);

/* Online users as presence records them (users.is_online); absent when Postgres is down. */
static void h_metrics_online(struct req *r, FILE *f)
{
    enum db_err err;
    PGresult *res = db_run(r->a, &h_metrics_q_online, NULL, &err);
    if (!res || PQntuples(res) != 1)
        return;
    h_metrics_one(f, "chatd_online_users", "gauge", "Users shown online.",
                  atoll(PQgetvalue(res, 0, 0)));
}

int h_metrics(struct req *r)
{
    if (!h_metrics_allowed(r->remote_addr))
        return req_err(r, 403, "Forbidden");
    struct metrics_total *fcgi = arena_alloc(r->a, sizeof(*fcgi));
    struct metrics_total *wsd = arena_alloc(r->a, sizeof(*wsd));
    if (!fcgi || !wsd)
        return req_err(r, 500, "Out of memory");
    if (metrics_collect(cfg.metrics_dir, "fcgi", fcgi) < 0 ||
        metrics_collect(cfg.metrics_dir, "wsd", wsd) < 0)
        return req_err(r, 503, "Metrics unavailable");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return req_err(r, 500, "Out of memory");
    h_metrics_requests(f, &fcgi->sum);
    h_metrics_histograms(f, &fcgi->sum);
    h_metrics_processes(f, fcgi, wsd);
    h_metrics_online(r, f);
    if (fclose(f) != 0 || arena_defer(r->a, free, buf) < 0) {
        free(buf);
        return req_err(r, 500, "Out of memory");
    }
    return resp_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len);
}
