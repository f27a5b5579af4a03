/* Unit tests for shared/tok.c: JWT issue and verification with a fixed clock. */
#include "tap.h"

#include <jwt.h>
#include <stdlib.h>

#include "cfg.h"
#include "tok.h"

#define NOW 1800000000L

static char *tok_t_forge(const char *alg_none_payload)
{
    /* header {"alg":"none","typ":"JWT"} and a payload, unsigned */
    char *s = NULL;
    if (asprintf(&s, "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.%s.", alg_none_payload) < 0)
        return NULL;
    return s;
}

/* claims (JSON) signed HS256 with key, as a peer holding the secret could; NULL on failure. */
static char *tok_t_sign(const char *claims, const char *key)
{
    jwt_t *j = NULL;
    char *out = NULL;
    if (jwt_new(&j))
        return NULL;
    if (!jwt_add_grants_json(j, claims) &&
        !jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)key, (int)strlen(key)))
        out = jwt_encode_str(j);
    jwt_free(j);
    return out;
}

/* Regressions found by t/fuzz/jwt.c (make fuzz): claim checks behind a good signature. */
static void tok_t_fuzz_regressions(void)
{
    struct tok_claims got;
    /* exp + TOK_LEEWAY overflowed a long (UBSan: signed integer overflow). */
    char *far =
        tok_t_sign("{\"exp\":9223372036854775807,\"type\":\"refresh\"}", cfg.refresh_secret_key);
    is_int(tok_verify(TOK_REFRESH, far, NOW, &got), 0,
           "exp at LONG_MAX is far future, no overflow");
    is_int(got.exp, 9223372036854775807L, "and read back whole");
    char *past =
        tok_t_sign("{\"exp\":-9223372036854775807,\"type\":\"refresh\"}", cfg.refresh_secret_key);
    is_int(tok_verify(TOK_REFRESH, past, NOW, &got), -1, "exp near LONG_MIN is expired");

    /* aud was searched for "want" with its quotes in the list's JSON text. */
    char *quoted = tok_t_sign("{\"exp\":1800000900,\"type\":\"access\","
                              "\"aud\":[\"x\\\",\\\"fastapi-users:auth\"]}",
                              cfg.secret_key);
    is_int(tok_verify(TOK_ACCESS, quoted, NOW, &got), -1,
           "an aud member that only contains the quoted audience is refused");
    char *listed = tok_t_sign("{\"exp\":1800000900,\"type\":\"access\","
                              "\"aud\":[\"other\",\"fastapi-users:auth\"]}",
                              cfg.secret_key);
    is_int(tok_verify(TOK_ACCESS, listed, NOW, &got), 0,
           "the audience as one member of a list passes");
    char *prefix = tok_t_sign("{\"exp\":1800000900,\"type\":\"access\","
                              "\"aud\":[\"fastapi-users:auth-x\",\"fastapi-users:aut\"]}",
                              cfg.secret_key);
    is_int(tok_verify(TOK_ACCESS, prefix, NOW, &got), -1, "prefixes of the audience are refused");
    free(far);
    free(past);
    free(quoted);
    free(listed);
    free(prefix);
}

int main(void)
{
    cfg.secret_key = "0123456789abcdef0123456789abcdef-access";
    cfg.refresh_secret_key = "0123456789abcdef0123456789abcdef-refresh";
    struct tok_claims c = {0}, got;
    snprintf(c.sub, sizeof(c.sub), "0b6f1c2e-1f7a-4b8e-9c3d-2a1b3c4d5e6f");
    snprintf(c.email, sizeof(c.email), "a@example.com");
    char *access = tok_issue(TOK_ACCESS, &c, NOW, 900);
    ok(access != NULL, "access token issued");
    ok(c.jti[0] != 0, "jti filled in");
    is_int(tok_verify(TOK_ACCESS, access, NOW + 10, &got), 0, "access token verifies");
    is_str(got.sub, c.sub, "sub survives the round trip");
    is_str(got.email, "a@example.com", "email survives the round trip");
    is_int(got.exp, NOW + 900, "exp is now + ttl");
    is_int(tok_verify(TOK_ACCESS, access, NOW + 900 + TOK_LEEWAY, &got), 0, "accepted within leeway");
    is_int(tok_verify(TOK_ACCESS, access, NOW + 901 + TOK_LEEWAY, &got), -1, "expired refused");
    is_int(tok_verify(TOK_ACCESS, access, NOW - 60, &got), -1, "issued in the future refused");
    is_int(tok_verify(TOK_REFRESH, access, NOW, &got), -1, "access token is not a refresh token");
    is_int(tok_verify(TOK_RESET, access, NOW, &got), -1, "access token is not a reset token");

    struct tok_claims rc = {0};
    snprintf(rc.sub, sizeof(rc.sub), "%s", c.sub);
    snprintf(rc.sid, sizeof(rc.sid), "11111111-2222-4333-8444-555555555555");
    char *refresh = tok_issue(TOK_REFRESH, &rc, NOW, 86400);
    is_int(tok_verify(TOK_REFRESH, refresh, NOW, &got), 0, "refresh token verifies");
    is_str(got.sid, rc.sid, "refresh token carries its session");
    is_int(tok_verify(TOK_ACCESS, refresh, NOW, &got), -1, "refresh token is not an access token");

    char *tampered = strdup(access);
    size_t n = strlen(tampered);
    tampered[n - 2] = tampered[n - 2] == 'A' ? 'B' : 'A';
    is_int(tok_verify(TOK_ACCESS, tampered, NOW, &got), -1, "tampered signature refused");

    char *none = tok_t_forge(strchr(access, '.') + 1);
    /* payload segment only: cut at the signature dot */
    *strrchr(none, '.') = '\0';
    char *none2 = NULL;
    if (asprintf(&none2, "%s.", none) < 0)
        return 1;
    is_int(tok_verify(TOK_ACCESS, none2, NOW, &got), -1, "alg none refused");

    cfg.secret_key = "another-secret-another-secret-another-secret";
    is_int(tok_verify(TOK_ACCESS, access, NOW, &got), -1, "other secret refused");
    is_int(tok_verify(TOK_ACCESS, "a.b", NOW, &got), -1, "malformed token refused");
    is_int(tok_verify(TOK_ACCESS, "", NOW, &got), -1, "empty token refused");

    cfg.secret_key = "0123456789abcdef0123456789abcdef-access";
    tok_t_fuzz_regressions();

    char u1[37], u2[37];
    tok_uuid(u1);
    tok_uuid(u2);
    ok(strlen(u1) == 36 && u1[14] == '4' && strcmp(u1, u2), "uuids are v4 and distinct");
    free(access);
    free(refresh);
    free(tampered);
    free(none);
    free(none2);
    return done_testing();
}
