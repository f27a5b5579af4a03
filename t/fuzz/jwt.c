/*
 * Fuzzes tok_verify() (shared/tok.c), the check behind every Bearer header, access_token and
 * refresh_token cookie, refresh/reset/verify token body and OAuth state, for all five token
 * kinds at a fixed clock. Two kinds of input:
 *
 *   - anything not starting with '{' is a token as a client sends it (up to its first NUL);
 *   - "{claims}" or "{claims}\n{header}" is signed here with libjwt four ways (HS256 with
 *     SECRET_KEY, HS256 with REFRESH_SECRET_KEY, HS512, alg none) and each result verified,
 *     so the claim checks (exp, iat, type, aud as string or list, lengths) see arbitrary
 *     JSON behind a good signature.
 *
 * Invariants: 0 or -1; on -1 the claims are zeroed; on 0 every claim string is terminated
 * within its buffer; alg none and HS512 never pass; a token signed with one key never passes
 * as a kind of the other key; a signed token passes as a kind only when its claims carry
 * that kind's "type" (or none) and its audience, as a string or as one member of a list.
 */
#include "fuzz.h"

#include <json-c/json.h>
#include <jwt.h>

#include "cfg.h"
#include "tok.h"

/* A fixed clock (2023-11-14): the harness must not depend on the time. */
#define JWT_NOW 1700000000L

static const char jwt_secret[] = "fuzz-secret-key-0123456789abcdef0123456789abcdef";
static const char jwt_refresh[] = "fuzz-refresh-key-fedcba9876543210fedcba9876543210";

enum jwt_signer { JWT_S_ACCESS, JWT_S_REFRESH, JWT_S_HS512, JWT_S_NONE, JWT_S_N };

static void jwt_check_claims(int rc, const struct tok_claims *c)
{
    static const struct tok_claims zero;
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc < 0) {
        FUZZ_CHECK(!memcmp(c, &zero, sizeof(zero)));
        return;
    }
    FUZZ_CHECK(strnlen(c->sub, sizeof(c->sub)) < sizeof(c->sub));
    FUZZ_CHECK(strnlen(c->jti, sizeof(c->jti)) < sizeof(c->jti));
    FUZZ_CHECK(strnlen(c->sid, sizeof(c->sid)) < sizeof(c->sid));
    FUZZ_CHECK(strnlen(c->email, sizeof(c->email)) < sizeof(c->email));
    FUZZ_CHECK(strnlen(c->username, sizeof(c->username)) < sizeof(c->username));
    FUZZ_CHECK(strnlen(c->fgp, sizeof(c->fgp)) < sizeof(c->fgp));
    FUZZ_CHECK(c->exp >= JWT_NOW - TOK_LEEWAY && c->iat <= JWT_NOW + TOK_LEEWAY);
}

/* Every kind; returns a bit per kind that accepted the token. */
static unsigned jwt_verify_all(const char *token)
{
    unsigned passed = 0;
    for (int k = TOK_ACCESS; k <= TOK_OAUTH_STATE; k++) {
        struct tok_claims c;
        memset(&c, 0x5a, sizeof(c)); /* tok_verify() must set every byte it promises */
        int rc = tok_verify((enum tok_kind)k, token, JWT_NOW, &c);
        jwt_check_claims(rc, &c);
        if (rc == 0)
            passed |= 1u << k;
    }
    return passed;
}

/* claims (and header) signed one way; NULL when libjwt refuses the JSON. */
static char *jwt_sign(enum jwt_signer how, const char *claims, const char *header)
{
    jwt_t *j = NULL;
    if (jwt_new(&j))
        return NULL;
    char *out = NULL;
    int rc = jwt_add_grants_json(j, claims);
    if (!rc && *header)
        rc = jwt_add_headers_json(j, header);
    if (!rc) {
        switch (how) {
        case JWT_S_ACCESS:
            rc = jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)jwt_secret,
                             (int)strlen(jwt_secret));
            break;
        case JWT_S_REFRESH:
            rc = jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)jwt_refresh,
                             (int)strlen(jwt_refresh));
            break;
        case JWT_S_HS512:
            rc = jwt_set_alg(j, JWT_ALG_HS512, (const unsigned char *)jwt_secret,
                             (int)strlen(jwt_secret));
            break;
        default:
            rc = jwt_set_alg(j, JWT_ALG_NONE, NULL, 0);
            break;
        }
    }
    if (!rc)
        out = jwt_encode_str(j);
    jwt_free(j);
    return out;
}

/* The audience and type that kind k demands (tok.c's table, restated). */
static const struct {
    const char *aud, *type;
} jwt_want[] = {
    [TOK_ACCESS] = {"fastapi-users:auth", "access"},
    [TOK_REFRESH] = {NULL, "refresh"},
    [TOK_RESET] = {"fastapi-users:reset", NULL},
    [TOK_VERIFY] = {"fastapi-users:verify", NULL},
    [TOK_OAUTH_STATE] = {"fastapi-users:oauth-state", NULL},
};

static int jwt_is_str(json_object *v, const char *want)
{
    return json_object_is_type(v, json_type_string) &&
           (size_t)json_object_get_string_len(v) == strlen(want) &&
           !strcmp(json_object_get_string(v), want);
}

/* Read with json-c, independently of libjwt: do the claims entitle the token to kind k? */
static int jwt_claims_fit(json_object *claims, int k)
{
    json_object *type = NULL, *aud = NULL;
    /* A kind without a type refuses a string "type" (what tok_issue() could have written). */
    int has_type = json_object_object_get_ex(claims, "type", &type) &&
                   json_object_is_type(type, json_type_string);
    if (jwt_want[k].type ? !has_type || !jwt_is_str(type, jwt_want[k].type) : has_type)
        return 0;
    if (!jwt_want[k].aud)
        return 1;
    if (!json_object_object_get_ex(claims, "aud", &aud))
        return 0;
    if (jwt_is_str(aud, jwt_want[k].aud))
        return 1;
    for (size_t i = 0;
         json_object_is_type(aud, json_type_array) && i < json_object_array_length(aud); i++)
        if (jwt_is_str(json_object_array_get_idx(aud, i), jwt_want[k].aud))
            return 1;
    return 0;
}

static void jwt_signed(char *claims, char *header)
{
    json_object *parsed = json_tokener_parse(claims);
    for (int how = 0; how < JWT_S_N; how++) {
        char *token = jwt_sign((enum jwt_signer)how, claims, header);
        if (!token)
            continue;
        unsigned passed = jwt_verify_all(token);
        if (getenv("FUZZ_DEBUG")) /* which kinds took which signing, to write a corpus */
            fprintf(stderr, "signer %d: kinds 0x%x: %s\n", how, passed, token);
        if (how == JWT_S_HS512 || how == JWT_S_NONE)
            FUZZ_CHECK(passed == 0);
        else if (how == JWT_S_REFRESH)
            FUZZ_CHECK((passed & ~(1u << TOK_REFRESH)) == 0);
        else
            FUZZ_CHECK((passed & (1u << TOK_REFRESH)) == 0);
        for (int k = TOK_ACCESS; k <= TOK_OAUTH_STATE; k++)
            if (passed & (1u << k))
                FUZZ_CHECK(parsed && jwt_claims_fit(parsed, k));
        free(token);
    }
    json_object_put(parsed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cfg.secret_key = (char *)jwt_secret;
    cfg.refresh_secret_key = (char *)jwt_refresh;
    if (size && data[0] == '{') {
        char *part[2];
        fuzz_split(data, size, part, 2);
        jwt_signed(part[0], part[1]);
        fuzz_free_parts(part, 2);
        return 0;
    }
    char *token = malloc(size + 1);
    if (!token)
        abort();
    memcpy(token, data, size);
    token[size] = '\0';
    (void)jwt_verify_all(token);
    free(token);
    return 0;
}
