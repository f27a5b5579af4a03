/* Outgoing mail: SMTP through libcurl, or an outbox directory (API.md "fastapi-users"). */
#include "mail.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "cfg.h"
#include "log.h"
#include "tok.h"

#define MAIL_TIMEOUT_S 10L

struct mail_upload {
    const char *data;
    size_t len, off;
};

/* The bare address of MAIL_FROM, which may read "Name <addr>". */
static const char *mail_from_addr(struct arena *a)
{
    const char *lt = strchr(cfg.mail_from, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    if (lt && gt)
        return arena_strndup(a, lt + 1, (size_t)(gt - lt - 1));
    return cfg.mail_from;
}

/* The body with every line ending in CRLF, as RFC 5322 and SMTP want. */
static char *mail_crlf(struct arena *a, const char *body)
{
    size_t n = strlen(body), extra = 0;
    for (size_t i = 0; i < n; i++)
        extra += body[i] == '\n';
    char *out = arena_alloc(a, n + extra + 3);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (body[i] == '\r')
            continue;
        if (body[i] == '\n')
            out[o++] = '\r';
        out[o++] = body[i];
    }
    if (o < 2 || out[o - 1] != '\n') {
        out[o++] = '\r';
        out[o++] = '\n';
    }
    out[o] = '\0';
    return out;
}

char *mail_format(struct arena *a, const char *to, const char *subject, const char *body, long now)
{
    if (strpbrk(to, "\r\n") || strpbrk(subject, "\r\n") || strpbrk(cfg.mail_from, "\r\n"))
        return NULL;
    const char *from = mail_from_addr(a);
    const char *at = from ? strrchr(from, '@') : NULL;
    const char *domain = at && at[1] && !strpbrk(at + 1, "<> ") ? at + 1 : "localhost";
    char date[64], id[37];
    struct tm tm;
    time_t t = (time_t)now;
    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    tok_uuid(id);
    char *text = body ? mail_crlf(a, body) : NULL;
    if (!text)
        return NULL;
    return arena_printf(a,
                        "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\n"
                        "Message-ID: <%s@%s>\r\nMIME-Version: 1.0\r\n"
                        "Content-Type: text/plain; charset=utf-8\r\n"
                        "Content-Transfer-Encoding: 8bit\r\n\r\n%s",
                        cfg.mail_from, to, subject, date, id, domain, text);
}

/* mkdir -p */
static int mail_mkdirs(const char *dir, struct arena *a)
{
    char *p = arena_strdup(a, dir);
    if (!p)
        return -1;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            return -1;
        *s = '/';
    }
    return mkdir(p, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

static int mail_write_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Readers of the outbox see whole files only: written under a dot name, then renamed. */
static int mail_to_outbox(struct arena *a, const char *msg)
{
    const char *dir = *cfg.mail_outbox_dir ? cfg.mail_outbox_dir : ".";
    if (mail_mkdirs(dir, a) < 0) {
        log_error("mail: cannot create MAIL_OUTBOX_DIR %s: %s", dir, strerror(errno));
        return -1;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char rnd[37];
    tok_uuid(rnd);
    long long ms = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    const char *name = arena_printf(a, "%s/%lld-%.8s%.4s.eml", dir, ms, rnd, rnd + 9);
    const char *tmp = arena_printf(a, "%s/.%lld-%.8s.tmp", dir, ms, rnd);
    if (!name || !tmp)
        return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        log_error("mail: cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    int rc = mail_write_all(fd, msg, strlen(msg));
    if (close(fd) < 0)
        rc = -1;
    if (rc == 0 && rename(tmp, name) < 0)
        rc = -1;
    if (rc < 0) {
        log_error("mail: cannot write %s: %s", name, strerror(errno));
        unlink(tmp);
        return -1;
    }
    log_info("mail: queued %s", name);
    return 0;
}

static size_t mail_read_cb(char *buf, size_t size, size_t nmemb, void *p)
{
    struct mail_upload *u = p;
    size_t n = size * nmemb, left = u->len - u->off;
    if (n > left)
        n = left;
    memcpy(buf, u->data + u->off, n);
    u->off += n;
    return n;
}

static int mail_to_smtp(struct arena *a, const char *to, const char *msg)
{
    if (strncmp(cfg.smtp_url, "smtp://", 7) && strncmp(cfg.smtp_url, "smtps://", 8)) {
        log_error("mail: SMTP_URL must start with smtp:// or smtps://");
        return -1;
    }
    const char *rcpt_addr = arena_printf(a, "<%s>", to);
    const char *from = mail_from_addr(a);
    const char *from_addr = from ? arena_printf(a, "<%s>", from) : NULL;
    CURL *c = rcpt_addr && from_addr ? curl_easy_init() : NULL;
    if (!c) {
        log_error("mail: cannot start libcurl");
        return -1;
    }
    struct mail_upload up = {msg, strlen(msg), 0};
    struct curl_slist *rcpt = curl_slist_append(NULL, rcpt_addr);
    curl_easy_setopt(c, CURLOPT_URL, cfg.smtp_url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, from_addr);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    /* smtp:// must upgrade with STARTTLS (a server that does not offer it fails the mail: never
     * send a reset token in clear); smtps:// is TLS throughout. */
    curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, mail_read_cb);
    curl_easy_setopt(c, CURLOPT_READDATA, &up);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, MAIL_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, MAIL_TIMEOUT_S);
    CURLcode rc = rcpt ? curl_easy_perform(c) : CURLE_OUT_OF_MEMORY;
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(c);
    /* The URL may hold a password: log only libcurl's error text. */
    if (rc != CURLE_OK) {
        log_error("mail: SMTP delivery failed: %s", curl_easy_strerror(rc));
        return -1;
    }
    log_info("mail: sent through SMTP");
    return 0;
}

int mail_send(struct arena *a, const char *to, const char *subject, const char *body)
{
    char *msg = mail_format(a, to, subject, body, (long)time(NULL));
    if (!msg) {
        log_error("mail: refused to format a mail (CR/LF in an address or the subject)");
        return -1;
    }
    return *cfg.smtp_url ? mail_to_smtp(a, to, msg) : mail_to_outbox(a, msg);
}
