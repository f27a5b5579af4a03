#ifndef CHATD_USERS_H
#define CHATD_USERS_H

#include <libpq-fe.h>

struct req;
struct json_object;

/* A registration as read from a body (fields point into the request). */
struct users_new {
    const char *email;
    const char *username;
    const char *password;
    const char *first_name;
    const char *last_name;
};

/*
 * Reads and checks email, username, password (1-128: each caller applies its
 * own minimum and answer), first_name, last_name. Returns 0 or 422.
 */
int users_parse_new(struct req *r, struct users_new *nu);

/*
 * Hashes the password and inserts the user. Returns the row (id, email,
 * username, chatd_user_auth json, chatd_user_read json), or NULL with
 * *clash = "email" / "username" on a duplicate, or *status set otherwise.
 */
PGresult *users_insert(struct req *r, const struct users_new *nu, const char **clash, int *status);

/*
 * The email and username of a PATCH body into the JSON object set, with
 * registration's checks (422); a null or absent value keeps the current one.
 * *email is the new address or NULL.
 */
int users_set_ids(struct req *r, struct json_object *set, const char **email);

/* 1 when the password contains the email (the old version's rule). */
int users_password_has_email(const char *password, const char *email);

#endif
