#ifndef CHATD_MAIL_H
#define CHATD_MAIL_H

#include <stddef.h>

struct arena;

/*
 * Formats one RFC 5322 text/plain message (From: MAIL_FROM, To, Subject,
 * Date, Message-ID, CRLF line ends) in the arena. Returns NULL when an
 * address or the subject holds CR or LF (header injection), or past the
 * arena's cap.
 */
char *mail_format(struct arena *a, const char *to, const char *subject, const char *body, long now);

/*
 * Sends a plain-text mail to one address: through SMTP_URL (smtp:// or
 * smtps://, credentials in the URL, 10 s timeout) when it is set, else as one
 * file <unix-ms>-<random>.eml in MAIL_OUTBOX_DIR (created when missing; the
 * file appears atomically by rename). Returns 0, or -1 after logging why once.
 * Blocks up to the timeout: only the mailer process calls it (fcgi/mailer.c),
 * never a request.
 */
int mail_send(struct arena *a, const char *to, const char *subject, const char *body);

#endif
