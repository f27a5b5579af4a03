#ifndef CHATD_BODY_H
#define CHATD_BODY_H

#include <stddef.h>

#include "str.h"

struct req;
struct json_object;

enum body_flags {
    BODY_REQUIRED = 1 << 0,
    BODY_NULLABLE = 1 << 1, /* an explicit null is accepted and reads as NULL */
};

/*
 * Field readers for the JSON body of R_JSON routes (r->json). Each returns 0
 * with *out set (NULL when absent or null), or 422 in the FastAPI list shape
 * after recording the error. Lengths are counted in characters (UTF-8).
 */
int body_str(struct req *r, const char *field, size_t min, size_t max, unsigned flags,
             const char **out);
int body_bool(struct req *r, const char *field, unsigned flags, int *out, int *present);
/* A UUID string (36 chars, lower-cased in *out). */
int body_uuid(struct req *r, const char *field, unsigned flags, const char **out);
/*
 * PATCH helpers: the field into the JSON object set (a string within [min,
 * max] characters, or a boolean). Absent stays absent; an explicit null is
 * added as null (it clears). Returns 0 or 422.
 */
int body_set_str(struct req *r, struct json_object *set, const char *field, size_t min, size_t max);
int body_set_bool(struct req *r, struct json_object *set, const char *field);
/* 1 when the body has the key (even with null). */
int body_has(struct req *r, const char *field);

/* Syntax checks shared with query parameters; 1 when valid. */
int body_is_email(const char *s);
int body_is_username(const char *s);

#endif
