/*
 * What every harness in t/fuzz/ shares. A harness is one file t/fuzz/<name>.c defining
 * LLVMFuzzerTestOneInput(); it is linked either with libFuzzer (clang -fsanitize=fuzzer,
 * `make fuzz` → build/fuzz/<name>) or with t/fuzz/replay.c (any compiler, `make` →
 * build/t/fuzz-<name>.t, which replays t/fuzz/corpus/<name>/ as TAP under `make test`).
 *
 * Rules for a harness: deterministic (no clock, no randomness, no network), leak-free after
 * each input (libFuzzer's leak check and LSan in SANITIZE=1 builds look), and abort() on a
 * broken invariant so that a wrong answer is a crash like any other.
 */
#ifndef CHATD_FUZZ_H
#define CHATD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts with a message when cond is false: a broken invariant is a finding. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The most parts fuzz_split() cuts an input into. */
#define FUZZ_MAX_PARTS 8

/*
 * Cuts data at each '\n' into at most max parts (the last one keeps the rest, newlines and
 * all), each a malloc'd C string that ends at its first NUL byte, as a header or CGI
 * parameter would. Parts past the input are "". Returns the number of parts; free them with
 * fuzz_free_parts().
 */
static inline int fuzz_split(const uint8_t *data, size_t size, char **parts, int max)
{
    size_t pos = 0;
    for (int i = 0; i < max; i++) {
        size_t end = pos;
        while (end < size && (i == max - 1 || data[end] != '\n'))
            end++;
        size_t n = strnlen((const char *)data + pos, end - pos);
        parts[i] = malloc(n + 1);
        if (!parts[i])
            abort();
        memcpy(parts[i], data + pos, n);
        parts[i][n] = '\0';
        pos = end < size ? end + 1 : size;
    }
    return max;
}

static inline void fuzz_free_parts(char **parts, int n)
{
    for (int i = 0; i < n; i++)
        free(parts[i]);
}

/* FNV-1a of the input: picks variants (which key, which answer) deterministically. */
static inline uint32_t fuzz_hash(const uint8_t *data, size_t size)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    return h;
}

#endif
