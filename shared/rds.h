#ifndef CHATD_RDS_H
#define CHATD_RDS_H

#include <stddef.h>

struct arena;

/* Host, port, db index, ACL user name and password of a redis:// URL. */
struct rds_url {
    char host[256];
    int port;
    int db;
    char username[128]; /* empty: AUTH with the password alone (the default user) */
    char password[256];
};

/*
 * Parses redis://[[username]:password@]host[:port][/db]; user name and password are
 * percent-decoded (%40 for '@'). -1 when malformed.
 */
int rds_url_parse(const char *url, struct rds_url *u);

/*
 * The blocking connection of one fcgi worker. Commands time out after one
 * second; a broken connection is reopened on the next call.
 */
int rds_open(const char *url);
void rds_close(void);
/* 0 when Redis answers PING. */
int rds_ping(void);
/* PUBLISH; returns receivers (>= 0) or -1 when Redis is unreachable. */
long rds_publish(const char *channel, const char *payload, size_t len);
/*
 * INCR key, and EXPIRE it on first use: a fixed-window counter. Returns the
 * count, or -1 when Redis is unreachable; *ttl gets the seconds left.
 */
long rds_incr_window(const char *key, int window_s, long *ttl);
/* rds_incr_window() counting by (>= 1) at once. */
long rds_incrby_window(const char *key, long by, int window_s, long *ttl);
/*
 * SET key 1 NX EX ttl_s: claims a one-time key. Returns 1 when this call set
 * it, 0 when it already existed, -1 when Redis is unreachable.
 */
int rds_set_nx(const char *key, int ttl_s);

#endif
