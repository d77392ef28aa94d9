/* Logging for binaries (libraries report through struct gr_error instead).
 * Text or JSON lines (runc's {"level","msg","time"} shape, which conmon and
 * containerd read) to a log file, and errors also to stderr. */
#ifndef GR_LOG_H
#define GR_LOG_H

#include <stdbool.h>
#include "error.h"

enum gr_log_level { GR_LOG_DEBUG, GR_LOG_INFO, GR_LOG_WARN, GR_LOG_ERROR };
enum gr_log_format { GR_LOG_TEXT, GR_LOG_JSON };

/* path may be NULL (stderr only). Returns 0 or -errno with err filled. */
int gr_log_open(const char *path, enum gr_log_format format, bool debug, struct gr_error *err);
void gr_log_close(void);
void gr_log(enum gr_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define gr_debug(...) gr_log(GR_LOG_DEBUG, __VA_ARGS__)
#define gr_info(...) gr_log(GR_LOG_INFO, __VA_ARGS__)
#define gr_warn(...) gr_log(GR_LOG_WARN, __VA_ARGS__)
/* Long-running programs without a log file (gureumd in the foreground):
 * every message at min or above goes to stderr, and debug messages are
 * produced when min is GR_LOG_DEBUG. */
void gr_log_set_stderr_level(enum gr_log_level min);
/* Logs err->msg at error level. */
void gr_log_error(const struct gr_error *err);
/* Parses "text"/"json"; returns -EINVAL for anything else. */
int gr_log_format_parse(const char *s, enum gr_log_format *out);

#endif
