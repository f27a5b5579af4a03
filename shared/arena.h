#ifndef CHATD_ARENA_H
#define CHATD_ARENA_H

#include <stddef.h>

/*
 * A request-scoped arena (after ngx_pool_t): everything a request allocates
 * comes from here and goes away at once in arena_reset(). Foreign objects
 * (PGresult, json-c roots, fds) are released by deferred callbacks.
 */
struct arena_block;
struct arena_defer;

struct arena {
    struct arena_block *head; /* current block; the first one is kept across resets */
    struct arena_defer *defers;
    size_t used; /* bytes handed out since the last reset */
    size_t cap;  /* hard limit per request */
};

void arena_init(struct arena *a, size_t cap);
/* Zeroed memory, 16-byte aligned; NULL only when the request would pass a->cap. */
void *arena_alloc(struct arena *a, size_t n);
/* NUL-terminated copy of s[0..n); NULL past the cap. */
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_strdup(struct arena *a, const char *s);
/* printf into the arena; NULL past the cap. */
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * Runs fn(p) at the next reset, last registered first. The record lives
 * outside the cap, so a full arena does not refuse it. Returns 0, or -1 only
 * when malloc fails: fn is then not run and p is still the caller's, who
 * releases it and fails the request (ngx_pool_cleanup_add returning NULL).
 */
int arena_defer(struct arena *a, void (*fn)(void *), void *p);
/* Runs the defers, frees every block but the first and poisons it in sanitizer builds. */
void arena_reset(struct arena *a);
void arena_release(struct arena *a);

#endif
