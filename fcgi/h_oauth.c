/* /api/v1/oauth/google/... : Google sign-in (API.md "Google OAuth2"). */
#include <json-c/json.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "auth.h"
#include "body.h"
#include "cfg.h"
#include "db.h"
#include "handlers.h"
#include "http_client.h"
#include "jx.h"
#include "log.h"
#include "pw.h"
#include "rds.h"
#include "req.h"
#include "resp.h"
#include "tok.h"

/* The state token's lifetime, and how long its jti stays claimed in Redis. */
#define H_OAUTH_STATE_TTL 600
/* Bounds on what the provider hands us (Google's are far shorter). */
#define H_OAUTH_TOKEN_MAX 4096
#define H_OAUTH_SUB_MAX 255
/* The browser-binding cookie (login CSRF): sent back only to the callback. */
#define H_OAUTH_NONCE_COOKIE "oauth_nonce"
#define H_OAUTH_CALLBACK_PATH "/api/v1/oauth/google/callback"
#define H_OAUTH_NONCE_BYTES 32
#define H_OAUTH_NONCE_MISMATCH "OAuth state does not belong to this browser"

/* What the token endpoint answered. */
struct h_oauth_tokens {
    const char *access;
    const char *refresh;    /* NULL when none was issued */
    const char *expires_at; /* epoch seconds as text, NULL when unknown */
};

/* The userinfo fields we keep, each bounded to its column. */
struct h_oauth_profile {
    const char *sub;
    const char *email;
    int email_verified;
    const char *first_name;
    const char *last_name;
    const char *picture;
};

/*
 * Finds the user of the Google account, else links a user with that email
 * (only when both Google and the local account verified it: anyone can
 * register an address they do not own, and must not receive its owner's
 * later Google sign-in), else creates one; stores the provider tokens. One
 * statement, so no half-linked state is ever visible. The result row is NULLs
 * when the email belongs to an existing user that cannot be linked.
 * Data-modifying CTEs do not see each other's rows, hence `made` returns
 * what the answer needs.
 */
static struct db_stmt q_upsert = DB_STMT(
    "WITH acct AS (SELECT user_id FROM oauth_accounts "
    "              WHERE oauth_name = 'google' AND account_id = $1), "
    "mail AS (SELECT u.id FROM users u "
    "         WHERE lower(u.email) = lower($2) AND NOT EXISTS (SELECT 1 FROM acct)), "
    "name AS (SELECT c.v FROM ( "
    "           SELECT CASE WHEN g = 0 THEN $7 ELSE left($7, 50 - length(g::text)) || g END, g "
    "           FROM generate_series(0, 99) g "
    "           UNION ALL "
    "           SELECT left($7, 41) || '_' || floor(random() * 100000000)::bigint, 100) c (v, g) "
    "         WHERE NOT EXISTS (SELECT 1 FROM users u WHERE lower(u.username) = lower(c.v)) "
    "         ORDER BY c.g LIMIT 1), "
    "made AS (INSERT INTO users AS u (email, username, hashed_password, is_verified, "
    "                                 first_name, last_name, avatar_url) "
    "         SELECT $2, (SELECT v FROM name), $8, $3, $9, $10, $11 "
    "         WHERE NOT EXISTS (SELECT 1 FROM acct) AND NOT EXISTS (SELECT 1 FROM mail) "
    "         RETURNING u.id, u.email, u.username, u.is_active, chatd_user_auth(u) AS j), "
    "who AS (SELECT u.id, u.email, u.username, u.is_active, chatd_user_auth(u) AS j, false AS link "
    "        FROM users u WHERE u.id IN (SELECT user_id FROM acct) "
    "        UNION ALL "
    "        SELECT u.id, u.email, u.username, u.is_active, chatd_user_auth(u), true "
    "        FROM users u WHERE u.id IN (SELECT id FROM mail) AND $3 AND u.is_verified "
    "        UNION ALL "
    "        SELECT id, email, username, is_active, j, true FROM made), "
    "upd AS (UPDATE oauth_accounts o SET access_token = $4, expires_at = $5, "
    "               refresh_token = coalesce($6, o.refresh_token) "
    "        WHERE o.oauth_name = 'google' AND o.account_id = $1), "
    "lnk AS (INSERT INTO oauth_accounts (user_id, oauth_name, access_token, expires_at, "
    "                                    refresh_token, account_id, account_email) "
    "        SELECT id, 'google', $4, $5, $6, $1, $2 FROM who WHERE link) "
    "SELECT w.id, w.email, w.username, w.is_active, w.j FROM (SELECT 1) one "
    "LEFT JOIN who w ON true",
    11);

static int h_oauth_configured(void)
{
    return *cfg.google_client_id && *cfg.google_client_secret;
}

static const char *h_oauth_redirect_uri(struct req *r)
{
    if (*cfg.google_redirect_uri)
        return cfg.google_redirect_uri;
    size_t n = strlen(cfg.public_url);
    while (n && cfg.public_url[n - 1] == '/')
        n--;
    return arena_printf(r->a, "%.*s/api/v1/oauth/google/callback", (int)n, cfg.public_url);
}

int h_oauth_google_status(struct req *r)
{
    json_object *out = jx_obj(r->a);
    json_object_object_add(out, "configured", json_object_new_boolean(h_oauth_configured()));
    return resp_json(r, 200, out);
}

/*
 * The state's jti for a nonce: the first 128 bits of SHA-256(nonce) written
 * as a UUID. The state thus carries the nonce's hash (never the nonce), and
 * the jti stays unique per authorize since each nonce is fresh.
 */
static void h_oauth_nonce_jti(const char *nonce, char out[37])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    char hex[33];
    SHA256((const unsigned char *)nonce, strlen(nonce), d);
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/* Same length and same bytes, without an early exit. */
static int h_oauth_same(const char *a, const char *b)
{
    size_t n = strlen(a);
    unsigned char d = n != strlen(b);
    for (size_t i = 0; i < n && b[i]; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0 && n > 0;
}

/* Set-Cookie of the nonce; max_age 0 clears it. */
static void h_oauth_nonce_cookie(struct req *r, const char *val, long max_age)
{
    resp_header(r, "Set-Cookie",
                arena_printf(r->a, "%s=%s; HttpOnly; Max-Age=%ld; Path=%s; SameSite=Lax%s%s",
                             H_OAUTH_NONCE_COOKIE, val, max_age, H_OAUTH_CALLBACK_PATH,
                             max_age ? "" : "; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                             cfg.debug ? "" : "; Secure"));
}

/* 32 random bytes as 64 hex characters in out; -1 when the kernel has no randomness for us. */
static int h_oauth_random_hex(char out[2 * H_OAUTH_NONCE_BYTES + 1])
{
    unsigned char raw[H_OAUTH_NONCE_BYTES];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return -1;
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

int h_oauth_google_authorize(struct req *r)
{
    if (!h_oauth_configured())
        return req_err(r, 503, "Google OAuth is not configured");
    struct tok_claims c;
    char nonce[2 * H_OAUTH_NONCE_BYTES + 1];
    memset(&c, 0, sizeof(c));
    if (h_oauth_random_hex(nonce) < 0)
        return req_err(r, 503, "Cannot issue tokens");
    h_oauth_nonce_jti(nonce, c.jti);
    char *state = tok_issue(TOK_OAUTH_STATE, &c, time(NULL), H_OAUTH_STATE_TTL);
    if (!state)
        return req_err(r, 503, "Cannot issue tokens");
    const char *st = arena_strdup(r->a, state);
    free(state);
    const char *base = cfg.google_authorize_url;
    const char *cid = httpc_escape(r->a, cfg.google_client_id);
    const char *ruri = httpc_escape(r->a, h_oauth_redirect_uri(r));
    const char *est = st ? httpc_escape(r->a, st) : NULL;
    const char *url = cid && ruri && est
                          ? arena_printf(r->a,
                                         "%s%cresponse_type=code&client_id=%s&redirect_uri=%s"
                                         "&scope=openid%%20email%%20profile&state=%s"
                                         "&access_type=offline&prompt=select_account",
                                         base, strchr(base, '?') ? '&' : '?', cid, ruri, est)
                          : NULL;
    if (!url)
        return req_err(r, 413, "Request too large");
    h_oauth_nonce_cookie(r, nonce, H_OAUTH_STATE_TTL);
    json_object *out = jx_obj(r->a);
    json_object_object_add(out, "authorization_url", json_object_new_string(url));
    return resp_json(r, 200, out);
}

/*
 * Checks the signed state, that this browser holds the nonce the state was
 * issued for (else anyone could log a victim into the attacker's account by
 * sending them the attacker's callback URL), and claims its jti once, so a
 * state works for one callback only. The nonce cookie is cleared either way.
 */
static int h_oauth_state_check(struct req *r, const char *state)
{
    struct tok_claims c;
    if (!state || tok_verify(TOK_OAUTH_STATE, state, time(NULL), &c) < 0 || !str_is_uuid(c.jti))
        return req_err(r, 400, "Invalid OAuth state");
    const char *nonce = req_cookie(r, H_OAUTH_NONCE_COOKIE);
    char want[37];
    if (nonce && *nonce)
        h_oauth_nonce_cookie(r, "", 0);
    if (!nonce || strlen(nonce) != 2 * H_OAUTH_NONCE_BYTES)
        return req_err(r, 400, H_OAUTH_NONCE_MISMATCH);
    h_oauth_nonce_jti(nonce, want);
    if (!h_oauth_same(want, c.jti))
        return req_err(r, 400, H_OAUTH_NONCE_MISMATCH);
    int claimed = rds_set_nx(arena_printf(r->a, "oauth:state:%s", c.jti), H_OAUTH_STATE_TTL);
    if (claimed < 0)
        return req_err(r, 503, "Redis unavailable");
    return claimed ? 0 : req_err(r, 400, "Invalid OAuth state");
}

/* A string member of 1..max bytes, else NULL. */
static const char *h_oauth_str(json_object *o, const char *key, size_t max)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    const char *s = json_object_get_string(v);
    size_t n = strnlen(s, max + 1);
    return n >= 1 && n <= max ? s : NULL;
}

/* A token we will send back in a header or store: visible ASCII only. */
static int h_oauth_token_ok(const char *s)
{
    for (; s && *s; s++)
        if (*s <= ' ' || *s > '~')
            return 0;
    return s != NULL;
}

static int h_oauth_exchange(struct req *r, const char *code, struct h_oauth_tokens *t)
{
    const char *c = httpc_escape(r->a, code), *id = httpc_escape(r->a, cfg.google_client_id);
    const char *sec = httpc_escape(r->a, cfg.google_client_secret);
    const char *uri = httpc_escape(r->a, h_oauth_redirect_uri(r));
    const char *form = c && id && sec && uri
                           ? arena_printf(r->a,
                                          "code=%s&client_id=%s&client_secret=%s&redirect_uri=%s"
                                          "&grant_type=authorization_code",
                                          c, id, sec, uri)
                           : NULL;
    struct httpc_resp res;
    memset(t, 0, sizeof(*t));
    if (!form || httpc_post_form(r->a, cfg.google_token_url, form, &res) < 0)
        return req_err(r, 400, "OAuth code exchange failed");
    json_object *o = res.status == 200 ? httpc_json(r->a, &res) : NULL;
    if (res.status != 200)
        log_info("oauth google: the token endpoint answered %ld", res.status);
    t->access = o ? h_oauth_str(o, "access_token", H_OAUTH_TOKEN_MAX) : NULL;
    if (!h_oauth_token_ok(t->access))
        return req_err(r, 400, "OAuth code exchange failed");
    t->refresh = h_oauth_str(o, "refresh_token", H_OAUTH_TOKEN_MAX);
    if (!h_oauth_token_ok(t->refresh))
        t->refresh = NULL;
    json_object *exp;
    if (json_object_object_get_ex(o, "expires_in", &exp) &&
        json_object_is_type(exp, json_type_int)) {
        int64_t s = json_object_get_int64(exp);
        if (s > 0 && s <= 10L * 365 * 86400)
            t->expires_at = arena_printf(r->a, "%ld", (long)time(NULL) + (long)s);
    }
    return 0;
}

/* s cut to at most max characters (s is valid UTF-8: json-c checked it); NULL stays NULL. */
static const char *h_oauth_clip(struct req *r, const char *s, size_t max)
{
    if (!s)
        return NULL;
    size_t chars = 0, i = 0;
    for (; s[i]; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80 && ++chars > max)
            break;
    }
    return s[i] ? arena_strndup(r->a, s, i) : s;
}

/* Google sends a boolean; some endpoints send the string "true". */
static int h_oauth_true(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v))
        return 0;
    if (json_object_is_type(v, json_type_boolean))
        return json_object_get_boolean(v);
    return json_object_is_type(v, json_type_string) && !strcmp(json_object_get_string(v), "true");
}

static int h_oauth_userinfo(struct req *r, const char *access, struct h_oauth_profile *p)
{
    struct httpc_resp res;
    memset(p, 0, sizeof(*p));
    if (httpc_get_bearer(r->a, cfg.google_userinfo_url, access, &res) < 0)
        return req_err(r, 400, "OAuth user info request failed");
    if (res.status != 200)
        log_info("oauth google: the userinfo endpoint answered %ld", res.status);
    json_object *o = res.status == 200 ? httpc_json(r->a, &res) : NULL;
    p->sub = o ? h_oauth_str(o, "sub", H_OAUTH_SUB_MAX) : NULL;
    if (!h_oauth_token_ok(p->sub))
        return req_err(r, 400, "OAuth user info request failed");
    p->email = h_oauth_str(o, "email", 320);
    if (!p->email || !body_is_email(p->email))
        return req_err(r, 400, "OAUTH_NOT_AVAILABLE_EMAIL");
    p->email_verified = h_oauth_true(o, "email_verified");
    p->first_name = h_oauth_clip(r, h_oauth_str(o, "given_name", 4096), 100);
    p->last_name = h_oauth_clip(r, h_oauth_str(o, "family_name", 4096), 100);
    p->picture = h_oauth_str(o, "picture", 500);
    if (p->picture && (strncmp(p->picture, "https://", 8) && strncmp(p->picture, "http://", 7)))
        p->picture = NULL;
    return 0;
}

/* A free-to-try username from the email's local part: [A-Za-z0-9_.-], 3..50 characters. */
static const char *h_oauth_username(struct req *r, const char *email)
{
    char base[51];
    size_t n = 0;
    for (const char *s = email; *s && *s != '@' && n < 50; s++)
        if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
            strchr("_.-", *s))
            base[n++] = *s;
    base[n] = '\0';
    if (n == 0)
        return "user";
    return n < 3 ? arena_printf(r->a, "%s_user", base) : arena_strdup(r->a, base);
}

/* An Argon2 hash of 32 random bytes: the account has no password until one is reset. */
static int h_oauth_unusable_hash(char *out, size_t outlen)
{
    char hex[2 * H_OAUTH_NONCE_BYTES + 1];
    if (h_oauth_random_hex(hex) < 0)
        return -1;
    return pw_hash(hex, strlen(hex), out, outlen);
}

static PGresult *h_oauth_upsert(struct req *r, const struct h_oauth_profile *p,
                                const struct h_oauth_tokens *t, int *status)
{
    char hash[PW_ENCODED_MAX];
    if (h_oauth_unusable_hash(hash, sizeof(hash)) < 0) {
        *status = req_err(r, 503, "Cannot hash password");
        return NULL;
    }
    const char *params[] = {p->sub,
                            p->email,
                            p->email_verified ? "true" : "false",
                            t->access,
                            t->expires_at,
                            t->refresh,
                            h_oauth_username(r, p->email),
                            hash,
                            p->first_name,
                            p->last_name,
                            p->picture};
    enum db_err err = DB_OK;
    /* Two first logins of one account (or a taken username) race on a unique key: run again. */
    for (int attempt = 0; attempt < 3; attempt++) {
        PGresult *res = db_run(r->a, &q_upsert, params, &err);
        if (res)
            return res;
        if (err != DB_CONFLICT && err != DB_RETRY)
            break;
    }
    *status = resp_db_err(r, err);
    return NULL;
}

/* Answers with tokens as JSON, or redirects to OAUTH_SUCCESS_REDIRECT; cookies either way. */
static int h_oauth_success(struct req *r, PGresult *res)
{
    json_object *out = jx_obj(r->a);
    int rc =
        auth_login(r, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), out, 1);
    if (rc)
        return rc;
    const char *to = cfg.oauth_success_redirect;
    if (*to && !strpbrk(to, "\r\n")) {
        resp_header(r, "Location", to);
        return resp_raw(r, 302, NULL, NULL, 0);
    }
    json_object_object_add(out, "user", json_tokener_parse(PQgetvalue(res, 0, 4)));
    return resp_json(r, 200, out);
}

/* The provider's error=... as the detail (httpx-oauth does so), when it looks like a code. */
static const char *h_oauth_error_detail(const char *e)
{
    size_t n = strlen(e);
    if (n == 0 || n > 64 || strspn(e, "abcdefghijklmnopqrstuvwxyz_") != n)
        return "Bad Request";
    return e;
}

int h_oauth_google_callback(struct req *r)
{
    if (!h_oauth_configured())
        return req_err(r, 503, "Google OAuth is not configured");
    const char *error = req_query(r, "error"), *code = req_query(r, "code");
    if (error)
        return req_err(r, 400, h_oauth_error_detail(error));
    if (!code || !*code || strlen(code) > 2048)
        return req_err(r, 400, "Bad Request");
    struct h_oauth_tokens tk;
    struct h_oauth_profile pf;
    int rc = h_oauth_state_check(r, req_query(r, "state"));
    if (rc || (rc = h_oauth_exchange(r, code, &tk)) || (rc = h_oauth_userinfo(r, tk.access, &pf)))
        return rc;
    PGresult *res = h_oauth_upsert(r, &pf, &tk, &rc);
    if (!res)
        return rc;
    if (PQgetisnull(res, 0, 0))
        return req_err(r, 400, "OAUTH_USER_ALREADY_EXISTS");
    if (PQgetvalue(res, 0, 3)[0] != 't')
        return req_err(r, 400, "LOGIN_BAD_CREDENTIALS");
    return h_oauth_success(r, res);
}
