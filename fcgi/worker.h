#ifndef CHATD_WORKER_H
#define CHATD_WORKER_H

/*
 * Runs one preforked worker until SIGTERM: a Postgres and a Redis connection
 * for its whole life, one request at a time on listen_fd. Never returns.
 */
void worker_main(int listen_fd) __attribute__((noreturn));

#endif
