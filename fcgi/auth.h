#ifndef CHATD_AUTH_H
#define CHATD_AUTH_H

struct req;
struct json_object;

/* The caller of an authenticated request, loaded once per request. */
struct auth_user {
    const char *id;
    const char *email;
    const char *username;
    int is_superuser;
    int is_verified;
};

/*
 * Authenticates r: a valid Bearer header, else a valid access_token cookie.
 * Returns 0 with r->user set, or 401/403 with the detail of API.md.
 */
int auth_require(struct req *r);

/*
 * Starts a login session for user_id (auth_sessions row), and adds
 * access_token, refresh_token, token_type to out. With cookies, also sets
 * both cookies. Returns 0 or an HTTP status.
 */
int auth_login(struct req *r, const char *user_id, const char *email, const char *username,
               struct json_object *out, int cookies);
/* An access token alone (the /auth/jwt/login form route); NULL on failure. */
char *auth_access_token(struct req *r, const char *user_id, const char *email,
                        const char *username);
void auth_set_cookies(struct req *r, const char *access, const char *refresh);
void auth_clear_cookies(struct req *r);

/*
 * Fixed-window limit in Redis shared by all workers: 0 while under limit
 * per window_s, else 429 with Retry-After. limit 0 disables; an unreachable
 * Redis lets the request through.
 */
int auth_rate_limit(struct req *r, const char *key, int limit, int window_s);
/* auth_rate_limit() for count actions at once (count <= 0: nothing to limit). */
int auth_rate_limit_n(struct req *r, const char *key, long count, int limit, int window_s);
/* The register limit: per IP (both register routes share it). */
int auth_register_limit(struct req *r);
/* The login limit: per IP and login name, case-insensitively (both login routes share it). */
int auth_login_limit(struct req *r, const char *login);

/*
 * Finds a user by username or email and checks the password; an unknown user
 * costs one Argon2 verification too. The per-account budget
 * (RATE_LIMIT_LOGIN_ACCOUNT_PER_MINUTE) is spent first, before the Argon2
 * cost. Returns the row (id, email, username, hashed_password, is_active,
 * chatd_user_auth json), or NULL with *status = 401 (bad credentials), 429
 * (recorded, with Retry-After) or another recorded error status.
 */
struct pg_result *auth_check_password(struct req *r, const char *login, const char *password,
                                      int *status);

#endif
