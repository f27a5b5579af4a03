/* Unit tests for shared/str.c: UUIDs, UTF-8 length, lower-casing, cookies. */
#include "tap.h"

#include "str.h"

static const char *str_t_cookie(const char *h, const char *name, char *buf, size_t size)
{
    size_t n;
    const char *v = str_cookie(h, name, &n);
    if (!v || n >= size)
        return NULL;
    memcpy(buf, v, n);
    buf[n] = '\0';
    return buf;
}

int main(void)
{
    char buf[64];
    ok(str_is_uuid("0b6f1c2e-1f7a-4b8e-9c3d-2a1b3c4d5e6f"), "a UUID");
    ok(str_is_uuid("0B6F1C2E-1F7A-4B8E-9C3D-2A1B3C4D5E6F"), "an upper-case UUID");
    ok(!str_is_uuid("0b6f1c2e-1f7a-4b8e-9c3d-2a1b3c4d5e6"), "one digit short");
    ok(!str_is_uuid("0b6f1c2e-1f7a-4b8e-9c3d-2a1b3c4d5e6f0"), "one digit long");
    ok(!str_is_uuid("0b6f1c2e_1f7a-4b8e-9c3d-2a1b3c4d5e6f"), "wrong separator");
    ok(!str_is_uuid("0b6f1c2e-1f7a-4b8e-9c3d-2a1b3c4d5e6g"), "non-hex digit");
    ok(!str_is_uuid(""), "empty string");
    is_int((long long)str_utf8_len("h\xc3\xa9llo"), 5, "UTF-8 length counts characters");
    is_int((long long)str_utf8_len("\xf0\x9f\x98\x80"), 1, "a 4-byte character is one");
    is_str(str_lower(buf, "AbC-D", 5), "abc-d", "lower-cases");

    is_str(str_t_cookie("a=1; access_token=xyz; b=2", "access_token", buf, sizeof(buf)), "xyz",
           "cookie in the middle");
    is_str(str_t_cookie("access_token=\"xyz\"", "access_token", buf, sizeof(buf)), "xyz",
           "quotes removed");
    is_str(str_t_cookie("access_token=xyz  ;b=1", "access_token", buf, sizeof(buf)), "xyz",
           "trailing blanks removed");
    ok(str_t_cookie("xaccess_token=xyz", "access_token", buf, sizeof(buf)) == NULL,
       "a longer name does not match");
    ok(str_t_cookie("access_tokenx=xyz", "access_token", buf, sizeof(buf)) == NULL,
       "a name with a suffix does not match");
    is_str(str_t_cookie("access_token=", "access_token", buf, sizeof(buf)), "", "empty value");
    ok(str_t_cookie(NULL, "access_token", buf, sizeof(buf)) == NULL, "no header");
    return done_testing();
}
