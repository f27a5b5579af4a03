#ifndef CHATD_STR_H
#define CHATD_STR_H

#include <stddef.h>

/* 1 when s is a UUID in text form (8-4-4-4-12 hex digits, any case), NUL-terminated after it. */
int str_is_uuid(const char *s);
/*
 * The value of cookie name in a Cookie header ("a=1; b=\"2\""), quotes and trailing blanks
 * removed: a pointer into header with its length in *len, or NULL when absent.
 */
const char *str_cookie(const char *header, const char *name, size_t *len);
/* Characters of a UTF-8 string (bytes that do not continue a sequence). */
size_t str_utf8_len(const char *s);
/* The value of a hex digit, or -1. */
int str_hex(int c);
/* Lower-cases s[0..n) into out (n + 1 bytes) and returns out. */
char *str_lower(char *out, const char *s, size_t n);

#endif
