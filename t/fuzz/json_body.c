/*
 * Fuzzes the JSON body of R_JSON routes: the input is the request body. It is read through
 * req_read_body() from an in-memory FastCGI stream, parsed by the router's strict json-c
 * parse (route_parse_json(), static in fcgi/route.c), and then every field reader the
 * handlers use runs on the result: body_str/body_uuid/body_bool/body_has with the limits of
 * the real routes, users_parse_new() (registration) and groups_member_ids() (static in
 * fcgi/h_groups.c).
 *
 * Invariants: the parse answers 0 with an object or 422 with a detail; a string a reader
 * accepts has no NUL and is within its limits; an accepted UUID is 36 lower-case characters;
 * a parsed body serialises to JSON that the same strict parse accepts again, serialising to
 * the same text.
 */
#include "fuzz.h"

#include <fcgiapp.h>
#include <json-c/json.h>

#include "../../fcgi/h_groups.c"
#include "../../fcgi/route.c"
#include "body.h"
#include "users.h"

static struct arena jb_arena;
static int jb_ready;

/* The end of an in-memory body: libfcgi calls this when the buffer is used up. */
static void jb_fill(FCGX_Stream *s)
{
    s->isClosed = 1;
}

/* A string reader's answer: 0 with a value within [min, max] characters and no NUL, or 422. */
static void jb_check_str(struct req *r, int rc, const char *s, size_t min, size_t max)
{
    FUZZ_CHECK(rc == 0 || (rc == 422 && r->err_json));
    if (rc == 0 && s) {
        size_t n = str_utf8_len(s);
        FUZZ_CHECK(n >= min && n <= max);
    }
}

static void jb_check_uuid(struct req *r, int rc, const char *s)
{
    FUZZ_CHECK(rc == 0 || (rc == 422 && r->err_json));
    if (rc == 0 && s) {
        FUZZ_CHECK(strlen(s) == 36 && str_is_uuid(s));
        for (int i = 0; i < 36; i++)
            FUZZ_CHECK(s[i] < 'A' || s[i] > 'F');
    }
}

/* The readers of the routes that take a body (limits as in fcgi/h_*.c and fcgi/users.c). */
static void jb_readers(struct req *r)
{
    static const struct {
        const char *field;
        size_t min, max;
        unsigned flags;
    } strs[] = {
        {"content", 1, 5000, BODY_REQUIRED},     {"media_url", 1, 500, BODY_NULLABLE},
        {"media_type", 1, 20, BODY_NULLABLE},    {"name", 1, 200, BODY_REQUIRED},
        {"description", 0, 1000, BODY_NULLABLE}, {"avatar_url", 0, 500, BODY_NULLABLE},
        {"nickname", 0, 100, BODY_NULLABLE},     {"username", 1, 320, BODY_REQUIRED},
        {"password", 1, 128, BODY_REQUIRED},     {"refresh_token", 1, 8192, 0},
        {"token", 0, 8192, BODY_REQUIRED},       {"bio", 0, 500, BODY_NULLABLE},
        {"email", 3, 320, BODY_NULLABLE},
    };
    for (size_t i = 0; i < sizeof(strs) / sizeof(*strs); i++) {
        const char *s;
        int rc = body_str(r, strs[i].field, strs[i].min, strs[i].max, strs[i].flags, &s);
        jb_check_str(r, rc, s, strs[i].min, strs[i].max);
        if (!rc && s) {
            (void)body_is_email(s);
            (void)body_is_username(s);
        }
        (void)body_has(r, strs[i].field);
    }
    static const char *const uuids[] = {"receiver_id", "group_id", "contact_id", "user_id"};
    for (size_t i = 0; i < sizeof(uuids) / sizeof(*uuids); i++) {
        const char *s;
        int rc = body_uuid(r, uuids[i], BODY_NULLABLE, &s);
        jb_check_uuid(r, rc, s);
        rc = body_uuid(r, uuids[i], BODY_REQUIRED, &s);
        jb_check_uuid(r, rc, s);
    }
    int v = 0, present = 0;
    int rc = body_bool(r, "is_private", 0, &v, &present);
    FUZZ_CHECK(rc == 0 || rc == 422);
    FUZZ_CHECK(!present || v == 0 || v == 1);

    struct users_new nu;
    rc = users_parse_new(r, &nu);
    FUZZ_CHECK(rc == 0 || rc == 422);
    if (rc == 0) {
        FUZZ_CHECK(body_is_email(nu.email) && body_is_username(nu.username) && nu.password);
        (void)users_password_has_email(nu.password, nu.email);
    }

    const char *ids;
    size_t nids;
    rc = groups_member_ids(r, &ids, &nids);
    FUZZ_CHECK(rc == 0 || rc == 422 || rc == 413);
    if (rc == 0)
        FUZZ_CHECK(ids[0] == '{' && ids[strlen(ids) - 1] == '}' && (nids == 0) == (ids[1] == '}'));
}

/*
 * A parsed body serialises to text the strict parse takes back, and that serialises to the
 * same text again. (Not json_object_equal(): json-c's strict mode still accepts NaN, and NaN
 * is equal to nothing.)
 */
static void jb_roundtrip(json_object *o)
{
    size_t len, len2;
    const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
    FUZZ_CHECK(s && len == strlen(s));
    json_tokener *tok = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH);
    FUZZ_CHECK(tok);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *back = json_tokener_parse_ex(tok, s, (int)len);
    int complete = back && json_tokener_get_parse_end(tok) == len;
    json_tokener_free(tok);
    const char *s2 =
        complete ? json_object_to_json_string_length(back, JSON_C_TO_STRING_PLAIN, &len2) : NULL;
    if (!s2 || len2 != len || memcmp(s, s2, len))
        fprintf(stderr, "round trip: %s\n", s);
    FUZZ_CHECK(complete);
    FUZZ_CHECK(s2 && len2 == len && !memcmp(s, s2, len));
    json_object_put(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const types[] = {
        "CONTENT_TYPE=application/json",
        "CONTENT_TYPE=application/json; charset=utf-8",
        "CONTENT_TYPE=Application/JSON",
        "CONTENT_TYPE=text/plain",
        NULL,
    };
    if (!jb_ready) {
        arena_init(&jb_arena, 64u << 20);
        jb_ready = 1;
    }
    if (size > (1u << 20))
        return 0; /* MAX_BODY_SIZE's default: req_read_body() answers 413 before any parse */
    uint32_t h = fuzz_hash(data, size);
    const char *ct = h % 8 < 5 ? types[h % 8] : types[0];
    char *envp[] = {(char *)ct, NULL};
    FCGX_Stream in = {.rdNext = (unsigned char *)data,
                      .stop = (unsigned char *)data + size,
                      .stopUnget = (unsigned char *)data,
                      .isReader = 1,
                      .fillBuffProc = jb_fill};
    FCGX_Request fr = {.in = &in, .envp = ct ? envp : envp + 1};
    struct req r;
    memset(&r, 0, sizeof(r));
    r.a = &jb_arena;
    r.fcgi = &fr;
    r.method = "POST";
    r.path = "/api/v1/messages";
    r.query = "";
    r.content_length = (long)size;

    FUZZ_CHECK(req_read_body(&r, 1u << 20) == 0);
    FUZZ_CHECK(r.body_len == size && (!size || (r.body && !memcmp(r.body, data, size))));
    int rc = route_parse_json(&r);
    if (rc) {
        FUZZ_CHECK(rc == 422 && r.err_json);
    } else {
        FUZZ_CHECK(r.json && json_object_is_type(r.json, json_type_object));
        jb_roundtrip(r.json);
        jb_readers(&r);
    }
    arena_reset(&jb_arena);
    return 0;
}
