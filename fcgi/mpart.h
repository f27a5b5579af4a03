#ifndef CHATD_MPART_H
#define CHATD_MPART_H

#include <stddef.h>

/*
 * A streaming multipart/form-data parser (RFC 7578 / RFC 2046) in fixed memory: the caller
 * feeds the body in chunks of any size, and part contents come back as slices of those
 * chunks, never copied. Only the Content-Disposition of each part is read; everything else
 * in a part's headers is skipped.
 */

#define MPART_BOUNDARY_MAX 70   /* RFC 2046 */
#define MPART_LINE_MAX 4096     /* one part-header line */
#define MPART_HEADERS_MAX 16384 /* all header bytes of one part */
#define MPART_PARTS_MAX 64
#define MPART_NAME_MAX 128 /* a longer field name reads as no name */

enum mpart_err {
    MPART_OK = 0,
    MPART_E_SYNTAX = -1,   /* not multipart, bad delimiter line, truncated body */
    MPART_E_HEADERS = -2,  /* part headers over the limits above */
    MPART_E_PARTS = -3,    /* more than MPART_PARTS_MAX parts */
    MPART_E_CALLBACK = -4, /* a callback returned non-zero */
    MPART_E_BOUNDARY = -5, /* no usable boundary in the Content-Type */
};

struct mpart_cb {
    /* A part's headers are complete; name is "" when it has none. */
    int (*on_part)(void *ctx, const char *name);
    /* Bytes of the current part's content, in order. */
    int (*on_data)(void *ctx, const char *p, size_t n);
    /* The current part ended at a delimiter. */
    int (*on_part_end)(void *ctx);
};

enum mpart_state {
    MPART_PREAMBLE,    /* before the first delimiter */
    MPART_AFTER_DELIM, /* right after a delimiter: "--" or padding then CRLF */
    MPART_CLOSE_DASH,  /* saw the first '-' of "--" */
    MPART_PAD,         /* transport padding before CRLF */
    MPART_AFTER_CR,    /* the CR of that CRLF */
    MPART_HEADERS,
    MPART_BODY,
    MPART_EPILOGUE, /* after the close delimiter: ignored */
    MPART_FAILED,
};

/* Lives wherever the caller puts it (the request arena); no other memory is used. */
struct mpart {
    enum mpart_state state;
    int err;
    const struct mpart_cb *cb;
    void *ctx;
    char delim[4 + MPART_BOUNDARY_MAX + 1]; /* "\r\n--" boundary */
    size_t dlen;
    size_t match; /* bytes of delim matched so far */
    int parts;
    int in_part;   /* a part's content is open (ends at the next confirmed delimiter) */
    size_t hbytes; /* header bytes of the current part */
    size_t llen;   /* bytes in line */
    int line_over; /* the current line passed MPART_LINE_MAX */
    char name[MPART_NAME_MAX + 1];
    char line[MPART_LINE_MAX + 1];
};

/*
 * Reads the boundary from a Content-Type value (multipart/form-data; boundary=... quoted or
 * not, any parameter order, case-insensitive names). Returns 0, or MPART_E_BOUNDARY when it
 * is not multipart/form-data or has no boundary of 1..70 characters without CR, LF or NUL.
 */
int mpart_init(struct mpart *m, const char *content_type, const struct mpart_cb *cb, void *ctx);
/* Parses the next n bytes. Returns 0, or a negative enum mpart_err (and stays failed). */
int mpart_feed(struct mpart *m, const char *p, size_t n);
/* At the end of the body: 0 when the close delimiter was seen, else MPART_E_SYNTAX. */
int mpart_finish(struct mpart *m);

#endif
