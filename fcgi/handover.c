#include "handover.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

#define HANDOVER_FD "CHATD_FCGI_LISTEN_FD"
#define HANDOVER_RETIRE "CHATD_FCGI_RETIRE"
#define HANDOVER_MAX 1024

extern char **environ;

static char **handover_argv;
static char **handover_env; /* the first image's environment, without the handover variables */
static char handover_exe[PATH_MAX];
static int handover_fd = -1;
/* Old processes: [next, count) not yet told to exit; [0, count) not yet reaped (pid 0: reaped). */
static pid_t handover_old[HANDOVER_MAX];
static int handover_count, handover_next, handover_left;

static int handover_is_ours(const char *kv)
{
    return !strncmp(kv, HANDOVER_FD "=", sizeof(HANDOVER_FD)) ||
           !strncmp(kv, HANDOVER_RETIRE "=", sizeof(HANDOVER_RETIRE));
}

static void handover_parse_retire(const char *v)
{
    while (v && *v && handover_count < HANDOVER_MAX) {
        char *end;
        long pid = strtol(v, &end, 10);
        if (end == v)
            break;
        if (pid > 1)
            handover_old[handover_count++] = (pid_t)pid;
        v = *end == ',' ? end + 1 : end;
    }
    handover_left = handover_count;
}

/* The socket named by the previous image: it must be a listening socket. */
static int handover_check_fd(const char *v)
{
    char *end;
    long fd = v ? strtol(v, &end, 10) : -1;
    if (!v || end == v || *end || fd < 3 || fd > INT_MAX)
        return -1;
    struct stat st;
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (fstat((int)fd, &st) < 0 || !S_ISSOCK(st.st_mode) ||
        getsockopt((int)fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening) {
        log_error("%s=%s is not a listening socket; opening FCGI_SOCKET instead", HANDOVER_FD, v);
        return -1;
    }
    fcntl((int)fd, F_SETFD, FD_CLOEXEC); /* only a handover passes it on, explicitly */
    return (int)fd;
}

void handover_init(int argc, char **argv)
{
    (void)argc;
    handover_argv = argv;
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    handover_env = calloc(n + 3, sizeof(char *)); /* + the two handover variables + NULL */
    for (size_t i = 0; handover_env && i < n; i++)
        if (!handover_is_ours(environ[i]))
            handover_env[k++] = strdup(environ[i]);
    ssize_t l = readlink("/proc/self/exe", handover_exe, sizeof(handover_exe) - 1);
    handover_exe[l > 0 ? l : 0] = '\0';
    /* Started through /proc/self/exe after the file was replaced: the path is the file's. */
    char *deleted = strstr(handover_exe, " (deleted)");
    if (deleted && !deleted[10])
        *deleted = '\0';
    handover_fd = handover_check_fd(getenv(HANDOVER_FD));
    if (handover_fd >= 0) {
        handover_parse_retire(getenv(HANDOVER_RETIRE));
        /* exec of /proc/self/exe names the process "exe": keep the name ps and pkill know. */
        const char *slash = strrchr(argv[0], '/');
        prctl(PR_SET_NAME, slash ? slash + 1 : argv[0]);
    }
    unsetenv(HANDOVER_FD);
    unsetenv(HANDOVER_RETIRE);
}

int handover_inherited_fd(void)
{
    return handover_fd;
}

/* 0 when `path --print-config` loads the configuration the new image will see. */
static int handover_check(const char *path)
{
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, STDOUT_FILENO);
        char *args[] = {handover_argv[0], "--print-config", NULL};
        execve(path, args, handover_env);
        _exit(127);
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* "HANDOVER_RETIRE=pid,pid,...": the children and the old processes not yet gone. */
static char *handover_retire_var(const pid_t *children, int n)
{
    size_t cap = sizeof(HANDOVER_RETIRE) + 12 * (size_t)(n + handover_count + 1);
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t o = (size_t)snprintf(s, cap, "%s=", HANDOVER_RETIRE);
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(s + o, cap - o, "%s%d", i ? "," : "", (int)children[i]);
    for (int i = 0; i < handover_count; i++)
        if (handover_old[i] > 0)
            o += (size_t)snprintf(s + o, cap - o, "%s%d", o > sizeof(HANDOVER_RETIRE) ? "," : "",
                                  (int)handover_old[i]);
    return s;
}

void handover_exec(int listen_fd, int upgrade, const pid_t *children, int n)
{
    const char *what = upgrade ? "upgrade" : "reload";
    const char *path = upgrade ? handover_exe : "/proc/self/exe";
    if (!handover_env || !*path) {
        log_error("%s refused: the start-up environment or binary path is unknown", what);
        return;
    }
    if (handover_check(path) < 0) {
        log_error("%s refused: %s --print-config failed (see above); the running workers stay",
                  what, path);
        return;
    }
    char fdvar[64];
    snprintf(fdvar, sizeof(fdvar), "%s=%d", HANDOVER_FD, listen_fd);
    char *retire = handover_retire_var(children, n);
    size_t k = 0;
    while (handover_env[k])
        k++;
    handover_env[k] = fdvar;
    handover_env[k + 1] = retire;
    log_info("%s: executing %s with the socket inherited (%d processes to retire)", what, path, n);
    fcntl(listen_fd, F_SETFD, 0);
    execve(path, handover_argv, handover_env);
    log_error("%s refused: exec %s: %s", what, path, strerror(errno));
    fcntl(listen_fd, F_SETFD, FD_CLOEXEC);
    handover_env[k] = NULL;
    handover_env[k + 1] = NULL;
    free(retire);
}

void handover_retire_next(void)
{
    while (handover_next < handover_count && handover_old[handover_next] <= 0)
        handover_next++;
    if (handover_next < handover_count)
        kill(handover_old[handover_next++], SIGTERM);
}

void handover_retire_rest(void)
{
    while (handover_next < handover_count)
        handover_retire_next();
}

int handover_reaped(pid_t pid)
{
    for (int i = 0; i < handover_count; i++) {
        if (handover_old[i] != pid)
            continue;
        handover_old[i] = 0;
        if (--handover_left == 0)
            log_info("reload complete: the %d processes of the previous image have exited",
                     handover_count);
        return 1;
    }
    return 0;
}

int handover_retiring(void)
{
    return handover_left;
}

void handover_signal_retiring(int sig)
{
    for (int i = 0; i < handover_count; i++)
        if (handover_old[i] > 0)
            kill(handover_old[i], sig);
}

void handover_free(void)
{
    for (size_t i = 0; handover_env && handover_env[i]; i++)
        free(handover_env[i]);
    free(handover_env);
    handover_env = NULL;
}
