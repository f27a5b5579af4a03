#ifndef CHATD_WSLOAD_H
#define CHATD_WSLOAD_H

#include <stdatomic.h>

enum wl_mode { WL_IDLE, WL_PROBE, WL_SEND, WL_LATENCY, WL_FANOUT, WL_STORM };

/* One line of the TOKENS file: connection i uses line i modulo their count. */
struct wl_token {
    char *user;
    char *token;
};

/* The command line (usage in wsload.c's head comment). */
struct wl_opts {
    enum wl_mode mode;
    const char *addr, *prefix, *text;
    const char *target;       /* -r RECEIVER_ID or -g GROUP_ID */
    int group;                /* target is a group */
    const char *sender_token; /* -s: latency and fanout POST with it */
    int port, post_port, n, max_inflight;
    int post_conns; /* -C: keep-alive connections that POST (0: one per 50/s of RATE) */
    int setup_s, hold_s, run_s, verbose;
    double rate;
    struct wl_token *tokens; /* read from -k */
    int ntokens;
    int nchan;      /* -N: the server is nchan: no ping (ready once open), POSTs to /pub/GROUP_ID */
    int binds;      /* -b: connection i binds to 127.0.0.(bind_first + i % binds); 0: no bind */
    int bind_first; /* -B: the first source address's last byte (2): processes sharing a port */
    int settle_s;   /* -S: the settle phase lasts this long at most (30 s) */
    int group_size, observers; /* storm: -G members per group, -O observers per group */
};

/*
 * Fills o from argv (argv[1] is the mode) and reads the TOKENS file. Returns
 * 0, or -1 after printing the usage or what is wrong.
 */
int wl_opts_parse(struct wl_opts *o, int argc, char **argv);

/*
 * The REST side of wsload latency and fanout: POSTs /api/v1/messages at a
 * fixed rate over `conns` parallel HTTP/1.1 keep-alive connections, with the
 * content "wsload <wl_post_now_us() at the send>" that the receiving
 * WebSockets turn into a latency. Prints one line when done:
 *   post conns=.. connects=.. posted=.. failed=.. late=.. max_lag_ms=..
 * (connects: TCP connections opened, conns unless the server closed some;
 * late: POSTs that started over 1 ms after their due time).
 */
struct wl_post {
    const char *addr;
    int port;
    const char *path;   /* where to POST: /api/v1/messages, or nchan's /pub/<channel> */
    const char *token;  /* the sender's access token */
    const char *field;  /* "receiver_id" or "group_id" */
    const char *target; /* its value */
    double rate;        /* POSTs per second */
    int conns;          /* parallel connections (0: one per 50/s of rate) */
    int secs;           /* for how long */
    atomic_int stop;    /* set by the main thread to end early */
    long posted;        /* answered 201 (nchan: 201 or 202) */
    long failed;        /* anything else */
    char first_error[96];
};

/* pthread start routine (it starts and joins the connection threads); arg is a
 * struct wl_post, read back after pthread_join(). */
void *wl_post_run(void *arg);

/* wsload storm (bench/wsload_storm.c): runs the whole mode; returns the exit code. */
int wl_storm_run(const struct wl_opts *o);

/* CLOCK_MONOTONIC in microseconds: the clock of the timestamps in the content. */
long long wl_post_now_us(void);

#endif
