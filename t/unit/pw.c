/* Unit tests for shared/pw.c: Argon2id hashing and constant-cost verification. */
#include "tap.h"

#include <time.h>

#include "pw.h"

static double pw_t_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
    char h1[PW_ENCODED_MAX], h2[PW_ENCODED_MAX];
    double t0 = pw_t_now();
    is_int(pw_hash("correct horse", 13, h1, sizeof(h1)), 0, "hash succeeds");
    double cost = pw_t_now() - t0;
    diag("one Argon2id hash: %.1f ms (t=%d, m=%d KiB)", cost * 1000, PW_T_COST, PW_M_COST);
    ok(!strncmp(h1, "$argon2id$v=19$", 15), "encoded as argon2id v19");
    is_int(pw_hash("correct horse", 13, h2, sizeof(h2)), 0, "second hash succeeds");
    ok(strcmp(h1, h2) != 0, "salts differ between hashes");
    is_int(pw_verify(h1, "correct horse", 13), 1, "right password verifies");
    is_int(pw_verify(h1, "correct horsf", 13), 0, "wrong password fails");
    is_int(pw_verify(h1, "correct hors", 12), 0, "prefix of the password fails");
    is_int(pw_verify(NULL, "correct horse", 13), 0, "unknown user never verifies");
    is_int(pw_verify("$2b$12$notargon", "x", 1), 0, "a foreign hash format never verifies");

    /* Best of three each, so a busy machine does not decide the comparison. */
    double known = 1e9, unknown = 1e9;
    for (int i = 0; i < 3; i++) {
        t0 = pw_t_now();
        pw_verify(h1, "wrong", 5);
        double k = pw_t_now() - t0;
        t0 = pw_t_now();
        pw_verify(NULL, "wrong", 5);
        double u = pw_t_now() - t0;
        known = k < known ? k : known;
        unknown = u < unknown ? u : unknown;
    }
    diag("verify known user %.1f ms, unknown user %.1f ms", known * 1000, unknown * 1000);
    ok(unknown > known / 3 && unknown < known * 3, "unknown user costs about as much as a known one");
    return done_testing();
}
