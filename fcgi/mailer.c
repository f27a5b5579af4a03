/* The mailer process: sends the reset and verify mails queued in mail_queue (mailer.h). */
#include "mailer.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "cfg.h"
#include "db.h"
#include "handlers.h"
#include "log.h"
#include "mail.h"
#include "tok.h"
#include "worker.h"

/* fastapi-users' lifetimes of reset and verification tokens. */
#define MAILER_TOKEN_TTL 3600L
#define MAILER_POLL_MS 1000
/* Rows claimed per wake-up before the mailer looks at signals and NOTIFYs again. */
#define MAILER_BATCH 100
/* Sent and failed rows are kept this long (for operators), then deleted. */
#define MAILER_KEEP "7 days"

static volatile sig_atomic_t mailer_stop;

/*
 * Claims the oldest due row and moves its next attempt out (10 s x 4^n), so a
 * crash mid-send is retried later rather than lost or sent in a tight loop.
 */
static struct db_stmt q_claim = DB_STMT(
    "UPDATE mail_queue m SET attempts = m.attempts + 1, "
    "       next_at = now() + make_interval(secs => 10 * power(4, m.attempts)) "
    "FROM (SELECT q.id, u.id AS uid, u.email, u.hashed_password, u.is_active, u.is_verified "
    "      FROM mail_queue q LEFT JOIN users u ON u.id = q.user_id "
    "      WHERE q.status = 'pending' AND q.next_at <= now() "
    "      ORDER BY q.next_at LIMIT 1 FOR UPDATE OF q SKIP LOCKED) c "
    "WHERE m.id = c.id "
    "RETURNING m.id, m.kind, m.to_addr, m.attempts, c.uid, c.email, c.hashed_password, "
    "          c.is_active, c.is_verified",
    0);
/* Marks a claimed row; a failed attempt waits 10 s x 4^(attempts-1) from now. */
static struct db_stmt q_done =
    DB_STMT("UPDATE mail_queue SET status = $2, last_error = $3, "
            "       sent_at = CASE WHEN $2 = 'sent' THEN now() END, "
            "       next_at = CASE WHEN $2 = 'pending' "
            "                      THEN now() + make_interval(secs => 10 * power(4, attempts - 1)) "
            "                      ELSE next_at END "
            "WHERE id = $1",
            3);
static struct db_stmt q_purge = DB_STMT("DELETE FROM mail_queue WHERE status <> 'pending' AND "
                                        "created_at < now() - interval '" MAILER_KEEP "'",
                                        0);

static void mailer_on_term(int sig)
{
    (void)sig;
    mailer_stop = 1;
}

static void mailer_signals(void)
{
    worker_child_signals(mailer_on_term);
    /* ps and the tests tell it from the workers by this name. */
    prctl(PR_SET_NAME, "chat-mailer");
}

/* PUBLIC_URL without a trailing slash. */
static const char *mailer_public_url(struct arena *a)
{
    size_t n = strlen(cfg.public_url);
    while (n && cfg.public_url[n - 1] == '/')
        n--;
    return arena_strndup(a, cfg.public_url, n);
}

static const char *mailer_reset_body(struct arena *a, const char *url, const char *tok)
{
    return arena_printf(a,
                        "Someone asked to reset the password of your chat account.\n\n"
                        "To choose a new password, open this link within an hour:\n"
                        "%s/reset-password?token=%s\n\n"
                        "or send the token below to POST /auth/reset-password.\n"
                        "Token: %s\n\n"
                        "If it was not you, ignore this mail: your password stays as it is.\n",
                        url, tok, tok);
}

static const char *mailer_verify_body(struct arena *a, const char *url, const char *tok)
{
    return arena_printf(a,
                        "Please confirm the e-mail address of your chat account by opening\n"
                        "this link within an hour:\n"
                        "%s/auth/verify?token=%s\n\n"
                        "or send the token below to POST /auth/verify.\n"
                        "Token: %s\n",
                        url, tok, tok);
}

/*
 * The token for a claimed row, from the account as it is now: NULL when the
 * mail no longer makes sense (the account is gone, its address changed, it
 * was deactivated, or got verified meanwhile). Returns malloc'd text.
 */
static char *mailer_token(PGresult *res, int reset)
{
    const char *to = PQgetvalue(res, 0, 2), *email = PQgetvalue(res, 0, 5);
    if (PQgetisnull(res, 0, 4) || strcasecmp(to, email) || PQgetvalue(res, 0, 7)[0] != 't')
        return NULL;
    struct tok_claims c;
    memset(&c, 0, sizeof(c));
    snprintf(c.sub, sizeof(c.sub), "%s", PQgetvalue(res, 0, 4));
    if (reset) {
        if (h_fau_fingerprint(PQgetvalue(res, 0, 6), c.fgp) < 0)
            return NULL;
        return tok_issue(TOK_RESET, &c, time(NULL), MAILER_TOKEN_TTL);
    }
    if (PQgetvalue(res, 0, 8)[0] == 't')
        return NULL;
    snprintf(c.email, sizeof(c.email), "%s", email);
    return tok_issue(TOK_VERIFY, &c, time(NULL), MAILER_TOKEN_TTL);
}

static void mailer_mark(struct arena *a, const char *id, const char *status, const char *why)
{
    const char *params[] = {id, status, why};
    enum db_err err;
    if (!db_run(a, &q_done, params, &err))
        log_warn("mailer: cannot mark mail %s %s; it will be retried", id, status);
}

/* Sends the claimed row of res; marks it sent, failed, or leaves it for the next attempt. */
static void mailer_send_row(struct arena *a, PGresult *res)
{
    const char *id = PQgetvalue(res, 0, 0), *to = PQgetvalue(res, 0, 2);
    int reset = !strcmp(PQgetvalue(res, 0, 1), "reset");
    int attempts = atoi(PQgetvalue(res, 0, 3));
    char *tok = mailer_token(res, reset);
    if (!tok) {
        mailer_mark(a, id, "failed", "the account changed before the mail was sent");
        return;
    }
    const char *url = mailer_public_url(a);
    const char *body =
        url ? (reset ? mailer_reset_body(a, url, tok) : mailer_verify_body(a, url, tok)) : NULL;
    free(tok);
    const char *subject = reset ? "Reset your password" : "Verify your e-mail address";
    if (body && mail_send(a, to, subject, body) == 0) {
        mailer_mark(a, id, "sent", NULL);
        log_info("mailer: mail %s (%s) sent after %d attempt(s)", id, reset ? "reset" : "verify",
                 attempts);
    } else if (attempts >= MAILER_MAX_ATTEMPTS) {
        mailer_mark(a, id, "failed", "delivery failed");
        log_warn("mailer: mail %s given up after %d attempts", id, attempts);
    } else {
        mailer_mark(a, id, "pending", "delivery failed");
    }
}

/* Sends every due mail (at most MAILER_BATCH). */
static void mailer_drain(struct arena *a)
{
    for (int i = 0; i < MAILER_BATCH && !mailer_stop; i++) {
        enum db_err err;
        PGresult *res = db_run(a, &q_claim, NULL, &err);
        int more = res && PQntuples(res) == 1;
        if (more)
            mailer_send_row(a, res);
        arena_reset(a);
        if (!more)
            return;
    }
}

/*
 * Waits up to MAILER_POLL_MS for a NOTIFY on the connection (LISTENing again
 * whenever the connection is new), then swallows the notifications: any of
 * them, or the timeout, means "look at the queue".
 */
static void mailer_wait(PGconn **listening)
{
    PGconn *c = db_conn();
    if (c && c != *listening)
        *listening = db_exec_simple("LISTEN chatd_mail") == 0 ? c : NULL;
    struct pollfd p = {.fd = c ? PQsocket(c) : -1, .events = POLLIN};
    if (p.fd < 0 || poll(&p, 1, MAILER_POLL_MS) <= 0)
        return;
    PQconsumeInput(c);
    for (PGnotify *n; (n = PQnotifies(c));)
        PQfreemem(n);
}

void mailer_main(int listen_fd)
{
    mailer_signals();
    close(listen_fd);
    if (getppid() == 1)
        _exit(0);
    if (db_open(cfg.database_url) < 0)
        log_warn("mailer: database unreachable at start; retrying every second");
    struct arena a;
    arena_init(&a, 4u << 20);
    PGconn *listening = NULL;
    time_t purged = 0;
    log_info("mailer: ready");
    while (!mailer_stop) {
        mailer_drain(&a);
        if (time(NULL) - purged >= 3600) {
            enum db_err err;
            if (db_run(&a, &q_purge, NULL, &err))
                purged = time(NULL);
            arena_reset(&a);
        }
        if (!mailer_stop)
            mailer_wait(&listening);
        if (!db_conn())
            sleep(1);
    }
    arena_release(&a);
    db_close();
    cfg_free();
    _exit(0);
}
