#ifndef CHATD_JX_H
#define CHATD_JX_H

#include <json-c/json.h>

struct arena;

/* json_object_put() with the signature arena_defer() wants. */
void jx_put(void *o);
/*
 * Hands o to the arena: released at the next reset. Returns o, or NULL when o
 * is NULL or memory is short (o is then already released: never use it).
 */
json_object *jx_keep(struct arena *a, json_object *o);
/* A new object / array released with the arena; NULL when memory is short. */
json_object *jx_obj(struct arena *a);
json_object *jx_arr(struct arena *a);

/*
 * o as compact JSON text, '/' left as is (json-c escapes it as "\/" by
 * default: URLs in payloads should read as they are). The string belongs to
 * o (valid until o changes or is released); *len gets its length when len is
 * not NULL. NULL when out of memory.
 */
const char *jx_text(json_object *o, size_t *len);

#endif
