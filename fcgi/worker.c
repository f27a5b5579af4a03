#include "worker.h"

#include <fcgiapp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "arena.h"
#include "cfg.h"
#include "db.h"
#include "log.h"
#include "rds.h"
#include "req.h"
#include "route.h"

static volatile sig_atomic_t worker_stop;

/* No SA_RESTART: a worker idle in accept() returns at once; a busy one finishes first. */
static void worker_on_term(int sig)
{
    (void)sig;
    worker_stop = 1;
    FCGX_ShutdownPending();
}

void worker_child_signals(void (*on_term)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* A worker never outlives its master. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
}

static void worker_serve(struct arena *a, FCGX_Request *f)
{
    struct req *r = arena_alloc(a, sizeof(*r));
    if (!r)
        return;
    req_init(r, a, f);
    log_set_context(r->req_id, NULL);
    db_request_start();
    route_dispatch(r);
}

void worker_main(int listen_fd)
{
    worker_child_signals(worker_on_term);
    if (getppid() == 1)
        _exit(0);
    if (db_open(cfg.database_url) < 0)
        log_warn("worker: database unreachable at start; retrying per request");
    if (rds_open(cfg.redis_url) < 0)
        log_warn("worker: redis unreachable at start; retrying per request");
    size_t biggest =
        (size_t)(cfg.max_body_size > cfg.max_upload_size ? cfg.max_body_size : cfg.max_upload_size);
    struct arena a;
    arena_init(&a, biggest + (16u << 20));
    FCGX_Request f;
    FCGX_InitRequest(&f, listen_fd, FCGI_FAIL_ACCEPT_ON_INTR);
    while (!worker_stop) {
        if (FCGX_Accept_r(&f) < 0)
            continue;
        worker_serve(&a, &f);
        FCGX_Finish_r(&f);
        arena_reset(&a);
        log_set_context(NULL, NULL);
    }
    FCGX_Free(&f, 1);
    arena_release(&a);
    db_close();
    rds_close();
    cfg_free();
    _exit(0);
}
