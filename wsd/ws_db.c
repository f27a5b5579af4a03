#include "ws_db.h"

#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "metrics.h"

#define WS_DB_BACKOFF_MIN_MS 200
#define WS_DB_BACKOFF_MAX_MS 2000

struct ws_db_job {
    struct ws_db_job *next;
    const char *sql;
    int nparams;
    char **params;
    ws_db_fn *fn;
    void *arg;
    unsigned gen; /* runs only on this connection of the lane; 0 = any */
};

enum ws_db_state { WS_DB_DOWN, WS_DB_CONNECTING, WS_DB_IDLE, WS_DB_BUSY, WS_DB_STOPPED };

struct ws_db_lane {
    struct ws_db *db;
    unsigned index;
    PGconn *pg;
    enum ws_db_state state;
    uv_poll_t poll;
    int poll_open;
    uv_timer_t timer;
    unsigned backoff_ms;
    int down_logged;
    struct ws_db_job *head, *tail, *cur;
    PGresult *last; /* the current job's result, kept until PQgetResult says done */
    unsigned queued;
    unsigned gen; /* bumped on every new connection */
    int reset;    /* ws_db_reset() asked for a new connection after the current job */
};

struct ws_db {
    uv_loop_t *loop;
    char *url;
    unsigned max_queued;
    unsigned nlanes;
    struct ws_db_lane lane[];
};

static void ws_db_connect(struct ws_db_lane *l);
static void ws_db_kick(struct ws_db_lane *l);

static void ws_db_on_timer(uv_timer_t *t)
{
    ws_db_connect(t->data);
}

static void ws_db_job_free(struct ws_db_job *j)
{
    for (int i = 0; i < j->nparams; i++)
        free(j->params[i]);
    free(j->params);
    free(j);
}

static void ws_db_job_finish(struct ws_db_job *j, PGresult *res)
{
    j->fn(j->arg, res);
    ws_db_job_free(j);
}

static void ws_db_poll_closed(uv_handle_t *h)
{
    (void)h;
}

static void ws_db_drop_conn(struct ws_db_lane *l)
{
    if (l->poll_open) {
        uv_poll_stop(&l->poll);
        uv_close((uv_handle_t *)&l->poll, ws_db_poll_closed);
        l->poll_open = 0;
    }
    if (l->pg)
        PQfinish(l->pg);
    l->pg = NULL;
}

/* The connection broke: the running job fails (it may or may not have run), the rest wait. */
static void ws_db_lost(struct ws_db_lane *l, const char *why)
{
    metrics_count(METRICS_PG_ERRORS);
    if (!l->down_logged)
        log_warn("db lane %u: connection lost: %s", l->index, why);
    l->down_logged = 1;
    l->reset = 0; /* done: this is the new connection it asked for */
    PQclear(l->last);
    l->last = NULL;
    ws_db_drop_conn(l);
    struct ws_db_job *j = l->cur;
    l->cur = NULL;
    l->state = WS_DB_DOWN;
    if (j)
        ws_db_job_finish(j, NULL);
    if (l->state == WS_DB_DOWN)
        uv_timer_start(&l->timer, ws_db_on_timer, l->backoff_ms, 0);
    l->backoff_ms =
        l->backoff_ms * 2 > WS_DB_BACKOFF_MAX_MS ? WS_DB_BACKOFF_MAX_MS : l->backoff_ms * 2;
}

static void ws_db_on_io(uv_poll_t *h, int status, int events);

static void ws_db_watch(struct ws_db_lane *l, int events)
{
    if (l->poll_open)
        uv_poll_start(&l->poll, events, ws_db_on_io);
}

/* Reads whatever arrived; completes the job once libpq has no more results. */
static void ws_db_on_result(struct ws_db_lane *l)
{
    if (!PQconsumeInput(l->pg)) {
        ws_db_lost(l, PQerrorMessage(l->pg));
        return;
    }
    while (!PQisBusy(l->pg)) {
        PGresult *r = PQgetResult(l->pg);
        if (r) {
            PQclear(l->last);
            l->last = r;
            continue;
        }
        struct ws_db_job *j = l->cur;
        PGresult *res = l->last;
        l->cur = NULL;
        l->last = NULL;
        l->state = WS_DB_IDLE;
        if (res && PQresultStatus(res) == PGRES_FATAL_ERROR && PQstatus(l->pg) != CONNECTION_OK) {
            PQclear(res);
            l->cur = j;
            ws_db_lost(l, "server closed the connection");
            return;
        }
        ws_db_job_finish(j, res);
        PQclear(res);
        if (l->reset) {
            l->reset = 0;
            ws_db_lost(l, "session state reset");
            return;
        }
        ws_db_kick(l);
        return;
    }
}

static void ws_db_on_connect_io(struct ws_db_lane *l)
{
    switch (PQconnectPoll(l->pg)) {
    case PGRES_POLLING_READING:
        ws_db_watch(l, UV_READABLE);
        return;
    case PGRES_POLLING_WRITING:
        ws_db_watch(l, UV_WRITABLE);
        return;
    case PGRES_POLLING_OK:
        metrics_count(METRICS_PG_CONNECTS);
        if (l->down_logged)
            log_info("db lane %u: connected", l->index);
        l->down_logged = 0;
        l->backoff_ms = WS_DB_BACKOFF_MIN_MS;
        l->state = WS_DB_IDLE;
        l->gen++;
        PQsetnonblocking(l->pg, 1);
        ws_db_watch(l, UV_READABLE);
        ws_db_kick(l);
        return;
    default:
        ws_db_lost(l, PQerrorMessage(l->pg));
        return;
    }
}

static void ws_db_on_io(uv_poll_t *h, int status, int events)
{
    struct ws_db_lane *l = h->data;
    /* On a poll error libuv stopped the watcher: let libpq read to learn why. */
    if (status < 0)
        events = UV_READABLE;
    if (l->state == WS_DB_CONNECTING) {
        ws_db_on_connect_io(l);
        return;
    }
    if ((events & UV_WRITABLE) && l->state == WS_DB_BUSY) {
        int f = PQflush(l->pg);
        if (f < 0) {
            ws_db_lost(l, PQerrorMessage(l->pg));
            return;
        }
        ws_db_watch(l, f ? UV_READABLE | UV_WRITABLE : UV_READABLE);
    }
    if (l->state == WS_DB_BUSY || (events & UV_READABLE)) {
        if (l->state != WS_DB_BUSY) {
            /* Idle and readable: a notice, or the server going away. */
            if (!PQconsumeInput(l->pg))
                ws_db_lost(l, PQerrorMessage(l->pg));
            return;
        }
        ws_db_on_result(l);
    }
}

static void ws_db_connect(struct ws_db_lane *l)
{
    if (l->state == WS_DB_STOPPED)
        return;
    l->pg = db_connect(l->db->url, 1);
    if (!l->pg || PQstatus(l->pg) == CONNECTION_BAD ||
        uv_poll_init(l->db->loop, &l->poll, PQsocket(l->pg)) != 0) {
        ws_db_lost(l, l->pg ? PQerrorMessage(l->pg) : "out of memory");
        return;
    }
    l->poll.data = l;
    l->poll_open = 1;
    l->state = WS_DB_CONNECTING;
    ws_db_watch(l, UV_WRITABLE);
}

/* Starts the next job when the lane is idle; a job pinned to a lost connection fails. */
static void ws_db_kick(struct ws_db_lane *l)
{
    struct ws_db_job *j;
    for (;;) {
        if (l->state != WS_DB_IDLE || !(j = l->head))
            return;
        l->head = j->next;
        if (!l->head)
            l->tail = NULL;
        l->queued--;
        if (!j->gen || j->gen == l->gen)
            break;
        ws_db_job_finish(j, NULL);
    }
    l->cur = j;
    if (!PQsendQueryParams(l->pg, j->sql, j->nparams, NULL, (const char *const *)j->params, NULL,
                           NULL, 0)) {
        ws_db_lost(l, PQerrorMessage(l->pg));
        return;
    }
    l->state = WS_DB_BUSY;
    int f = PQflush(l->pg);
    ws_db_watch(l, f ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

struct ws_db *ws_db_new(uv_loop_t *loop, const char *url, unsigned lanes)
{
    if (lanes == 0)
        lanes = 1;
    struct ws_db *d = calloc(1, sizeof(*d) + lanes * sizeof(struct ws_db_lane));
    if (!d || !(d->url = strdup(url))) {
        free(d);
        return NULL;
    }
    d->loop = loop;
    d->max_queued = WS_DB_MAX_QUEUED;
    d->nlanes = lanes;
    for (unsigned i = 0; i < lanes; i++) {
        struct ws_db_lane *l = &d->lane[i];
        l->db = d;
        l->index = i;
        l->backoff_ms = WS_DB_BACKOFF_MIN_MS;
        uv_timer_init(loop, &l->timer);
        l->timer.data = l;
        ws_db_connect(l);
    }
    return d;
}

static char **ws_db_copy_params(int n, const char *const *params)
{
    char **p = calloc((size_t)(n ? n : 1), sizeof(*p));
    for (int i = 0; p && i < n; i++) {
        if (params[i] && !(p[i] = strdup(params[i]))) {
            while (i--)
                free(p[i]);
            free(p);
            return NULL;
        }
    }
    return p;
}

static int ws_db_push(struct ws_db_lane *l, unsigned gen, const char *sql, int nparams,
                      const char *const *params, ws_db_fn *fn, void *arg)
{
    struct ws_db_job *j = calloc(1, sizeof(*j));
    if (!j || !(j->params = ws_db_copy_params(nparams, params))) {
        free(j);
        return -1;
    }
    j->gen = gen;
    j->sql = sql;
    j->nparams = nparams;
    j->fn = fn;
    j->arg = arg;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    l->queued++;
    ws_db_kick(l);
    return 0;
}

int ws_db_query(struct ws_db *d, unsigned lane, const char *sql, int nparams,
                const char *const *params, ws_db_fn *fn, void *arg)
{
    struct ws_db_lane *l = &d->lane[lane % d->nlanes];
    if (l->state == WS_DB_STOPPED || l->queued >= d->max_queued)
        return -1;
    return ws_db_push(l, 0, sql, nparams, params, fn, arg);
}

int ws_db_query_on(struct ws_db *d, unsigned lane, unsigned gen, const char *sql, int nparams,
                   const char *const *params, ws_db_fn *fn, void *arg)
{
    struct ws_db_lane *l = &d->lane[lane % d->nlanes];
    /* Refused here rather than failed from ws_db_kick(): fn never runs inside this call. */
    if (l->state == WS_DB_STOPPED || (gen && gen != l->gen))
        return -1;
    if (ws_db_push(l, gen, sql, nparams, params, fn, arg) == 0)
        return 0;
    /* No memory for the job: a new connection ends whatever session state it was for. */
    ws_db_reset(d, lane);
    return -1;
}

unsigned ws_db_gen(const struct ws_db *d, unsigned lane)
{
    return d->lane[lane % d->nlanes].gen;
}

void ws_db_reset(struct ws_db *d, unsigned lane)
{
    struct ws_db_lane *l = &d->lane[lane % d->nlanes];
    if (l->state == WS_DB_BUSY)
        l->reset = 1;
    else if (l->state == WS_DB_IDLE)
        ws_db_lost(l, "session state reset");
}

void ws_db_set_max_queued(struct ws_db *d, unsigned n)
{
    d->max_queued = n ? n : 1;
}

int ws_db_is_up(const struct ws_db *d)
{
    for (unsigned i = 0; i < d->nlanes; i++)
        if (d->lane[i].state != WS_DB_IDLE && d->lane[i].state != WS_DB_BUSY)
            return 0;
    return 1;
}

void ws_db_stop(struct ws_db *d)
{
    for (unsigned i = 0; d && i < d->nlanes; i++) {
        struct ws_db_lane *l = &d->lane[i];
        struct ws_db_job *j = l->cur;
        l->state = WS_DB_STOPPED;
        l->cur = NULL;
        PQclear(l->last);
        l->last = NULL;
        ws_db_drop_conn(l);
        uv_timer_stop(&l->timer);
        uv_close((uv_handle_t *)&l->timer, NULL);
        if (j)
            ws_db_job_finish(j, NULL);
        while ((j = l->head)) {
            l->head = j->next;
            ws_db_job_finish(j, NULL);
        }
        l->tail = NULL;
        l->queued = 0;
    }
}

void ws_db_free(struct ws_db *d)
{
    if (d)
        free(d->url);
    free(d);
}
