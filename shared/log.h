#ifndef CHATD_LOG_H
#define CHATD_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/*
 * One line per event on stderr: "ts level prog[pid] req=<id> user=<id> msg".
 * Never pass passwords, tokens, cookies or message bodies.
 */
void log_init(const char *prog, enum log_level level);
void log_set_level(enum log_level level);
/* Returns -1 when name is not one of error/warn/info/debug. */
int log_level_parse(const char *name);
/* Request context printed on every line until cleared with NULLs. */
void log_set_context(const char *req_id, const char *user_id);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
