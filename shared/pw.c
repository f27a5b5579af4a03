#include "pw.h"

#include <argon2.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>

static char pw_dummy[PW_ENCODED_MAX];
static pthread_once_t pw_dummy_once = PTHREAD_ONCE_INIT;

int pw_hash(const char *pw, size_t len, char *out, size_t outlen)
{
    unsigned char salt[16];
    if (getrandom(salt, sizeof(salt), 0) != (ssize_t)sizeof(salt))
        return -1;
    int rc = argon2id_hash_encoded(PW_T_COST, PW_M_COST, PW_PARALLEL, pw, len, salt, sizeof(salt),
                                   32, out, outlen);
    return rc == ARGON2_OK ? 0 : -1;
}

static void pw_make_dummy(void)
{
    pw_hash("chatd-dummy-password", 20, pw_dummy, sizeof(pw_dummy));
}

int pw_verify(const char *encoded, const char *pw, size_t len)
{
    if (!encoded || strncmp(encoded, "$argon2id$", 10) != 0) {
        /* Same work as a real check, so timing does not tell whether the user exists. */
        pthread_once(&pw_dummy_once, pw_make_dummy);
        argon2id_verify(pw_dummy, pw, len);
        return 0;
    }
    return argon2id_verify(encoded, pw, len) == ARGON2_OK;
}
