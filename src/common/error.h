/* One error convention for the whole tree: functions return 0 (or a
 * non-negative result) on success and a negative errno on failure, after
 * filling a struct gr_error with a message that says what failed, where and
 * with which value. Libraries never print and never exit. */
#ifndef GR_ERROR_H
#define GR_ERROR_H

#include <stdarg.h>

#define GR_ERROR_MSG_MAX 1024

struct gr_error {
	int code;                    /* positive errno, 0 when no error */
	char msg[GR_ERROR_MSG_MAX];  /* human-readable, no trailing newline */
};

/* Records an error; returns -code (code is a positive errno, EINVAL when 0). */
int gr_error_set(struct gr_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int gr_error_setv(struct gr_error *err, int code, const char *fmt, va_list ap);

/* Records an error and appends ": strerror(code)". */
int gr_error_sys(struct gr_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepends context ("while doing X: ") to an error already set; returns -code. */
int gr_error_prefix(struct gr_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void gr_error_clear(struct gr_error *err);

#endif
