#include "ws_conn.h"

#include "log.h"

#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>

/* Seconds a connection scheduled to close may take to get its close frame out. */
#define WS_CONN_CLOSE_GRACE 5
/* Reassembly buffers up to this size are kept between messages. */
#define WS_CONN_RX_KEEP 4096

struct ws_conn_frame *ws_conn_frame_new(const void *data, size_t len)
{
    struct ws_conn_frame *f = malloc(sizeof(*f) + LWS_PRE + len);
    if (!f)
        return NULL;
    f->refs = 1;
    f->len = len;
    memcpy(f->buf + LWS_PRE, data, len);
    return f;
}

void ws_conn_frame_unref(struct ws_conn_frame *f)
{
    if (f && --f->refs == 0)
        free(f);
}

void ws_conn_init(struct ws_conn *c, struct lws *wsi)
{
    memset(c, 0, sizeof(*c));
    c->wsi = wsi;
}

static void ws_conn_drop_queue(struct ws_conn *c)
{
    while (c->q_count)
        ws_conn_pop(c);
    free(c->q);
    c->q = NULL;
    c->q_cap = c->q_head = 0;
}

void ws_conn_release(struct ws_conn *c)
{
    ws_conn_drop_queue(c);
    free(c->rx);
    c->rx = NULL;
    c->rx_len = c->rx_cap = 0;
}

int ws_conn_rx_append(struct ws_conn *c, const void *in, size_t len)
{
    if (len > WS_CONN_MAX_MSG - c->rx_len)
        return -1;
    if (c->rx_len + len + 1 > c->rx_cap) {
        size_t cap = c->rx_cap ? c->rx_cap : 1024;
        while (cap < c->rx_len + len + 1)
            cap *= 2;
        if (cap > WS_CONN_MAX_MSG + 1)
            cap = WS_CONN_MAX_MSG + 1;
        char *rx = realloc(c->rx, cap);
        if (!rx)
            return -1;
        c->rx = rx;
        c->rx_cap = cap;
    }
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    c->rx[c->rx_len] = '\0';
    return 0;
}

void ws_conn_rx_reset(struct ws_conn *c)
{
    c->rx_len = 0;
    if (c->rx_cap > WS_CONN_RX_KEEP) {
        free(c->rx);
        c->rx = NULL;
        c->rx_cap = 0;
    }
}

/* Doubles the ring, moving the live frames to the front. */
static int ws_conn_grow(struct ws_conn *c)
{
    unsigned cap = c->q_cap ? c->q_cap * 2 : 8;
    struct ws_conn_frame **q = malloc(cap * sizeof(*q));
    if (!q)
        return -1;
    for (unsigned i = 0; i < c->q_count; i++)
        q[i] = c->q[(c->q_head + i) % c->q_cap];
    free(c->q);
    c->q = q;
    c->q_cap = cap;
    c->q_head = 0;
    return 0;
}

int ws_conn_push(struct ws_conn *c, struct ws_conn_frame *f)
{
    if (c->close_code)
        return 0;
    if (c->q_count >= WS_CONN_MAX_FRAMES || c->q_bytes + f->len > WS_CONN_MAX_QUEUED ||
        (c->q_count == c->q_cap && ws_conn_grow(c) < 0)) {
        ws_conn_close_later(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "Too slow");
        return -1;
    }
    f->refs++;
    c->q[(c->q_head + c->q_count) % c->q_cap] = f;
    c->q_count++;
    c->q_bytes += f->len;
    lws_callback_on_writable(c->wsi);
    return 0;
}

int ws_conn_send(struct ws_conn *c, const char *s, size_t len)
{
    struct ws_conn_frame *f = ws_conn_frame_new(s, len);
    if (!f)
        return -1;
    int rc = ws_conn_push(c, f);
    ws_conn_frame_unref(f);
    return rc;
}

struct ws_conn_frame *ws_conn_peek(struct ws_conn *c)
{
    return c->q_count ? c->q[c->q_head] : NULL;
}

void ws_conn_pop(struct ws_conn *c)
{
    if (!c->q_count)
        return;
    struct ws_conn_frame *f = c->q[c->q_head];
    c->q_head = (c->q_head + 1) % c->q_cap;
    c->q_count--;
    c->q_bytes -= f->len;
    ws_conn_frame_unref(f);
}

void ws_conn_close_later(struct ws_conn *c, int code, const char *reason)
{
    if (c->close_code)
        return;
    c->close_code = code;
    c->close_reason = reason;
    if (code != LWS_CLOSE_STATUS_GOINGAWAY)
        log_info("ws: closing user=%s: %d %s", c->user_id, code, reason);
    ws_conn_drop_queue(c);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, WS_CONN_CLOSE_GRACE);
    /*
     * The close happens in LWS_CALLBACK_TIMER, not WRITEABLE: Debian's lws
     * 4.1.6 is built with _DEBUG, and with libuv it closes a wsi whose
     * WRITEABLE returned -1 twice ("uv repeat test"), the second time
     * without the close frame. The writeable request wakes the loop.
     */
    lws_set_timer_usecs(c->wsi, 1);
    lws_callback_on_writable(c->wsi);
}

void ws_conn_list_add(struct ws_conn_list *l, struct ws_conn *c)
{
    c->prev = NULL;
    c->next = l->head;
    if (l->head)
        l->head->prev = c;
    l->head = c;
    l->count++;
}

void ws_conn_list_remove(struct ws_conn_list *l, struct ws_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (l->head == c)
        l->head = c->next;
    else
        return;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    l->count--;
}
