#include "wsload.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

long long wl_post_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void wl_post_error(struct wl_post *p, const char *what)
{
    p->failed++;
    if (!p->first_error[0])
        snprintf(p->first_error, sizeof(p->first_error), "%s", what);
}

static int wl_post_connect(const struct wl_post *p)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)p->port)};
    struct timeval tv = {.tv_sec = 5};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (inet_pton(AF_INET, p->addr, &sa.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One POST; the HTTP status, or -1 when the exchange itself failed. */
static int wl_post_one(struct wl_post *p)
{
    char body[256], req[8192], resp[4096];
    int fd = wl_post_connect(p);
    if (fd < 0)
        return -1;
    int blen = snprintf(body, sizeof(body), "{\"content\":\"wsload %lld\",\"%s\":\"%s\"}",
                        wl_post_now_us(), p->field, p->target);
    int len = snprintf(req, sizeof(req),
                       "POST %s HTTP/1.0\r\nHost: %s:%d\r\n"
                       "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                       "Content-Length: %d\r\n\r\n%s",
                       p->path, p->addr, p->port, p->token, blen, body);
    int status = -1;
    if (len > 0 && len < (int)sizeof(req) && write(fd, req, (size_t)len) == len) {
        /* HTTP/1.0: the answer ends when nginx closes; only its status line matters. */
        ssize_t n = read(fd, resp, sizeof(resp) - 1), m = n;
        char rest[4096];
        while (m > 0)
            m = read(fd, rest, sizeof(rest));
        resp[n > 0 ? n : 0] = '\0';
        if (n <= 0 || m < 0 || sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
            status = -1;
    }
    close(fd);
    return status;
}

void *wl_post_run(void *arg)
{
    struct wl_post *p = arg;
    long long t0 = wl_post_now_us(), end = t0 + (long long)p->secs * 1000000;
    for (long i = 0; !atomic_load(&p->stop); i++) {
        long long due = t0 + (long long)((double)i * 1e6 / p->rate);
        if (due >= end)
            break;
        struct timespec ts = {.tv_sec = due / 1000000, .tv_nsec = (due % 1000000) * 1000};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0 &&
               !atomic_load(&p->stop))
            ;
        int status = wl_post_one(p);
        /* nchan answers 202 when the message found no subscriber yet, 201 otherwise. */
        if (status == 201 || (status == 202 && strncmp(p->path, "/pub/", 5) == 0)) {
            p->posted++;
        } else {
            char what[32] = "no HTTP answer";
            if (status >= 0)
                snprintf(what, sizeof(what), "HTTP %d", status);
            wl_post_error(p, what);
        }
    }
    return NULL;
}
