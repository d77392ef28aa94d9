/* The engine's control client for one command (engine.h), never blocking:
 * QMP (the greeting, the capabilities handshake, the command) or
 * gureum-vmm's HTTP API (one PUT /vm/actions and its answer). */
#include "daemon/supervisor/engine.h"
#include "common/cleanup.h"
#include "common/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int qmp_connect(const char *path, int *fd, struct gr_error *err)
{
	return engine_ctl_connect(ENGINE_CTL_QMP, path, fd, err);
}

int engine_ctl_connect(enum engine_ctl transport, const char *path, int *fd, struct gr_error *err)
{
	const char *what = transport == ENGINE_CTL_VMM_API ? "gureum-vmm's API" : "QMP";
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	gr_autoclose int dirfd = -1;
	size_t len = path ? strlen(path) : 0;
	if (len == 0)
		return gr_error_set(err, EINVAL, "%s: no socket path", what);
	if (len < sizeof(a.sun_path)) {
		memcpy(a.sun_path, path, len + 1);
	} else {
		/* Too long for sun_path: through its directory. */
		const char *slash = strrchr(path, '/');
		if (!slash || slash == path || strlen(slash + 1) > 64 || (size_t)(slash - path) >= PATH_MAX)
			return gr_error_set(err, ENAMETOOLONG, "%s socket path too long: %s", what, path);
		char dir[PATH_MAX];
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
		dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dirfd < 0)
			return gr_error_sys(err, errno, "cannot open the %s socket's directory %s", what, dir);
		snprintf(a.sun_path, sizeof(a.sun_path), "/proc/self/fd/%d/%s", dirfd, slash + 1);
	}
	gr_autoclose int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return gr_error_sys(err, errno, "socket");
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		return gr_error_sys(err, errno == EAGAIN ? EBUSY : errno, "cannot connect to %s at %s", what, path);
	*fd = gr_steal_fd(s);
	return 0;
}

void qmp_client_init(struct qmp_client *q, int fd, const char *command)
{
	memset(q, 0, sizeof(*q));
	q->fd = fd;
	q->transport = ENGINE_CTL_QMP;
	q->state = QMP_GREETING;
	q->events = POLLIN;
	snprintf(q->command, sizeof(q->command), "%s", command);
}

void vmm_api_client_init(struct qmp_client *q, int fd, const char *action, int timeout_s)
{
	memset(q, 0, sizeof(*q));
	q->fd = fd;
	q->transport = ENGINE_CTL_VMM_API;
	q->state = QMP_COMMAND;
	q->events = POLLOUT;
	snprintf(q->command, sizeof(q->command), "%s", action);
	char body[96];
	if (timeout_s >= 0)
		snprintf(body, sizeof(body), "{\"action\":\"%s\",\"timeout\":%d}", q->command,
			 timeout_s > 3600 ? 3600 : timeout_s);
	else
		snprintf(body, sizeof(body), "{\"action\":\"%s\"}", q->command);
	int n = snprintf(q->out, sizeof(q->out),
			 "PUT /vm/actions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", strlen(body), body);
	q->out_len = n > 0 && (size_t)n < sizeof(q->out) ? (size_t)n : 0;
}

void qmp_client_close(struct qmp_client *q)
{
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
}

static enum qmp_state fail(struct qmp_client *q, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static enum qmp_state fail(struct qmp_client *q, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	gr_error_setv(&q->err, code, fmt, ap);
	va_end(ap);
	return q->state = QMP_FAILED;
}

static void queue(struct qmp_client *q, const char *command)
{
	if (q->out_off > 0) {
		memmove(q->out, q->out + q->out_off, q->out_len - q->out_off);
		q->out_len -= q->out_off;
		q->out_off = 0;
	}
	int n = snprintf(q->out + q->out_len, sizeof(q->out) - q->out_len, "{\"execute\":\"%s\"}\n", command);
	if (n > 0 && (size_t)n < sizeof(q->out) - q->out_len)
		q->out_len += (size_t)n;
}

/* A message shortened for an error message, control bytes as '?'. */
static void excerpt(const char *msg, size_t n, char *out, size_t cap)
{
	size_t k = 0;
	for (size_t i = 0; i < n && k + 4 < cap; i++)
		out[k++] = (unsigned char)msg[i] < 0x20 || msg[i] == 0x7f ? '?' : msg[i];
	if (k < n && k + 4 >= cap)
		memcpy(out + k, "...", 3), k += 3;
	out[k] = '\0';
}

enum qmp_state qmp_client_message(struct qmp_client *q, const char *msg, size_t n)
{
	if (q->state == QMP_DONE || q->state == QMP_FAILED)
		return q->state;
	char ex[96];
	excerpt(msg, n, ex, sizeof(ex));
	json_error_t jerr;
	gr_autojson json_t *j = json_loadb(msg, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(j))
		return fail(q, EPROTO, "QMP: expected a JSON object, got \"%s\"", ex);
	if (json_object_get(j, "event"))
		return q->state; /* asynchronous, not an answer */
	if (q->state == QMP_GREETING) {
		if (!json_is_object(json_object_get(j, "QMP")))
			return fail(q, EPROTO, "QMP: expected the server's greeting {\"QMP\":...}, got \"%s\"", ex);
		queue(q, "qmp_capabilities");
		return q->state = QMP_CAPABILITIES;
	}
	const char *what = q->state == QMP_CAPABILITIES ? "qmp_capabilities" : q->command;
	json_t *e = json_object_get(j, "error");
	if (e) {
		const char *desc = json_string_value(json_object_get(e, "desc"));
		return fail(q, EPROTO, "QMP: %s refused: %s", what, desc ? desc : ex);
	}
	if (!json_object_get(j, "return"))
		return fail(q, EPROTO, "QMP: expected the answer to %s, got \"%s\"", what, ex);
	if (q->state == QMP_CAPABILITIES) {
		queue(q, q->command);
		return q->state = QMP_COMMAND;
	}
	return q->state = QMP_DONE;
}

static bool flush(struct qmp_client *q)
{
	while (q->out_off < q->out_len) {
		ssize_t n = send(q->fd, q->out + q->out_off, q->out_len - q->out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n < 0) {
			gr_error_sys(&q->err, errno, "%s: cannot send %s", q->transport == ENGINE_CTL_VMM_API ?
				     "gureum-vmm's API" : "QMP", q->state == QMP_CAPABILITIES ? "qmp_capabilities" : q->command);
			q->state = QMP_FAILED;
			return false;
		}
		q->out_off += (size_t)n;
	}
	q->out_off = q->out_len = 0;
	return true;
}

/* The complete lines in q->in, each a message. */
static void messages(struct qmp_client *q)
{
	size_t start = 0;
	for (;;) {
		char *nl = memchr(q->in + start, '\n', q->in_len - start);
		if (!nl || q->state == QMP_DONE || q->state == QMP_FAILED)
			break;
		size_t end = (size_t)(nl - q->in), len = end - start;
		if (len > 0 && q->in[start + len - 1] == '\r')
			len--;
		bool blank = true;
		for (size_t i = 0; i < len && blank; i++)
			blank = q->in[start + i] == ' ' || q->in[start + i] == '\t';
		if (!blank)
			qmp_client_message(q, q->in + start, len);
		start = end + 1;
	}
	memmove(q->in, q->in + start, q->in_len - start);
	q->in_len -= start;
}

static short io(struct qmp_client *q, short revents);

short qmp_client_io(struct qmp_client *q, short revents)
{
	return q->events = io(q, revents);
}

static short io(struct qmp_client *q, short revents)
{
	if (q->state != QMP_DONE && q->state != QMP_FAILED && !flush(q))
		return 0;
	for (int i = 0; i < 16 && (revents & (POLLIN | POLLHUP | POLLERR)) && q->state != QMP_DONE &&
			q->state != QMP_FAILED; i++) {
		if (q->in_len == sizeof(q->in)) {
			gr_error_set(&q->err, EMSGSIZE, "%s: a message over %u bytes",
				     q->transport == ENGINE_CTL_VMM_API ? "gureum-vmm's API" : "QMP", QMP_MESSAGE_MAX);
			q->state = QMP_FAILED;
			break;
		}
		ssize_t n = recv(q->fd, q->in + q->in_len, sizeof(q->in) - q->in_len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			gr_error_sys(&q->err, errno, "%s: cannot read",
				     q->transport == ENGINE_CTL_VMM_API ? "gureum-vmm's API" : "QMP");
			q->state = QMP_FAILED;
			break;
		}
		if (n == 0 && q->transport == ENGINE_CTL_VMM_API) {
			vmm_api_client_answer(q, true);
			break;
		}
		if (n == 0) {
			if (q->state == QMP_GREETING)
				fail(q, ECONNRESET, "QMP: the server closed the connection without a greeting");
			else
				fail(q, ECONNRESET, "QMP: the server closed the connection before answering %s",
				     q->state == QMP_CAPABILITIES ? "qmp_capabilities" : q->command);
			break;
		}
		q->in_len += (size_t)n;
		if (q->transport == ENGINE_CTL_VMM_API) {
			vmm_api_client_answer(q, false);
			continue;
		}
		messages(q);
		if (q->state != QMP_FAILED && !flush(q)) /* what the messages queued (also when done) */
			return 0;
	}
	if (q->state == QMP_DONE || q->state == QMP_FAILED)
		return 0;
	return (short)(POLLIN | (q->out_off < q->out_len ? POLLOUT : 0));
}

/* ---- gureum-vmm's API: the answer ---- */

/* The value of header name (case-insensitive) in the header block h (lines
 * after the status line, up to the blank one), or NULL. */
static const char *header_value(const char *h, const char *end, const char *name, size_t *len)
{
	size_t nl = strlen(name);
	for (const char *l = h; l < end;) {
		const char *e = memmem(l, (size_t)(end - l), "\r\n", 2);
		if (!e)
			e = end;
		if ((size_t)(e - l) > nl && strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
			const char *v = l + nl + 1;
			while (v < e && (*v == ' ' || *v == '\t'))
				v++;
			*len = (size_t)(e - v);
			return v;
		}
		l = e + 2;
	}
	return NULL;
}

enum qmp_state vmm_api_client_answer(struct qmp_client *q, bool eof)
{
	if (q->state == QMP_DONE || q->state == QMP_FAILED)
		return q->state;
	char ex[96];
	const char *hend = memmem(q->in, q->in_len, "\r\n\r\n", 4);
	if (!hend) {
		if (q->in_len == sizeof(q->in))
			return fail(q, EMSGSIZE, "gureum-vmm's API: an answer to %s over %u bytes", q->command,
				    QMP_MESSAGE_MAX);
		if (!eof)
			return q->state;
		if (q->in_len == 0)
			return fail(q, ECONNRESET, "gureum-vmm's API: the connection closed without an answer to %s",
				    q->command);
		excerpt(q->in, q->in_len, ex, sizeof(ex));
		return fail(q, EPROTO, "gureum-vmm's API: not an HTTP answer to %s: \"%s\"", q->command, ex);
	}
	/* "HTTP/1.x NNN " (parsed by hand: q->in is not NUL-terminated). */
	const char *c = q->in;
	unsigned status = 0;
	bool ok = q->in_len >= 13 && strncmp(c, "HTTP/1.", 7) == 0 && c[8] == ' ' && c[12] == ' ';
	for (int i = 9; ok && i < 12; i++) {
		ok = c[i] >= '0' && c[i] <= '9';
		status = status * 10 + (unsigned)(c[i] - '0');
	}
	if (!ok || status < 100 || status > 599) {
		excerpt(q->in, (size_t)(hend - q->in), ex, sizeof(ex));
		return fail(q, EPROTO, "gureum-vmm's API: not an HTTP answer to %s: \"%s\"", q->command, ex);
	}
	const char *line_end = memmem(q->in, (size_t)(hend - q->in) + 2, "\r\n", 2);
	const char *body = hend + 4;
	size_t have = q->in_len - (size_t)(body - q->in), vlen = 0;
	const char *cl = header_value(line_end + 2, hend + 2, "Content-Length", &vlen);
	if (cl) {
		char num[24];
		uint64_t want;
		snprintf(num, sizeof(num), "%.*s", (int)(vlen < sizeof(num) - 1 ? vlen : sizeof(num) - 1), cl);
		if (gr_parse_u64(num, &want) < 0)
			return fail(q, EPROTO, "gureum-vmm's API: a bad Content-Length \"%s\" in the answer to %s", num,
				    q->command);
		if (want > sizeof(q->in))
			return fail(q, EMSGSIZE, "gureum-vmm's API: an answer to %s over %u bytes", q->command,
				    QMP_MESSAGE_MAX);
		if (have < want) {
			if (eof)
				return fail(q, ECONNRESET, "gureum-vmm's API: the connection closed in the middle of the "
					    "answer to %s", q->command);
			return q->state;
		}
		have = (size_t)want;
	} else if (!eof && status != 204 && status != 304 && status >= 200) {
		return q->state;   /* a body up to the end of the connection */
	}
	q->http_status = (int)status;
	if (status >= 200 && status < 300)
		return q->state = QMP_DONE;
	json_error_t jerr;
	gr_autojson json_t *j = json_loadb(body, have, 0, &jerr);
	const char *msg = json_string_value(json_object_get(j, "error"));
	if (!msg) {
		excerpt(body, have, ex, sizeof(ex));
		msg = ex;
	}
	return fail(q, status == 409 ? EBUSY : status == 404 || status == 405 || status == 400 ? EPROTO : EIO,
		    "gureum-vmm's API: %s refused (%u): %s", q->command, status, msg);
}

int engine_ctl_execute(enum engine_ctl transport, const char *path, const char *command, int timeout_ms,
		       struct gr_error *err)
{
	int fd;
	int r = engine_ctl_connect(transport, path, &fd, err);
	if (r < 0)
		return r;
	struct qmp_client q;
	if (transport == ENGINE_CTL_VMM_API)
		vmm_api_client_init(&q, fd, command, -1);
	else
		qmp_client_init(&q, fd, command);
	const char *what = transport == ENGINE_CTL_VMM_API ? "gureum-vmm's API" : "QMP";
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	short ev = qmp_client_io(&q, 0);
	while (ev) {
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		int64_t left = timeout_ms - ((int64_t)(t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0) {
			qmp_client_close(&q);
			return gr_error_set(err, ETIMEDOUT, "%s %s at %s: no answer within %d ms", what, command, path,
					    timeout_ms);
		}
		struct pollfd p = { .fd = q.fd, .events = ev };
		int k = poll(&p, 1, (int)left);
		if (k < 0 && errno != EINTR) {
			qmp_client_close(&q);
			return gr_error_sys(err, errno, "%s %s: poll", what, command);
		}
		if (k > 0)
			ev = qmp_client_io(&q, p.revents);
	}
	qmp_client_close(&q);
	if (q.state != QMP_DONE) {
		*err = q.err;
		return -(q.err.code ? q.err.code : EIO);
	}
	return 0;
}
