/*
 * Unit tests for fcgi/mail.c: the RFC 5322 message, header-injection refusal,
 * the outbox files, and SMTP to a tiny fake server without STARTTLS in a child
 * process (the mail must fail rather than go out in clear).
 */
#include "tap.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arena.h"
#include "cfg.h"
#include "mail.h"
#include "req.h"

#define NOW 1800000000L /* Fri, 15 Jan 2027 08:00:00 UTC */

/* mail_send with its log lines (stderr) discarded: expected failures are not news. */
static int mail_t_send(struct arena *a, const char *to, const char *subject, const char *body)
{
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
        dup2(null, 2);
        close(null);
    }
    int rc = mail_send(a, to, subject, body);
    if (saved >= 0) {
        dup2(saved, 2);
        close(saved);
    }
    return rc;
}

static char *mail_t_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Names in dir that do not start with a dot; the last one in *last. */
static int mail_t_count(const char *dir, char *last, size_t lastlen, int *hidden)
{
    DIR *d = opendir(dir);
    int n = 0;
    *hidden = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') {
            *hidden += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
            continue;
        }
        n++;
        snprintf(last, lastlen, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    return n;
}

static void mail_t_format(struct arena *a)
{
    char *m = mail_format(a, "bob@example.com", "Hello", "line one\nline two\n\n.\nend", NOW);
    ok(m != NULL, "format: a message");
    if (!m)
        return;
    ok(!strncmp(m,
                "From: Chat <chatd@mail.example.test>\r\nTo: bob@example.com\r\nSubject: Hello\r\n",
                75),
       "format: From, To, Subject first");
    ok(strstr(m, "\r\nDate: Fri, 15 Jan 2027 08:00:00 +0000\r\n") != NULL,
       "format: RFC 5322 Date in UTC");
    ok(strstr(m, "@mail.example.test>\r\n") != NULL && strstr(m, "\r\nMessage-ID: <") != NULL,
       "format: Message-ID in MAIL_FROM's domain");
    ok(strstr(m, "\r\nContent-Type: text/plain; charset=utf-8\r\n") != NULL,
       "format: text/plain utf-8");
    ok(strstr(m, "\r\n\r\nline one\r\nline two\r\n\r\n.\r\nend\r\n") != NULL,
       "format: body after an empty line, LF turned into CRLF, ending with CRLF");
    int bare_lf = 0;
    for (const char *p = m; *p; p++)
        bare_lf += *p == '\n' && (p == m || p[-1] != '\r');
    is_int(bare_lf, 0, "format: no bare LF anywhere");
    ok(mail_format(a, "bob@example.com\r\nBcc: eve@example.com", "x", "b", NOW) == NULL,
       "format: CR/LF in the address refused");
    ok(mail_format(a, "bob@example.com", "x\nBcc: eve@example.com", "b", NOW) == NULL,
       "format: LF in the subject refused");
}

static void mail_t_outbox(struct req *r, const char *tmp)
{
    char dir[512], last[1024] = "";
    int hidden;
    snprintf(dir, sizeof(dir), "%s/deep/outbox", tmp);
    cfg.mail_outbox_dir = dir;
    cfg.smtp_url = "";
    is_int(mail_t_send(r->a, "bob@example.com", "Reset", "Token: abc\n"), 0,
           "outbox: mail_send returns 0");
    is_int(mail_t_send(r->a, "carol@example.com", "Verify", "Token: def\n"), 0,
           "outbox: a second mail");
    is_int(mail_t_count(dir, last, sizeof(last), &hidden), 2,
           "outbox: directory created, one file per mail");
    is_int(hidden, 0, "outbox: no temporary file left");
    const char *base = strrchr(last, '/') ? strrchr(last, '/') + 1 : last;
    size_t digits = strspn(base, "0123456789");
    ok(digits >= 13 && base[digits] == '-' && strlen(base) > 4 &&
           !strcmp(base + strlen(base) - 4, ".eml"),
       "outbox: named <unix-ms>-<random>.eml (%s)", base);
    const char *txt = mail_t_slurp(last);
    ok(txt && strstr(txt, "\r\nToken: ") != NULL, "outbox: the file holds the message");
    is_int(mail_t_send(r->a, "x@example.com\nBcc: y@example.com", "s", "b"), -1,
           "outbox: injection refused");
    is_int(mail_t_count(dir, last, sizeof(last), &hidden), 2,
           "outbox: nothing written for a refused mail");
    cfg.mail_outbox_dir = "/proc/chatd-no-such-dir/x";
    is_int(mail_t_send(r->a, "bob@example.com", "s", "b"), -1,
           "outbox: an unwritable directory fails with -1");
}

static int mail_t_getline(FILE *in, char *buf, size_t n)
{
    if (!fgets(buf, (int)n, in))
        return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

/*
 * A one-session SMTP server that offers AUTH but not STARTTLS: writes every
 * line it receives to the transcript file.
 */
static void mail_t_smtp_child(int lfd, const char *transcript)
{
    int fd = accept(lfd, NULL, NULL);
    FILE *in = fdopen(fd, "r"), *log = fopen(transcript, "w");
    char line[4096];
    if (!in || !log)
        _exit(2);
    dprintf(fd, "220 fake ESMTP\r\n");
    int data = 0;
    while (mail_t_getline(in, line, sizeof(line)) == 0) {
        fprintf(log, "%s\n", line);
        fflush(log);
        if (data) {
            if (!strcmp(line, ".")) {
                data = 0;
                dprintf(fd, "250 queued\r\n");
            }
        } else if (!strncasecmp(line, "EHLO", 4)) {
            dprintf(fd, "250-fake\r\n250 AUTH PLAIN\r\n");
        } else if (!strcasecmp(line, "AUTH PLAIN")) {
            dprintf(fd, "334 \r\n");
        } else if (!strncasecmp(line, "AUTH PLAIN ", 11) ||
                   !strncmp(line, "AHVzZXIAc2VjcmV0", 16)) {
            dprintf(fd, "235 ok\r\n");
        } else if (!strcasecmp(line, "DATA")) {
            data = 1;
            dprintf(fd, "354 go on\r\n");
        } else if (!strcasecmp(line, "QUIT")) {
            dprintf(fd, "221 bye\r\n");
            break;
        } else {
            dprintf(fd, "250 ok\r\n");
        }
    }
    fclose(log);
    _exit(0);
}

static void mail_t_smtp(struct req *r, const char *tmp)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if (!ok(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(lfd, 1) == 0 &&
                getsockname(lfd, (struct sockaddr *)&sa, &sl) == 0,
            "smtp: fake server listens"))
        return;
    char transcript[512], url[128];
    snprintf(transcript, sizeof(transcript), "%s/smtp.txt", tmp);
    pid_t pid = fork();
    if (pid == 0)
        mail_t_smtp_child(lfd, transcript);
    close(lfd);
    snprintf(url, sizeof(url), "smtp://user:secret@127.0.0.1:%d", ntohs(sa.sin_port));
    cfg.smtp_url = url;
    /* The fake offers no STARTTLS: smtp:// requires it, so nothing may go out in clear. */
    is_int(mail_t_send(r->a, "bob@example.com", "Over SMTP", "Token: xyz\n.\nafter dot\n"), -1,
           "smtp: a server without STARTTLS fails the mail");
    int status = -1;
    waitpid(pid, &status, 0);
    is_int(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0, "smtp: fake server finished cleanly");
    const char *t = mail_t_slurp(transcript);
    ok(t && strstr(t, "EHLO") != NULL, "smtp: the client greeted the fake server");
    ok(t && !strstr(t, "AHVzZXIAc2VjcmV0") && !strstr(t, "AUTH"),
       "smtp: no password sent in clear");
    ok(t && !strstr(t, "MAIL FROM") && !strstr(t, "RCPT TO") && !strstr(t, "DATA"),
       "smtp: no envelope and no DATA sent in clear");
    ok(t && !strstr(t, "Token: xyz"), "smtp: the token never crossed the wire");
    cfg.smtp_url = "smtp://127.0.0.1:1";
    is_int(mail_t_send(r->a, "bob@example.com", "s", "b"), -1, "smtp: a refused connection is -1");
    cfg.smtp_url = "http://127.0.0.1:1";
    is_int(mail_t_send(r->a, "bob@example.com", "s", "b"), -1,
           "smtp: a URL that is not smtp(s) is refused");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    struct arena a;
    arena_init(&a, 1 << 20);
    struct req r;
    memset(&r, 0, sizeof(r));
    r.a = &a;
    cfg.mail_from = "Chat <chatd@mail.example.test>";
    char tmp[] = "/tmp/chatd-unit-mail-XXXXXX";
    if (!ok(mkdtemp(tmp) != NULL, "temporary directory"))
        return done_testing();
    mail_t_format(&a);
    mail_t_outbox(&r, tmp);
    mail_t_smtp(&r, tmp);
    arena_release(&a);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        diag("could not remove %s", tmp);
    return done_testing();
}
