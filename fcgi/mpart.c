#include "mpart.h"

#include <string.h>
#include <strings.h>

static int mpart_fail(struct mpart *m, int err)
{
    m->state = MPART_FAILED;
    m->err = err;
    return err;
}

static const char *mpart_skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* Copies one parameter value (token or quoted-string) into out; returns the end of it in s. */
static const char *mpart_value(const char *s, char *out, size_t outsz, int *too_long)
{
    size_t o = 0;
    *too_long = 0;
    int quoted = *s == '"';
    s += quoted;
    for (; *s && (quoted ? *s != '"' : *s != ';'); s++) {
        if (quoted && *s == '\\' && s[1])
            s++;
        if (o + 1 < outsz)
            out[o++] = *s;
        else
            *too_long = 1;
    }
    if (quoted && *s == '"')
        s++;
    while (!quoted && o && (out[o - 1] == ' ' || out[o - 1] == '\t'))
        o--;
    out[o] = '\0';
    return s;
}

/*
 * The value of parameter key in a header value "type; k1=v1; k2="v 2"" (names are
 * case-insensitive). Returns its length, or -1 when absent or longer than outsz - 1.
 */
static int mpart_param(const char *s, const char *key, char *out, size_t outsz)
{
    size_t kl = strlen(key);
    s = strchr(s, ';');
    while (s && *s == ';') {
        s = mpart_skip_ws(s + 1);
        size_t n = strcspn(s, "=;");
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        int match = n == kl && !strncasecmp(s, key, kl);
        s += strcspn(s, "=;");
        if (*s != '=')
            continue;
        int too_long;
        s = mpart_value(mpart_skip_ws(s + 1), out, outsz, &too_long);
        if (match)
            return too_long ? -1 : (int)strlen(out);
        s += strcspn(s, ";");
    }
    return -1;
}

int mpart_init(struct mpart *m, const char *content_type, const struct mpart_cb *cb, void *ctx)
{
    memset(m, 0, sizeof(*m));
    m->cb = cb;
    m->ctx = ctx;
    m->state = MPART_FAILED;
    m->err = MPART_E_BOUNDARY;
    static const char type[] = "multipart/form-data";
    if (!content_type || strncasecmp(content_type, type, sizeof(type) - 1) != 0 ||
        !strchr("; \t", content_type[sizeof(type) - 1]))
        return MPART_E_BOUNDARY;
    char b[MPART_BOUNDARY_MAX + 1];
    int bl = mpart_param(content_type, "boundary", b, sizeof(b));
    if (bl <= 0 || strpbrk(b, "\r\n"))
        return MPART_E_BOUNDARY;
    memcpy(m->delim, "\r\n--", 4);
    memcpy(m->delim + 4, b, (size_t)bl + 1);
    m->dlen = 4 + (size_t)bl;
    /* The body starts with "--boundary": as if a CRLF came before it. */
    m->match = 2;
    m->state = MPART_PREAMBLE;
    m->err = 0;
    return 0;
}

static int mpart_emit(struct mpart *m, const char *p, size_t n)
{
    if (m->state != MPART_BODY || n == 0)
        return 0;
    return m->cb->on_data(m->ctx, p, n) ? mpart_fail(m, MPART_E_CALLBACK) : 0;
}

/*
 * Content bytes up to the next delimiter. The delimiter starts with the only CR it holds
 * (a boundary has none), so after a mismatch only the current byte can start a new match,
 * and the bytes held back are exactly delim[0..match): no look-behind buffer is needed.
 * Returns bytes consumed; *found when a delimiter ended there.
 */
static size_t mpart_scan(struct mpart *m, const char *p, size_t n, int *found)
{
    size_t i = 0, run = 0;
    *found = 0;
    while (i < n) {
        if (m->match == 0) {
            const char *cr = memchr(p + i, '\r', n - i);
            if (!cr)
                break;
            i = (size_t)(cr - p);
        }
        if (p[i] == m->delim[m->match]) {
            if (m->match == 0 && mpart_emit(m, p + run, i - run))
                return n;
            i++;
            run = i;
            if (++m->match == m->dlen) {
                m->match = 0;
                *found = 1;
                return i;
            }
            continue;
        }
        if (mpart_emit(m, m->delim, m->match))
            return n;
        m->match = 0;
        run = i;
    }
    if (m->match == 0)
        mpart_emit(m, p + run, n - run);
    return n;
}

static int mpart_open_part(struct mpart *m)
{
    if (++m->parts > MPART_PARTS_MAX)
        return mpart_fail(m, MPART_E_PARTS);
    m->hbytes = m->llen = 0;
    m->line_over = 0;
    m->name[0] = '\0';
    m->state = MPART_HEADERS;
    return 0;
}

/* A delimiter line ended: the open part (if any) is complete; close says whether it was the last.
 */
static int mpart_confirm(struct mpart *m, int close)
{
    if (m->in_part && m->cb->on_part_end(m->ctx))
        return mpart_fail(m, MPART_E_CALLBACK);
    m->in_part = 0;
    if (close) {
        m->state = MPART_EPILOGUE;
        return 0;
    }
    return mpart_open_part(m);
}

/*
 * What looked like a delimiter was followed by something else: it was content after all
 * (RFC 2046 forbids such a boundary, but browsers' boundaries never clash and we would rather
 * keep the bytes than fail).
 */
static int mpart_not_delim(struct mpart *m, const char *extra)
{
    m->state = m->in_part ? MPART_BODY : MPART_PREAMBLE;
    if (mpart_emit(m, m->delim, m->dlen) || mpart_emit(m, extra, strlen(extra)))
        return m->err;
    return 0;
}

static void mpart_header_line(struct mpart *m)
{
    static const char cd[] = "content-disposition:";
    if (strncasecmp(m->line, cd, sizeof(cd) - 1) != 0)
        return;
    if (mpart_param(m->line + sizeof(cd) - 1, "name", m->name, sizeof(m->name)) < 0)
        m->name[0] = '\0';
}

static int mpart_header_byte(struct mpart *m, char c)
{
    if (++m->hbytes > MPART_HEADERS_MAX)
        return mpart_fail(m, MPART_E_HEADERS);
    if (c != '\n') {
        if (m->llen < MPART_LINE_MAX)
            m->line[m->llen++] = c;
        else
            m->line_over = 1;
        return 0;
    }
    if (m->line_over)
        return mpart_fail(m, MPART_E_HEADERS);
    if (m->llen && m->line[m->llen - 1] == '\r')
        m->llen--;
    m->line[m->llen] = '\0';
    if (m->llen) {
        mpart_header_line(m);
        m->llen = 0;
        return 0;
    }
    m->state = MPART_BODY;
    m->in_part = 1;
    m->match = 0;
    return m->cb->on_part(m->ctx, m->name) ? mpart_fail(m, MPART_E_CALLBACK) : 0;
}

/* One byte of the line after a delimiter: "--", or optional padding and CRLF. */
static int mpart_delim_byte(struct mpart *m, char c)
{
    switch (m->state) {
    case MPART_AFTER_DELIM:
        if (c == '-') {
            m->state = MPART_CLOSE_DASH;
            return 0;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            break;
        return mpart_not_delim(m, "") ? m->err : 1;
    case MPART_CLOSE_DASH:
        if (c == '-')
            return mpart_confirm(m, 1);
        return mpart_not_delim(m, "-") ? m->err : 1;
    default:
        break;
    }
    if (c == ' ' || c == '\t') {
        m->state = m->state == MPART_AFTER_CR ? MPART_FAILED : MPART_PAD;
        return m->state == MPART_FAILED ? mpart_fail(m, MPART_E_SYNTAX) : 0;
    }
    if (c == '\r' && m->state != MPART_AFTER_CR) {
        m->state = MPART_AFTER_CR;
        return 0;
    }
    if (c == '\n')
        return mpart_confirm(m, 0);
    return mpart_fail(m, MPART_E_SYNTAX);
}

int mpart_feed(struct mpart *m, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && m->state != MPART_FAILED) {
        int found, rc;
        switch (m->state) {
        case MPART_PREAMBLE:
        case MPART_BODY:
            i += mpart_scan(m, p + i, n - i, &found);
            if (found)
                m->state = MPART_AFTER_DELIM;
            break;
        case MPART_HEADERS:
            mpart_header_byte(m, p[i++]);
            break;
        case MPART_EPILOGUE:
            return 0;
        default:
            /* 1: the byte was not consumed (a false delimiter), parse it again as content. */
            rc = mpart_delim_byte(m, p[i]);
            if (rc == 0)
                i++;
            break;
        }
    }
    return m->state == MPART_FAILED ? m->err : 0;
}

int mpart_finish(struct mpart *m)
{
    if (m->state == MPART_FAILED)
        return m->err;
    return m->state == MPART_EPILOGUE ? 0 : mpart_fail(m, MPART_E_SYNTAX);
}
