#ifndef CHATD_PW_H
#define CHATD_PW_H

#include <stddef.h>

/* Argon2id cost: about 35 ms per hash on the 2-core CI machine (README "Passwords"). */
#define PW_T_COST 2
#define PW_M_COST (19 * 1024) /* KiB: OWASP's minimum for t=2 */
#define PW_PARALLEL 1
#define PW_ENCODED_MAX 160

/* Encodes an Argon2id hash of pw into out (PW_ENCODED_MAX). Returns 0 or -1. */
int pw_hash(const char *pw, size_t len, char *out, size_t outlen);
/*
 * 1 when pw matches encoded, else 0. With encoded NULL (unknown user) it
 * verifies against a dummy hash so both cases cost the same time.
 */
int pw_verify(const char *encoded, const char *pw, size_t len);

#endif
