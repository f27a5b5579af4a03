/*
 * /api/v1/admin/... writes (API.md "Admin"): edit, deactivate, create, set
 * password, deletes. Each SQL function (schema/0017_admin.sql) writes its
 * admin_audit row in the same statement; the events go out after the commit.
 */
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "body.h"
#include "bus.h"
#include "chan.h"
#include "db.h"
#include "handlers.h"
#include "jx.h"
#include "pw.h"
#include "req.h"
#include "resp.h"
#include "str.h"
#include "users.h"

static struct db_stmt q_user_update =
    DB_STMT("SELECT hit, deactivated, body::text FROM chatd_admin_user_update($1, $2, $3)", 3);
static struct db_stmt q_user_create =
    DB_STMT("SELECT chatd_admin_user_create($1, $2, $3, $4, $5, $6)::text", 6);
static struct db_stmt q_password = DB_STMT("SELECT chatd_admin_set_password($1, $2, $3)", 3);
static struct db_stmt q_group_update =
    DB_STMT("SELECT chatd_admin_group_update($1, $2, $3)::text", 3);
static struct db_stmt q_member_role = DB_STMT(
    "SELECT status, changed, gid, uid, body::text FROM chatd_admin_member_role($1, $2, $3)", 3);
static struct db_stmt q_msg_delete =
    DB_STMT("SELECT hit, seq, sender, receiver, gid FROM chatd_admin_message_delete($1, $2)", 2);
static struct db_stmt q_group_delete =
    DB_STMT("SELECT hit, members FROM chatd_admin_group_delete($1, $2)", 2);
static struct db_stmt q_member_remove =
    DB_STMT("SELECT status, gid, uid FROM chatd_admin_member_remove($1, $2)", 2);
static struct db_stmt q_contact_delete = DB_STMT("SELECT chatd_admin_contact_delete($1, $2)", 2);

static const char *const admin_last_admin =
    "The last admin cannot be demoted while the group has other members";

/* Path parameter i (a UUID), lower-cased: ids in channel names and events are canonical. */
static const char *admin_id(struct req *r, int i)
{
    char *low = arena_alloc(r->a, 37);
    return low ? str_lower(low, r->params[i], 36) : r->params[i];
}

static int admin_json(struct req *r, int status, PGresult *res, int col)
{
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, col))
        return req_err(r, 404, "Not Found");
    return resp_raw(r, status, "application/json", PQgetvalue(res, 0, col),
                    (size_t)PQgetlength(res, 0, col));
}

/* The PATCH body as the jsonb chatd_admin_user_update applies. */
static int admin_user_set(struct req *r, json_object *set)
{
    static const char *const strs[] = {"first_name", "last_name", "bio", "avatar_url"};
    static const size_t maxes[] = {100, 100, 500, 500};
    static const char *const flags[] = {"is_active", "is_verified", "is_superuser"};
    const char *email;
    int rc = users_set_ids(r, set, &email);
    for (size_t i = 0; !rc && i < sizeof(strs) / sizeof(strs[0]); i++)
        rc = body_set_str(r, set, strs[i], 0, maxes[i]);
    for (size_t i = 0; !rc && i < sizeof(flags) / sizeof(flags[0]); i++)
        rc = body_set_bool(r, set, flags[i]);
    return rc;
}

/* A superuser turning off its own is_active or is_superuser would lock itself out. */
static int admin_self_lockout(struct req *r, json_object *set)
{
    json_object *v;
    if (strcasecmp(r->params[1], r->user->id) != 0)
        return 0;
    if ((json_object_object_get_ex(set, "is_active", &v) && !json_object_get_boolean(v)) ||
        (json_object_object_get_ex(set, "is_superuser", &v) && !json_object_get_boolean(v)))
        return req_err(r, 400, "A superuser cannot deactivate or demote itself");
    return 0;
}

static int admin_clash(struct req *r)
{
    return req_err(r, 400,
                   strstr(db_last_constraint(), "email") ? "Email already registered"
                                                         : "Username already taken");
}

static int admin_user_update(struct req *r)
{
    json_object *set = jx_obj(r->a);
    int rc = h_admin_require(r);
    if (!rc)
        rc = set ? admin_user_set(r, set) : req_err(r, 500, "Out of memory");
    if (!rc)
        rc = admin_self_lockout(r, set);
    if (rc)
        return rc;
    const char *p[] = {r->user->id, r->params[1], jx_text(set, NULL)};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_user_update, p, &err);
    if (!res)
        return err == DB_CONFLICT ? admin_clash(r) : resp_db_err(r, err);
    if (PQgetvalue(res, 0, 0)[0] != 't')
        return req_err(r, 404, "Not Found");
    if (PQgetvalue(res, 0, 1)[0] == 't') {
        /* Inactive is refused from the commit on; this ends the sessions and tells every wsd. */
        const char *id = admin_id(r, 1);
        if ((rc = auth_sessions_end(r, id, NULL, NULL)))
            return rc;
        auth_user_inactive(r, id);
    }
    return admin_json(r, 200, res, 2);
}

static int admin_password(struct req *r, const char *field, char hash[PW_ENCODED_MAX])
{
    const char *pw;
    int rc = body_str(r, field, 8, 128, BODY_REQUIRED, &pw);
    if (rc)
        return rc;
    if (pw_hash(pw, strlen(pw), hash, PW_ENCODED_MAX) < 0)
        return req_err(r, 503, "Cannot hash password");
    return 0;
}

int h_admin_user_create(struct req *r)
{
    struct users_new nu;
    int super = 0, verified = 0, present;
    char hash[PW_ENCODED_MAX];
    int rc = h_admin_require(r);
    if (!rc)
        rc = users_parse_new(r, &nu);
    if (!rc)
        rc = body_bool(r, "is_superuser", BODY_NULLABLE, &super, &present);
    if (!rc)
        rc = body_bool(r, "is_verified", BODY_NULLABLE, &verified, &present);
    if (!rc)
        rc = admin_password(r, "password", hash);
    if (rc)
        return rc;
    const char *p[] = {r->user->id, nu.email,          nu.username,
                       hash,        super ? "t" : "f", verified ? "t" : "f"};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_user_create, p, &err);
    if (!res)
        return err == DB_CONFLICT ? admin_clash(r) : resp_db_err(r, err);
    return admin_json(r, 201, res, 0);
}

int h_admin_user_password(struct req *r)
{
    char hash[PW_ENCODED_MAX];
    int rc = h_admin_require(r);
    if (!rc)
        rc = admin_password(r, "password", hash);
    if (rc)
        return rc;
    const char *p[] = {r->user->id, r->params[0], hash};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_password, p, &err);
    if (!res)
        return resp_db_err(r, err);
    if (PQgetvalue(res, 0, 0)[0] != 't')
        return req_err(r, 404, "Not Found");
    auth_session_revoked(r, admin_id(r, 0), NULL, NULL);
    return resp_raw(r, 204, NULL, NULL, 0);
}

static int admin_group_update(struct req *r)
{
    json_object *set = jx_obj(r->a);
    int rc = h_admin_require(r);
    if (!rc)
        rc = set ? body_set_str(r, set, "name", 1, 200) : req_err(r, 500, "Out of memory");
    if (!rc)
        rc = body_set_str(r, set, "description", 0, 1000);
    if (!rc)
        rc = body_set_bool(r, set, "is_private");
    if (rc)
        return rc;
    const char *p[] = {r->user->id, r->params[1], jx_text(set, NULL)};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_group_update, p, &err);
    return res ? admin_json(r, 200, res, 0) : resp_db_err(r, err);
}

/* member_role_changed on the group's channel, as PATCH /groups/{g}/members/{u} sends it. */
static void admin_role_event(struct req *r, const char *gid, const char *uid, const char *role)
{
    const char *ev = arena_printf(r->a,
                                  "{\"type\":\"member_role_changed\",\"group_id\":\"%s\","
                                  "\"user_id\":\"%s\",\"role\":\"%s\"}",
                                  gid, uid, role);
    if (ev)
        bus_publish(r->a, "group", gid, ev);
}

static int admin_member_update(struct req *r)
{
    const char *role;
    int rc = h_admin_require(r);
    if (!rc)
        rc = body_str(r, "role", 1, 20, BODY_REQUIRED, &role);
    if (!rc && strcmp(role, "admin") && strcmp(role, "member"))
        rc = req_invalid(r, "body", "role", "Input should be 'admin' or 'member'", "literal_error");
    if (rc)
        return rc;
    const char *p[] = {r->user->id, r->params[1], role};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_member_role, p, &err);
    if (!res)
        return resp_db_err(r, err);
    const char *st = PQgetvalue(res, 0, 0);
    if (!strcmp(st, "last_admin"))
        return req_err(r, 400, admin_last_admin);
    if (strcmp(st, "ok"))
        return req_err(r, 404, "Not Found");
    if (PQgetvalue(res, 0, 1)[0] == 't')
        admin_role_event(r, PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3), role);
    return admin_json(r, 200, res, 4);
}

/* message_deleted {id, seq} to the conversation, as the owner's delete publishes it. */
static int admin_delete_message(struct req *r, const char *const *p)
{
    enum db_err err;
    PGresult *res = db_run(r->a, &q_msg_delete, p, &err);
    if (!res)
        return resp_db_err(r, err);
    if (PQgetvalue(res, 0, 0)[0] != 't')
        return req_err(r, 404, "Not Found");
    char chans[2][CHAN_NAME_MAX];
    int n = chan_conversation(chans, PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3),
                              PQgetvalue(res, 0, 4), 0);
    const char *frame =
        arena_printf(r->a, "{\"type\":\"message_deleted\",\"id\":\"%s\",\"seq\":%s}", p[1],
                     PQgetvalue(res, 0, 1));
    for (int i = 0; frame && i < n && bus_fanout(r->a, chans[i], frame) == 1; i++)
        ;
    return resp_raw(r, 204, NULL, NULL, 0);
}

/* group_deleted to the group, member_removed to each member (as the creator's delete). */
static int admin_delete_group(struct req *r, const char *const *p)
{
    enum db_err err;
    PGresult *res = db_run(r->a, &q_group_delete, p, &err);
    if (!res)
        return resp_db_err(r, err);
    if (PQgetvalue(res, 0, 0)[0] != 't')
        return req_err(r, 404, "Not Found");
    const char *ev = arena_printf(r->a, "{\"type\":\"group_deleted\",\"group_id\":\"%s\"}", p[1]);
    if (ev)
        bus_publish(r->a, "group", p[1], ev);
    bus_members(r->a, "member_removed", p[1], PQgetvalue(res, 0, 1), 0);
    return resp_raw(r, 204, NULL, NULL, 0);
}

static int admin_delete_member(struct req *r, const char *const *p)
{
    enum db_err err;
    PGresult *res = db_run(r->a, &q_member_remove, p, &err);
    if (!res)
        return resp_db_err(r, err);
    const char *st = PQgetvalue(res, 0, 0);
    if (!strcmp(st, "last_admin"))
        return req_err(r, 400, "The last admin cannot leave the group while it has other members");
    if (strcmp(st, "ok"))
        return req_err(r, 404, "Not Found");
    bus_members(r->a, "member_removed", PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), 1);
    return resp_raw(r, 204, NULL, NULL, 0);
}

static int admin_delete_contact(struct req *r, const char *const *p)
{
    enum db_err err;
    PGresult *res = db_run(r->a, &q_contact_delete, p, &err);
    if (!res)
        return resp_db_err(r, err);
    if (PQgetvalue(res, 0, 0)[0] != 't')
        return req_err(r, 404, "Not Found");
    return resp_raw(r, 204, NULL, NULL, 0);
}

int h_admin_delete(struct req *r)
{
    int rc = h_admin_require(r);
    if (rc)
        return rc;
    const char *model = r->params[0];
    const char *p[] = {r->user->id, admin_id(r, 1)};
    if (!strcmp(model, "users")) {
        /* Users are never deleted (API.md): deactivate them. */
        resp_header(r, "Allow", "GET, PATCH");
        return req_err(r, 405, "Method Not Allowed");
    }
    if (!strcmp(model, "messages"))
        return admin_delete_message(r, p);
    if (!strcmp(model, "groups"))
        return admin_delete_group(r, p);
    if (!strcmp(model, "group_members"))
        return admin_delete_member(r, p);
    if (!strcmp(model, "contacts"))
        return admin_delete_contact(r, p);
    return req_err(r, 404, "Not Found");
}

int h_admin_update(struct req *r)
{
    int rc = h_admin_require(r);
    if (rc)
        return rc;
    if (!strcmp(r->params[0], "users"))
        return admin_user_update(r);
    if (!strcmp(r->params[0], "groups"))
        return admin_group_update(r);
    if (!strcmp(r->params[0], "group_members"))
        return admin_member_update(r);
    if (!strcmp(r->params[0], "messages") || !strcmp(r->params[0], "contacts")) {
        resp_header(r, "Allow", "GET, DELETE");
        return req_err(r, 405, "Method Not Allowed");
    }
    return req_err(r, 404, "Not Found");
}
