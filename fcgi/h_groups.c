/* /api/v1/groups (API.md "Groups"): groups, their members, and the live member events. */
#include <ctype.h>
#include <json-c/json.h>
#include <string.h>

#include "auth.h"
#include "body.h"
#include "bus.h"
#include "cfg.h"
#include "db.h"
#include "handlers.h"
#include "req.h"
#include "resp.h"

/*
 * GroupRead embeds at most this many members (the first by joined_at);
 * member_count is always the full count.
 */
#define GROUPS_MEMBERS_ONE "500"
#define GROUPS_MEMBERS_LIST "50"
#define GROUPS_MEMBER_IDS_MAX 200
/* Members told one by one that their group was deleted. */
#define GROUPS_DELETE_NOTIFY_MAX "5000"

/*
 * One statement, so one transaction: the group, then its members (the
 * creator as admin; unknown ids skipped). The new rows are not visible to the
 * statement's own snapshot, so the members' JSON is built from RETURNING.
 */
static struct db_stmt q_create = DB_STMT(
    "WITH g AS (INSERT INTO groups AS g (name, description, avatar_url, is_private, creator_id)"
    "           VALUES ($2, $3, $4, $5, $1) RETURNING g), "
    "m AS (INSERT INTO group_members AS gm (group_id, user_id, role)"
    "      SELECT (g.g).id, x.id, CASE WHEN x.id = $1 THEN 'admin' ELSE 'member' END"
    "      FROM g, (SELECT $1::uuid AS id UNION"
    "               SELECT u.id FROM users u WHERE u.id = ANY ($7::uuid[])) x"
    "      RETURNING gm) "
    "SELECT chatd_group_json(g.g, $1, $6,"
    "         (SELECT json_agg(chatd_member_read(m.gm, u, $1, $6)"
    "                          ORDER BY (m.gm).joined_at, (m.gm).id)"
    "          FROM m JOIN users u ON u.id = (m.gm).user_id),"
    "         (SELECT count(*) FROM m))::text,"
    "       (g.g).id, (SELECT string_agg((m.gm).user_id::text, ' ') FROM m) "
    "FROM g",
    7);
/*
 * The members and counts of all the page's groups in the same statement
 * (LATERAL): calling chatd_group_read() per group, a function the planner
 * cannot inline, cost twice as much.
 */
static struct db_stmt q_list =
    DB_STMT("SELECT coalesce(json_agg(chatd_group_json(x.g, $1, $2, mem.list, cnt.n)"
            "                         ORDER BY (x.g).updated_at DESC, (x.g).id), '[]')::text "
            "FROM (SELECT g FROM groups g JOIN group_members m ON m.group_id = g.id"
            "      WHERE m.user_id = $1 ORDER BY g.updated_at DESC, g.id LIMIT $3 OFFSET $4) x "
            "LEFT JOIN LATERAL (SELECT json_agg(chatd_member_read(y.gm, y.u, $1, $2)"
            "                                   ORDER BY (y.gm).joined_at, (y.gm).id) AS list"
            "   FROM (SELECT gm, u FROM group_members gm JOIN users u ON u.id = gm.user_id"
            "         WHERE gm.group_id = (x.g).id ORDER BY gm.joined_at, gm.id"
            "         LIMIT " GROUPS_MEMBERS_LIST ") y) mem ON true "
            "LEFT JOIN LATERAL (SELECT count(*) AS n FROM group_members c"
            "                   WHERE c.group_id = (x.g).id) cnt ON true",
            4);
static struct db_stmt q_get =
    DB_STMT("SELECT chatd_group_read(g, $2, $3, " GROUPS_MEMBERS_ONE ")::text "
            "FROM groups g JOIN chatd_group_acl($1, $2, $3) a ON a.id = g.id AND a.visible",
            3);
/* $2k+2: whether the field was given, $2k+3: its value. */
static struct db_stmt q_update =
    DB_STMT("WITH a AS (SELECT * FROM chatd_group_acl($1, $2, $3)), "
            "u AS (UPDATE groups g SET"
            "        name = CASE WHEN $4 THEN $5 ELSE g.name END,"
            "        description = CASE WHEN $6 THEN $7 ELSE g.description END,"
            "        avatar_url = CASE WHEN $8 THEN $9 ELSE g.avatar_url END,"
            "        is_private = CASE WHEN $10 THEN $11 ELSE g.is_private END,"
            "        updated_at = now()"
            "      FROM a WHERE g.id = a.id AND a.visible AND a.manage RETURNING g) "
            "SELECT a.visible, a.manage,"
            "       (SELECT chatd_group_read(u.g, $2, $3, " GROUPS_MEMBERS_ONE ")::text FROM u) "
            "FROM a",
            11);
/* The group's members are read from the statement's snapshot: as they were before the delete. */
static struct db_stmt q_delete = DB_STMT(
    "WITH a AS (SELECT * FROM chatd_group_acl($1, $2, $3)), "
    "d AS (DELETE FROM groups g USING a WHERE g.id = a.id AND a.visible AND a.is_creator"
    "      RETURNING g.id) "
    "SELECT a.visible, EXISTS (SELECT 1 FROM d),"
    "       (SELECT string_agg(x.user_id::text, ' ') FROM (SELECT m.user_id FROM group_members m"
    "        WHERE m.group_id = a.id LIMIT " GROUPS_DELETE_NOTIFY_MAX ") x) "
    "FROM a",
    3);
static struct db_stmt q_member_add = DB_STMT(
    "WITH a AS (SELECT * FROM chatd_group_acl($1, $2, $3)), "
    "t AS (SELECT u FROM users u WHERE u.id = $4), "
    "ins AS (INSERT INTO group_members AS gm (group_id, user_id, role)"
    "        SELECT a.id, (t.u).id, 'member' FROM a, t WHERE a.visible AND a.manage"
    "        ON CONFLICT (group_id, user_id) DO NOTHING RETURNING gm), "
    "touch AS (UPDATE groups g SET updated_at = now() FROM ins WHERE g.id = (ins.gm).group_id) "
    "SELECT a.visible, a.manage, EXISTS (SELECT 1 FROM t),"
    "       (SELECT chatd_member_read(ins.gm, t.u, $2, $3)::text FROM ins, t) "
    "FROM a",
    4);
static struct db_stmt q_member_remove =
    DB_STMT("SELECT chatd_group_remove_member($1, $2, $3, $4)", 4);
static struct db_stmt q_member_role = DB_STMT(
    "SELECT status, changed, member::text FROM chatd_group_set_role($1, $2, $3, $4, $5)", 5);

static const char *groups_super(struct req *r)
{
    return r->user->is_superuser ? "t" : "f";
}

/* Path parameter i, lower-cased: ids in event payloads and channel names are canonical. */
static const char *groups_param(struct req *r, int i)
{
    char *s = arena_strdup(r->a, r->params[i]);
    for (char *c = s; c && *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return s ? s : r->params[i];
}

static int groups_send(struct req *r, int status, PGresult *res, int row, int col)
{
    return resp_raw(r, status, "application/json", PQgetvalue(res, row, col),
                    (size_t)PQgetlength(res, row, col));
}

/*
 * member_ids of a new group as a Postgres uuid[] literal ("{}" when absent or
 * null); *count gets the number of ids given.
 */
static int groups_member_ids(struct req *r, const char **out, size_t *count)
{
    json_object *v;
    *out = "{}";
    *count = 0;
    if (!json_object_object_get_ex(r->json, "member_ids", &v) || !v)
        return 0;
    if (!json_object_is_type(v, json_type_array))
        return req_invalid(r, "body", "member_ids", "Input should be a valid list", "list_type");
    size_t n = json_object_array_length(v);
    if (n > GROUPS_MEMBER_IDS_MAX)
        return req_invalid(r, "body", "member_ids",
                           "List should have at most 200 items after validation", "too_long");
    char *lit = arena_alloc(r->a, n * 37 + 3), *p = lit;
    if (!lit)
        return req_err(r, 413, "Request too large");
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(v, i);
        const char *s = json_object_is_type(e, json_type_string) ? json_object_get_string(e) : "";
        if (!str_is_uuid(s))
            return req_invalid(r, "body", "member_ids", "Input should be a valid UUID",
                               "uuid_parsing");
        if (i)
            *p++ = ',';
        for (int k = 0; k < 36; k++)
            *p++ = (char)tolower((unsigned char)s[k]);
    }
    *p++ = '}';
    *p = '\0';
    *out = lit;
    *count = n;
    return 0;
}

/*
 * Adding people to a group needs no consent from them, so each user has an
 * hourly budget of creations and of members added (issue 8). Every id given
 * counts, known or not: probing costs the same.
 */
static int groups_limit(struct req *r, int creating, size_t members)
{
    const char *groups = arena_printf(r->a, "rl:groups:%s", r->user->id);
    const char *added = arena_printf(r->a, "rl:group_members:%s", r->user->id);
    if (!groups || !added)
        return req_err(r, 413, "Request too large");
    int rc = creating ? auth_rate_limit(r, groups, cfg.rate_groups_per_hour, 3600) : 0;
    if (!rc)
        rc = auth_rate_limit_n(r, added, (long)members, cfg.rate_group_members_per_hour, 3600);
    return rc;
}

int h_groups_create(struct req *r)
{
    const char *p[7] = {r->user->id};
    int priv = 0, has_priv;
    int rc = body_str(r, "name", 1, 200, BODY_REQUIRED, &p[1]);
    if (!rc)
        rc = body_str(r, "description", 0, 1000, BODY_NULLABLE, &p[2]);
    if (!rc)
        rc = body_str(r, "avatar_url", 0, 500, BODY_NULLABLE, &p[3]);
    if (!rc)
        rc = body_bool(r, "is_private", 0, &priv, &has_priv);
    size_t members = 0;
    if (!rc)
        rc = groups_member_ids(r, &p[6], &members);
    if (!rc)
        rc = groups_limit(r, 1, members);
    if (rc)
        return rc;
    p[4] = priv ? "t" : "f";
    p[5] = groups_super(r);
    enum db_err err;
    PGresult *res = db_run(r->a, &q_create, p, &err);
    if (!res && err == DB_INVALID)
        return req_invalid(r, "body", NULL, "Invalid value", "value_error");
    if (!res)
        return resp_db_err(r, err);
    bus_members(r->a, "member_added", PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), 0);
    return groups_send(r, 201, res, 0, 0);
}

int h_groups_list(struct req *r)
{
    const char *limit, *offset;
    int rc = req_page(r, &limit, &offset);
    if (rc)
        return rc;
    const char *p[] = {r->user->id, groups_super(r), limit, offset};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_list, p, &err);
    if (!res)
        return resp_db_err(r, err);
    return groups_send(r, 200, res, 0, 0);
}

int h_groups_get(struct req *r)
{
    const char *p[] = {r->params[0], r->user->id, groups_super(r)};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_get, p, &err);
    if (!res)
        return resp_db_err(r, err);
    if (PQntuples(res) == 0)
        return req_err(r, 404, "Group not found");
    return groups_send(r, 200, res, 0, 0);
}

/* Reads one optional field into p[0] (given: "t"/"f") and p[1] (its value, NULL clears it). */
static int groups_field(struct req *r, const char *field, size_t min, size_t max, unsigned flags,
                        const char **p)
{
    int rc = body_str(r, field, min, max, flags, &p[1]);
    p[0] = body_has(r, field) ? "t" : "f";
    if (!rc && p[0][0] == 't' && !p[1] && !(flags & BODY_NULLABLE))
        rc = req_invalid(r, "body", field, "Input should be a valid string", "string_type");
    return rc;
}

int h_groups_update(struct req *r)
{
    const char *p[11] = {r->params[0], r->user->id, groups_super(r)};
    int priv = 0, has_priv = 0;
    int rc = groups_field(r, "name", 1, 200, 0, &p[3]);
    if (!rc)
        rc = groups_field(r, "description", 0, 1000, BODY_NULLABLE, &p[5]);
    if (!rc)
        rc = groups_field(r, "avatar_url", 0, 500, BODY_NULLABLE, &p[7]);
    if (!rc)
        rc = body_bool(r, "is_private", 0, &priv, &has_priv);
    if (rc)
        return rc;
    p[9] = has_priv ? "t" : "f";
    p[10] = priv ? "t" : "f";
    enum db_err err;
    PGresult *res = db_run(r->a, &q_update, p, &err);
    if (!res && err == DB_INVALID)
        return req_invalid(r, "body", NULL, "Invalid value", "value_error");
    if (!res)
        return resp_db_err(r, err);
    if (PQntuples(res) == 0 || PQgetvalue(res, 0, 0)[0] != 't')
        return req_err(r, 404, "Group not found");
    if (PQgetvalue(res, 0, 1)[0] != 't')
        return req_err(r, 403, "Only group admin or creator can update the group");
    return groups_send(r, 200, res, 0, 2);
}

/*
 * Creator only. Each member's connections get member_removed on their user
 * channel (up to GROUPS_DELETE_NOTIFY_MAX members); the group channel gets one
 * group_deleted.
 */
int h_groups_delete(struct req *r)
{
    const char *p[] = {r->params[0], r->user->id, groups_super(r)};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_delete, p, &err);
    if (!res)
        return resp_db_err(r, err);
    if (PQntuples(res) == 0 || PQgetvalue(res, 0, 0)[0] != 't')
        return req_err(r, 404, "Group not found");
    if (PQgetvalue(res, 0, 1)[0] != 't')
        return req_err(r, 403, "Only the group creator can delete the group");
    const char *gid = groups_param(r, 0);
    bus_publish(r->a, "group", gid,
                arena_printf(r->a, "{\"type\":\"group_deleted\",\"group_id\":\"%s\"}", gid));
    bus_members(r->a, "member_removed", gid, PQgetvalue(res, 0, 2), 0);
    return resp_raw(r, 204, NULL, NULL, 0);
}

int h_groups_member_add(struct req *r)
{
    const char *user;
    int rc = req_query_uuid(r, "user_id", &user);
    if (!rc && !user)
        rc = req_invalid(r, "query", "user_id", "Field required", "missing");
    if (!rc)
        rc = groups_limit(r, 0, 1);
    if (rc)
        return rc;
    const char *p[] = {r->params[0], r->user->id, groups_super(r), user};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_member_add, p, &err);
    if (!res && err == DB_INVALID) /* the group or user was deleted meanwhile (foreign key) */
        return req_err(r, 404, "Group not found");
    if (!res)
        return resp_db_err(r, err);
    if (PQntuples(res) == 0 || PQgetvalue(res, 0, 0)[0] != 't')
        return req_err(r, 404, "Group not found");
    if (PQgetvalue(res, 0, 1)[0] != 't')
        return req_err(r, 403, "Only group admin can add members");
    if (PQgetvalue(res, 0, 2)[0] != 't')
        return req_err(r, 404, "User not found");
    if (PQgetisnull(res, 0, 3))
        return req_err(r, 400, "User is already a member");
    bus_members(r->a, "member_added", groups_param(r, 0), user, 1);
    return groups_send(r, 201, res, 0, 3);
}

int h_groups_member_remove(struct req *r)
{
    const char *p[] = {r->params[0], r->params[1], r->user->id, groups_super(r)};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_member_remove, p, &err);
    if (!res)
        return resp_db_err(r, err);
    const char *st = PQgetvalue(res, 0, 0);
    if (!strcmp(st, "no_group"))
        return req_err(r, 404, "Group not found");
    if (!strcmp(st, "forbidden"))
        return req_err(r, 403, "Only group admin or the user themselves can remove members");
    if (!strcmp(st, "no_member"))
        return req_err(r, 404, "Member not found");
    if (!strcmp(st, "last_admin"))
        return req_err(r, 400, "The last admin cannot leave the group while it has other members");
    bus_members(r->a, "member_removed", groups_param(r, 0), groups_param(r, 1), 1);
    return resp_raw(r, 204, NULL, NULL, 0);
}

/* The role of PATCH .../members/{user_id}: "admin" or "member" (a Literal in the old API). */
static int groups_role(struct req *r, const char **role)
{
    int rc = body_str(r, "role", 1, 20, BODY_REQUIRED, role);
    if (!rc && strcmp(*role, "admin") && strcmp(*role, "member"))
        rc = req_invalid(r, "body", "role", "Input should be 'admin' or 'member'", "literal_error");
    return rc;
}

/* member_role_changed {type, group_id, user_id, role} on the group's channel. */
static void groups_role_event(struct req *r, const char *role)
{
    const char *gid = groups_param(r, 0);
    const char *ev = arena_printf(r->a,
                                  "{\"type\":\"member_role_changed\",\"group_id\":\"%s\","
                                  "\"user_id\":\"%s\",\"role\":\"%s\"}",
                                  gid, groups_param(r, 1), role);
    if (ev)
        bus_publish(r->a, "group", gid, ev);
}

/*
 * Admins, the creator or a superuser set a member's role. The group hears
 * member_role_changed only when the role did change: setting the role a member
 * already has answers 200 and publishes nothing.
 */
int h_groups_member_role(struct req *r)
{
    const char *role;
    int rc = groups_role(r, &role);
    if (rc)
        return rc;
    const char *p[] = {r->params[0], r->params[1], r->user->id, groups_super(r), role};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_member_role, p, &err);
    if (!res)
        return resp_db_err(r, err);
    const char *st = PQgetvalue(res, 0, 0);
    if (!strcmp(st, "no_group"))
        return req_err(r, 404, "Group not found");
    if (!strcmp(st, "forbidden"))
        return req_err(r, 403, "Only group admin can change roles");
    if (!strcmp(st, "no_member"))
        return req_err(r, 404, "Member not found");
    if (!strcmp(st, "last_admin"))
        return req_err(r, 400,
                       "The last admin cannot be demoted while the group has other members");
    if (PQgetvalue(res, 0, 1)[0] == 't')
        groups_role_event(r, role);
    return groups_send(r, 200, res, 0, 2);
}
