/*
 * Fuzzes the streaming multipart parser (fcgi/mpart.c) that reads uploads. The input's first
 * line is the Content-Type value, the rest the body. The body is parsed three times: whole,
 * one byte at a time, and in chunks of a size picked from the input's hash; the parser must
 * reach the same verdict and report the same parts and bytes each time (its state must
 * carry across chunk ends exactly), never report more content than the body holds, never
 * call back with an empty slice, and close every part it opened when it succeeds.
 */
#include "fuzz.h"

#include "mpart.h"

struct fz_run {
    uint32_t sig; /* FNV-1a over the events and bytes, independent of chunking */
    size_t bytes, parts, ends;
};

static void fz_mix(struct fz_run *z, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        z->sig = (z->sig ^ c[i]) * 16777619u;
}

static int fz_on_part(void *ctx, const char *name)
{
    struct fz_run *z = ctx;
    FUZZ_CHECK(strlen(name) <= MPART_NAME_MAX);
    FUZZ_CHECK(z->parts == z->ends);
    z->parts++;
    fz_mix(z, "P", 1);
    fz_mix(z, name, strlen(name) + 1);
    return 0;
}

static int fz_on_data(void *ctx, const char *p, size_t n)
{
    struct fz_run *z = ctx;
    FUZZ_CHECK(n > 0);
    FUZZ_CHECK(z->parts == z->ends + 1);
    z->bytes += n;
    fz_mix(z, p, n);
    return 0;
}

static int fz_on_part_end(void *ctx)
{
    struct fz_run *z = ctx;
    z->ends++;
    FUZZ_CHECK(z->ends == z->parts);
    fz_mix(z, "E", 1);
    return 0;
}

static const struct mpart_cb fz_cb = {fz_on_part, fz_on_data, fz_on_part_end};

/* Parses body in chunks of step bytes (0: whole); returns the verdict. */
static int fz_parse(const char *ctype, const char *body, size_t n, size_t step, struct fz_run *z)
{
    struct mpart *m = malloc(sizeof(*m));
    FUZZ_CHECK(m != NULL);
    memset(z, 0, sizeof(*z));
    z->sig = 2166136261u;
    int rc = mpart_init(m, ctype, &fz_cb, z);
    for (size_t i = 0; rc == 0 && i < n; i += step ? step : n)
        rc = mpart_feed(m, body + i, step && n - i > step ? step : n - i);
    if (rc == 0)
        rc = mpart_finish(m);
    free(m);
    FUZZ_CHECK(z->bytes <= n);
    FUZZ_CHECK(rc != 0 || z->parts == z->ends);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t cl = nl ? (size_t)(nl - data) : size;
    char *ctype = malloc(cl + 1);
    FUZZ_CHECK(ctype != NULL);
    memcpy(ctype, data, cl);
    ctype[cl] = '\0';
    const char *body = nl ? (const char *)nl + 1 : "";
    size_t n = nl ? size - cl - 1 : 0;

    struct fz_run whole, bytewise, chunked;
    int v1 = fz_parse(ctype, body, n, 0, &whole);
    int v2 = fz_parse(ctype, body, n, 1, &bytewise);
    int v3 = fz_parse(ctype, body, n, 1 + fuzz_hash(data, size) % 97, &chunked);
    FUZZ_CHECK(v1 == v2 && v1 == v3);
    /* A failed parse may stop at a different byte only if the failure is about that byte. */
    if (v1 == 0) {
        FUZZ_CHECK(whole.sig == bytewise.sig && whole.sig == chunked.sig);
        FUZZ_CHECK(whole.bytes == bytewise.bytes && whole.bytes == chunked.bytes);
    }
    free(ctype);
    return 0;
}
