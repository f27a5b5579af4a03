#include "wsload.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WL_OPT_MAX_CONNS 60000

/* Reads "user_id token" lines into o; returns their count, -1 on error. */
static int wl_opt_tokens(struct wl_opts *o, const char *file)
{
    FILE *f = fopen(file, "r");
    char line[8400];
    int cap = 0;
    if (!f) {
        fprintf(stderr, "wsload: %s: %s\n", file, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        char *u = strtok(line, " \t\r\n"), *t = strtok(NULL, " \t\r\n");
        if (!u || !t)
            continue;
        if (o->ntokens == cap) {
            cap = cap ? cap * 2 : 256;
            struct wl_token *n = realloc(o->tokens, (size_t)cap * sizeof(*n));
            if (!n)
                break;
            o->tokens = n;
        }
        o->tokens[o->ntokens].user = strdup(u);
        o->tokens[o->ntokens].token = strdup(t);
        if (!o->tokens[o->ntokens].user || !o->tokens[o->ntokens].token)
            break;
        o->ntokens++;
    }
    fclose(f);
    if (o->ntokens == 0)
        fprintf(stderr, "wsload: %s: no \"user_id token\" line\n", file);
    return o->ntokens ? o->ntokens : -1;
}

static int wl_opt_usage(void)
{
    fprintf(
        stderr,
        "usage: wsload idle    -p PORT -k TOKENS [-n N] [-H HOLD_SECS]\n"
        "       wsload probe   -p PORT -k TOKENS [-m TEXT]\n"
        "       wsload send    -p PORT -k TOKENS -r RECEIVER_ID [-n N] [-d SECS]\n"
        "       wsload latency -p PORT -k TOKENS -s SENDER_TOKEN -r RECEIVER_ID [-n N]\n"
        "                      [-R RATE] [-C POST_CONNS] [-d SECS]\n"
        "       wsload fanout  -p PORT -k TOKENS -s SENDER_TOKEN -g GROUP_ID [-n N]\n"
        "                      [-R RATE] [-C POST_CONNS] [-d SECS]\n"
        "       wsload storm   -p PORT -k TOKENS [-n N] [-G GROUP_SIZE] [-O OBSERVERS] [-d SECS]\n"
        "  all: [-a ADDR] [-c INFLIGHT] [-T SETUP_SECS] [-P PATH_PREFIX] [-q POST_PORT] [-v]\n"
        "       [-S SETTLE_MAX_SECS] [-b BINDS] [-B FIRST] (source addresses 127.0.0.FIRST ..., 2) "
        "[-N] (nchan: "
        "no ping, POST to\n"
        "       /pub/GROUP_ID; -P /sub/ and a TOKENS line \"GROUP_ID -\")\n");
    return -1;
}

static int wl_opt_mode(const char *s)
{
    static const char *const names[] = {"idle", "probe", "send", "latency", "fanout", "storm"};
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
        if (!strcmp(s, names[i]))
            return (int)i;
    return -1;
}

static int wl_opt_check(struct wl_opts *o)
{
    int traffic = o->mode == WL_SEND || o->mode == WL_LATENCY || o->mode == WL_FANOUT;
    if (!o->post_port)
        o->post_port = o->port;
    if (o->port <= 0 || o->port > 65535 || o->post_port <= 0 || o->post_port > 65535 || o->n < 1 ||
        o->n > WL_OPT_MAX_CONNS || o->max_inflight < 1 || o->setup_s < 1 || o->hold_s < 0 ||
        o->hold_s > 3600 || o->run_s < 1 || o->run_s > 600 || !(o->rate > 0 && o->rate <= 100000) ||
        o->post_conns < 0 || o->post_conns > 256)
        return -1;
    if (traffic && !o->target)
        return -1;
    if ((o->mode == WL_LATENCY || (o->mode == WL_FANOUT && !o->nchan)) && !o->sender_token)
        return -1;
    if (o->binds < 0 || o->binds > 250 || o->bind_first < 2 || o->bind_first + o->binds > 252 ||
        o->settle_s < 1 || o->settle_s > 3600 ||
        (o->nchan && o->mode != WL_IDLE && o->mode != WL_FANOUT))
        return -1;
    if (o->mode == WL_PROBE)
        o->n = 1;
    if (o->mode == WL_STORM && !o->group_size)
        o->group_size = o->n;
    if (o->mode == WL_STORM &&
        (o->group_size < 2 || o->observers < 1 || o->observers >= o->group_size))
        return -1;
    return 0;
}

static void wl_opt_defaults(struct wl_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->addr = "127.0.0.1";
    o->prefix = "/api/v1/ws/";
    o->text = "{\"type\":\"ping\"}";
    o->n = 1;
    o->max_inflight = 200;
    o->setup_s = 60;
    o->hold_s = 120;
    o->run_s = 8;
    o->rate = 100;
    o->settle_s = 30;
    o->observers = 1;
    o->bind_first = 2;
}

/* One option; -1 when it is not one of ours. */
static int wl_opt_one(struct wl_opts *o, int opt, const char **tokens)
{
    switch (opt) {
    case 'a':
        o->addr = optarg;
        break;
    case 'p':
        o->port = atoi(optarg);
        break;
    case 'q':
        o->post_port = atoi(optarg);
        break;
    case 'n':
        o->n = atoi(optarg);
        break;
    case 'c':
        o->max_inflight = atoi(optarg);
        break;
    case 'k':
        *tokens = optarg;
        break;
    case 'T':
        o->setup_s = atoi(optarg);
        break;
    case 'H':
        o->hold_s = atoi(optarg);
        break;
    case 'P':
        o->prefix = optarg;
        break;
    case 'm':
        o->text = optarg;
        break;
    case 'r':
        o->target = optarg;
        o->group = 0;
        break;
    case 'g':
        o->target = optarg;
        o->group = 1;
        break;
    case 's':
        o->sender_token = optarg;
        break;
    case 'R':
        o->rate = atof(optarg);
        break;
    case 'd':
        o->run_s = atoi(optarg);
        break;
    case 'N':
        o->nchan = 1;
        break;
    case 'b':
        o->binds = atoi(optarg);
        break;
    case 'B':
        o->bind_first = atoi(optarg);
        break;
    case 'S':
        o->settle_s = atoi(optarg);
        break;
    case 'C':
        o->post_conns = atoi(optarg);
        break;
    case 'v':
        o->verbose = 1;
        break;
    case 'G':
        o->group_size = atoi(optarg);
        break;
    case 'O':
        o->observers = atoi(optarg);
        break;
    default:
        return -1;
    }
    return 0;
}

int wl_opts_parse(struct wl_opts *o, int argc, char **argv)
{
    const char *tokens = NULL;
    int opt;
    wl_opt_defaults(o);
    if (argc < 2 || (opt = wl_opt_mode(argv[1])) < 0)
        return wl_opt_usage();
    o->mode = (enum wl_mode)opt;
    argc--, argv++;
    while ((opt = getopt(argc, argv, "a:p:q:n:c:k:T:H:P:m:r:g:s:R:d:vNb:B:S:G:O:C:")) != -1)
        if (wl_opt_one(o, opt, &tokens) < 0)
            return wl_opt_usage();
    if (optind != argc || !tokens || wl_opt_check(o) < 0)
        return wl_opt_usage();
    return wl_opt_tokens(o, tokens) < 0 ? -1 : 0;
}
