#ifndef CHATD_HANDLERS_H
#define CHATD_HANDLERS_H

struct req;

/* h_ops.c */
int h_root(struct req *r);
int h_health(struct req *r);

#endif
