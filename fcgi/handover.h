#ifndef CHATD_HANDOVER_H
#define CHATD_HANDOVER_H

#include <sys/types.h>

/*
 * Reload and upgrade of the chat-fcgi master without a refused connection.
 * The master re-executes itself (SIGHUP: the running image, /proc/self/exe;
 * SIGUSR2: the file it was started from, a new binary) with the listening
 * socket left open across execve and named in CHATD_FCGI_LISTEN_FD, and the
 * pids of its children in CHATD_FCGI_RETIRE. The pid stays the same, so the
 * old workers remain children of the new image, which forks its workers and
 * retires the old ones one by one; the socket is never closed, so nginx's
 * connections queue in its backlog meanwhile. The new image reads the
 * environment the first image started with and the env file afresh.
 */

/* Saves argv and the environment as the process received them; reads the handover. */
void handover_init(int argc, char **argv);
/* The listening socket of the previous image, or -1 when this is a first start. */
int handover_inherited_fd(void);
/*
 * Checks the target with `--print-config` (the configuration must load),
 * then execs it. Returns only when that check or execve failed (logged);
 * the master then carries on with its workers as before.
 */
void handover_exec(int listen_fd, int upgrade, const pid_t *children, int n);
/* SIGTERM to the next old process (after a new worker was forked), or to all left. */
void handover_retire_next(void);
void handover_retire_rest(void);
/* 1 when pid was a retiring old process (forgotten now); logs when the last is gone. */
int handover_reaped(pid_t pid);
/* Old processes still running. */
int handover_retiring(void);
void handover_signal_retiring(int sig);
void handover_free(void);

#endif
