#ifndef CHATD_HANDLERS_H
#define CHATD_HANDLERS_H

struct req;

/* h_ops.c */
int h_root(struct req *r);
int h_health(struct req *r);

/* h_auth.c */
int h_auth_register(struct req *r);
int h_auth_login(struct req *r);
int h_auth_refresh(struct req *r);
int h_auth_logout(struct req *r);

#endif
