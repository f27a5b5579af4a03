/* /api/v1/contacts (API.md "Contacts"): the caller's address book. */
#include <string.h>

#include "auth.h"
#include "body.h"
#include "db.h"
#include "handlers.h"
#include "req.h"
#include "resp.h"

/* found: the user exists; the JSON is NULL when the contact was there already. */
static struct db_stmt q_add =
    DB_STMT("WITH t AS (SELECT u FROM users u WHERE u.id = $2), "
            "ins AS (INSERT INTO contacts AS c (user_id, contact_id, nickname)"
            "        SELECT $1, (t.u).id, $3 FROM t"
            "        ON CONFLICT (user_id, contact_id) DO NOTHING RETURNING c) "
            "SELECT EXISTS (SELECT 1 FROM t),"
            "       (SELECT chatd_contact_read(ins.c, t.u, $1, $4)::text FROM ins, t)",
            4);
/* Oldest first, so pages stay put while contacts are added. */
static struct db_stmt q_list =
    DB_STMT("SELECT coalesce(json_agg(chatd_contact_read(x.c, u, $1, $2)"
            "                         ORDER BY (x.c).created_at, (x.c).id), '[]')::text "
            "FROM (SELECT c FROM contacts c WHERE c.user_id = $1"
            "      ORDER BY c.created_at, c.id LIMIT $3 OFFSET $4) x "
            "JOIN users u ON u.id = (x.c).contact_id",
            4);
/* $2 is the contact row's id (as the old version) or the contact's user id. */
static struct db_stmt q_delete =
    DB_STMT("DELETE FROM contacts WHERE id = (SELECT c.id FROM contacts c WHERE c.user_id = $1"
            " AND (c.id = $2 OR c.contact_id = $2) ORDER BY c.id = $2 DESC LIMIT 1) RETURNING id",
            2);

int h_contacts_add(struct req *r)
{
    const char *contact, *nickname;
    int rc = body_uuid(r, "contact_id", BODY_REQUIRED, &contact);
    if (!rc)
        rc = body_str(r, "nickname", 0, 100, BODY_NULLABLE, &nickname);
    if (rc)
        return rc;
    if (!strcasecmp(contact, r->user->id))
        return req_err(r, 400, "Cannot add yourself as a contact");
    const char *p[] = {r->user->id, contact, nickname, r->user->is_superuser ? "t" : "f"};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_add, p, &err);
    if (!res)
        return resp_db_err(r, err);
    if (PQgetvalue(res, 0, 0)[0] != 't')
        return req_err(r, 404, "User not found");
    if (PQgetisnull(res, 0, 1))
        return req_err(r, 400, "User is already in your contacts");
    return resp_raw(r, 201, "application/json", PQgetvalue(res, 0, 1),
                    (size_t)PQgetlength(res, 0, 1));
}

int h_contacts_list(struct req *r)
{
    const char *limit, *offset;
    int rc = req_page(r, &limit, &offset);
    if (rc)
        return rc;
    const char *p[] = {r->user->id, r->user->is_superuser ? "t" : "f", limit, offset};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_list, p, &err);
    if (!res)
        return resp_db_err(r, err);
    return resp_raw(r, 200, "application/json", PQgetvalue(res, 0, 0),
                    (size_t)PQgetlength(res, 0, 0));
}

int h_contacts_delete(struct req *r)
{
    const char *p[] = {r->user->id, r->params[0]};
    enum db_err err;
    PGresult *res = db_run(r->a, &q_delete, p, &err);
    if (!res)
        return resp_db_err(r, err);
    if (PQntuples(res) == 0)
        return req_err(r, 404, "Contact not found");
    return resp_raw(r, 204, NULL, NULL, 0);
}
