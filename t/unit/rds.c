/* Unit tests for shared/rds.c: REDIS_URL forms of an existing Redis (password, ACL user, db). */
#include "tap.h"

#include "rds.h"

static void url_is(const char *url, const char *host, int port, int db, const char *user,
                   const char *pw)
{
    struct rds_url u;
    int rc = rds_url_parse(url, &u);
    is_int(rc, 0, "%s parses", url);
    if (rc < 0)
        return;
    is_str(u.host, host, "%s: host", url);
    is_int(u.port, port, "%s: port", url);
    is_int(u.db, db, "%s: db", url);
    is_str(u.username, user, "%s: user name", url);
    is_str(u.password, pw, "%s: password", url);
}

int main(void)
{
    struct rds_url u;
    url_is("redis://127.0.0.1:6379/0", "127.0.0.1", 6379, 0, "", "");
    url_is("redis://localhost", "localhost", 6379, 0, "", "");
    url_is("redis://:s3cret@redis.example.com:6380/3", "redis.example.com", 6380, 3, "", "s3cret");
    url_is("redis://chatd:s3cret@10.0.0.5/2", "10.0.0.5", 6379, 2, "chatd", "s3cret");
    url_is("redis://:p%40ss%3Aw%2Frd@h:1/1", "h", 1, 1, "", "p@ss:w/rd");
    url_is("redis://:p@ss@h/4", "h", 6379, 4, "", "p@ss");
    url_is("redis://us%65r:pw@h", "h", 6379, 0, "user", "pw");
    url_is("redis://pw@h/", "h", 6379, 0, "", "pw");
    ok(rds_url_parse("redis://:bad%4@h", &u) < 0, "a truncated %%XX is refused");
    ok(rds_url_parse("redis://:bad%zz@h", &u) < 0, "a non-hex %%XX is refused");
    ok(rds_url_parse("redis://:nul%00x@h", &u) < 0, "%%00 is refused");
    ok(rds_url_parse("rediss://h", &u) < 0, "rediss:// (TLS) is refused, not taken as plain");
    ok(rds_url_parse("redis://h/x", &u) < 0, "a db that is not a number");
    ok(rds_url_parse("redis://h:0", &u) < 0, "port 0");
    ok(rds_url_parse("redis://:pw@", &u) < 0, "no host");
    done_testing();
}
