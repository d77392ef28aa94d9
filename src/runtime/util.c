/* Helpers shared by the verbs: error reporting and argument checks. */
#include "runtime.h"
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <getopt.h>

int runtime_fail(const struct gr_error *err)
{
	gr_log_error(err);
	return 1;
}

int runtime_usage(const char *verb, const char *fmt, ...)
{
	struct gr_error err = { 0 };
	char msg[GR_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	gr_error_set(&err, EINVAL, "%s: %s", verb, msg);
	return runtime_fail(&err);
}

int runtime_one_id(const char *verb, int argc, char **argv, const char **id)
{
	if (optind >= argc)
		return runtime_usage(verb, "a container id is required");
	if (optind + 1 < argc)
		return runtime_usage(verb, "unexpected argument \"%s\" after the container id", argv[optind + 1]);
	*id = argv[optind];
	return 0;
}

int runtime_print_json(json_t *j)
{
	char *s = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
	if (!s) {
		struct gr_error err = { 0 };
		gr_error_set(&err, ENOMEM, "cannot encode JSON output");
		return runtime_fail(&err);
	}
	puts(s);
	free(s);
	return 0;
}

int runtime_parse_int(const char *verb, const char *opt, const char *s, int min, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < min || v > 1 << 30)
		return runtime_usage(verb, "%s: expected an integer >= %d, got \"%s\"", opt, min, s);
	*out = (int)v;
	return 0;
}
