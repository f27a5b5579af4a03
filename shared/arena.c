#include "arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK 16384
#define ARENA_ALIGN 16

struct arena_block {
    struct arena_block *next;
    size_t size, off;
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

struct arena_defer {
    struct arena_defer *next;
    void (*fn)(void *);
    void *p;
};

#if defined(__SANITIZE_ADDRESS__)
#define ARENA_POISON 1
#else
#define ARENA_POISON 0
#endif

static struct arena_block *arena_block_new(size_t size)
{
    struct arena_block *b = malloc(sizeof(*b) + size);
    if (b) {
        b->next = NULL;
        b->size = size;
        b->off = 0;
    }
    return b;
}

void arena_init(struct arena *a, size_t cap)
{
    a->head = NULL;
    a->defers = NULL;
    a->used = 0;
    a->cap = cap;
}

void *arena_alloc(struct arena *a, size_t n)
{
    if (n > a->cap)
        return NULL;
    n = n ? (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1) : ARENA_ALIGN;
    if (n > a->cap || a->used > a->cap - n)
        return NULL;
    struct arena_block *b = a->head;
    if (!b || b->size - b->off < n) {
        /* A large allocation gets its own block behind the current one. */
        size_t size = n > ARENA_BLOCK / 4 ? n : ARENA_BLOCK;
        struct arena_block *nb = arena_block_new(size);
        if (!nb)
            return NULL;
        if (b && size == n) {
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            a->head = nb;
        }
        b = nb;
    }
    void *p = b->data + b->off;
    b->off += n;
    a->used += n;
    memset(p, 0, n);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = arena_alloc(a, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

/*
 * The node comes from malloc, outside the cap (as ngx_pool_cleanup_add's does
 * not count against a pool's data): a request that filled its arena can still
 * hand over the PGresult or json-c root it just obtained.
 */
int arena_defer(struct arena *a, void (*fn)(void *), void *p)
{
    struct arena_defer *d = malloc(sizeof(*d));
    if (!d)
        return -1;
    d->fn = fn;
    d->p = p;
    d->next = a->defers;
    a->defers = d;
    return 0;
}

void arena_reset(struct arena *a)
{
    for (struct arena_defer *d = a->defers, *next; d; d = next) {
        next = d->next;
        d->fn(d->p);
        free(d);
    }
    a->defers = NULL;
    struct arena_block *keep = NULL;
    for (struct arena_block *b = a->head, *next; b; b = next) {
        next = b->next;
        if (!keep && b->size == ARENA_BLOCK)
            keep = b;
        else
            free(b);
    }
    if (keep) {
        if (ARENA_POISON)
            memset(keep->data, 0xa5, keep->off);
        keep->off = 0;
        keep->next = NULL;
    }
    a->head = keep;
    a->used = 0;
}

void arena_release(struct arena *a)
{
    arena_reset(a);
    free(a->head);
    a->head = NULL;
}
