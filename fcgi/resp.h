#ifndef CHATD_RESP_H
#define CHATD_RESP_H

#include <json-c/json.h>

#include "db.h"

struct req;

/* Adds a response header (both strings must live in the arena or be static); -1 when full. */
int resp_header(struct req *r, const char *key, const char *val);
/* Writes status, headers and a JSON body (NULL: no body). Does not take a reference. */
int resp_json(struct req *r, int status, json_object *body);
/* Writes a raw body with a content type (NULL: no body and no type). */
int resp_raw(struct req *r, int status, const char *ctype, const char *body, size_t len);
/*
 * The only writer of error bodies: {"detail": ...} from what req_err* recorded
 * (or the status's standard text). Logs 4xx at info and 5xx at error, once.
 */
int resp_error(struct req *r, int status);
/*
 * The one mapping from a failed db_run() to HTTP, for whatever the handler did
 * not decide itself: unreachable or changed connection → 503 "Database
 * unavailable"; lock_timeout / statement_timeout / serialization → 503
 * "Database busy"; conflict → 409; invalid input → 422; anything else is our
 * bug (syntax, undefined column...) → 500, logged at error by db_run and here.
 * Returns the status like req_err().
 */
int resp_db_err(struct req *r, enum db_err err);
/* Seconds since the process started (monotonic), for X-Process-Time. */
double resp_now(void);

#endif
