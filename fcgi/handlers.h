#ifndef CHATD_HANDLERS_H
#define CHATD_HANDLERS_H

struct req;

/* h_uploads.c */
int h_upload_create(struct req *r);
int h_upload_get(struct req *r);

/* h_ops.c */
int h_root(struct req *r);
int h_health(struct req *r);
/* GET /metrics (fcgi/h_metrics.c): Prometheus text, METRICS_ALLOW addresses only. */
int h_metrics(struct req *r);

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

/* h_oauth.c */
int h_oauth_google_status(struct req *r);
int h_oauth_google_authorize(struct req *r);
int h_oauth_google_callback(struct req *r);

/* h_fau.c */
/*
 * The password fingerprint of reset tokens (hex, out[65]) for a stored hash;
 * the mailer (fcgi/mailer.c) issues reset tokens with it. Returns 0 or -1.
 */
int h_fau_fingerprint(const char *hashed, char out[65]);
int h_fau_register(struct req *r);
int h_fau_login(struct req *r);
int h_fau_logout(struct req *r);
int h_fau_forgot_password(struct req *r);
int h_fau_reset_password(struct req *r);
int h_fau_request_verify_token(struct req *r);
int h_fau_verify(struct req *r);
int h_fau_verify_link(struct req *r);
int h_fau_me(struct req *r);
int h_fau_me_update(struct req *r);
int h_fau_user_get(struct req *r);
int h_fau_user_update(struct req *r);
int h_fau_user_delete(struct req *r);

/* h_users.c */
int h_users_me(struct req *r);
int h_users_me_update(struct req *r);
int h_users_online(struct req *r);
int h_users_search(struct req *r);
int h_users_get(struct req *r);

/* h_contacts.c */
int h_contacts_add(struct req *r);
int h_contacts_list(struct req *r);
int h_contacts_delete(struct req *r);

/* h_groups.c */
int h_groups_create(struct req *r);
int h_groups_list(struct req *r);
int h_groups_get(struct req *r);
int h_groups_update(struct req *r);
int h_groups_delete(struct req *r);
int h_groups_member_add(struct req *r);
int h_groups_member_remove(struct req *r);
int h_groups_member_role(struct req *r);

/* h_admin.c, h_admin_write.c (API.md "Admin") */
/* 0 when the caller is a superuser (read from the database this request), else 403. */
int h_admin_require(struct req *r);
int h_admin_stats(struct req *r);
int h_admin_audit(struct req *r);
int h_admin_list(struct req *r);
int h_admin_get(struct req *r);
int h_admin_export(struct req *r);
int h_admin_user_create(struct req *r);
int h_admin_user_password(struct req *r);
/* PATCH /api/v1/admin/{model}/{id}: users, groups, group_members; other models 405. */
int h_admin_update(struct req *r);
int h_admin_delete(struct req *r);

#endif
