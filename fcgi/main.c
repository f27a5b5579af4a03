/*
 * chat-fcgi: the master opens the FastCGI socket, forks FCGI_WORKERS workers,
 * replaces any that die and, on SIGTERM, lets in-flight requests finish.
 * SIGHUP (reload) and SIGUSR2 (upgrade) re-exec the master with the listening
 * socket inherited: see fcgi/handover.c.
 */
#include <errno.h>
#include <fcgiapp.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "handover.h"
#include "log.h"
#include "mailer.h"
#include "metrics.h"
#include "worker.h"

#define MAIN_MAX_WORKERS 256

struct main_slot {
    pid_t pid;
    time_t started;
};

static struct main_slot main_slots[MAIN_MAX_WORKERS];
/* The mailer process (fcgi/mailer.c), supervised like a worker. */
static struct main_slot main_mailer;

static pid_t main_spawn(int listen_fd, int slot)
{
    pid_t pid = fork();
    if (pid == 0)
        worker_main(listen_fd);
    if (pid < 0) {
        log_error("fork: %s", strerror(errno));
        return -1;
    }
    main_slots[slot].pid = pid;
    main_slots[slot].started = time(NULL);
    return pid;
}

static void main_spawn_mailer(int listen_fd)
{
    pid_t pid = fork();
    if (pid == 0)
        mailer_main(listen_fd);
    if (pid < 0)
        log_error("fork (mailer): %s", strerror(errno));
    main_mailer.pid = pid > 0 ? pid : 0;
    main_mailer.started = time(NULL);
}

/* 1 when pid was the mailer (replaced unless stopping). */
static int main_reap_mailer(int listen_fd, pid_t pid, int status, int stopping)
{
    if (pid != main_mailer.pid)
        return 0;
    main_mailer.pid = 0;
    if (stopping)
        return 1;
    log_warn("mailer %d %s %d; replacing it", (int)pid,
             WIFSIGNALED(status) ? "killed by signal" : "exited with status",
             WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    if (time(NULL) - main_mailer.started < 1)
        sleep(1);
    main_spawn_mailer(listen_fd);
    return 1;
}

/*
 * A unix socket is 0660 (created so: no moment at 0666), in FCGI_SOCKET_GROUP
 * when set: nginx's workers reach it through that group, other local users
 * cannot. -1 with errno when the group is unknown or cannot be set.
 */
static int main_socket_access(const char *path)
{
    if (chmod(path, 0660) < 0)
        return -1;
    if (!*cfg.fcgi_socket_group)
        return 0;
    struct group *g = getgrnam(cfg.fcgi_socket_group);
    if (!g) {
        log_error("FCGI_SOCKET_GROUP=%s: no such group", cfg.fcgi_socket_group);
        errno = EINVAL;
        return -1;
    }
    return chown(path, (uid_t)-1, g->gr_gid);
}

/*
 * A unix socket is bound under a temporary name, given its mode and group,
 * then renamed over WHERE (a stale one from a crash included): no client,
 * nginx or a test, ever finds it at its name without its group, and there is
 * no moment without a socket at that name.
 */
static int main_listen_unix(const char *where)
{
    char tmp[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int n = snprintf(tmp, sizeof(tmp), "%s.%ld", where, (long)getpid());
    const char *bind_at = n > 0 && (size_t)n < sizeof(tmp) ? tmp : where;
    unlink(bind_at);
    mode_t old = umask(0117); /* the socket is born 0660 */
    int fd = FCGX_OpenSocket(bind_at, 1024);
    umask(old);
    if (fd < 0)
        return -1;
    if (main_socket_access(bind_at) < 0 || (bind_at != where && rename(bind_at, where) < 0)) {
        int e = errno;
        close(fd);
        unlink(bind_at);
        errno = e;
        return -1;
    }
    return fd;
}

static int main_listen(const char *where)
{
    /* A path is a unix socket (libfcgi's rule: no ':'). */
    if (!strchr(where, ':'))
        return main_listen_unix(where);
    return FCGX_OpenSocket(where, 1024);
}

static void main_reap(int listen_fd, int stopping)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (handover_reaped(pid))
            continue;
        if (main_reap_mailer(listen_fd, pid, status, stopping))
            continue;
        for (int i = 0; i < cfg.fcgi_workers; i++) {
            if (main_slots[i].pid != pid)
                continue;
            main_slots[i].pid = 0;
            if (stopping)
                break;
            if (WIFSIGNALED(status))
                log_warn("worker %d killed by signal %d; replacing it", (int)pid, WTERMSIG(status));
            else
                log_warn("worker %d exited with status %d; replacing it", (int)pid,
                         WEXITSTATUS(status));
            /* A worker that dies at once (bad config, no memory) is not respawned in a tight loop.
             */
            if (time(NULL) - main_slots[i].started < 1)
                sleep(1);
            main_spawn(listen_fd, i);
            break;
        }
    }
}

static int main_alive(void)
{
    int n = (main_mailer.pid > 0) + handover_retiring();
    for (int i = 0; i < cfg.fcgi_workers; i++)
        n += main_slots[i].pid > 0;
    return n;
}

static void main_shutdown(int listen_fd)
{
    for (int i = 0; i < cfg.fcgi_workers; i++)
        if (main_slots[i].pid > 0)
            kill(main_slots[i].pid, SIGTERM);
    if (main_mailer.pid > 0)
        kill(main_mailer.pid, SIGTERM);
    handover_signal_retiring(SIGTERM);
    /* Workers blocked in accept() exit at once; busy ones answer first. 30 s, then KILL. */
    for (int ms = 0; main_alive() && ms < 30000; ms += 10) {
        main_reap(listen_fd, 1);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < cfg.fcgi_workers; i++)
        if (main_slots[i].pid > 0)
            kill(main_slots[i].pid, SIGKILL);
    if (main_mailer.pid > 0)
        kill(main_mailer.pid, SIGKILL);
    handover_signal_retiring(SIGKILL);
    main_reap(listen_fd, 1);
}

static int main_config(int argc, char **argv)
{
    char err[512];
    if (cfg_load(err, sizeof(err)) < 0) {
        fprintf(stderr, "chat-fcgi: %s\n", err);
        return 2;
    }
    if (argc > 1 && !strcmp(argv[1], "--print-config")) {
        cfg_print();
        return 1;
    }
    if (argc > 1) {
        fprintf(stderr, "usage: chat-fcgi [--print-config]\n");
        return 2;
    }
    log_set_level(log_level_parse(cfg.log_level));
    if (cfg.fcgi_workers > MAIN_MAX_WORKERS)
        cfg.fcgi_workers = MAIN_MAX_WORKERS;
    return 0;
}

/* The pids of every child, for the image that takes over (handover_exec). */
static int main_children(pid_t *pids, int max)
{
    int n = 0;
    for (int i = 0; i < cfg.fcgi_workers && n < max; i++)
        if (main_slots[i].pid > 0)
            pids[n++] = main_slots[i].pid;
    if (main_mailer.pid > 0 && n < max)
        pids[n++] = main_mailer.pid;
    return n;
}

/*
 * One by one, a new worker is forked before the previous image's worker of
 * the same slot is told to finish its request and exit, so at no moment fewer
 * workers accept than before; the old mailer goes once the new one runs
 * (mail_queue rows are claimed with SKIP LOCKED: two mailers never share one).
 */
static void main_start_children(int listen_fd)
{
    for (int i = 0; i < cfg.fcgi_workers; i++) {
        main_spawn(listen_fd, i);
        handover_retire_next();
    }
    main_spawn_mailer(listen_fd);
    handover_retire_rest();
}

static int main_loop(int listen_fd, const sigset_t *set)
{
    for (;;) {
        int sig = sigwaitinfo(set, NULL);
        if (sig == SIGCHLD) {
            main_reap(listen_fd, 0);
        } else if (sig == SIGHUP || sig == SIGUSR2) {
            pid_t pids[MAIN_MAX_WORKERS + 1];
            int n = main_children(pids, MAIN_MAX_WORKERS + 1);
            handover_exec(listen_fd, sig == SIGUSR2, pids, n); /* returns only on failure */
        } else if (sig == SIGTERM || sig == SIGINT) {
            return 0;
        }
    }
}

static int main_open_socket(int *taken_over)
{
    int fd = handover_inherited_fd();
    *taken_over = fd >= 0;
    if (fd >= 0)
        return fd;
    fd = main_listen(cfg.fcgi_socket);
    if (fd < 0)
        log_error("cannot listen on %s: %s", cfg.fcgi_socket, strerror(errno));
    return fd;
}

int main(int argc, char **argv)
{
    log_init("chat-fcgi", LOG_INFO);
    handover_init(argc, argv); /* before cfg_load() adds the env file to the environment */
    int rc = main_config(argc, argv);
    if (rc)
        return rc == 1 ? 0 : rc;
    FCGX_Init();
    int taken_over;
    int listen_fd = main_open_socket(&taken_over);
    if (listen_fd < 0)
        return 1;
    if (metrics_open(cfg.metrics_dir, "fcgi", taken_over) < 0)
        log_warn("metrics: %s: %s; /metrics will not count this process", cfg.metrics_dir,
                 strerror(errno));
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    main_start_children(listen_fd);
    log_info("ready: %d workers on %s%s", cfg.fcgi_workers, cfg.fcgi_socket,
             taken_over ? " (socket taken over from the previous image)" : "");
    main_loop(listen_fd, &set);
    log_info("shutting down");
    main_shutdown(listen_fd);
    close(listen_fd);
    if (!strchr(cfg.fcgi_socket, ':'))
        unlink(cfg.fcgi_socket);
    metrics_close();
    handover_free();
    cfg_free();
    return 0;
}
