#ifndef CHATD_WS_CONN_H
#define CHATD_WS_CONN_H

#include <stddef.h>

struct lws;

/* Largest client message, after reassembly of fragments (WS.md: over 64 KiB closes with 1009). */
#define WS_CONN_MAX_MSG (64 * 1024)
/* Out-queue bounds: a client further behind than this is closed with 1008. */
#define WS_CONN_MAX_FRAMES 1024
#define WS_CONN_MAX_QUEUED (4 * 1024 * 1024)

/*
 * One outbound text frame, reference counted so that a fan-out to many
 * connections allocates the payload once. buf holds LWS_PRE bytes of headroom
 * for lws_write(), then len bytes of payload.
 */
struct ws_conn_frame {
    unsigned refs;
    size_t len;
    unsigned char buf[];
};

/*
 * The lws per-session data of a WebSocket connection: lws allocates it zeroed
 * and frees it; everything it points to is freed by ws_conn_release().
 */
struct ws_conn {
    struct lws *wsi;
    struct ws_conn *prev, *next; /* in the ws_conn_list of the vhost */
    char user_id[65];            /* from the URL path (token subject, later) */

    char *rx; /* reassembly buffer, NUL-terminated, up to WS_CONN_MAX_MSG */
    size_t rx_len;
    size_t rx_cap;

    struct ws_conn_frame **q; /* ring of pending frames */
    unsigned q_head, q_count, q_cap;
    size_t q_bytes;

    int close_code;           /* non-zero: close at the next LWS_CALLBACK_TIMER */
    const char *close_reason; /* static string */
};

/* Every live connection of a vhost, for shutdown and (later) fan-out. */
struct ws_conn_list {
    struct ws_conn *head;
    unsigned count;
};

/* A frame holding a copy of data, one reference; NULL when out of memory. */
struct ws_conn_frame *ws_conn_frame_new(const void *data, size_t len);
/* Drops one reference; frees the frame with the last. */
void ws_conn_frame_unref(struct ws_conn_frame *f);

/* Starts a connection: c is the zeroed lws session data. */
void ws_conn_init(struct ws_conn *c, struct lws *wsi);
/* Frees everything c owns; c itself stays (lws frees it). Safe on a zeroed c. */
void ws_conn_release(struct ws_conn *c);

/*
 * Appends len bytes to the reassembly buffer. Returns 0, or -1 when the
 * message would exceed WS_CONN_MAX_MSG or memory is short.
 */
int ws_conn_rx_append(struct ws_conn *c, const void *in, size_t len);
/* Forgets the reassembled message; gives back a large buffer. */
void ws_conn_rx_reset(struct ws_conn *c);

/*
 * Queues f (takes a new reference, the caller keeps its own) and asks lws for
 * WRITEABLE. When the queue is over its bounds the connection is scheduled to
 * close with 1008 "Too slow" and -1 is returned. Frames for a closing
 * connection are dropped (0).
 */
int ws_conn_push(struct ws_conn *c, struct ws_conn_frame *f);
/* ws_conn_push() of a fresh copy of s; -1 when full or out of memory. */
int ws_conn_send(struct ws_conn *c, const char *s, size_t len);
/* The oldest queued frame, or NULL. */
struct ws_conn_frame *ws_conn_peek(struct ws_conn *c);
/* Drops the oldest queued frame (after it was written). */
void ws_conn_pop(struct ws_conn *c);

/*
 * Schedules a close with code and a static reason: the queue is dropped, the
 * close frame goes out from the next LWS_CALLBACK_TIMER (see ws_conn.c), and
 * lws kills the connection after a few seconds if the peer never reads it.
 * Safe from any callback, including c's own. The first code wins.
 */
void ws_conn_close_later(struct ws_conn *c, int code, const char *reason);

void ws_conn_list_add(struct ws_conn_list *l, struct ws_conn *c);
/* Unlinks c; harmless when c is not linked. */
void ws_conn_list_remove(struct ws_conn_list *l, struct ws_conn *c);

#endif
