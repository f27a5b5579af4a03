#ifndef CHATD_WORKER_H
#define CHATD_WORKER_H

/*
 * Runs one preforked worker until SIGTERM: a Postgres and a Redis connection
 * for its whole life, one request at a time on listen_fd. Never returns.
 */
void worker_main(int listen_fd) __attribute__((noreturn));

/*
 * The signal set-up of a child of the master (a worker or the mailer):
 * on_term for SIGTERM and SIGINT (no SA_RESTART, so blocking calls return),
 * SIGPIPE ignored, the master's blocked set cleared, and SIGTERM when the
 * master dies.
 */
void worker_child_signals(void (*on_term)(int));

#endif
