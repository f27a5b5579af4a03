#include <json-c/json.h>

#include "db.h"
#include "handlers.h"
#include "jx.h"
#include "rds.h"
#include "req.h"
#include "resp.h"

int h_root(struct req *r)
{
    json_object *o = jx_obj(r->a);
    json_object_object_add(o, "message", json_object_new_string("Welcome to Realtime Chat API"));
    json_object_object_add(o, "version", json_object_new_string(CHATD_VERSION));
    json_object_object_add(o, "docs", json_object_new_string("/docs"));
    return resp_json(r, 200, o);
}

int h_health(struct req *r)
{
    int db_ok = db_exec_simple("SELECT 1") == 0;
    int rds_ok = rds_ping() == 0;
    json_object *o = jx_obj(r->a);
    json_object_object_add(o, "status",
                           json_object_new_string(db_ok && rds_ok ? "healthy" : "unhealthy"));
    json_object_object_add(o, "version", json_object_new_string(CHATD_VERSION));
    json_object_object_add(o, "database", json_object_new_string(db_ok ? "ok" : "error"));
    json_object_object_add(o, "redis", json_object_new_string(rds_ok ? "ok" : "error"));
    return resp_json(r, db_ok && rds_ok ? 200 : 503, o);
}
