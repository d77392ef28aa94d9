/* push (a file written atomically: a temporary file in the same directory,
 * renamed over the target once FILE_END arrives) and pull (a regular file
 * read out in FILE_DATA frames). */
#include "agent_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json.h"

#define PULL_CHUNK (64u * 1024)

const char *agent_path_check(const char *path)
{
	size_t n = strlen(path);
	if (path[0] != '/')
		return "must be an absolute path";
	if (n >= PATH_MAX)
		return "is too long";
	if (n == 1)
		return "is the root directory";
	if (path[n - 1] == '/')
		return "must not end with '/'";
	for (const char *c = path; *c;) {
		while (*c == '/')
			c++;
		const char *end = strchrnul(c, '/');
		if (end - c == 2 && c[0] == '.' && c[1] == '.')
			return "must not have a \"..\" component";
		c = end;
	}
	return NULL;
}

/* ---- push ---- */

static void push_clear(struct push_session *s)
{
	if (s->fd >= 0)
		close(s->fd);
	if (s->tmpname[0] && s->dirfd >= 0)
		unlinkat(s->dirfd, s->tmpname, 0);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->name);
	free(s->path);
	*s = (struct push_session){ .dirfd = -1, .fd = -1 };
}

/* The request's reply is an ERROR now; its FILE_DATA is skipped up to FILE_END. */
static void push_fail(struct agent_port *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void push_fail(struct agent_port *p, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	push_clear(&p->push);
	p->push.discard = true;
	p->session = SESSION_PUSH;
	port_request_error(p, "%s", msg);
}

void push_start(struct agent_port *p, json_t *req)
{
	struct push_session *s = &p->push;
	*s = (struct push_session){ .dirfd = -1, .fd = -1, .mode = 0644 };
	struct gr_error e = { 0 };
	const char *path = NULL;
	int r = gr_json_get_string(req, "push", "path", &path, &e);
	if (r <= 0) {
		push_fail(p, "%s", r < 0 ? e.msg : "push: \"path\" is required");
		return;
	}
	const char *why = agent_path_check(path);
	if (why) {
		push_fail(p, "push: path \"%.512s\" %s", path, why);
		return;
	}
	if (gr_json_get_uint32(req, "push", "mode", &s->mode, &e) < 0 ||
	    gr_json_get_uint32(req, "push", "uid", &s->uid, &e) < 0 ||
	    gr_json_get_uint32(req, "push", "gid", &s->gid, &e) < 0) {
		push_fail(p, "%s", e.msg);
		return;
	}
	if (s->mode > 07777) {
		push_fail(p, "push.mode: %u is not a file mode (0 to 07777, as a number: 420 is 0644)", s->mode);
		return;
	}
	if (s->uid == UINT32_MAX || s->gid == UINT32_MAX) {
		push_fail(p, "push: uid and gid must be below 4294967295");
		return;
	}
	const char *slash = strrchr(path, '/');
	size_t dlen = slash == path ? 1 : (size_t)(slash - path);
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%.*s", (int)dlen, path);
	s->path = strdup(path);
	s->name = strdup(slash + 1);
	if (!s->path || !s->name) {
		push_fail(p, "push: out of memory");
		return;
	}
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		push_fail(p, "push %.512s: cannot open the directory %.512s: %s", path, dir, strerror(errno));
		return;
	}
	struct stat st;
	if (fstatat(s->dirfd, s->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
		push_fail(p, "push %.512s: is a directory", path);
		return;
	}
	for (int tries = 0; tries < 16; tries++) {
		uint64_t rnd = 0;
		if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
			rnd ^= (uint64_t)getpid() << 32 ^ (uint64_t)tries ^ (uint64_t)(uintptr_t)s;
		snprintf(s->tmpname, sizeof(s->tmpname), ".gureum-push-%016llx", (unsigned long long)rnd);
		s->fd = openat(s->dirfd, s->tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (s->fd >= 0 || errno != EEXIST)
			break;
	}
	if (s->fd < 0) {
		s->tmpname[0] = 0;
		push_fail(p, "push %.512s: cannot create a temporary file in %.512s: %s", path, dir, strerror(errno));
		return;
	}
	p->session = SESSION_PUSH;
}

static void push_finish(struct agent_port *p)
{
	struct push_session *s = &p->push;
	/* chown before chmod: chown clears the set-id bits. */
	if (fchown(s->fd, s->uid, s->gid) < 0 && !(errno == EPERM && s->uid == geteuid() && s->gid == getegid())) {
		push_fail(p, "push %.512s: chown %u:%u: %s", s->path, s->uid, s->gid, strerror(errno));
		return;
	}
	if (fchmod(s->fd, s->mode) < 0) {
		push_fail(p, "push %.512s: chmod %o: %s", s->path, s->mode, strerror(errno));
		return;
	}
	if (fsync(s->fd) < 0) {
		push_fail(p, "push %.512s: fsync: %s", s->path, strerror(errno));
		return;
	}
	if (renameat(s->dirfd, s->tmpname, s->dirfd, s->name) < 0) {
		push_fail(p, "push %.512s: rename: %s", s->path, strerror(errno));
		return;
	}
	s->tmpname[0] = 0;
	agent_logf(p->agent, "port %s: pushed %s (%llu bytes, mode %o)", p->name, s->path,
		   (unsigned long long)s->size, s->mode);
	uint64_t size = s->size;
	push_clear(s);
	p->session = SESSION_IDLE;
	port_queue_json(p, AGENT_RESPONSE, json_pack("{s:I}", "size", (json_int_t)size));
}

void push_frame(struct agent_port *p, const struct agent_frame *f)
{
	struct push_session *s = &p->push;
	if (f->type == AGENT_FILE_END) {
		if (s->discard) {
			push_clear(s);
			p->session = SESSION_IDLE;  /* its ERROR was the reply */
			return;
		}
		push_finish(p);
		if (p->session == SESSION_PUSH) {  /* failed: the ERROR was sent */
			push_clear(s);
			p->session = SESSION_IDLE;
		}
		return;
	}
	if (s->discard)
		return;
	const uint8_t *d = f->payload;
	size_t left = f->payload_len;
	while (left > 0) {
		ssize_t w = write(s->fd, d, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			push_fail(p, "push %.512s: write: %s", s->path, w < 0 ? strerror(errno) : "no progress");
			return;
		}
		d += w;
		left -= (size_t)w;
		s->size += (uint64_t)w;
	}
}

void push_abort(struct agent_port *p)
{
	push_clear(&p->push);
}

/* ---- pull ---- */

void pull_start(struct agent_port *p, json_t *req)
{
	struct gr_error e = { 0 };
	const char *path = NULL;
	int r = gr_json_get_string(req, "pull", "path", &path, &e);
	if (r <= 0) {
		port_request_error(p, "%s", r < 0 ? e.msg : "pull: \"path\" is required");
		return;
	}
	const char *why = agent_path_check(path);
	if (why) {
		port_request_error(p, "pull: path \"%.512s\" %s", path, why);
		return;
	}
	/* O_NONBLOCK: a FIFO must not hang the agent; it is refused below. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		port_request_error(p, "pull %.512s: %s", path, strerror(errno));
		return;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e2 = errno;
		close(fd);
		port_request_error(p, "pull %.512s: %s", path, strerror(e2));
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		port_request_error(p, "pull %.512s: %s", path,
				   S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
		return;
	}
	p->pull.fd = fd;
	p->pull.path = strdup(path);
	p->session = SESSION_PULL;
	port_queue_json(p, AGENT_RESPONSE, json_pack("{s:i, s:I, s:I, s:I}", "mode", (int)(st.st_mode & 07777),
						     "size", (json_int_t)st.st_size, "uid", (json_int_t)st.st_uid,
						     "gid", (json_int_t)st.st_gid));
}

void pull_produce(struct agent_port *p)
{
	struct pull_session *s = &p->pull;
	while (p->state == PORT_OPEN && p->session == SESSION_PULL && agent_buf_pending(&p->out) < AGENT_OUT_HIGH) {
		uint8_t buf[PULL_CHUNK];
		ssize_t n = read(s->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0) {
			port_queue(p, AGENT_FILE_DATA, buf, (size_t)n);
			continue;
		}
		if (n == 0) {
			port_queue(p, AGENT_FILE_END, NULL, 0);
			agent_logf(p->agent, "port %s: pulled %s", p->name, s->path ? s->path : "?");
		} else {
			port_request_error(p, "pull %.512s: read: %s", s->path ? s->path : "?", strerror(errno));
		}
		pull_abort(p);
		p->session = SESSION_IDLE;
	}
}

void pull_abort(struct agent_port *p)
{
	if (p->pull.fd >= 0)
		close(p->pull.fd);
	free(p->pull.path);
	p->pull = (struct pull_session){ .fd = -1 };
}
