#include "tok.h"

#include <errno.h>
#include <json-c/json.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cfg.h"

struct tok_spec {
    const char *aud;  /* NULL: no audience claim */
    const char *type; /* NULL: no type claim */
    int refresh_key;
};

static const struct tok_spec tok_specs[] = {
    [TOK_ACCESS] = {"fastapi-users:auth", "access", 0},
    [TOK_REFRESH] = {NULL, "refresh", 1},
    [TOK_RESET] = {"fastapi-users:reset", NULL, 0},
    [TOK_VERIFY] = {"fastapi-users:verify", NULL, 0},
    [TOK_OAUTH_STATE] = {"fastapi-users:oauth-state", NULL, 0},
};

void tok_uuid(char out[37])
{
    unsigned char b[16];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
        abort(); /* no entropy: nothing safe can be issued */
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

static const char *tok_key(enum tok_kind kind)
{
    return tok_specs[kind].refresh_key ? cfg.refresh_secret_key : cfg.secret_key;
}

static int tok_add(jwt_t *j, const char *name, const char *val)
{
    return *val ? jwt_add_grant(j, name, val) : 0;
}

char *tok_issue(enum tok_kind kind, struct tok_claims *c, long now, long ttl)
{
    const struct tok_spec *sp = &tok_specs[kind];
    const char *key = tok_key(kind);
    jwt_t *j = NULL;
    char *out = NULL;
    if (!c->jti[0])
        tok_uuid(c->jti);
    c->iat = now;
    c->exp = now + ttl;
    if (jwt_new(&j))
        return NULL;
    char aud[96];
    snprintf(aud, sizeof(aud), "{\"aud\":[\"%s\"]}", sp->aud ? sp->aud : "");
    int rc = tok_add(j, "sub", c->sub) | tok_add(j, "jti", c->jti) | tok_add(j, "sid", c->sid) |
             tok_add(j, "email", c->email) | tok_add(j, "username", c->username) |
             tok_add(j, "password_fgpt", c->fgp) | jwt_add_grant_int(j, "iat", c->iat) |
             jwt_add_grant_int(j, "exp", c->exp) |
             (sp->type ? jwt_add_grant(j, "type", sp->type) : 0) |
             (sp->aud ? jwt_add_grants_json(j, aud) : 0) |
             jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)key, (int)strlen(key));
    if (rc == 0)
        out = jwt_encode_str(j);
    jwt_free(j);
    return out;
}

static void tok_copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

/*
 * aud may be a string or a list of strings (PyJWT writes either): the string, or one member
 * of the list, must be want exactly. The list is parsed, not searched: a member that merely
 * contains "want" with its quotes (["x\",\"want"]) is another audience (found by t/fuzz/jwt.c).
 */
static int tok_aud_ok(jwt_t *j, const char *want)
{
    const char *s = jwt_get_grant(j, "aud");
    if (s)
        return !strcmp(s, want);
    char *json = jwt_get_grants_json(j, "aud");
    json_object *aud = json ? json_tokener_parse(json) : NULL;
    free(json);
    int ok = 0;
    size_t n = json_object_is_type(aud, json_type_array) ? json_object_array_length(aud) : 0;
    for (size_t i = 0; i < n && !ok; i++) {
        json_object *e = json_object_array_get_idx(aud, i);
        ok = json_object_is_type(e, json_type_string) &&
             (size_t)json_object_get_string_len(e) == strlen(want) &&
             !strcmp(json_object_get_string(e), want);
    }
    json_object_put(aud);
    return ok;
}

static int tok_check(const struct tok_spec *sp, jwt_t *j, long now, struct tok_claims *c)
{
    if (jwt_get_alg(j) != JWT_ALG_HS256)
        return -1;
    errno = 0;
    c->exp = jwt_get_grant_int(j, "exp");
    /* Not exp + leeway: an exp near LONG_MAX would overflow (found by t/fuzz/jwt.c). */
    if (errno || c->exp < now - TOK_LEEWAY)
        return -1;
    errno = 0;
    c->iat = jwt_get_grant_int(j, "iat");
    if (errno)
        c->iat = 0;
    if (c->iat > now + TOK_LEEWAY)
        return -1;
    if (sp->type && (!jwt_get_grant(j, "type") || strcmp(jwt_get_grant(j, "type"), sp->type)))
        return -1;
    if (!sp->type && jwt_get_grant(j, "type"))
        return -1;
    if (sp->aud && !tok_aud_ok(j, sp->aud))
        return -1;
    tok_copy(c->sub, sizeof(c->sub), jwt_get_grant(j, "sub"));
    tok_copy(c->jti, sizeof(c->jti), jwt_get_grant(j, "jti"));
    tok_copy(c->sid, sizeof(c->sid), jwt_get_grant(j, "sid"));
    tok_copy(c->email, sizeof(c->email), jwt_get_grant(j, "email"));
    tok_copy(c->username, sizeof(c->username), jwt_get_grant(j, "username"));
    tok_copy(c->fgp, sizeof(c->fgp), jwt_get_grant(j, "password_fgpt"));
    return 0;
}

int tok_verify(enum tok_kind kind, const char *token, long now, struct tok_claims *c)
{
    const char *key = tok_key(kind);
    jwt_t *j = NULL;
    memset(c, 0, sizeof(*c));
    /* Bounded input; a JWT has exactly two dots. */
    size_t n = strnlen(token, 8193);
    if (n == 0 || n > 8192)
        return -1;
    int dots = 0;
    for (size_t i = 0; i < n; i++)
        dots += token[i] == '.';
    if (dots != 2)
        return -1;
    if (jwt_decode(&j, token, (const unsigned char *)key, (int)strlen(key)) != 0 || !j)
        return -1;
    int rc = tok_check(&tok_specs[kind], j, now, c);
    jwt_free(j);
    if (rc < 0)
        memset(c, 0, sizeof(*c));
    return rc;
}
