#ifndef CHATD_CFG_H
#define CHATD_CFG_H

#include <stddef.h>

#define CFG_LIST_MAX 32

/* A comma-separated setting, split once at start-up. */
struct cfg_list {
    int n;
    char *buf; /* owns the items */
    char *item[CFG_LIST_MAX];
};

/*
 * Every setting of both programs (README "Configuration"). Filled once by
 * cfg_load() and read-only afterwards; strings are never NULL ("" when unset).
 */
struct cfg {
    char *database_url;
    char *redis_url;
    char *secret_key;
    char *refresh_secret_key;
    int access_ttl_min;
    int refresh_ttl_days;
    char *cors_origins_str;
    struct cfg_list cors_origins;
    char *allowed_extensions_str;
    struct cfg_list allowed_types;
    long max_upload_size;
    long max_body_size;
    char *upload_dir;
    int debug;
    char *google_client_id;
    char *google_client_secret;
    char *google_redirect_uri;
    char *google_authorize_url;
    char *google_token_url;
    char *google_userinfo_url;
    char *oauth_success_redirect;
    char *smtp_url;
    char *mail_from;
    char *mail_outbox_dir;
    char *public_url;
    int http_port;
    int fcgi_workers;
    char *fcgi_socket;
    char *wsd_host;
    int wsd_port;
    int wsd_presence_ttl;
    int rate_login_per_minute;
    int rate_register_per_hour;
    int rate_messages_per_10s;
    int rate_uploads_per_minute;
    char *log_level;
    int rate_login_account_per_minute;
    int rate_mail_per_hour;
    int rate_mail_address_per_hour;
    int rate_groups_per_hour;
    int rate_group_members_per_hour;
    char *fcgi_socket_group;
    int db_lock_timeout_ms;      /* lock_timeout of every Postgres session (0 = none) */
    int db_statement_timeout_ms; /* statement_timeout of every Postgres session (0 = none) */
    int wsd_db_queue_max;        /* jobs waiting per wsd Postgres lane */
    int wsd_sync_batch_bytes;    /* bytes of message frames one replay batch reads at most */
    int wsd_max_conn_per_user;   /* open WebSockets per user on one instance; 0: no cap */
    int wsd_tail_poll_ms;        /* wsd reads the message log at least this often (ms) */
    int wsd_slow_client_secs; /* a queue over wsd_slow_client_bytes that moved not for this: 1008 */
    int wsd_slow_client_bytes;   /* out-queue bytes a stalled client may hold */
    int wsd_out_queue_max_bytes; /* out-queue bytes of any client: more closes 1008 */
    int wsd_presence_tick_ms;    /* one presence flush per wsd per this many ms */
    int wsd_ping_secs;           /* a WebSocket silent this long gets a PING */
    int wsd_idle_hangup_secs;    /* one silent this long (no PONG either) is dropped */
    char *metrics_dir;           /* the shared counter files of /metrics (shared/metrics.h) */
    char *metrics_allow;         /* client addresses GET /metrics answers (comma-separated) */
};

extern struct cfg cfg;

/*
 * Reads .env (ENV_FILE, else ./.env; the environment wins), then every key
 * of the table, checks types and bounds and, unless DEBUG is true, refuses
 * example or missing secrets. Returns 0, or -1 with a message naming the key
 * in err.
 */
int cfg_load(char *err, size_t errlen);

/* Writes "KEY=value" for every key to stdout, secrets masked. */
void cfg_print(void);

/*
 * v with every password masked: the password of scheme://user:password@,
 * and the value of every "...password=" argument (URL query or libpq
 * key=value conninfo). Returns a malloc'd string (caller frees) or NULL.
 */
char *cfg_mask(const char *v);

/* 1 when origin is one of CORS_ORIGINS_STR. */
int cfg_origin_allowed(const char *origin, size_t len);

/* Splits s at commas into l (no spaces or brackets allowed); -1 when malformed. */
int cfg_split_list(char *s, struct cfg_list *l);

/* Releases the strings cfg_load() allocated (for leak checkers). */
void cfg_free(void);

#endif
