#include "jx.h"

#include "arena.h"

void jx_put(void *o)
{
    json_object_put(o);
}

json_object *jx_keep(struct arena *a, json_object *o)
{
    if (o && arena_defer(a, jx_put, o) < 0) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

json_object *jx_obj(struct arena *a)
{
    return jx_keep(a, json_object_new_object());
}

json_object *jx_arr(struct arena *a)
{
    return jx_keep(a, json_object_new_array());
}

const char *jx_text(json_object *o, size_t *len)
{
    size_t n = 0;
    const char *s = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    if (len)
        *len = n;
    return s;
}
