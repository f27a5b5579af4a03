#include "metrics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define METRICS_MAGIC 0x63686174644d3031ull /* "chatdM01" */

const double metrics_bucket_le[METRICS_BUCKETS - 1] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                       0.1,   0.25,   0.5,   1,    2.5};

static struct metrics_shm *metrics_mem;
static char metrics_path[512];

static int metrics_write_zeroed(const char *tmp)
{
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    /* A sparse file: pages nobody counts into never take memory. */
    if (ftruncate(fd, (off_t)sizeof(struct metrics_shm)) < 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        errno = e;
        return -1;
    }
    return fd;
}

/* The file of the image before a re-exec (same pid), when it has this layout. */
static struct metrics_shm *metrics_reuse(void)
{
    int fd = open(metrics_path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    void *m = MAP_FAILED;
    if (fstat(fd, &st) == 0 && st.st_size == (off_t)sizeof(struct metrics_shm))
        m = mmap(NULL, sizeof(struct metrics_shm), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return NULL;
    struct metrics_shm *shm = m;
    if (shm->magic == METRICS_MAGIC && shm->pid == getpid())
        return shm;
    munmap(m, sizeof(struct metrics_shm));
    return NULL;
}

int metrics_open(const char *dir, const char *kind, int keep)
{
    char tmp[600];
    if (!dir || !*dir)
        return errno = EINVAL, -1;
    if (metrics_mem) /* opened again (tests): the file stays, this mapping goes */
        munmap(metrics_mem, sizeof(*metrics_mem));
    metrics_mem = NULL;
    if (mkdir(dir, 0750) < 0 && errno != EEXIST)
        return -1;
    snprintf(metrics_path, sizeof(metrics_path), "%s/%s-%ld.metrics", dir, kind, (long)getpid());
    if (keep && (metrics_mem = metrics_reuse()))
        return 0;
    snprintf(tmp, sizeof(tmp), "%s.tmp", metrics_path);
    int fd = metrics_write_zeroed(tmp);
    if (fd < 0)
        return -1;
    void *m = mmap(NULL, sizeof(struct metrics_shm), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED || rename(tmp, metrics_path) < 0) {
        int e = errno;
        if (m != MAP_FAILED)
            munmap(m, sizeof(struct metrics_shm));
        unlink(tmp);
        errno = e;
        return -1;
    }
    metrics_mem = m;
    metrics_mem->pid = getpid();
    __atomic_store_n(&metrics_mem->magic, METRICS_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

void metrics_close(void)
{
    if (!metrics_mem)
        return;
    munmap(metrics_mem, sizeof(*metrics_mem));
    metrics_mem = NULL;
    unlink(metrics_path);
}

void metrics_count(enum metrics_counter c)
{
    if (metrics_mem)
        __atomic_add_fetch(&metrics_mem->counter[c], 1, __ATOMIC_RELAXED);
}

void metrics_gauge_add(enum metrics_gauge g, int64_t delta)
{
    if (metrics_mem)
        __atomic_add_fetch(&metrics_mem->gauge[g], delta, __ATOMIC_RELAXED);
}

static int metrics_bucket_of(double seconds)
{
    int b = 0;
    while (b < METRICS_BUCKETS - 1 && seconds > metrics_bucket_le[b])
        b++;
    return b;
}

void metrics_http(int route, int status, double seconds)
{
    if (!metrics_mem || route < 0 || route >= METRICS_ROUTES)
        return;
    struct metrics_route *r = &metrics_mem->route[route];
    if (status >= METRICS_STATUS_MIN && status < METRICS_STATUS_MIN + METRICS_STATUS_N)
        __atomic_add_fetch(&r->status[status - METRICS_STATUS_MIN], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&r->bucket[metrics_bucket_of(seconds)], 1, __ATOMIC_RELAXED);
    if (seconds > 0)
        __atomic_add_fetch(&r->sum_us, (uint64_t)(seconds * 1e6), __ATOMIC_RELAXED);
}

static void metrics_add_into(struct metrics_shm *sum, const struct metrics_shm *m)
{
    for (int i = 0; i < METRICS_COUNTERS; i++)
        sum->counter[i] += __atomic_load_n(&m->counter[i], __ATOMIC_RELAXED);
    for (int i = 0; i < METRICS_GAUGES; i++)
        sum->gauge[i] += __atomic_load_n(&m->gauge[i], __ATOMIC_RELAXED);
    for (int r = 0; r < METRICS_ROUTES; r++) {
        const struct metrics_route *src = &m->route[r];
        struct metrics_route *dst = &sum->route[r];
        for (int s = 0; s < METRICS_STATUS_N; s++)
            dst->status[s] += __atomic_load_n(&src->status[s], __ATOMIC_RELAXED);
        for (int b = 0; b < METRICS_BUCKETS; b++)
            dst->bucket[b] += __atomic_load_n(&src->bucket[b], __ATOMIC_RELAXED);
        dst->sum_us += __atomic_load_n(&src->sum_us, __ATOMIC_RELAXED);
    }
}

/* The pid in "<kind>-<pid>.metrics", or 0 when the name is another's. */
static long metrics_pid_of(const char *name, const char *kind)
{
    size_t kl = strlen(kind);
    if (strncmp(name, kind, kl) != 0 || name[kl] != '-')
        return 0;
    char *end;
    long pid = strtol(name + kl + 1, &end, 10);
    return pid > 0 && !strcmp(end, ".metrics") ? pid : 0;
}

/* 1 when the file was added; 0 when it is not a live, complete metrics file. */
static int metrics_add_file(int dfd, const char *name, long pid, struct metrics_shm *sum)
{
    if (kill((pid_t)pid, 0) < 0 && errno == ESRCH) {
        unlinkat(dfd, name, 0); /* a dead process group's counters: gone with it */
        return 0;
    }
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat st;
    void *m = MAP_FAILED;
    if (fstat(fd, &st) == 0 && st.st_size == (off_t)sizeof(struct metrics_shm))
        m = mmap(NULL, sizeof(struct metrics_shm), PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return 0;
    const struct metrics_shm *shm = m;
    int ok = __atomic_load_n(&shm->magic, __ATOMIC_ACQUIRE) == METRICS_MAGIC;
    if (ok)
        metrics_add_into(sum, shm);
    munmap(m, sizeof(struct metrics_shm));
    return ok;
}

int metrics_collect(const char *dir, const char *kind, struct metrics_total *out)
{
    memset(out, 0, sizeof(*out));
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid = metrics_pid_of(e->d_name, kind);
        if (pid)
            out->sources += metrics_add_file(dirfd(d), e->d_name, pid, &out->sum);
    }
    closedir(d);
    return 0;
}
