#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct {
	int fd;
	enum gr_log_format format;
	bool debug;
	int stderr_min;              /* -1: the default rule in log_line */
} g_log = { .fd = -1, .format = GR_LOG_TEXT, .debug = false, .stderr_min = -1 };

void gr_log_set_stderr_level(enum gr_log_level min)
{
	g_log.stderr_min = (int)min;
	g_log.debug = min == GR_LOG_DEBUG;
}

static const char *const level_names[] = { "debug", "info", "warning", "error" };

int gr_log_open(const char *path, enum gr_log_format format, bool debug, struct gr_error *err)
{
	g_log.format = format;
	g_log.debug = debug;
	if (!path)
		return 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot open log file %s", path);
	if (g_log.fd >= 0)
		close(g_log.fd);
	g_log.fd = fd;
	return 0;
}

void gr_log_close(void)
{
	if (g_log.fd >= 0)
		close(g_log.fd);
	g_log.fd = -1;
}

int gr_log_format_parse(const char *s, enum gr_log_format *out)
{
	if (strcmp(s, "text") == 0)
		*out = GR_LOG_TEXT;
	else if (strcmp(s, "json") == 0)
		*out = GR_LOG_JSON;
	else
		return -EINVAL;
	return 0;
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static void log_line(enum gr_log_level level, const char *msg)
{
	if (g_log.fd >= 0) {
		char ts[64];
		struct timespec now;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &now);
		gmtime_r(&now.tv_sec, &tm);
		size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(ts + n, sizeof(ts) - n, ".%09ldZ", now.tv_nsec);
		if (g_log.format == GR_LOG_JSON) {
			json_t *o = json_pack("{s:s, s:s, s:s}", "level", level_names[level],
					      "msg", msg, "time", ts);
			char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
			if (s) {
				write_all(g_log.fd, s, strlen(s));
				write_all(g_log.fd, "\n", 1);
			}
			free(s);
			json_decref(o);
		} else {
			char line[GR_ERROR_MSG_MAX + 128];
			int len = snprintf(line, sizeof(line), "%s %s %s\n", ts, level_names[level], msg);
			if (len > 0)
				write_all(g_log.fd, line, (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1);
		}
	}
	/* Errors always reach stderr; debug output only when asked and no log file. */
	bool to_stderr = g_log.stderr_min >= 0 ? (level == GR_LOG_ERROR || (g_log.fd < 0 && (int)level >= g_log.stderr_min))
					       : (level == GR_LOG_ERROR || (level >= GR_LOG_WARN && g_log.fd < 0) ||
						  (g_log.debug && g_log.fd < 0));
	if (to_stderr) {
		char line[GR_ERROR_MSG_MAX + 64];
		int len = snprintf(line, sizeof(line), "%s%s\n",
				   level == GR_LOG_ERROR ? "error: " :
				   level == GR_LOG_WARN ? "warning: " : "", msg);
		if (len > 0)
			write_all(STDERR_FILENO, line, (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1);
	}
}

void gr_log(enum gr_log_level level, const char *fmt, ...)
{
	if (level == GR_LOG_DEBUG && !g_log.debug)
		return;
	char msg[GR_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	int saved = errno;
	log_line(level, msg);
	errno = saved;
}

void gr_log_error(const struct gr_error *err)
{
	log_line(GR_LOG_ERROR, err->msg[0] ? err->msg : "unknown error");
}
