#ifndef CHATD_MAILER_H
#define CHATD_MAILER_H

/*
 * The mailer process of chat-fcgi, forked and supervised by the master like a
 * worker: drains mail_queue (schema/0008_mail_queue.sql), woken by NOTIFY
 * chatd_mail or every second. Each due row is claimed with FOR UPDATE SKIP
 * LOCKED (several fcgi hosts may run mailers) and its next attempt pushed out
 * first, so a mailer killed mid-send retries it later ('skipped' rows, for
 * addresses without an account, are never sent); the token is issued at
 * send time from the account as it is then. At most MAILER_MAX_ATTEMPTS
 * tries, 10 s x 4^n apart; the row ends 'sent' or 'failed'. Closes listen_fd
 * (the FastCGI socket is the workers'), never returns.
 */
#define MAILER_MAX_ATTEMPTS 5

void mailer_main(int listen_fd) __attribute__((noreturn));

#endif
