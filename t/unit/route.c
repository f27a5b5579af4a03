/* Unit tests for fcgi/route.c: the matcher and the route table itself. */
#include "tap.h"

#include <string.h>

#include "route.h"

static int route_t_match(const char *pattern, const char *path)
{
    const char *params[4];
    int n;
    char bad[64];
    return route_match(pattern, path, params, &n, bad, sizeof(bad), NULL);
}

/* Turns a pattern into a concrete path that only that shape can match. */
static void route_t_sample(const char *pattern, char *out, size_t outlen)
{
    size_t o = 0;
    for (const char *p = pattern; *p && o + 40 < outlen;) {
        if (*p != '{') {
            out[o++] = *p++;
            continue;
        }
        const char *close = strchr(p, '}');
        const char *v = strstr(p, ":int}") == close - 4 ? "12345"
                        : strstr(p, ":file}") == close - 5 ? "abc.png"
                        : "0b6f1c2e-1f7a-4b8e-9c3d-2a1b3c4d5e6f";
        o += (size_t)snprintf(out + o, outlen - o, "%s", v);
        p = close + 1;
    }
    out[o] = '\0';
}

static void route_t_table(void)
{
    int dup = 0, shadow = 0;
    for (size_t i = 0; i < route_count; i++) {
        char path[512];
        route_t_sample(route_table[i].pattern, path, sizeof(path));
        for (size_t j = 0; j < i; j++) {
            if (strcmp(route_table[i].method, route_table[j].method))
                continue;
            if (!strcmp(route_table[i].pattern, route_table[j].pattern)) {
                diag("duplicate route %s %s", route_table[i].method, route_table[i].pattern);
                dup++;
            } else if (route_t_match(route_table[j].pattern, path) == 1) {
                diag("%s %s is shadowed by %s", route_table[i].method, route_table[i].pattern,
                     route_table[j].pattern);
                shadow++;
            }
        }
    }
    is_int(dup, 0, "no duplicate routes");
    is_int(shadow, 0, "no route shadowed by an earlier one");
    int handlers = 1;
    for (size_t i = 0; i < route_count; i++)
        handlers &= route_table[i].handler != NULL && route_table[i].pattern[0] == '/';
    ok(handlers, "every route has a handler and an absolute pattern");
}

int main(void)
{
    is_int(route_t_match("/health", "/health"), 1, "literal path matches");
    is_int(route_t_match("/health", "/healthz"), 0, "longer path does not match");
    is_int(route_t_match("/health", "/healt"), 0, "shorter path does not match");
    is_int(route_t_match("/a/{id:uuid}", "/a/0b6f1c2e-1f7a-4b8e-9c3d-2a1b3c4d5e6f"), 1,
           "uuid parameter matches");
    is_int(route_t_match("/a/{id:uuid}", "/a/not-a-uuid"), -1, "bad uuid is a typed mismatch");
    is_int(route_t_match("/a/{id:uuid}", "/a/"), 0, "empty parameter does not match");
    is_int(route_t_match("/a/{id:uuid}/b", "/a/0b6f1c2e-1f7a-4b8e-9c3d-2a1b3c4d5e6f/c"), 0,
           "trailing literal must match");
    is_int(route_t_match("/f/{name:file}", "/f/x.png"), 1, "file name matches");
    is_int(route_t_match("/f/{name:file}", "/f/..png"), -1, "file name starting with a dot refused");
    is_int(route_t_match("/f/{name:file}", "/f/a%2fb"), -1, "file name with odd characters refused");
    is_int(route_t_match("/n/{n:int}", "/n/42"), 1, "int matches");
    is_int(route_t_match("/n/{n:int}", "/n/4x"), -1, "non-int refused");

    const char *params[4];
    int n = 0;
    char bad[64] = "";
    route_match("/g/{gid:uuid}/m/{uid:uuid}", "/g/0b6f1c2e-1f7a-4b8e-9c3d-2a1b3c4d5e6f/m/xyz",
                params, &n, bad, sizeof(bad), NULL);
    is_str(bad, "uid", "the mismatching parameter is named");

    route_t_table();
    return done_testing();
}
