/*
 * chat-wsd: the WebSocket daemon. One libuv loop, created here, carries
 * everything: lws runs on it as a foreign loop, hiredis attaches to it
 * (ws_bus, twice: subscriber and commands), and the libpq sockets join it
 * through uv_poll (ws_db).
 */
#include "cfg.h"
#include "log.h"
#include "metrics.h"
#include "rds.h"
#include "ws_bus.h"
#include "ws_db.h"
#include "ws_hub.h"
#include "ws_presence.h"
#include "ws_proto.h"
#include "ws_srv.h"
#include "ws_tail.h"

#include <errno.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

/* How long connections get to take their 1001 close before the context goes. */
#define MAIN_DRAIN_MS 2000
/* How long the last presence updates get to reach Redis and Postgres after that. */
#define MAIN_FLUSH_MS 1500
/* Postgres connections (lanes); a user's jobs always go to the same one. */
#define MAIN_DB_LANES 4

struct main_state {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    uv_timer_t stop_timer;
    uv_timer_t sweep_timer;  /* ws_proto_sweep(), once a second */
    struct lws_context *ctx; /* NULLed by lws once fully destroyed (info.pcontext) */
    struct ws_srv srv;
    int stopping;
    int flushing;           /* presence withdrawn; its last updates are on their way */
    int flush_step;         /* main_flush_step() */
    unsigned flush_pending; /* barrier replies awaited */
    int parts_stopped;
    int destroyed;
    long long tail_pos; /* the stable position read at start-up: where the tail begins */
};

static struct main_state main_st;

static void main_lws_log(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == ' '))
        n--;
    log_msg(level & LLL_ERR ? LOG_ERROR : LOG_WARN, "lws: %.*s", (int)n, line);
}

/* Our own handles; once they and lws's are closed, uv_run() returns. */
static void main_close_handles(struct main_state *m)
{
    uv_close((uv_handle_t *)&m->stop_timer, NULL);
    uv_close((uv_handle_t *)&m->sweep_timer, NULL);
    uv_close((uv_handle_t *)&m->sigterm, NULL);
    uv_close((uv_handle_t *)&m->sigint, NULL);
}

/* Disconnects everything (once); the loop then closes their handles. */
static void main_stop_parts(struct main_state *m)
{
    struct ws_srv *srv = &m->srv;
    if (m->parts_stopped)
        return;
    m->parts_stopped = 1;
    if (srv->presence && !m->flushing)
        ws_presence_stop(srv->presence, 1);
    m->flushing = 1;
    /* Commands first: a send waiting for its PUBLISH then queues its unlock before the lanes go. */
    if (srv->cmd)
        ws_bus_stop(srv->cmd);
    ws_tail_stop(srv->tail);
    if (srv->db)
        ws_db_stop(srv->db);
    if (srv->sub)
        ws_bus_stop(srv->sub);
}

/* lws 4.1 foreign loop: this only starts the teardown; the loop finishes it. */
static void main_destroy(struct main_state *m)
{
    if (m->destroyed)
        return;
    m->destroyed = 1;
    lws_context_destroy(m->ctx);
    main_stop_parts(m);
    main_close_handles(m);
}

static void main_on_stop_timer(uv_timer_t *t)
{
    main_destroy(t->data);
}

static void main_flush_step(struct main_state *m);

static void main_on_barrier(struct main_state *m)
{
    if (--m->flush_pending == 0 && !m->destroyed)
        main_flush_step(m);
}

static void main_on_cmd_barrier(void *arg, const struct redisReply *r)
{
    (void)r;
    main_on_barrier(arg);
}

static void main_on_db_barrier(void *arg, PGresult *res)
{
    (void)res;
    main_on_barrier(arg);
}

/*
 * The last presence updates cross Redis (EVAL), then Postgres (is_online),
 * then Redis again (online_status): step 1 a PING, 2 a query on every lane,
 * 3 a PING, each answered after what was queued before it. Then the end.
 */
static void main_flush_step(struct main_state *m)
{
    struct ws_srv *srv = &m->srv;
    while (m->flush_step < 3) {
        if (++m->flush_step == 2) {
            for (unsigned i = 0; i < MAIN_DB_LANES; i++)
                if (ws_db_query(srv->db, i, "SELECT 1", 0, NULL, main_on_db_barrier, m) == 0)
                    m->flush_pending++;
        } else if (ws_bus_command(srv->cmd, main_on_cmd_barrier, m, "PING") == 0) {
            m->flush_pending++;
        }
        if (m->flush_pending)
            return;
    }
    uv_timer_start(&m->stop_timer, main_on_stop_timer, 0, 0);
}

static void main_on_flush_timer(uv_timer_t *t)
{
    struct main_state *m = t->data;
    if (m->flushing)
        return;
    /* Every connection is closed (or the drain timed out): this instance withdraws. */
    ws_presence_stop(m->srv.presence, 1);
    m->flushing = 1;
    uv_timer_start(&m->stop_timer, main_on_stop_timer, MAIN_FLUSH_MS, 0);
    main_flush_step(m);
}

/* Called from inside an lws callback: only schedule the rest. */
static void main_on_drained(void *arg)
{
    struct main_state *m = arg;
    uv_timer_start(&m->stop_timer, main_on_flush_timer, 0, 0);
}

static void main_on_signal(uv_signal_t *h, int signum)
{
    struct main_state *m = h->data;
    if (m->stopping) {
        log_warn("signal %d again: closing connections now", signum);
        main_destroy(m);
        return;
    }
    m->stopping = 1;
    log_info("signal %d: shutting down", signum);
    lws_context_deprecate(m->ctx, NULL); /* closes the listening socket */
    ws_bus_stop(m->srv.sub);             /* no more events: the connections are going */
    uv_timer_start(&m->stop_timer, main_on_flush_timer, MAIN_DRAIN_MS, 0);
    ws_proto_going_away(m->ctx, main_on_drained, m);
}

static void main_watch(struct main_state *m, uv_signal_t *h, int signum)
{
    uv_signal_init(&m->loop, h);
    h->data = m;
    uv_signal_start(h, main_on_signal, signum);
}

/* "" and the wildcard addresses mean every interface. */
static int main_is_wildcard(const char *host)
{
    return !*host || !strcmp(host, "0.0.0.0") || !strcmp(host, "*") || !strcmp(host, "::");
}

/*
 * WSD_HOST as the numeric address lws binds (lws takes a name for an
 * interface). Blocking, but only at start-up. *v4 tells IPv4: lws 4.1 binds
 * an IPv4 iface on an IPv6 socket as "::", every interface, so IPv6 must be
 * off for it.
 */
static int main_resolve(const char *host, char *ip, size_t size, int *v4)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *a;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return -1;
    for (a = res; a && a->ai_family != AF_INET; a = a->ai_next)
        ;
    if (!a)
        a = res;
    *v4 = a->ai_family == AF_INET;
    int rc = uv_ip_name(a->ai_addr, ip, size);
    freeaddrinfo(res);
    return rc < 0 ? -1 : 0;
}

static int main_listen(struct main_state *m)
{
    struct lws_context_creation_info info;
    void *loops[1] = {&m->loop};
    char ip[64];
    int v4 = 0;
    if (!main_is_wildcard(cfg.wsd_host) && main_resolve(cfg.wsd_host, ip, sizeof(ip), &v4) < 0) {
        log_error("WSD_HOST: cannot resolve \"%s\"", cfg.wsd_host);
        return -1;
    }
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8 |
                   LWS_SERVER_OPTION_SKIP_SERVER_CANONICAL_NAME |
                   LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE |
                   (v4 ? LWS_SERVER_OPTION_DISABLE_IPV6 : 0);
    info.foreign_loops = loops;
    info.pcontext = &m->ctx;
    info.vhost_name = "default";
    info.iface = main_is_wildcard(cfg.wsd_host) ? NULL : ip;
    info.port = cfg.wsd_port;
    info.protocols = ws_proto_protocols;
    info.user = &m->srv;
    info.retry_and_idle_policy = &ws_proto_retry;
    info.server_string = "chat-wsd";
    /* On failure lws 4.1 may still return the context, half destroyed, when the loop is foreign. */
    m->ctx = lws_create_context(&info);
    struct lws_vhost *vh = m->ctx ? lws_get_vhost_by_name(m->ctx, "default") : NULL;
    if (!vh) {
        log_error("cannot listen on %s:%d", cfg.wsd_host, cfg.wsd_port);
        return -1;
    }
    log_info("chat-wsd %s ready on %s:%d", CHATD_VERSION, cfg.wsd_host,
             lws_get_vhost_listen_port(vh));
    return 0;
}

static void main_close_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Safety net: close whatever is still open so uv_loop_close() succeeds. */
static void main_close_loop(uv_loop_t *loop)
{
    if (uv_loop_close(loop) == 0)
        return;
    uv_walk(loop, main_close_handle, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    if (uv_loop_close(loop) != 0)
        log_warn("event loop still busy at exit");
}

/* The Redis connections, the Postgres lanes, the hub and presence, before any client. */
static int main_parts(struct main_state *m)
{
    struct ws_srv *srv = &m->srv;
    srv->loop = &m->loop;
    srv->sub = ws_bus_new(&m->loop, cfg.redis_url);
    srv->cmd = ws_bus_new(&m->loop, cfg.redis_url);
    srv->db = ws_db_new(&m->loop, cfg.database_url, MAIN_DB_LANES);
    if (srv->db)
        ws_db_set_max_queued(srv->db, (unsigned)cfg.wsd_db_queue_max);
    srv->hub = srv->sub ? ws_hub_new(srv->sub) : NULL;
    if (srv->hub)
        ws_hub_use_db(srv->hub, srv->db);
    srv->presence = srv->cmd && srv->db ? ws_presence_new(&m->loop, srv->cmd, srv->db) : NULL;
    srv->tail = srv->hub ? ws_tail_new(srv, cfg.database_url, m->tail_pos) : NULL;
    if (!srv->sub || !srv->cmd || !srv->db || !srv->hub || !srv->presence || !srv->tail ||
        ws_bus_subscribe(srv->sub, WS_BUS_CTL_CHANNEL, ws_proto_on_ctl, NULL) < 0) {
        log_error("out of memory");
        return -1;
    }
    return 0;
}

static void main_on_sweep_timer(uv_timer_t *t)
{
    struct main_state *m = t->data;
    if (m->ctx && !m->destroyed)
        ws_proto_sweep(m->ctx, uv_now(&m->loop));
}

static int main_start(struct main_state *m)
{
    uv_timer_init(&m->loop, &m->stop_timer);
    m->stop_timer.data = m;
    uv_timer_init(&m->loop, &m->sweep_timer);
    m->sweep_timer.data = m;
    main_watch(m, &m->sigterm, SIGTERM);
    main_watch(m, &m->sigint, SIGINT);
    if (main_parts(m) < 0 || main_listen(m) < 0)
        return -1;
    uv_timer_start(&m->sweep_timer, main_on_sweep_timer, 1000, 1000);
    return 0;
}

/*
 * After uv_run() returned: lws has closed its handles, so a second
 * lws_context_destroy() frees the context; then the rest can go.
 */
static void main_finish(struct main_state *m)
{
    struct ws_srv *srv = &m->srv;
    if (m->ctx)
        lws_context_destroy(m->ctx);
    main_stop_parts(m);
    main_close_loop(&m->loop);
    ws_presence_free(srv->presence);
    ws_tail_free(srv->tail);
    ws_hub_free(srv->hub);
    ws_db_free(srv->db);
    ws_bus_free(srv->cmd);
    ws_bus_free(srv->sub);
    memset(srv, 0, sizeof(*srv));
}

/* Loads the configuration; returns the exit code when there is nothing more to do, else -1. */
static int main_config(int argc, char **argv)
{
    char err[512];
    struct rds_url url;
    if (argc > 2 || (argc == 2 && strcmp(argv[1], "--print-config") != 0)) {
        fprintf(stderr, "usage: chat-wsd [--print-config]\n");
        return 2;
    }
    if (cfg_load(err, sizeof(err)) < 0) {
        fprintf(stderr, "chat-wsd: %s\n", err);
        return 2;
    }
    if (argc == 2) {
        cfg_print();
        return 0;
    }
    if (rds_url_parse(cfg.redis_url, &url) < 0) {
        fprintf(stderr, "chat-wsd: REDIS_URL: expected redis://[:password@]host[:port][/db]\n");
        return 2;
    }
    return -1;
}

int main(int argc, char **argv)
{
    struct main_state *m = &main_st;
    log_init("chat-wsd", LOG_INFO);
    int rc = main_config(argc, argv);
    if (rc >= 0) {
        cfg_free();
        return rc;
    }
    log_set_level((enum log_level)log_level_parse(cfg.log_level));
    if (metrics_open(cfg.metrics_dir, "wsd", 0) < 0) /* this instance's part of /metrics */
        log_warn("metrics: %s: %s", cfg.metrics_dir, strerror(errno));
    signal(SIGPIPE, SIG_IGN); /* hiredis write()s to a socket Redis may have closed */
    lws_set_log_level(LLL_ERR | LLL_WARN, main_lws_log);
    /* Before any client (and before the signal handlers: a TERM while Postgres is away ends it). */
    if ((m->tail_pos = ws_tail_initial(cfg.database_url)) < 0) {
        log_error("out of memory");
        cfg_free();
        return 1;
    }
    uv_loop_init(&m->loop);
    rc = main_start(m) < 0 ? 1 : 0;
    if (rc) {
        /*
         * A context that failed to start is already being destroyed; destroying
         * it again before its handles closed would unload lws's libuv plugin
         * under their close callbacks. main_finish() completes it.
         */
        main_stop_parts(m);
        m->destroyed = 1;
        main_close_handles(m);
    }
    uv_run(&m->loop, UV_RUN_DEFAULT);
    main_finish(m);
    log_info("stopped");
    metrics_close();
    cfg_free();
    return rc;
}
