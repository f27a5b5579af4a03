/*
 * Uploads (API.md "Uploads"; README "The upload path"). nginx buffers the request body (a slow
 * client never holds a worker); the worker streams it from FastCGI stdin in fixed chunks
 * through the multipart parser into a temp file in UPLOAD_DIR, sniffs its type with
 * libmagic, renames it to a random name and records it. Downloads are sent by nginx
 * (X-Accel-Redirect to the internal /__uploads/ location) after the name is checked here.
 */
#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <magic.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "auth.h"
#include "cfg.h"
#include "db.h"
#include "handlers.h"
#include "jx.h"
#include "log.h"
#include "mpart.h"
#include "req.h"
#include "resp.h"

#define UPL_CHUNK (64 * 1024)
#define UPL_NAME_MAX 100 /* uploads.filename varchar(100) */

static struct db_stmt q_insert = DB_STMT("INSERT INTO uploads (owner_id, filename, content_type, "
                                         "size, sha256) VALUES ($1, $2, $3, $4, $5)",
                                         5);
static struct db_stmt q_type = DB_STMT("SELECT content_type FROM uploads WHERE filename = $1", 1);

/* One upload in progress; lives in the request arena, its fd and temp file die with it. */
struct upl {
    int fd;
    char tmp[4096]; /* temp path; "" once renamed or never created */
    int in_file, got_file, over;
    int nospace; /* UPLOAD_DIR is full (ENOSPC, EDQUOT): 507, not a transient 503 */
    long long size;
    EVP_MD_CTX *sha;
};

/* Notes why an I/O call on UPLOAD_DIR failed, so the answer can say the disk is full. */
static void upl_io_failed(struct upl *u, const char *what)
{
    int e = errno;
    if (e == ENOSPC || e == EDQUOT)
        u->nospace = 1;
    log_error("upload: %s %s: %s", what, u->tmp, strerror(e));
}

/* A failed write, sync or rename in UPLOAD_DIR: full disk or another storage error. */
static int upl_storage_error(struct req *r, const struct upl *u)
{
    if (u->nospace)
        return req_err(r, 507, "Not enough storage space for the upload");
    return req_err(r, 503, "Upload storage unavailable");
}

/* Closes and removes the temp file (idempotent). */
static void upl_discard(struct upl *u)
{
    if (u->fd >= 0)
        close(u->fd);
    u->fd = -1;
    if (u->tmp[0])
        unlink(u->tmp);
    u->tmp[0] = '\0';
}

static void upl_cleanup(void *p)
{
    struct upl *u = p;
    upl_discard(u);
    EVP_MD_CTX_free(u->sha);
}

/* 16 random bytes as 32 hex digits: the capability part of a stored name. */
static int upl_random_hex(char out[33])
{
    unsigned char b[16];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
        return -1;
    for (int i = 0; i < 16; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
    return 0;
}

/* Only the first part named "file" is kept; a temp file exists only once it has begun. */
static int upl_on_part(void *ctx, const char *name)
{
    struct upl *u = ctx;
    if (u->got_file || strcmp(name, "file") != 0)
        return 0;
    char hex[33];
    if (upl_random_hex(hex) < 0)
        return -1;
    if (snprintf(u->tmp, sizeof(u->tmp), "%s/.tmp-%s", cfg.upload_dir, hex) >= (int)sizeof(u->tmp))
        return -1;
    u->fd = open(u->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (u->fd < 0) {
        upl_io_failed(u, "open");
        u->tmp[0] = '\0';
        return -1;
    }
    u->in_file = u->got_file = 1;
    return 0;
}

static int upl_on_data(void *ctx, const char *p, size_t n)
{
    struct upl *u = ctx;
    if (!u->in_file)
        return 0;
    u->size += (long long)n;
    if (u->size > cfg.max_upload_size) {
        u->over = 1;
        return -1;
    }
    EVP_DigestUpdate(u->sha, p, n);
    while (n) {
        ssize_t w = write(u->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            upl_io_failed(u, "write");
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int upl_on_part_end(void *ctx)
{
    struct upl *u = ctx;
    u->in_file = 0;
    return 0;
}

static const struct mpart_cb upl_cb = {upl_on_part, upl_on_data, upl_on_part_end};

/* Feeds FastCGI stdin to the parser in fixed chunks. Returns the parser's verdict. */
static int upl_stream(struct req *r, struct mpart *m)
{
    char *buf = arena_alloc(r->a, UPL_CHUNK);
    if (!buf)
        return MPART_E_CALLBACK;
    int n;
    while ((n = FCGX_GetStr(buf, UPL_CHUNK, r->fcgi->in)) > 0) {
        int rc = mpart_feed(m, buf, (size_t)n);
        if (rc)
            return rc;
    }
    return mpart_finish(m);
}

/* The detected type's extension: known ones by table, else the subtype's alphanumerics. */
static const char *upl_ext(struct req *r, const char *type)
{
    static const char *const known[][2] = {
        {"image/jpeg", "jpg"},  {"image/png", "png"}, {"image/gif", "gif"},
        {"image/webp", "webp"}, {"video/mp4", "mp4"}, {"video/webm", "webm"},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (!strcmp(type, known[i][0]))
            return known[i][1];
    const char *sub = strchr(type, '/');
    char *ext = arena_strndup(r->a, sub ? sub + 1 : "bin", 10);
    size_t o = 0;
    for (const char *p = ext; p && *p; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))
            ext[o++] = *p;
    if (ext)
        ext[o] = '\0';
    return ext && o ? ext : "bin";
}

/*
 * libmagic's MIME type of the file, or NULL when the database could not be loaded. libmagic
 * reads up to 7 MiB of a file into one buffer by default: 64 KiB is plenty for the headers
 * of every allowed type and keeps a worker's memory flat (README "Benchmarks", RSS row).
 */
static const char *upl_sniff(const char *path)
{
    static magic_t cookie;
    if (!cookie) {
        size_t bytes_max = 64 * 1024;
        cookie = magic_open(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS);
        if (cookie && magic_setparam(cookie, MAGIC_PARAM_BYTES_MAX, &bytes_max) != 0)
            log_warn("upload: libmagic: cannot limit bytes read: %s", magic_error(cookie));
        if (cookie && magic_load(cookie, NULL) != 0) {
            log_error("upload: libmagic: %s", magic_error(cookie));
            magic_close(cookie);
            cookie = NULL;
        }
        if (!cookie)
            return NULL;
    }
    return magic_file(cookie, path);
}

static int upl_type_allowed(const char *type)
{
    for (int i = 0; i < cfg.allowed_types.n; i++)
        if (!strcmp(type, cfg.allowed_types.item[i]))
            return 1;
    return 0;
}

static int upl_type_error(struct req *r)
{
    char *list = arena_strdup(r->a, "");
    for (int i = 0; list && i < cfg.allowed_types.n; i++)
        list = arena_printf(r->a, "%s%s%s", list, i ? ", " : "", cfg.allowed_types.item[i]);
    return req_err(r, 400, arena_printf(r->a, "File type not allowed. Allowed types: %s", list));
}

static int upl_stream_error(struct req *r, const struct upl *u, int rc)
{
    if (u->over)
        return req_err(r, 413,
                       arena_printf(r->a, "File size exceeds maximum allowed size of %ld bytes",
                                    cfg.max_upload_size));
    if (rc == MPART_E_CALLBACK)
        return upl_storage_error(r, u);
    return req_err(r, 400, "There was an error parsing the body");
}

static char *upl_sha_hex(struct req *r, struct upl *u)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    char *hex = arena_alloc(r->a, 2 * EVP_MAX_MD_SIZE + 1);
    if (!hex || !EVP_DigestFinal_ex(u->sha, md, &len))
        return NULL;
    for (unsigned i = 0; i < len; i++)
        sprintf(hex + 2 * i, "%02x", md[i]);
    hex[2 * len] = '\0';
    return hex;
}

/* Checked and complete: give the file its servable name and record it. */
static int upl_store(struct req *r, struct upl *u, const char *type)
{
    char hex[33];
    if (upl_random_hex(hex) < 0)
        return req_err(r, 503, "Upload storage unavailable");
    const char *name = arena_printf(r->a, "%s.%s", hex, upl_ext(r, type));
    const char *path = arena_printf(r->a, "%s/%s", cfg.upload_dir, name);
    const char *sha = upl_sha_hex(r, u);
    const char *size = arena_printf(r->a, "%lld", u->size);
    /* The bytes reach the disk before the name does: a crash never leaves a short file. */
    if (!name || !path || !sha || !size)
        return req_err(r, 503, "Upload storage unavailable");
    /* Where the disk fills up with delayed allocation (ext4, xfs), fdatasync says ENOSPC. */
    if (fdatasync(u->fd) != 0 || rename(u->tmp, path) != 0) {
        upl_io_failed(u, "storing");
        return upl_storage_error(r, u);
    }
    u->tmp[0] = '\0';
    const char *params[] = {r->user->id, name, type, size, sha};
    enum db_err err;
    if (!db_run(r->a, &q_insert, params, &err)) {
        unlink(path);
        return resp_db_err(r, err);
    }
    json_object *o = jx_obj(r->a);
    json_object_object_add(o, "filename", json_object_new_string(name));
    json_object_object_add(o, "url",
                           json_object_new_string(arena_printf(r->a, "/api/v1/upload/%s", name)));
    json_object_object_add(o, "content_type", json_object_new_string(type));
    json_object_object_add(o, "size", json_object_new_int64(u->size));
    return resp_json(r, 201, o);
}

/* Streams, checks and stores; returns 0 once answered, or an error status (temp file kept). */
static int upl_receive(struct req *r, struct upl *u, struct mpart *m)
{
    int rc;
    if (mpart_init(m, req_param(r, "CONTENT_TYPE"), &upl_cb, u) != 0)
        return req_invalid(r, "body", "file", "Field required", "missing");
    if ((rc = upl_stream(r, m)) != 0)
        return upl_stream_error(r, u, rc);
    if (!u->got_file)
        return req_invalid(r, "body", "file", "Field required", "missing");
    if (u->size == 0)
        return req_err(r, 400, "Empty file");
    const char *type = upl_sniff(u->tmp);
    if (!type)
        return req_err(r, 503, "Upload type check unavailable");
    if (!upl_type_allowed(type))
        return upl_type_error(r);
    return upl_store(r, u, arena_strdup(r->a, type));
}

int h_upload_create(struct req *r)
{
    const char *key = arena_printf(r->a, "rl:upload:%s", r->user->id);
    int rc = auth_rate_limit(r, key, cfg.rate_uploads_per_minute, 60);
    if (rc)
        return rc;
    struct upl *u = arena_alloc(r->a, sizeof(*u));
    struct mpart *m = arena_alloc(r->a, sizeof(*m));
    if (!u || !m)
        return req_err(r, 413, "Request too large");
    memset(u, 0, sizeof(*u));
    u->fd = -1;
    u->sha = EVP_MD_CTX_new();
    if (arena_defer(r->a, upl_cleanup, u) != 0) {
        upl_cleanup(u);
        return req_err(r, 503, "Upload storage unavailable");
    }
    if (!u->sha || !EVP_DigestInit_ex(u->sha, EVP_sha256(), NULL))
        return req_err(r, 503, "Upload storage unavailable");
    rc = upl_receive(r, u, m);
    /* Before the error is written: a client that sees the answer never sees the temp file. */
    if (rc)
        upl_discard(u);
    return rc;
}

/* [A-Za-z0-9._-], not starting with a dot (temp files and dot files are never served). */
static int upl_name_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= UPL_NAME_MAX && s[0] != '.' &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

int h_upload_get(struct req *r)
{
    const char *name = r->params[0];
    if (!upl_name_ok(name))
        return req_err(r, 404, "File not found");
    enum db_err err;
    const char *params[] = {name};
    PGresult *res = db_run(r->a, &q_type, params, &err);
    if (!res)
        return resp_db_err(r, err);
    if (PQntuples(res) == 0)
        return req_err(r, 404, "File not found");
    /* nginx keeps these from this answer and sends the file from the internal location. */
    resp_header(r, "X-Accel-Redirect", arena_printf(r->a, "/__uploads/%s", name));
    const char *type = arena_strdup(r->a, PQgetvalue(res, 0, 0));
    int media = type && (!strncmp(type, "image/", 6) || !strncmp(type, "video/", 6));
    resp_header(r, "Content-Type", type);
    /* Anything else ALLOWED_EXTENSIONS_STR may admit is downloaded, never shown inline. */
    resp_header(r, "Content-Disposition", media ? "inline" : "attachment");
    resp_header(r, "Cache-Control", "public, max-age=31536000, immutable");
    return resp_raw(r, 200, NULL, NULL, 0);
}
