#include "users.h"

#include <json-c/json.h>
#include <string.h>

#include "body.h"
#include "db.h"
#include "pw.h"
#include "req.h"
#include "resp.h"

static struct db_stmt q_insert =
    DB_STMT("INSERT INTO users AS u (email, username, hashed_password, first_name, last_name) "
            "VALUES ($1, $2, $3, $4, $5) "
            "RETURNING id, email, username, chatd_user_auth(u), chatd_user_read(u)",
            5);

int users_parse_new(struct req *r, struct users_new *nu)
{
    memset(nu, 0, sizeof(*nu));
    int rc = body_str(r, "email", 3, 320, BODY_REQUIRED, &nu->email);
    if (!rc && !body_is_email(nu->email))
        rc = req_invalid(r, "body", "email", "value is not a valid email address", "value_error");
    if (!rc)
        rc = body_str(r, "username", 3, 50, BODY_REQUIRED, &nu->username);
    if (!rc && !body_is_username(nu->username))
        rc = req_invalid(r, "body", "username", "String should match pattern '^[A-Za-z0-9_.-]+$'",
                         "string_pattern_mismatch");
    if (!rc)
        rc = body_str(r, "password", 1, 128, BODY_REQUIRED, &nu->password);
    if (!rc)
        rc = body_str(r, "first_name", 0, 100, BODY_NULLABLE, &nu->first_name);
    if (!rc)
        rc = body_str(r, "last_name", 0, 100, BODY_NULLABLE, &nu->last_name);
    return rc;
}

PGresult *users_insert(struct req *r, const struct users_new *nu, const char **clash, int *status)
{
    char hash[PW_ENCODED_MAX];
    *clash = NULL;
    if (pw_hash(nu->password, strlen(nu->password), hash, sizeof(hash)) < 0) {
        *status = req_err(r, 503, "Cannot hash password");
        return NULL;
    }
    const char *params[] = {nu->email, nu->username, hash, nu->first_name, nu->last_name};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_insert, params, &err);
    if (res)
        return res;
    if (err == DB_CONFLICT) {
        *clash = strstr(db_last_constraint(), "email") ? "email" : "username";
        return NULL;
    }
    *status = err == DB_INVALID ? req_invalid(r, "body", NULL, "Invalid value", "value_error")
                                : resp_db_err(r, err);
    return NULL;
}

int users_password_has_email(const char *password, const char *email)
{
    return *email && strcasestr(password, email) != NULL;
}

int users_set_ids(struct req *r, json_object *set, const char **email)
{
    const char *username = NULL;
    int rc = body_str(r, "email", 3, 320, BODY_NULLABLE, email);
    if (!rc && *email && !body_is_email(*email))
        rc = req_invalid(r, "body", "email", "value is not a valid email address", "value_error");
    if (!rc)
        rc = body_str(r, "username", 3, 50, BODY_NULLABLE, &username);
    if (!rc && username && !body_is_username(username))
        rc = req_invalid(r, "body", "username", "String should match pattern '^[A-Za-z0-9_.-]+$'",
                         "string_pattern_mismatch");
    if (!rc && *email)
        json_object_object_add(set, "email", json_object_new_string(*email));
    if (!rc && username)
        json_object_object_add(set, "username", json_object_new_string(username));
    return rc;
}
