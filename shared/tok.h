#ifndef CHATD_TOK_H
#define CHATD_TOK_H

#include <stddef.h>

/* The token families of API.md; each has its own audience, and access/refresh their own secrets. */
enum tok_kind {
    TOK_ACCESS,      /* SECRET_KEY, aud fastapi-users:auth, type access */
    TOK_REFRESH,     /* REFRESH_SECRET_KEY, type refresh, sid = auth_sessions.id */
    TOK_RESET,       /* SECRET_KEY, aud fastapi-users:reset, fgp = password fingerprint */
    TOK_VERIFY,      /* SECRET_KEY, aud fastapi-users:verify, email */
    TOK_OAUTH_STATE, /* SECRET_KEY, aud fastapi-users:oauth-state */
};

/* Seconds of clock skew tolerated on exp and iat. */
#define TOK_LEEWAY 10

struct tok_claims {
    char sub[40]; /* user id (empty for oauth state) */
    char jti[40];
    char sid[40]; /* refresh: the login session */
    char email[321];
    char username[51];
    char fgp[65]; /* reset: fingerprint of the password hash it may replace */
    long iat, exp;
};

/*
 * Signs a token of that kind (HS256) valid for ttl seconds from now; fills
 * c->jti (when empty), iat, exp. Returns a malloc'd string, NULL on failure.
 */
char *tok_issue(enum tok_kind kind, struct tok_claims *c, long now, long ttl);

/*
 * Verifies signature (HS256 only: "none" and every other alg are refused),
 * audience, type and expiry at now. Returns 0 and fills *c, or -1.
 */
int tok_verify(enum tok_kind kind, const char *token, long now, struct tok_claims *c);

/* A random RFC 4122 v4 UUID in out[37]. */
void tok_uuid(char out[37]);

#endif
