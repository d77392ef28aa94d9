#include "error.h"

#include <stdio.h>
#include <errno.h>
#include <string.h>

#define EINVAL_FALLBACK EINVAL

int gr_error_setv(struct gr_error *err, int code, const char *fmt, va_list ap)
{
	if (code < 0)
		code = -code;
	if (code == 0)
		code = EINVAL_FALLBACK;
	if (err) {
		err->code = code;
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	}
	return -code;
}

int gr_error_set(struct gr_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = gr_error_setv(err, code, fmt, ap);
	va_end(ap);
	return r;
}

int gr_error_sys(struct gr_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = gr_error_setv(err, code, fmt, ap);
	va_end(ap);
	if (err) {
		size_t n = strlen(err->msg);
		snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(-r));
	}
	return r;
}

int gr_error_prefix(struct gr_error *err, const char *fmt, ...)
{
	if (!err)
		return -EINVAL_FALLBACK;
	char prefix[GR_ERROR_MSG_MAX], old[GR_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	size_t n = strlen(prefix);
	if (n > sizeof(err->msg) - 3)
		n = sizeof(err->msg) - 3;
	memcpy(err->msg, prefix, n);
	memcpy(err->msg + n, ": ", 2);
	size_t room = sizeof(err->msg) - n - 2;
	size_t m = strnlen(old, room - 1);
	memcpy(err->msg + n + 2, old, m);
	err->msg[n + 2 + m] = '\0';
	if (err->code == 0)
		err->code = EINVAL_FALLBACK;
	return -err->code;
}

void gr_error_clear(struct gr_error *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}
