#ifndef CHATD_METRICS_H
#define CHATD_METRICS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Counters shared across processes for /metrics. Each process group (the
 * chat-fcgi master with its workers, each chat-wsd instance) owns one file
 * <METRICS_DIR>/<kind>-<pid>.metrics, mapped MAP_SHARED: the master maps it
 * before forking, so every worker adds to the same counters with atomics and
 * no process ever waits for another. chat-fcgi's GET /metrics sums every file
 * whose process is alive (metrics_collect), so one scrape shows the host.
 * Every adder is a no-op until metrics_open() succeeded.
 */

/* Slot 0 is a request no route matched; route i of the table is slot i + 1. */
#define METRICS_ROUTES 96
#define METRICS_STATUS_MIN 100
#define METRICS_STATUS_N 500 /* 100..599 */
#define METRICS_BUCKETS 12

/* Upper bounds (seconds) of the latency histogram; the last bucket is +Inf. */
extern const double metrics_bucket_le[METRICS_BUCKETS - 1];

enum metrics_counter {
    METRICS_WS_FRAMES_IN,   /* complete client messages */
    METRICS_WS_FRAMES_OUT,  /* frames queued to clients */
    METRICS_WS_SLOW_DROPS,  /* connections closed for falling behind */
    METRICS_PG_CONNECTS,    /* Postgres connections made (the first and reconnects) */
    METRICS_PG_ERRORS,      /* Postgres connections lost or refused */
    METRICS_REDIS_CONNECTS, /* Redis connections made */
    METRICS_REDIS_ERRORS,   /* Redis connections lost or refused */
    METRICS_COUNTERS
};

enum metrics_gauge {
    METRICS_HTTP_IN_FLIGHT, /* requests a fcgi worker is answering */
    METRICS_WS_CONNECTIONS, /* open WebSockets */
    METRICS_GAUGES
};

struct metrics_route {
    uint64_t status[METRICS_STATUS_N];
    uint64_t bucket[METRICS_BUCKETS]; /* not cumulative: the exposition sums them */
    uint64_t sum_us;
};

/* The layout of one file; METRICS_MAGIC changes with it. */
struct metrics_shm {
    uint64_t magic;
    int64_t pid;
    uint64_t counter[METRICS_COUNTERS];
    int64_t gauge[METRICS_GAUGES];
    struct metrics_route route[METRICS_ROUTES];
};

/*
 * Creates <dir>/<kind>-<pid>.metrics zeroed (written aside and renamed in,
 * so processes still mapping an older file of this pid, e.g. the workers of
 * the image before a re-exec, never see it truncated) and maps it. Creates
 * dir (0750) when missing. keep (a re-exec'd chat-fcgi master): the file of
 * this pid is mapped as it is when it has this layout, so counters survive a
 * reload and the previous image's workers keep counting into the same file.
 * Returns 0, or -1 with errno (counting stays off).
 */
int metrics_open(const char *dir, const char *kind, int keep);
/* Unmaps and removes this process group's file (the master, at exit). */
void metrics_close(void);

void metrics_count(enum metrics_counter c);
void metrics_gauge_add(enum metrics_gauge g, int64_t delta);
/* One answered request: route slot, HTTP status, seconds it took. */
void metrics_http(int route, int status, double seconds);

/* The sum of the live files of one kind. */
struct metrics_total {
    int sources; /* files summed */
    struct metrics_shm sum;
};

/*
 * Adds every file of kind in dir whose process is alive to *out (zeroed
 * first); removes the files of dead processes. Returns 0, or -1 with errno
 * when dir cannot be read.
 */
int metrics_collect(const char *dir, const char *kind, struct metrics_total *out);

#endif
