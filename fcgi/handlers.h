#ifndef CHATD_HANDLERS_H
#define CHATD_HANDLERS_H

struct req;

/* h_ops.c */
int h_root(struct req *r);
int h_health(struct req *r);

/* h_messages.c */
int h_msg_send(struct req *r);
int h_msg_list(struct req *r);
int h_msg_read(struct req *r);
int h_msg_edit(struct req *r);
int h_msg_delete(struct req *r);
int h_msg_chats(struct req *r);
int h_msg_conversations(struct req *r);

/* h_auth.c */
int h_auth_register(struct req *r);
int h_auth_login(struct req *r);
int h_auth_refresh(struct req *r);
int h_auth_logout(struct req *r);

#endif
