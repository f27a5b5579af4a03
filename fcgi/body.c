#include "body.h"

#include <ctype.h>
#include <json-c/json.h>
#include <string.h>

#include "req.h"
#include "str.h"

/* local@domain.tld, printable ASCII, no spaces; what pydantic's EmailStr rejects outright. */
int body_is_email(const char *s)
{
    const char *at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@') || strlen(s) > 320 || at - s > 64)
        return 0;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 127 || strchr("()<>,;:\\\"[]", *p))
            return 0;
    const char *dot = strrchr(at + 1, '.');
    return dot && dot > at + 1 && dot[1] != '\0' && !strstr(at, "..") && s[0] != '.' &&
           at[-1] != '.';
}

int body_is_username(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > 50)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
            return 0;
    return 1;
}

int body_has(struct req *r, const char *field)
{
    json_object *v;
    return r->json && json_object_object_get_ex(r->json, field, &v);
}

/* The value of field: 0 with *v (NULL when absent or null), or a 422 for a missing required one. */
static int body_get(struct req *r, const char *field, unsigned flags, json_object **v)
{
    *v = NULL;
    int has = r->json && json_object_object_get_ex(r->json, field, v);
    if (!has && (flags & BODY_REQUIRED))
        return req_invalid(r, "body", field, "Field required", "missing");
    if (has && !*v && !(flags & BODY_NULLABLE) && (flags & BODY_REQUIRED))
        return req_invalid(r, "body", field, "Input should be a valid string", "string_type");
    return 0;
}

int body_str(struct req *r, const char *field, size_t min, size_t max, unsigned flags,
             const char **out)
{
    json_object *v;
    *out = NULL;
    int rc = body_get(r, field, flags, &v);
    if (rc || !v)
        return rc;
    if (!json_object_is_type(v, json_type_string))
        return req_invalid(r, "body", field, "Input should be a valid string", "string_type");
    const char *s = json_object_get_string(v);
    if ((size_t)json_object_get_string_len(v) != strlen(s))
        return req_invalid(r, "body", field, "String should not contain NUL", "string_type");
    size_t n = str_utf8_len(s);
    if (n < min)
        return req_invalid(r, "body", field,
                           arena_printf(r->a, "String should have at least %zu character%s", min,
                                        min == 1 ? "" : "s"),
                           "string_too_short");
    if (n > max)
        return req_invalid(r, "body", field,
                           arena_printf(r->a, "String should have at most %zu characters", max),
                           "string_too_long");
    *out = s;
    return 0;
}

int body_bool(struct req *r, const char *field, unsigned flags, int *out, int *present)
{
    json_object *v;
    *present = 0;
    int rc = body_get(r, field, flags, &v);
    if (rc || !v)
        return rc;
    if (!json_object_is_type(v, json_type_boolean))
        return req_invalid(r, "body", field, "Input should be a valid boolean", "bool_type");
    *out = json_object_get_boolean(v);
    *present = 1;
    return 0;
}

int body_uuid(struct req *r, const char *field, unsigned flags, const char **out)
{
    int rc = body_str(r, field, 0, 64, flags, out);
    if (rc || !*out)
        return rc;
    if (!str_is_uuid(*out))
        return req_invalid(r, "body", field, "Input should be a valid UUID", "uuid_parsing");
    char *low = arena_alloc(r->a, 37);
    *out = low ? str_lower(low, *out, 36) : NULL;
    return 0;
}

int body_set_str(struct req *r, json_object *set, const char *field, size_t min, size_t max)
{
    const char *v;
    int rc = body_str(r, field, min, max, BODY_NULLABLE, &v);
    if (!rc && body_has(r, field))
        json_object_object_add(set, field, v ? json_object_new_string(v) : NULL);
    return rc;
}

int body_set_bool(struct req *r, json_object *set, const char *field)
{
    int v = 0, present;
    int rc = body_bool(r, field, BODY_NULLABLE, &v, &present);
    if (!rc && present)
        json_object_object_add(set, field, json_object_new_boolean(v));
    return rc;
}
