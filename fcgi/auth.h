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
    const char *sid; /* the access token's login session; NULL for a token without sid */
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
/*
 * Records a new login session of user_id (auth_sessions row): fills sid and
 * the refresh jti with fresh UUIDs. Returns 0 or an HTTP status.
 */
int auth_session_start(struct req *r, const char *user_id, char sid[37], char jti[37]);
/* An access token of login session sid (NULL: none) alone; NULL on failure. */
char *auth_access_token(struct req *r, const char *user_id, const char *email, const char *username,
                        const char *sid);

/*
 * Ends every login session of user_id but keep_sid (NULL: all): their refresh
 * tokens and access tokens are refused from now on, and so are tokens
 * without sid issued before now. With hash, also sets that password hash, in
 * the same statement. Publishes nothing (see auth_session_revoked). Returns
 * 0, 404 when the user is gone (nothing recorded), or a recorded error status.
 */
int auth_sessions_end(struct req *r, const char *user_id, const char *keep_sid, const char *hash);
/*
 * Publishes session_revoked on the user's channel (WS.md "Connecting"): every
 * wsd closes that user's WebSockets with 1008 "Session revoked", all but
 * those of keep_sid (NULL: all), or, with only_sid, only those of that session.
 */
void auth_session_revoked(struct req *r, const char *user_id, const char *keep_sid,
                          const char *only_sid);
/* user_inactive: every WebSocket of user_id closes with "User inactive". */
void auth_user_inactive(struct req *r, const char *user_id);
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
