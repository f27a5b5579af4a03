#ifndef CHATD_WS_SRV_H
#define CHATD_WS_SRV_H

#include <uv.h>

/*
 * The objects of one chat-wsd process, created and destroyed by main.c and
 * reached from lws callbacks through lws_context_user() (ws_conn->srv).
 */
struct ws_srv {
    uv_loop_t *loop;
    struct ws_bus *sub;           /* pub/sub connection: chatd:ctl and the hub's channels */
    struct ws_bus *cmd;           /* command connection: PUBLISH, EVAL */
    struct ws_db *db;             /* Postgres lanes */
    struct ws_hub *hub;           /* local connections by user and group */
    struct ws_presence *presence; /* NULL only while starting */
    struct ws_tail *tail;         /* reads new messages from the log (ws_tail) */
};

#endif
