#include "cfg.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cfg cfg;

enum cfg_type { CFG_STR, CFG_INT, CFG_LONG, CFG_BOOL };
enum cfg_flags { CFG_SECRET = 1 << 0 };

struct cfg_key {
    const char *name;
    enum cfg_type type;
    size_t off;
    const char *def;
    long min, max;
    unsigned flags;
};

#define F(field) offsetof(struct cfg, field)
#define S(name, field, def)                                                                        \
    {                                                                                              \
        name, CFG_STR, F(field), def, 0, 0, 0                                                      \
    }
#define SECRET(name, field)                                                                        \
    {                                                                                              \
        name, CFG_STR, F(field), "", 0, 0, CFG_SECRET                                              \
    }
#define I(name, field, def, lo, hi)                                                                \
    {                                                                                              \
        name, CFG_INT, F(field), def, lo, hi, 0                                                    \
    }
#define L(name, field, def, lo, hi)                                                                \
    {                                                                                              \
        name, CFG_LONG, F(field), def, lo, hi, 0                                                   \
    }
#define B(name, field, def)                                                                        \
    {                                                                                              \
        name, CFG_BOOL, F(field), def, 0, 1, 0                                                     \
    }

/* The one table of settings; .env.example and the README list the same keys (t/0010). */
static const struct cfg_key cfg_table[] = {
    S("DATABASE_URL", database_url, "postgresql://chatd@127.0.0.1:5432/chatd"),
    S("REDIS_URL", redis_url, "redis://127.0.0.1:6379/0"),
    SECRET("SECRET_KEY", secret_key),
    SECRET("REFRESH_SECRET_KEY", refresh_secret_key),
    I("ACCESS_TOKEN_EXPIRE_MINUTES", access_ttl_min, "15", 1, 10080),
    I("REFRESH_TOKEN_EXPIRE_DAYS", refresh_ttl_days, "7", 1, 365),
    /* Empty outside DEBUG; cfg_default_cors() puts the development list in when DEBUG is true. */
    S("CORS_ORIGINS_STR", cors_origins_str, ""),
    S("ALLOWED_EXTENSIONS_STR", allowed_extensions_str,
      "image/jpeg,image/png,image/gif,image/webp,video/mp4,video/webm"),
    L("MAX_UPLOAD_SIZE", max_upload_size, "10485760", 1, 1L << 32),
    L("MAX_BODY_SIZE", max_body_size, "1048576", 1024, 64L << 20),
    S("UPLOAD_DIR", upload_dir, "./var/uploads"),
    B("DEBUG", debug, "false"),
    S("GOOGLE_CLIENT_ID", google_client_id, ""),
    {"GOOGLE_CLIENT_SECRET", CFG_STR, F(google_client_secret), "", 0, 0, CFG_SECRET},
    S("GOOGLE_REDIRECT_URI", google_redirect_uri, ""),
    S("GOOGLE_AUTHORIZE_URL", google_authorize_url, "https://accounts.google.com/o/oauth2/v2/auth"),
    S("GOOGLE_TOKEN_URL", google_token_url, "https://oauth2.googleapis.com/token"),
    S("GOOGLE_USERINFO_URL", google_userinfo_url,
      "https://openidconnect.googleapis.com/v1/userinfo"),
    S("OAUTH_SUCCESS_REDIRECT", oauth_success_redirect, "/"),
    {"SMTP_URL", CFG_STR, F(smtp_url), "", 0, 0, CFG_SECRET},
    S("MAIL_FROM", mail_from, "chatd@localhost"),
    S("MAIL_OUTBOX_DIR", mail_outbox_dir, "./var/mail"),
    S("PUBLIC_URL", public_url, "http://127.0.0.1:8000"),
    I("HTTP_PORT", http_port, "8000", 1, 65535),
    I("FCGI_WORKERS", fcgi_workers, "0", 0, 256),
    S("FCGI_SOCKET", fcgi_socket, "./var/run/fcgi.sock"),
    S("WSD_HOST", wsd_host, "127.0.0.1"),
    I("WSD_PORT", wsd_port, "8001", 1, 65535),
    I("WSD_PRESENCE_TTL", wsd_presence_ttl, "30", 3, 300),
    I("RATE_LIMIT_LOGIN_PER_MINUTE", rate_login_per_minute, "10", 0, 1000000),
    I("RATE_LIMIT_REGISTER_PER_HOUR", rate_register_per_hour, "20", 0, 1000000),
    I("RATE_LIMIT_MESSAGES_PER_10S", rate_messages_per_10s, "30", 0, 1000000),
    S("LOG_LEVEL", log_level, "info"),
    I("RATE_LIMIT_LOGIN_ACCOUNT_PER_MINUTE", rate_login_account_per_minute, "30", 0, 1000000),
    I("RATE_LIMIT_MAIL_PER_HOUR", rate_mail_per_hour, "20", 0, 1000000),
    I("RATE_LIMIT_MAIL_ADDRESS_PER_HOUR", rate_mail_address_per_hour, "5", 0, 1000000),
    I("RATE_LIMIT_UPLOADS_PER_MINUTE", rate_uploads_per_minute, "20", 0, 1000000),
    I("RATE_LIMIT_GROUPS_PER_HOUR", rate_groups_per_hour, "20", 0, 1000000),
    I("RATE_LIMIT_GROUP_MEMBERS_PER_HOUR", rate_group_members_per_hour, "400", 0, 1000000),
    S("FCGI_SOCKET_GROUP", fcgi_socket_group, ""),
    I("DB_LOCK_TIMEOUT_MS", db_lock_timeout_ms, "5000", 0, 600000),
    I("DB_STATEMENT_TIMEOUT_MS", db_statement_timeout_ms, "10000", 0, 3600000),
    I("WSD_DB_QUEUE_MAX", wsd_db_queue_max, "4096", 1, 1000000),
    I("WSD_SYNC_BATCH_BYTES", wsd_sync_batch_bytes, "262144", 4096, 16777216),
    I("WSD_MAX_CONN_PER_USER", wsd_max_conn_per_user, "20", 0, 1000000),
    I("WSD_TAIL_POLL_MS", wsd_tail_poll_ms, "500", 10, 60000),
    I("WSD_SLOW_CLIENT_SECS", wsd_slow_client_secs, "15", 1, 3600),
    I("WSD_SLOW_CLIENT_BYTES", wsd_slow_client_bytes, "262144", 0, 1073741824),
    I("WSD_OUT_QUEUE_MAX_BYTES", wsd_out_queue_max_bytes, "16777216", 4194304, 1073741824),
    I("WSD_PRESENCE_COALESCE_MS", wsd_presence_tick_ms, "1000", 0, 60000),
    I("WSD_PING_SECS", wsd_ping_secs, "30", 1, 3600),
    I("WSD_IDLE_HANGUP_SECS", wsd_idle_hangup_secs, "75", 2, 7200),
    S("METRICS_DIR", metrics_dir, "./var/run/metrics"),
    S("METRICS_ALLOW", metrics_allow, "127.0.0.1,::1"),
};

/* The CORS_ORIGINS_STR of a DEBUG setup when the variable is unset: the usual dev servers. */
static const char cfg_debug_origins[] =
    "http://localhost:3000,http://localhost:5173,http://localhost:8000,http://127.0.0.1:8000";

/* Values shipped in .env.example and by the old version: never good outside DEBUG. */
static const char *const cfg_example_secrets[] = {
    "change-me-to-a-long-random-secret",
    "change-me-to-another-long-random-secret",
    "your-secret-key-here",
    "your-refresh-secret-key-here",
    "secret",
};

static char *cfg_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* KEY=VALUE lines, '#' comments, optional quotes; the environment wins. */
static int cfg_read_env_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : (snprintf(err, errlen, "%s: cannot read", path), -1);
    char line[4096];
    int lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *s = cfg_trim(line);
        if (*s == '#' || *s == '\0')
            continue;
        if (strncmp(s, "export ", 7) == 0)
            s = cfg_trim(s + 7);
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected KEY=VALUE", path, lineno);
            fclose(f);
            return -1;
        }
        *eq = '\0';
        char *key = cfg_trim(s), *val = cfg_trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 && (val[0] == '"' || val[0] == '\'') && val[vl - 1] == val[0]) {
            val[vl - 1] = '\0';
            val++;
        }
        setenv(key, val, 0);
    }
    fclose(f);
    return 0;
}

int cfg_split_list(char *s, struct cfg_list *l)
{
    l->n = 0;
    if (*s == '\0')
        return 0;
    for (char *p = s;;) {
        char *c = strchr(p, ',');
        if (c)
            *c = '\0';
        if (*p == '\0' || strpbrk(p, " \t[]\"'") || l->n == CFG_LIST_MAX)
            return -1;
        l->item[l->n++] = p;
        if (!c)
            return 0;
        p = c + 1;
    }
}

static int cfg_set(const struct cfg_key *k, const char *v, char *err, size_t errlen)
{
    char *field = (char *)&cfg + k->off;
    char *end;
    long n;
    switch (k->type) {
    case CFG_STR:
        *(char **)field = strdup(v);
        return 0;
    case CFG_BOOL:
        if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes"))
            *(int *)field = 1;
        else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") || !*v)
            *(int *)field = 0;
        else
            break;
        return 0;
    case CFG_INT:
    case CFG_LONG:
        errno = 0;
        n = strtol(v, &end, 10);
        if (errno || end == v || *end || n < k->min || n > k->max) {
            snprintf(err, errlen, "%s: expected an integer in [%ld, %ld], got \"%s\"", k->name,
                     k->min, k->max, v);
            return -1;
        }
        if (k->type == CFG_INT)
            *(int *)field = (int)n;
        else
            *(long *)field = n;
        return 0;
    }
    snprintf(err, errlen, "%s: expected true or false, got \"%s\"", k->name, v);
    return -1;
}

static int cfg_check_secret(const char *name, const char *v, char *err, size_t errlen)
{
    if (cfg.debug)
        return 0;
    if (strlen(v) < 32) {
        snprintf(err, errlen,
                 "%s: must be set to at least 32 random characters when DEBUG is false", name);
        return -1;
    }
    for (size_t i = 0; i < sizeof(cfg_example_secrets) / sizeof(*cfg_example_secrets); i++)
        if (!strcmp(v, cfg_example_secrets[i])) {
            snprintf(err, errlen,
                     "%s: still the example value; set a random secret "
                     "(e.g. openssl rand -hex 32) or DEBUG=true",
                     name);
            return -1;
        }
    return 0;
}

/* The old version's URLs name the asyncpg driver; libpq wants plain postgresql://. */
static void cfg_fix_database_url(void)
{
    static const char prefix[] = "postgresql+asyncpg://";
    if (strncmp(cfg.database_url, prefix, sizeof(prefix) - 1) == 0) {
        char *u = NULL;
        if (asprintf(&u, "postgresql://%s", cfg.database_url + sizeof(prefix) - 1) < 0)
            return;
        free(cfg.database_url);
        cfg.database_url = u;
    }
}

static int cfg_split(const char *name, const char *s, struct cfg_list *l, char *err, size_t errlen)
{
    char *copy = strdup(s);
    if (!copy || cfg_split_list(copy, l) < 0) {
        free(copy);
        l->n = 0;
        l->buf = NULL;
        snprintf(err, errlen, "%s: expected a comma-separated list without spaces or brackets",
                 name);
        return -1;
    }
    l->buf = copy;
    return 0;
}

/*
 * No fallback to the example secrets, even with DEBUG=true: a program run
 * outside the stack would sign tokens with a key anyone can read, and
 * generating one per process would split chat-fcgi and chat-wsd (each its
 * own key). scripts/stack generates them into var/secrets.env instead.
 */
static int cfg_require_secrets(char *err, size_t errlen)
{
    const char *missing = !*cfg.secret_key && !*cfg.refresh_secret_key
                              ? "SECRET_KEY, REFRESH_SECRET_KEY"
                          : !*cfg.secret_key         ? "SECRET_KEY"
                          : !*cfg.refresh_secret_key ? "REFRESH_SECRET_KEY"
                                                     : NULL;
    if (!missing)
        return 0;
    snprintf(err, errlen,
             "%s: not set (DEBUG=%s); set random secrets (e.g. openssl rand -hex 32), "
             "or start through scripts/stack (make run), which generates them",
             missing, cfg.debug ? "true" : "false");
    return -1;
}

/* CORS_ORIGINS_STR unset: the development list under DEBUG, else none (warned at start-up). */
static void cfg_default_cors(void)
{
    if (getenv("CORS_ORIGINS_STR"))
        return;
    char *dev = cfg.debug ? strdup(cfg_debug_origins) : NULL;
    if (dev) {
        free(cfg.cors_origins_str);
        cfg.cors_origins_str = dev;
        return;
    }
    log_warn("CORS_ORIGINS_STR is not set: no cross-origin browser client is allowed "
             "(WebSocket Origin: only PUBLIC_URL)");
}

int cfg_load(char *err, size_t errlen)
{
    const char *file = getenv("ENV_FILE");
    if (cfg_read_env_file(file && *file ? file : ".env", err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(cfg_table) / sizeof(*cfg_table); i++) {
        const char *v = getenv(cfg_table[i].name);
        if (cfg_set(&cfg_table[i], v ? v : cfg_table[i].def, err, errlen) < 0)
            return -1;
    }
    cfg_fix_database_url();
    if (cfg_require_secrets(err, errlen) < 0)
        return -1;
    if (cfg_check_secret("SECRET_KEY", cfg.secret_key, err, errlen) < 0 ||
        cfg_check_secret("REFRESH_SECRET_KEY", cfg.refresh_secret_key, err, errlen) < 0)
        return -1;
    if (!strcmp(cfg.secret_key, cfg.refresh_secret_key) && !cfg.debug) {
        snprintf(err, errlen, "REFRESH_SECRET_KEY: must differ from SECRET_KEY");
        return -1;
    }
    cfg_default_cors();
    if (cfg_split("CORS_ORIGINS_STR", cfg.cors_origins_str, &cfg.cors_origins, err, errlen) < 0 ||
        cfg_split("ALLOWED_EXTENSIONS_STR", cfg.allowed_extensions_str, &cfg.allowed_types, err,
                  errlen) < 0)
        return -1;
    if (cfg.wsd_idle_hangup_secs <= cfg.wsd_ping_secs) {
        snprintf(err, errlen, "WSD_IDLE_HANGUP_SECS: must be above WSD_PING_SECS");
        return -1;
    }
    if (log_level_parse(cfg.log_level) < 0) {
        snprintf(err, errlen, "LOG_LEVEL: expected error, warn, info or debug");
        return -1;
    }
    if (cfg.fcgi_workers == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        cfg.fcgi_workers = cores > 0 ? (int)(2 * cores) : 2;
    }
    return 0;
}

#define CFG_MASK "********"

/*
 * scheme://user:password@host → scheme://user:********@host. The last '@'
 * ends the user part: a '@' in the query makes this mask too much, never too
 * little.
 */
static void cfg_mask_userinfo(char *s)
{
    char *scheme = strstr(s, "://");
    char *at = scheme ? strrchr(scheme + 3, '@') : NULL;
    char *colon = at ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
    if (!colon)
        return;
    memmove(colon + 1 + strlen(CFG_MASK), at, strlen(at) + 1);
    memcpy(colon + 1, CFG_MASK, strlen(CFG_MASK));
}

/*
 * Every "…password = value" (URL query ?password= / &sslpassword=, libpq
 * "key=value" conninfo, quoted or not): value → ********. s has room for it.
 */
static void cfg_mask_password_args(char *s)
{
    for (char *p = s; (p = strcasestr(p, "password")) != NULL;) {
        char *v = p + 8;
        while (*v == ' ')
            v++;
        if (*v != '=') {
            p += 8;
            continue;
        }
        for (v++; *v == ' ';)
            v++;
        char *e = v;
        if (*e == '\'' || *e == '"') {
            for (e++; *e && *e != *v; e += (*e == '\\' && e[1]) ? 2 : 1)
                ;
            e += *e != '\0';
        } else {
            e += strcspn(e, "& \t#");
        }
        memmove(v + strlen(CFG_MASK), e, strlen(e) + 1);
        memcpy(v, CFG_MASK, strlen(CFG_MASK));
        p = v + strlen(CFG_MASK);
    }
}

char *cfg_mask(const char *v)
{
    /* Each mask replaces at least one character with 8, at most once per input character. */
    size_t n = strlen(v);
    char *s = malloc(n * (strlen(CFG_MASK) + 1) + 1);
    if (!s)
        return NULL;
    memcpy(s, v, n + 1);
    cfg_mask_userinfo(s);
    cfg_mask_password_args(s);
    return s;
}

static void cfg_print_masked(const char *name, const char *v)
{
    char *m = cfg_mask(v);
    printf("%s=%s\n", name, m ? m : CFG_MASK);
    free(m);
}

void cfg_print(void)
{
    for (size_t i = 0; i < sizeof(cfg_table) / sizeof(*cfg_table); i++) {
        const struct cfg_key *k = &cfg_table[i];
        const char *field = (const char *)&cfg + k->off;
        switch (k->type) {
        case CFG_STR: {
            const char *v = *(char *const *)field;
            /* Any string may carry a password (a URL, a conninfo): all are masked. */
            if (k->flags & CFG_SECRET)
                printf("%s=%s\n", k->name, *v ? CFG_MASK : "");
            else
                cfg_print_masked(k->name, v);
            break;
        }
        case CFG_INT:
            printf("%s=%d\n", k->name, *(const int *)field);
            break;
        case CFG_LONG:
            printf("%s=%ld\n", k->name, *(const long *)field);
            break;
        case CFG_BOOL:
            printf("%s=%s\n", k->name, *(const int *)field ? "true" : "false");
            break;
        }
    }
}

int cfg_origin_allowed(const char *origin, size_t len)
{
    for (int i = 0; i < cfg.cors_origins.n; i++)
        if (strlen(cfg.cors_origins.item[i]) == len &&
            !memcmp(cfg.cors_origins.item[i], origin, len))
            return 1;
    return 0;
}

void cfg_free(void)
{
    free(cfg.cors_origins.buf);
    free(cfg.allowed_types.buf);
    cfg.cors_origins.buf = cfg.allowed_types.buf = NULL;
    for (size_t i = 0; i < sizeof(cfg_table) / sizeof(*cfg_table); i++)
        if (cfg_table[i].type == CFG_STR) {
            char **p = (char **)((char *)&cfg + cfg_table[i].off);
            free(*p);
            *p = NULL;
        }
}
