/*
 * /auth/... and /users/...: the fastapi-users compatible routes of API.md
 * "fastapi-users compatible endpoints", with fastapi-users' status codes and
 * error codes.
 */
#include <argon2.h>
#include <ctype.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "body.h"
#include "cfg.h"
#include "db.h"
#include "handlers.h"
#include "jx.h"
#include "log.h"
#include "pw.h"
#include "req.h"
#include "resp.h"
#include "tok.h"
#include "users.h"

#define H_FAU_TOKEN_MAX 8192

static struct db_stmt q_read = DB_STMT("SELECT chatd_user_read(u) FROM users u WHERE id = $1", 1);
/* forgot-password, request-verify-token, an email change: one statement either way. */
static struct db_stmt q_enqueue = DB_STMT("SELECT chatd_mail_enqueue($1, $2)", 2);
static struct db_stmt q_by_id =
    DB_STMT("SELECT email, hashed_password, is_active FROM users WHERE id = $1", 1);
/* The password changes only if it is still the one the token was issued for: a token works once. */
static struct db_stmt q_reset =
    DB_STMT("WITH upd AS (UPDATE users SET hashed_password = $3, updated_at = now(), "
            "             sessions_revoked_at = now() "
            "             WHERE id = $1 AND hashed_password = $2 RETURNING id), "
            "rev AS (UPDATE auth_sessions SET revoked_at = now() "
            "        WHERE user_id IN (SELECT id FROM upd) AND revoked_at IS NULL) "
            "SELECT count(*) FROM upd",
            3);
static struct db_stmt q_verify = DB_STMT(
    "WITH cur AS (SELECT id, is_verified FROM users WHERE id = $1 AND lower(email) = lower($2)), "
    "upd AS (UPDATE users u SET is_verified = true, updated_at = now() FROM cur "
    "        WHERE u.id = cur.id AND NOT cur.is_verified RETURNING chatd_user_read(u) AS j) "
    "SELECT cur.is_verified, (SELECT j FROM upd) FROM cur",
    2);
/* $2 holds only the fields to change; a key with a JSON null clears a nullable column. */
static struct db_stmt q_update = DB_STMT(
    "UPDATE users u SET "
    "email = coalesce(p.j->>'email', u.email), "
    "username = coalesce(p.j->>'username', u.username), "
    "hashed_password = coalesce(p.j->>'hashed_password', u.hashed_password), "
    "first_name = CASE WHEN p.j ? 'first_name' THEN p.j->>'first_name' ELSE u.first_name END, "
    "last_name = CASE WHEN p.j ? 'last_name' THEN p.j->>'last_name' ELSE u.last_name END, "
    "avatar_url = CASE WHEN p.j ? 'avatar_url' THEN p.j->>'avatar_url' ELSE u.avatar_url END, "
    "bio = CASE WHEN p.j ? 'bio' THEN p.j->>'bio' ELSE u.bio END, "
    "is_active = coalesce((p.j->>'is_active')::boolean, u.is_active), "
    "is_superuser = coalesce((p.j->>'is_superuser')::boolean, u.is_superuser), "
    "is_verified = CASE WHEN p.j ? 'is_verified' THEN (p.j->>'is_verified')::boolean "
    "                   WHEN p.j->>'email' <> u.email THEN false ELSE u.is_verified END, "
    "updated_at = now() "
    "FROM (SELECT $2::jsonb AS j) p WHERE u.id = $1 RETURNING chatd_user_read(u)",
    2);
static struct db_stmt q_delete = DB_STMT("DELETE FROM users WHERE id = $1", 1);
static struct db_stmt q_logout = DB_STMT("UPDATE auth_sessions SET revoked_at = now() WHERE id = "
                                         "$1 AND user_id = $2 AND revoked_at IS NULL",
                                         2);

/* Sends JSON text built by SQL as it is. */
static int h_fau_text(struct req *r, int status, const char *json)
{
    return resp_raw(r, status, "application/json", json, strlen(json));
}

/* fastapi-users' routes that return None answer with the JSON literal null. */
static int h_fau_null(struct req *r, int status)
{
    return resp_raw(r, status, "application/json", "null", 4);
}

/* The old version's UserManager.validate_password; NULL when the password is acceptable. */
static const char *h_fau_password_problem(const char *pw, const char *email, const char *email2)
{
    if (str_utf8_len(pw) < 8)
        return "Password should be at least 8 characters";
    if (users_password_has_email(pw, email) || (email2 && users_password_has_email(pw, email2)))
        return "Password should not contain e-mail";
    return NULL;
}

/*
 * The password fingerprint of reset tokens (claim password_fgpt): 16 bytes of
 * Argon2id keyed with SECRET_KEY over the stored hash, in hex. The stored hash
 * has a fresh random salt after every password change, so a token stops
 * working once the password it was issued for is replaced; being keyed and
 * one-way, the token reveals nothing of the hash. Cheap parameters: the input
 * is already a slow hash.
 */
int h_fau_fingerprint(const char *hashed, char out[65])
{
    static const char salt[] = "chatd:password-fgpt";
    uint8_t raw[16], pwd[1024];
    size_t n = strlen(hashed);
    if (n > sizeof(pwd))
        return -1;
    memcpy(pwd, hashed, n);
    argon2_context ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.out = raw;
    ctx.outlen = sizeof(raw);
    ctx.pwd = pwd;
    ctx.pwdlen = (uint32_t)n;
    ctx.salt = (uint8_t *)salt;
    ctx.saltlen = sizeof(salt) - 1;
    ctx.secret = *cfg.secret_key ? (uint8_t *)cfg.secret_key : NULL;
    ctx.secretlen = (uint32_t)strlen(cfg.secret_key);
    ctx.t_cost = 1;
    ctx.m_cost = 8;
    ctx.lanes = ctx.threads = 1;
    ctx.version = ARGON2_VERSION_NUMBER;
    ctx.flags = ARGON2_DEFAULT_FLAGS;
    if (argon2_ctx(&ctx, Argon2_id) != ARGON2_OK)
        return -1;
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

/* Compares two fingerprints without an early exit. */
static int h_fau_same(const char *a, const char *b)
{
    size_t n = strlen(a);
    if (n != strlen(b) || n == 0)
        return 0;
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

/* A field of the x-www-form-urlencoded body: 0 with *out, or 422 like FastAPI's Form(). */
static int h_fau_form(struct req *r, const char *name, size_t max, const char **out)
{
    const char *ct = req_param(r, "CONTENT_TYPE");
    int form = ct && !strncasecmp(ct, "application/x-www-form-urlencoded", 33);
    const char *p = r->body, *end = r->body ? r->body + r->body_len : NULL;
    size_t nl = strlen(name);
    int found = 0;
    *out = NULL;
    while (form && p && p < end && !found) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        size_t len = amp ? (size_t)(amp - p) : (size_t)(end - p);
        const char *eq = memchr(p, '=', len);
        size_t kl = eq ? (size_t)(eq - p) : len;
        const char *key = req_decode(r->a, p, kl, 1);
        if (key && strlen(key) == nl && !memcmp(key, name, nl)) {
            found = 1;
            *out = eq ? req_decode(r->a, eq + 1, len - kl - 1, 1) : "";
        }
        p += len + 1;
    }
    if (found && !*out)
        return req_invalid(r, "body", name, "Input should be a valid string", "string_type");
    if (!*out || !**out)
        return req_invalid(r, "body", name, "Field required", "missing");
    if (str_utf8_len(*out) > max)
        return req_invalid(r, "body", name,
                           arena_printf(r->a, "String should have at most %zu characters", max),
                           "string_too_long");
    return 0;
}

/* The {email} body of forgot-password and request-verify-token. */
static int h_fau_body_email(struct req *r, const char **email)
{
    int rc = body_str(r, "email", 3, 320, BODY_REQUIRED, email);
    if (!rc && !body_is_email(*email))
        rc = req_invalid(r, "body", "email", "value is not a valid email address", "value_error");
    return rc;
}

/*
 * The budgets of forgot-password and request-verify-token together: per IP,
 * then per address as typed (case-insensitively), whether or not it exists.
 */
static int h_fau_mail_limit(struct req *r, const char *email)
{
    const char *ip = arena_printf(r->a, "rl:mail:ip:%s", r->remote_addr);
    char *addr = arena_printf(r->a, "rl:mail:addr:%s", email);
    for (char *p = addr; p && *p; p++)
        *p = (char)tolower((unsigned char)*p);
    int rc = ip ? auth_rate_limit(r, ip, cfg.rate_mail_per_hour, 3600) : 0;
    return rc || !addr ? rc : auth_rate_limit(r, addr, cfg.rate_mail_address_per_hour, 3600);
}

/*
 * forgot-password and request-verify-token: 202 after queueing a mail of kind
 * when the address has an account to mail. Existing and unknown addresses do
 * the same work here (no Argon2, no SMTP, one statement): the answer's timing
 * tells nothing, and the mailer process sends the mail later.
 */
static int h_fau_queue_mail(struct req *r, const char *kind)
{
    const char *email;
    int rc = h_fau_body_email(r, &email);
    if (rc || (rc = h_fau_mail_limit(r, email)))
        return rc;
    const char *params[] = {kind, email};
    enum db_err err;
    if (!db_run(r->a, &q_enqueue, params, &err))
        return resp_db_err(r, err);
    return h_fau_null(r, 202);
}

int h_fau_register(struct req *r)
{
    int rc = auth_register_limit(r);
    struct users_new nu;
    if (rc || (rc = users_parse_new(r, &nu)))
        return rc;
    const char *why = h_fau_password_problem(nu.password, nu.email, NULL);
    if (why)
        return req_err_code(r, 400, "REGISTER_INVALID_PASSWORD", why);
    const char *clash;
    PGresult *res = users_insert(r, &nu, &clash, &rc);
    if (!res)
        return clash ? req_err(r, 400, "REGISTER_USER_ALREADY_EXISTS") : rc;
    return h_fau_text(r, 201, PQgetvalue(res, 0, 4));
}

int h_fau_login(struct req *r)
{
    const char *login, *password;
    int rc = h_fau_form(r, "username", 320, &login);
    if (!rc)
        rc = h_fau_form(r, "password", 128, &password);
    if (rc)
        return rc;
    if ((rc = auth_login_limit(r, login)))
        return rc;
    PGresult *res = auth_check_password(r, login, password, &rc);
    if (!res && rc != 401)
        return rc;
    /* fastapi-users answers an inactive user like a wrong password. */
    if (!res || PQgetvalue(res, 0, 4)[0] != 't')
        return req_err(r, 400, "LOGIN_BAD_CREDENTIALS");
    /* A login session of its own, so that logout and password changes can end this token. */
    char sid[37], jti[37];
    if ((rc = auth_session_start(r, PQgetvalue(res, 0, 0), sid, jti)))
        return rc;
    char *access = auth_access_token(r, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
                                     PQgetvalue(res, 0, 2), sid);
    if (!access)
        return req_err(r, 503, "Cannot issue tokens");
    json_object *out = jx_obj(r->a);
    json_object_object_add(out, "access_token", json_object_new_string(access));
    json_object_object_add(out, "token_type", json_object_new_string("bearer"));
    return resp_json(r, 200, out);
}

/*
 * Ends the login session of the caller's token (its WebSockets close); a token
 * without sid cannot be told apart from the user's others: only 204, like
 * fastapi-users' JWT strategy.
 */
int h_fau_logout(struct req *r)
{
    if (r->user->sid) {
        const char *params[] = {r->user->sid, r->user->id};
        enum db_err err;
        if (!db_run(r->a, &q_logout, params, &err))
            return resp_db_err(r, err);
        auth_session_revoked(r, r->user->id, NULL, r->user->sid);
    }
    return resp_json(r, 204, NULL);
}

int h_fau_forgot_password(struct req *r)
{
    return h_fau_queue_mail(r, "reset");
}

int h_fau_reset_password(struct req *r)
{
    const char *token, *password;
    int rc = body_str(r, "token", 0, H_FAU_TOKEN_MAX, BODY_REQUIRED, &token);
    if (!rc)
        rc = body_str(r, "password", 0, 128, BODY_REQUIRED, &password);
    if (rc)
        return rc;
    struct tok_claims c;
    if (tok_verify(TOK_RESET, token, time(NULL), &c) < 0 || !str_is_uuid(c.sub) || !c.fgp[0])
        return req_err(r, 400, "RESET_PASSWORD_BAD_TOKEN");
    const char *params[] = {c.sub};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_by_id, params, &err);
    if (!res)
        return resp_db_err(r, err);
    char fgp[65];
    if (!PQntuples(res) || PQgetvalue(res, 0, 2)[0] != 't' ||
        h_fau_fingerprint(PQgetvalue(res, 0, 1), fgp) < 0 || !h_fau_same(fgp, c.fgp))
        return req_err(r, 400, "RESET_PASSWORD_BAD_TOKEN");
    const char *why = h_fau_password_problem(password, PQgetvalue(res, 0, 0), NULL);
    if (why)
        return req_err_code(r, 400, "RESET_PASSWORD_INVALID_PASSWORD", why);
    char hash[PW_ENCODED_MAX];
    if (pw_hash(password, strlen(password), hash, sizeof(hash)) < 0)
        return req_err(r, 503, "Cannot hash password");
    const char *uparams[] = {c.sub, PQgetvalue(res, 0, 1), hash};
    PGresult *upd = db_run(r->a, &q_reset, uparams, &err);
    if (!upd)
        return resp_db_err(r, err);
    /* 0: another reset with the same token won the race. */
    if (strcmp(PQgetvalue(upd, 0, 0), "1") != 0)
        return req_err(r, 400, "RESET_PASSWORD_BAD_TOKEN");
    auth_session_revoked(r, c.sub, NULL, NULL);
    return h_fau_null(r, 200);
}

int h_fau_request_verify_token(struct req *r)
{
    return h_fau_queue_mail(r, "verify");
}

/* Both verify routes: the token's email must still be the user's. */
static int h_fau_verify_token(struct req *r, const char *token)
{
    struct tok_claims c;
    if (tok_verify(TOK_VERIFY, token, time(NULL), &c) < 0 || !str_is_uuid(c.sub) || !c.email[0])
        return req_err(r, 400, "VERIFY_USER_BAD_TOKEN");
    const char *params[] = {c.sub, c.email};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_verify, params, &err);
    if (!res)
        return resp_db_err(r, err);
    if (PQntuples(res) == 0)
        return req_err(r, 400, "VERIFY_USER_BAD_TOKEN");
    if (PQgetvalue(res, 0, 0)[0] == 't' || PQgetisnull(res, 0, 1))
        return req_err(r, 400, "VERIFY_USER_ALREADY_VERIFIED");
    return h_fau_text(r, 200, PQgetvalue(res, 0, 1));
}

int h_fau_verify(struct req *r)
{
    const char *token;
    int rc = body_str(r, "token", 0, H_FAU_TOKEN_MAX, BODY_REQUIRED, &token);
    return rc ? rc : h_fau_verify_token(r, token);
}

/* GET /auth/verify?token=...: the link of the verify mail. */
int h_fau_verify_link(struct req *r)
{
    const char *token = req_query(r, "token");
    if (!token)
        return req_invalid(r, "query", "token", "Field required", "missing");
    if (strlen(token) > H_FAU_TOKEN_MAX)
        return req_invalid(r, "query", "token", "String should have at most 8192 characters",
                           "string_too_long");
    return h_fau_verify_token(r, token);
}

/*
 * The fields of a UserUpdate body as the jsonb of q_update; the privilege
 * flags only when privileged. cur_email is the account's current address.
 */
static int h_fau_update_set(struct req *r, int privileged, const char *cur_email, json_object *set,
                            char hash[PW_ENCODED_MAX])
{
    static const char *const flags[] = {"is_active", "is_superuser", "is_verified"};
    const char *email = NULL, *password = NULL;
    int rc = users_set_ids(r, set, &email);
    if (!rc)
        rc = body_set_str(r, set, "first_name", 0, 100);
    if (!rc)
        rc = body_set_str(r, set, "last_name", 0, 100);
    if (!rc)
        rc = body_set_str(r, set, "avatar_url", 0, 500);
    if (!rc)
        rc = body_set_str(r, set, "bio", 0, 500);
    for (size_t i = 0; privileged && !rc && i < sizeof(flags) / sizeof(flags[0]); i++)
        rc = body_set_bool(r, set, flags[i]);
    if (!rc)
        rc = body_str(r, "password", 0, 128, BODY_NULLABLE, &password);
    if (rc || !password)
        return rc;
    const char *why = h_fau_password_problem(password, cur_email, email);
    if (why)
        return req_err_code(r, 400, "UPDATE_USER_INVALID_PASSWORD", why);
    if (pw_hash(password, strlen(password), hash, PW_ENCODED_MAX) < 0)
        return req_err(r, 503, "Cannot hash password");
    return 0;
}

/* The flag is_active set to false by this PATCH body (privileged callers only). */
static int h_fau_deactivates(json_object *set)
{
    json_object *v;
    return json_object_object_get_ex(set, "is_active", &v) && !json_object_get_boolean(v);
}

/*
 * After the other fields are stored: a new password replaces the old one and
 * ends every login session but keep_sid (NULL: all) in one statement; a
 * deactivation ends them all. Then the user's WebSockets are told.
 */
static int h_fau_end_sessions(struct req *r, const char *id, const char *keep_sid, const char *hash,
                              int deactivated)
{
    if (!hash && !deactivated)
        return 0;
    int rc = auth_sessions_end(r, id, deactivated ? NULL : keep_sid, hash);
    if (rc)
        return rc;
    if (deactivated)
        auth_user_inactive(r, id);
    else
        auth_session_revoked(r, id, keep_sid, NULL);
    return 0;
}

/*
 * After an email change (q_update has cleared is_verified), queues a
 * verification mail to the new address. A failure leaves the change in place
 * (the user can ask again with request-verify-token); it is only logged.
 */
static void h_fau_email_changed(struct req *r, json_object *set, const char *cur_email)
{
    json_object *v;
    if (!json_object_object_get_ex(set, "email", &v) ||
        !strcmp(json_object_get_string(v), cur_email))
        return;
    const char *params[] = {"verify", json_object_get_string(v)};
    enum db_err err;
    if (!db_run(r->a, &q_enqueue, params, &err))
        log_warn("cannot queue the verification mail of a new email address");
}

/* Applies a PATCH body to user id; answers UserRead, or gone_status when the user is gone. */
static int h_fau_update(struct req *r, const char *id, int privileged, const char *cur_email,
                        const char *keep_sid, int gone_status, const char *gone_detail)
{
    json_object *set = jx_obj(r->a);
    char hash[PW_ENCODED_MAX] = "";
    int rc = h_fau_update_set(r, privileged, cur_email, set, hash);
    if (rc)
        return rc;
    const char *params[] = {id, jx_text(set, NULL)};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_update, params, &err);
    if (!res && err == DB_CONFLICT)
        return req_err(r, 400,
                       strstr(db_last_constraint(), "email")
                           ? "UPDATE_USER_EMAIL_ALREADY_EXISTS"
                           : "UPDATE_USER_USERNAME_ALREADY_EXISTS");
    if (!res)
        return err == DB_INVALID ? req_invalid(r, "body", NULL, "Invalid value", "value_error")
                                 : resp_db_err(r, err);
    if (PQntuples(res) == 0)
        return req_err(r, gone_status, gone_detail);
    h_fau_email_changed(r, set, cur_email);
    rc = h_fau_end_sessions(r, id, keep_sid, *hash ? hash : NULL, h_fau_deactivates(set));
    if (rc)
        return rc == 404 ? req_err(r, gone_status, gone_detail) : rc;
    return h_fau_text(r, 200, PQgetvalue(res, 0, 0));
}

/* UserRead of one user; 0 rows → status/detail. */
static int h_fau_read(struct req *r, const char *id, int status, const char *detail)
{
    const char *params[] = {id};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_read, params, &err);
    if (!res)
        return resp_db_err(r, err);
    if (PQntuples(res) == 0)
        return req_err(r, status, detail);
    return h_fau_text(r, 200, PQgetvalue(res, 0, 0));
}

int h_fau_me(struct req *r)
{
    return h_fau_read(r, r->user->id, 401, "User not found");
}

/*
 * API.md: a new password needs the current one in the same body (else 400
 * UPDATE_USER_INVALID_PASSWORD), so a stolen token or an unlocked device
 * cannot take the account over.
 */
static int h_fau_current_password_ok(struct req *r, int *rc)
{
    const char *password = NULL, *current = NULL;
    if ((*rc = body_str(r, "password", 0, 128, BODY_NULLABLE, &password)) || !password)
        return !*rc;
    if ((*rc = body_str(r, "current_password", 0, 128, BODY_NULLABLE, &current)))
        return 0;
    /* Guessing it here costs what guessing at login costs: the same budget. */
    if ((*rc = auth_login_limit(r, r->user->username)))
        return 0;
    const char *params[] = {r->user->id};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_by_id, params, &err);
    if (!res) {
        *rc = resp_db_err(r, err);
        return 0;
    }
    const char *hash = PQntuples(res) ? PQgetvalue(res, 0, 1) : NULL;
    /* pw_verify() of a NULL hash still costs one verification. */
    if (!pw_verify(hash, current ? current : "", current ? strlen(current) : 0) || !current) {
        *rc = req_err_code(r, 400, "UPDATE_USER_INVALID_PASSWORD", "Current password is incorrect");
        return 0;
    }
    return 1;
}

int h_fau_me_update(struct req *r)
{
    int rc;
    if (!h_fau_current_password_ok(r, &rc))
        return rc;
    return h_fau_update(r, r->user->id, 0, r->user->email, r->user->sid, 401, "User not found");
}

/* fastapi-users' wording for the superuser-only routes. */
static int h_fau_superuser(struct req *r)
{
    return r->user->is_superuser ? 0 : req_err(r, 403, "Forbidden");
}

int h_fau_user_get(struct req *r)
{
    int rc = h_fau_superuser(r);
    return rc ? rc : h_fau_read(r, r->params[0], 404, "Not Found");
}

int h_fau_user_update(struct req *r)
{
    int rc = h_fau_superuser(r);
    if (rc)
        return rc;
    const char *params[] = {r->params[0]};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_by_id, params, &err);
    if (!res)
        return resp_db_err(r, err);
    if (PQntuples(res) == 0)
        return req_err(r, 404, "Not Found");
    return h_fau_update(r, r->params[0], 1, PQgetvalue(res, 0, 0), NULL, 404, "Not Found");
}

int h_fau_user_delete(struct req *r)
{
    int rc = h_fau_superuser(r);
    if (rc)
        return rc;
    const char *params[] = {r->params[0]};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_delete, params, &err);
    if (!res)
        return resp_db_err(r, err);
    if (strcmp(PQcmdTuples(res), "0") == 0)
        return req_err(r, 404, "Not Found");
    return resp_json(r, 204, NULL);
}
