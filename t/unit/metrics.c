/*
 * Unit tests for shared/metrics.c: counts from forked processes land in one
 * file, a scrape sums the files of live processes and removes a dead one's,
 * a re-exec'd master (keep) continues its counters, and the route table fits.
 */
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "metrics.h"
#include "route.h"

static char metrics_t_dir[] = "/tmp/chatd-unit-metrics-XXXXXX";

/* n children each count 1000 requests of route 3: atomics across processes. */
static void metrics_t_children(int n)
{
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (int k = 0; k < 1000; k++) {
                metrics_http(3, 200, 0.002);
                metrics_count(METRICS_WS_FRAMES_OUT);
            }
            _exit(0);
        }
    }
    while (wait(NULL) > 0)
        ;
}

/* A file of a pid that does not run (a child that has exited). */
static void metrics_t_dead_file(const char *dir, char *path, size_t n)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    snprintf(path, n, "%s/wsd-%d.metrics", dir, (int)pid);
    FILE *f = fopen(path, "w");
    if (f)
        fclose(f);
}

int main(void)
{
    ok(route_count + 1 <= METRICS_ROUTES, "the route table fits the metrics slots (%zu routes)",
       route_count);
    ok(mkdtemp(metrics_t_dir) != NULL, "a scratch directory");
    char dir[sizeof(metrics_t_dir) + 8];
    snprintf(dir, sizeof(dir), "%s/m", metrics_t_dir);
    is_int(metrics_open(dir, "fcgi", 0), 0, "metrics_open creates the directory and the file");
    metrics_gauge_add(METRICS_HTTP_IN_FLIGHT, 1);
    metrics_t_children(4);

    struct metrics_total *t = calloc(1, sizeof(*t));
    is_int(metrics_collect(dir, "fcgi", t), 0, "metrics_collect reads the directory");
    is_int(t->sources, 1, "one fcgi file");
    is_int((long)t->sum.route[3].status[200 - METRICS_STATUS_MIN], 4000,
           "4 processes x 1000 requests, none lost");
    is_int((long)t->sum.route[3].bucket[1], 4000, "all in the 2.5 ms bucket");
    is_int((long)t->sum.route[3].sum_us, 8000000, "_sum: 4000 x 2 ms");
    is_int((long)t->sum.counter[METRICS_WS_FRAMES_OUT], 4000, "a plain counter too");
    is_int((long)t->sum.gauge[METRICS_HTTP_IN_FLIGHT], 1, "the gauge of this process");

    char dead[256];
    metrics_t_dead_file(dir, dead, sizeof(dead));
    is_int(metrics_collect(dir, "wsd", t), 0, "a scrape of wsd files");
    is_int(t->sources, 0, "the file of a dead process is not summed");
    ok(access(dead, F_OK) != 0, "and is removed");

    /* A re-exec keeps the file: same pid, same layout. */
    is_int(metrics_open(dir, "fcgi", 1), 0, "metrics_open(keep) maps the existing file");
    metrics_collect(dir, "fcgi", t);
    is_int((long)t->sum.route[3].status[200 - METRICS_STATUS_MIN], 4000, "the counters continue");
    is_int(metrics_open(dir, "fcgi", 0), 0, "metrics_open without keep");
    metrics_collect(dir, "fcgi", t);
    is_int((long)t->sum.route[3].status[200 - METRICS_STATUS_MIN], 0, "starts from zero");

    metrics_http(METRICS_ROUTES, 200, 0.1);
    metrics_http(0, 99, 0.1);
    metrics_collect(dir, "fcgi", t);
    is_int((long)t->sum.route[0].bucket[6], 1, "a status outside 100-599 still counts its latency");

    metrics_close();
    metrics_collect(dir, "fcgi", t);
    is_int(t->sources, 0, "metrics_close removes the file");
    free(t);
    rmdir(dir);
    rmdir(metrics_t_dir);
    done_testing();
}
