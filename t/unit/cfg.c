/*
 * shared/cfg.c: defaults, URL rewriting, secret checks, integer bounds, list syntax,
 * the .env file and the origin check. Every case starts from a clean environment
 * (cfg_reset() unsets each key cfg reads) and ENV_FILE=/dev/null, so neither the
 * developer's shell nor a .env in the working directory can leak in.
 */
#include "cfg.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GOOD_SECRET "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define GOOD_REFRESH "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

static const char *const cfg_keys[] = {
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "REFRESH_SECRET_KEY",
    "ACCESS_TOKEN_EXPIRE_MINUTES",
    "REFRESH_TOKEN_EXPIRE_DAYS",
    "CORS_ORIGINS_STR",
    "ALLOWED_EXTENSIONS_STR",
    "MAX_UPLOAD_SIZE",
    "MAX_BODY_SIZE",
    "UPLOAD_DIR",
    "DEBUG",
    "GOOGLE_CLIENT_ID",
    "GOOGLE_CLIENT_SECRET",
    "GOOGLE_REDIRECT_URI",
    "GOOGLE_AUTHORIZE_URL",
    "GOOGLE_TOKEN_URL",
    "GOOGLE_USERINFO_URL",
    "OAUTH_SUCCESS_REDIRECT",
    "SMTP_URL",
    "MAIL_FROM",
    "MAIL_OUTBOX_DIR",
    "PUBLIC_URL",
    "HTTP_PORT",
    "FCGI_WORKERS",
    "FCGI_SOCKET",
    "WSD_HOST",
    "WSD_PORT",
    "RATE_LIMIT_LOGIN_PER_MINUTE",
    "RATE_LIMIT_REGISTER_PER_HOUR",
    "RATE_LIMIT_MESSAGES_PER_10S",
    "LOG_LEVEL",
    "RATE_LIMIT_GROUPS_PER_HOUR",
    "RATE_LIMIT_GROUP_MEMBERS_PER_HOUR",
    "FCGI_SOCKET_GROUP",
};

static char err[512];

/* ok() that shows what cfg_load() said when the check fails. */
#define ok_err(cond, ...)                                                                          \
    do {                                                                                           \
        if (!ok(cond, __VA_ARGS__))                                                                \
            diag("cfg_load said: \"%s\"", err);                                                    \
    } while (0)

static void cfg_reset(void)
{
    cfg_free();
    for (size_t i = 0; i < sizeof(cfg_keys) / sizeof(*cfg_keys); i++)
        unsetenv(cfg_keys[i]);
    setenv("ENV_FILE", "/dev/null", 1);
    err[0] = '\0';
}

/* A clean environment with DEBUG=false and two good, different secrets. */
static void cfg_reset_prod(void)
{
    cfg_reset();
    setenv("DEBUG", "false", 1);
    setenv("SECRET_KEY", GOOD_SECRET, 1);
    setenv("REFRESH_SECRET_KEY", GOOD_REFRESH, 1);
    setenv("CORS_ORIGINS_STR", "", 1); /* set, so no start-up warning on stderr */
}

static int has(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

/* err names SECRET_KEY itself, not only REFRESH_SECRET_KEY. */
static int names_secret_key(const char *e)
{
    for (const char *p = e; (p = strstr(p, "SECRET_KEY")) != NULL; p++)
        if (p < e + 8 || strncmp(p - 8, "REFRESH_", 8) != 0)
            return 1;
    return 0;
}

static void test_defaults(void)
{
    cfg_reset();
    setenv("DEBUG", "true", 1);
    setenv("SECRET_KEY", GOOD_SECRET, 1);
    setenv("REFRESH_SECRET_KEY", GOOD_REFRESH, 1);
    is_int(cfg_load(err, sizeof(err)), 0, "defaults load with DEBUG=true");
    if (err[0])
        diag("cfg_load: %s", err);
    is_int(cfg.debug, 1, "DEBUG=true is read as 1");
    is_int(cfg.access_ttl_min, 15, "ACCESS_TOKEN_EXPIRE_MINUTES defaults to 15");
    is_int(cfg.refresh_ttl_days, 7, "REFRESH_TOKEN_EXPIRE_DAYS defaults to 7");
    is_int(cfg.max_upload_size, 10485760, "MAX_UPLOAD_SIZE defaults to 10 MiB");
    is_int(cfg.http_port, 8000, "HTTP_PORT defaults to 8000");
    is_int(cfg.cors_origins.n, 4, "four default CORS origins with DEBUG=true");
    is_str(cfg.cors_origins.n > 0 ? cfg.cors_origins.item[0] : NULL, "http://localhost:3000",
           "first default origin is http://localhost:3000");
    is_str(cfg.cors_origins.n > 3 ? cfg.cors_origins.item[3] : NULL, "http://127.0.0.1:8000",
           "last default origin is http://127.0.0.1:8000");
    is_int(cfg.allowed_types.n, 6, "six default upload types");
    is_str(cfg.allowed_types.n > 0 ? cfg.allowed_types.item[0] : NULL, "image/jpeg",
           "first default upload type is image/jpeg");
    is_int(cfg.rate_groups_per_hour, 20, "RATE_LIMIT_GROUPS_PER_HOUR defaults to 20");
    is_int(cfg.rate_group_members_per_hour, 400,
           "RATE_LIMIT_GROUP_MEMBERS_PER_HOUR defaults to 400");
    ok(cfg.fcgi_workers > 0, "FCGI_WORKERS=0 becomes a positive worker count");
    ok(cfg.google_client_id && *cfg.google_client_id == '\0',
       "unset string settings are \"\", never NULL");
    is_str(cfg.log_level, "info", "LOG_LEVEL defaults to info");
    ok(cfg.database_url && !strncmp(cfg.database_url, "postgresql://", 13),
       "default DATABASE_URL is a postgresql:// URL");
}

static void test_debug_false_by_default(void)
{
    cfg_reset();
    is_int(cfg_load(err, sizeof(err)), -1, "DEBUG unset (false) and no secrets: refused");
    ok_err(names_secret_key(err), "refusal without secrets names SECRET_KEY");
}

static void test_asyncpg_url(void)
{
    cfg_reset_prod();
    setenv("DATABASE_URL", "postgresql+asyncpg://u:p@db.example:5433/chat?sslmode=disable", 1);
    is_int(cfg_load(err, sizeof(err)), 0, "postgresql+asyncpg:// URL is accepted");
    is_str(cfg.database_url, "postgresql://u:p@db.example:5433/chat?sslmode=disable",
           "postgresql+asyncpg:// is rewritten to postgresql://");

    cfg_reset_prod();
    setenv("DATABASE_URL", "postgresql://u@h/d", 1);
    is_int(cfg_load(err, sizeof(err)), 0, "plain postgresql:// URL loads");
    is_str(cfg.database_url, "postgresql://u@h/d", "plain postgresql:// URL is kept as is");
}

static void test_secrets(void)
{
    cfg_reset();
    setenv("DEBUG", "false", 1);
    is_int(cfg_load(err, sizeof(err)), -1, "DEBUG=false without secrets: refused");
    ok_err(names_secret_key(err), "missing secrets: message names SECRET_KEY");

    cfg_reset();
    setenv("DEBUG", "false", 1);
    setenv("REFRESH_SECRET_KEY", GOOD_REFRESH, 1);
    is_int(cfg_load(err, sizeof(err)), -1, "DEBUG=false with only REFRESH_SECRET_KEY: refused");
    ok_err(names_secret_key(err), "missing SECRET_KEY alone is named");

    cfg_reset_prod();
    setenv("SECRET_KEY", "change-me-to-a-long-random-secret", 1);
    is_int(cfg_load(err, sizeof(err)), -1, "example SECRET_KEY refused when DEBUG=false");
    ok_err(names_secret_key(err), "example SECRET_KEY: message names SECRET_KEY");

    cfg_reset_prod();
    setenv("REFRESH_SECRET_KEY", "change-me-to-another-long-random-secret", 1);
    is_int(cfg_load(err, sizeof(err)), -1, "example REFRESH_SECRET_KEY refused");
    ok_err(has(err, "REFRESH_SECRET_KEY"), "example REFRESH_SECRET_KEY is named");

    cfg_reset_prod();
    setenv("SECRET_KEY", "short-secret", 1);
    is_int(cfg_load(err, sizeof(err)), -1, "short SECRET_KEY refused when DEBUG=false");
    ok_err(names_secret_key(err), "short SECRET_KEY: message names SECRET_KEY");

    cfg_reset_prod();
    setenv("REFRESH_SECRET_KEY", GOOD_SECRET, 1);
    is_int(cfg_load(err, sizeof(err)), -1, "REFRESH_SECRET_KEY equal to SECRET_KEY refused");
    ok_err(has(err, "REFRESH_SECRET_KEY"), "equal secrets: message names REFRESH_SECRET_KEY");

    cfg_reset_prod();
    is_int(cfg_load(err, sizeof(err)), 0, "DEBUG=false with two good secrets loads");
    if (err[0])
        diag("cfg_load: %s", err);
    is_str(cfg.secret_key, GOOD_SECRET, "SECRET_KEY is taken from the environment");
    is_str(cfg.refresh_secret_key, GOOD_REFRESH,
           "REFRESH_SECRET_KEY is taken from the environment");
    is_int(cfg.debug, 0, "DEBUG=false is read as 0");

    cfg_reset();
    setenv("DEBUG", "true", 1);
    setenv("SECRET_KEY", "change-me-to-a-long-random-secret", 1);
    setenv("REFRESH_SECRET_KEY", "change-me-to-another-long-random-secret", 1);
    is_int(cfg_load(err, sizeof(err)), 0, "example secrets set explicitly are accepted (DEBUG)");

    /* Issue 8: DEBUG=true used to sign tokens with the example secrets when none was set. */
    cfg_reset();
    setenv("DEBUG", "true", 1);
    is_int(cfg_load(err, sizeof(err)), -1, "DEBUG=true without secrets: refused");
    ok_err(names_secret_key(err), "DEBUG=true without secrets: message names SECRET_KEY");
    ok(cfg.secret_key == NULL || strcmp(cfg.secret_key, "change-me-to-a-long-random-secret"),
       "DEBUG=true without secrets: no example secret is filled in");

    cfg_reset();
    setenv("DEBUG", "true", 1);
    setenv("SECRET_KEY", GOOD_SECRET, 1);
    is_int(cfg_load(err, sizeof(err)), -1, "DEBUG=true with SECRET_KEY only: refused");
    ok_err(has(err, "REFRESH_SECRET_KEY"), "missing REFRESH_SECRET_KEY is named (DEBUG)");
}

/* Issue 8: outside DEBUG the localhost development origins were allowed by default. */
static void test_cors_default(void)
{
    cfg_reset_prod();
    unsetenv("CORS_ORIGINS_STR");
    is_int(cfg_load(err, sizeof(err)), 0, "DEBUG=false, CORS_ORIGINS_STR unset: loads");
    is_int(cfg.cors_origins.n, 0, "DEBUG=false: no CORS origin by default");
    const char *o = "http://localhost:3000";
    is_int(cfg_origin_allowed(o, strlen(o)), 0, "DEBUG=false: localhost:3000 is not allowed");

    cfg_reset_prod();
    setenv("DEBUG", "true", 1);
    setenv("CORS_ORIGINS_STR", "", 1);
    is_int(cfg_load(err, sizeof(err)), 0, "DEBUG=true, CORS_ORIGINS_STR set empty: loads");
    is_int(cfg.cors_origins.n, 0, "an explicitly empty CORS list stays empty under DEBUG");
}

static void mask_is(const char *in, const char *want, const char *title)
{
    char *m = cfg_mask(in);
    is_str(m, want, "cfg_mask: %s", title);
    free(m);
}

/* Issue 8: --print-config showed ?password= and conninfo password= values. */
static void test_mask(void)
{
    mask_is("postgresql://u:pw@h:5432/d", "postgresql://u:********@h:5432/d", "URL password");
    mask_is("redis://:pw@h:6379/0", "redis://:********@h:6379/0", "Redis URL password");
    mask_is("smtp://user:p@ss@mail:587", "smtp://user:********@mail:587", "'@' in a password");
    mask_is("postgresql://u@h/d", "postgresql://u@h/d", "no password: unchanged");
    mask_is("postgresql://h/d?user=u&password=pw&sslmode=require",
            "postgresql://h/d?user=u&password=********&sslmode=require", "?password= in a query");
    mask_is("postgresql://h/d?sslpassword=x", "postgresql://h/d?sslpassword=********",
            "sslpassword= in a query");
    mask_is("host=h user=u password=pw dbname=d", "host=h user=u password=******** dbname=d",
            "conninfo password=");
    mask_is("host=h password = 'p w\\' x' dbname=d", "host=h password = ******** dbname=d",
            "quoted conninfo password with an escaped quote");
    mask_is("PASSWORD=pw", "PASSWORD=********", "key case ignored");
    mask_is("password=", "password=********", "empty value");
    mask_is("http://127.0.0.1:8000", "http://127.0.0.1:8000", "plain URL unchanged");
}

static void expect_bad(const char *key, const char *val, const char *title)
{
    cfg_reset_prod();
    setenv(key, val, 1);
    is_int(cfg_load(err, sizeof(err)), -1, "%s=\"%s\" refused (%s)", key, val, title);
    ok_err(has(err, key), "%s=\"%s\": message names %s", key, val, key);
}

static void test_ints(void)
{
    expect_bad("ACCESS_TOKEN_EXPIRE_MINUTES", "abc", "not a number");
    expect_bad("ACCESS_TOKEN_EXPIRE_MINUTES", "0", "below the minimum");
    expect_bad("ACCESS_TOKEN_EXPIRE_MINUTES", "99999999", "above the maximum");
    expect_bad("ACCESS_TOKEN_EXPIRE_MINUTES", "15m", "trailing garbage");
    expect_bad("ACCESS_TOKEN_EXPIRE_MINUTES", "99999999999999999999999", "overflows a long");
    expect_bad("REFRESH_TOKEN_EXPIRE_DAYS", "-1", "negative");
    expect_bad("HTTP_PORT", "70000", "not a port");
    expect_bad("MAX_UPLOAD_SIZE", "ten", "not a number");
    expect_bad("DEBUG", "maybe", "not a boolean");
    expect_bad("LOG_LEVEL", "loud", "not a level");

    cfg_reset_prod();
    setenv("ACCESS_TOKEN_EXPIRE_MINUTES", "60", 1);
    setenv("MAX_BODY_SIZE", "2048", 1);
    is_int(cfg_load(err, sizeof(err)), 0, "in-range integers load");
    is_int(cfg.access_ttl_min, 60, "ACCESS_TOKEN_EXPIRE_MINUTES=60 is read");
    is_int(cfg.max_body_size, 2048, "MAX_BODY_SIZE=2048 is read");
}

static void test_lists(void)
{
    expect_bad("CORS_ORIGINS_STR", "http://a.example, http://b.example", "space after comma");
    expect_bad("CORS_ORIGINS_STR", "[\"http://a.example\",\"http://b.example\"]", "JSON brackets");
    expect_bad("CORS_ORIGINS_STR", "http://a.example,,http://b.example", "empty item");
    expect_bad("CORS_ORIGINS_STR", "http://a.example,", "trailing comma");
    expect_bad("ALLOWED_EXTENSIONS_STR", "image/png, image/gif", "space after comma");

    cfg_reset_prod();
    setenv("CORS_ORIGINS_STR", "http://a.example,https://b.example:8443", 1);
    is_int(cfg_load(err, sizeof(err)), 0, "a well-formed CORS list loads");
    is_int(cfg.cors_origins.n, 2, "two CORS origins are split");
    is_str(cfg.cors_origins.n > 1 ? cfg.cors_origins.item[1] : NULL, "https://b.example:8443",
           "second CORS origin is kept whole");

    struct cfg_list l;
    char empty[] = "", three[] = "a,b,c", blank[] = "a,,c", sp[] = "a, b";
    is_int(cfg_split_list(empty, &l), 0, "cfg_split_list: empty string is a valid empty list");
    is_int(l.n, 0, "cfg_split_list: empty string has no items");
    is_int(cfg_split_list(three, &l), 0, "cfg_split_list: a,b,c is valid");
    is_int(l.n, 3, "cfg_split_list: a,b,c has three items");
    is_str(l.n == 3 ? l.item[2] : NULL, "c", "cfg_split_list: third item is c");
    is_int(cfg_split_list(blank, &l), -1, "cfg_split_list: a,,c is malformed");
    is_int(cfg_split_list(sp, &l), -1, "cfg_split_list: a, b is malformed");

    char many[4 * (CFG_LIST_MAX + 1)] = "";
    for (int i = 0; i <= CFG_LIST_MAX; i++)
        strcat(many, i ? ",x" : "x");
    is_int(cfg_split_list(many, &l), -1, "cfg_split_list: more than CFG_LIST_MAX items refused");
}

static void test_env_file(void)
{
    char path[] = "/tmp/chatd-unit-cfg-XXXXXX";
    int fd = mkstemp(path);
    if (!ok(fd >= 0, "temporary .env file created"))
        return;
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# comment line\n"
               "\n"
               "SECRET_KEY=" GOOD_SECRET "\n"
               "export REFRESH_SECRET_KEY=" GOOD_REFRESH "\n"
               "DEBUG=false\n"
               "ACCESS_TOKEN_EXPIRE_MINUTES=42\n"
               "MAIL_FROM=\"Chat Daemon <chat@example.com>\"\n"
               "REDIS_URL=redis://from-file:6379/0\n");
    fclose(f);

    cfg_reset();
    setenv("ENV_FILE", path, 1);
    setenv("REDIS_URL", "redis://from-env:6380/1", 1);
    is_int(cfg_load(err, sizeof(err)), 0, ".env file named by ENV_FILE loads");
    if (err[0])
        diag("cfg_load: %s", err);
    is_str(cfg.secret_key, GOOD_SECRET, ".env: SECRET_KEY read from the file");
    is_str(cfg.refresh_secret_key, GOOD_REFRESH, ".env: 'export KEY=value' line is read");
    is_int(cfg.access_ttl_min, 42, ".env: integer read from the file");
    is_str(cfg.mail_from, "Chat Daemon <chat@example.com>", ".env: surrounding quotes removed");
    is_str(cfg.redis_url, "redis://from-env:6380/1", ".env: the environment wins over the file");

    f = fopen(path, "w");
    fprintf(f, "SECRET_KEY=" GOOD_SECRET "\nthis line has no equals sign\n");
    fclose(f);
    cfg_reset();
    setenv("ENV_FILE", path, 1);
    is_int(cfg_load(err, sizeof(err)), -1, ".env: a line without '=' is refused");
    ok_err(has(err, path), ".env: the refusal names the file");
    ok_err(has(err, ":2"), ".env: the refusal names the line number");
    unlink(path);
}

static void test_origin_allowed(void)
{
    cfg_reset_prod();
    setenv("CORS_ORIGINS_STR", "http://localhost:3000,https://app.example:8443", 1);
    is_int(cfg_load(err, sizeof(err)), 0, "origin list for cfg_origin_allowed loads");
    const char *o;
    o = "http://localhost:3000";
    is_int(cfg_origin_allowed(o, strlen(o)), 1, "listed origin is allowed");
    o = "https://app.example:8443";
    is_int(cfg_origin_allowed(o, strlen(o)), 1, "second listed origin is allowed");
    o = "http://localhost:300";
    is_int(cfg_origin_allowed(o, strlen(o)), 0, "prefix of a listed origin is refused");
    o = "http://localhost:30000";
    is_int(cfg_origin_allowed(o, strlen(o)), 0, "listed origin plus a suffix is refused");
    o = "http://evil.example";
    is_int(cfg_origin_allowed(o, strlen(o)), 0, "unlisted origin is refused");
    o = "http://localhost:3000, garbage";
    is_int(cfg_origin_allowed(o, strlen("http://localhost:3000")), 1,
           "length bounds the comparison (not NUL-terminated input)");
    is_int(cfg_origin_allowed("", 0), 0, "empty origin is refused");
    o = "HTTP://LOCALHOST:3000";
    is_int(cfg_origin_allowed(o, strlen(o)), 0, "origin match is exact (case-sensitive)");
}

int main(void)
{
    test_defaults();
    test_debug_false_by_default();
    test_asyncpg_url();
    test_secrets();
    test_ints();
    test_lists();
    test_env_file();
    test_origin_allowed();
    test_cors_default();
    test_mask();
    cfg_reset();
    return done_testing();
}
