/* The host side of the guest agent protocol (agent_client.h). */
#include "daemon/vm/agent_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Milliseconds left until deadline, for poll (at least 0). */
static int left_ms(int64_t deadline)
{
	int64_t l = deadline - now_ms();
	return l < 0 ? 0 : l > 3600000 ? 3600000 : (int)l;
}

int agent_error_errno(const char *msg)
{
	if (!msg)
		return EIO;
	if (strstr(msg, strerror(ENOENT)) || strstr(msg, "not found"))
		return ENOENT;
	if (strstr(msg, "is a directory") || strstr(msg, strerror(EISDIR)))
		return EISDIR;
	if (strstr(msg, strerror(ENOTDIR)))
		return ENOTDIR;
	if (strstr(msg, strerror(EACCES)) || strstr(msg, strerror(EPERM)))
		return EACCES;
	if (strstr(msg, "not a regular file"))
		return EINVAL;
	if (strstr(msg, strerror(ENOSPC)))
		return ENOSPC;
	return EIO;
}

/* ---- connection ---- */

static void drop_socket(struct agent_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	json_decref(c->hello);
	c->hello = NULL;
	agent_buf_reset(&c->in);
	agent_buf_reset(&c->out);
	c->taken = 0;
	c->broken = false;
}

void agent_client_close(struct agent_client *c)
{
	drop_socket(c);
	agent_buf_free(&c->in);
	agent_buf_free(&c->out);
	if (c->lock_fd >= 0)
		close(c->lock_fd);   /* releases the flock */
	if (c->dir_fd >= 0)
		close(c->dir_fd);
	c->lock_fd = c->dir_fd = -1;
}

/* Takes port n's lock: 1 taken, 0 busy, -errno. */
static int lock_port(struct agent_client *c, unsigned n, struct gr_error *err)
{
	char name[32];
	snprintf(name, sizeof(name), "agent.%u.lock", n);
	int fd = openat(c->dir_fd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return gr_error_sys(err, errno, "cannot open the agent port lock %s", name);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK)
			return 0;
		return gr_error_sys(err, e, "cannot lock %s", name);
	}
	c->lock_fd = fd;
	c->port = n;
	return 1;
}

/* One connect to agent.N.sock (or vsock.sock): 0, or -errno (ENOENT,
 * ECONNREFUSED: nobody listens; EAGAIN: backlog full). */
static int connect_socket(struct agent_client *c, struct gr_error *err)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char name[32];
	if (c->vsock)
		snprintf(name, sizeof(name), AGENT_CLIENT_VSOCK_SOCK);
	else
		snprintf(name, sizeof(name), "agent.%u.sock", c->port);
	snprintf(a.sun_path, sizeof(a.sun_path), "/proc/self/fd/%d/%s", c->dir_fd, name);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return gr_error_sys(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		close(fd);
		if (c->vsock)
			return gr_error_sys(err, e, "cannot connect to the VM's vsock socket %s", name);
		return gr_error_sys(err, e, "cannot connect to the agent's port %s", name);
	}
	c->fd = fd;
	return 0;
}

/* gureum-vmm's hybrid vsock handshake on a new connection: "CONNECT
 * <port>\n", then "OK <host port>\n" within timeout_ms. Bytes after the
 * line (the agent's HELLO may come with it) stay in c->in. 0; -ECONNREFUSED
 * (closed without an answer: nothing listens on the guest's port yet, or
 * its vsock driver is not up), -ETIMEDOUT (the caller retries); -EPROTO
 * (another answer: not gureum-vmm's vsock), -errno. */
static int vsock_handshake(struct agent_client *c, int timeout_ms, struct gr_error *err)
{
	char req[32];
	int n = snprintf(req, sizeof(req), "CONNECT %u\n", c->port);
	ssize_t w;
	while ((w = send(c->fd, req, (size_t)n, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
		return gr_error_set(err, ECONNREFUSED, "the VM's vsock socket closed the connection before CONNECT %u",
				    c->port);
	if (w != n)   /* a new unix socket's buffer takes 14 bytes at once */
		return gr_error_sys(err, w < 0 ? errno : EIO, "cannot send CONNECT %u to the VM's vsock socket", c->port);
	int64_t deadline = now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	for (;;) {
		const uint8_t *head = agent_buf_head(&c->in);
		size_t have = agent_buf_pending(&c->in);
		const uint8_t *nl = have ? memchr(head, '\n', have) : NULL;
		if (nl || have >= AGENT_CLIENT_VSOCK_LINE_MAX) {
			size_t len = nl ? (size_t)(nl - head) : have;
			char line[AGENT_CLIENT_VSOCK_LINE_MAX + 1], shown[4 * AGENT_CLIENT_VSOCK_LINE_MAX + 1];
			size_t k = 0;
			for (size_t i = 0; i < len && i < AGENT_CLIENT_VSOCK_LINE_MAX; i++) {
				line[i] = (char)head[i];
				if (head[i] >= 0x20 && head[i] < 0x7f)
					shown[k++] = (char)head[i];
				else
					k += (size_t)snprintf(shown + k, sizeof(shown) - k, "\\x%02x", head[i]);
			}
			line[len < AGENT_CLIENT_VSOCK_LINE_MAX ? len : AGENT_CLIENT_VSOCK_LINE_MAX] = '\0';
			shown[k] = '\0';
			uint64_t port;
			if (!nl || strncmp(line, "OK ", 3) != 0 || line[3] < '0' || line[3] > '9' ||
			    gr_parse_u64(line + 3, &port) < 0 || port > UINT32_MAX) {
				c->broken = true;
				return gr_error_set(err, EPROTO, "the VM's vsock socket answered CONNECT %u with \"%s\"%s, not "
						    "\"OK <port>\" (is it gureum-vmm's?)", c->port, shown,
						    nl ? "" : " and no end of line");
			}
			c->vsock_host_port = (unsigned long)port;
			agent_buf_consume(&c->in, len + 1);
			return 0;
		}
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int k = poll(&p, 1, left_ms(deadline));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return gr_error_sys(err, errno, "poll");
		if (k == 0)
			return gr_error_set(err, ETIMEDOUT, "no answer to CONNECT %u from the VM's vsock socket within %d ms",
					    c->port, timeout_ms);
		/* One byte short of the limit at most: what follows the line is the agent's. */
		ssize_t r = agent_client_read_some(c, err);
		if (r == -EAGAIN)
			continue;
		if (r < 0)
			return (int)r;
		if (r == 0)
			return gr_error_set(err, ECONNREFUSED, "the guest's vsock port %u refused the connection (its agent "
					    "is not listening yet, or the guest has no vsock driver)", c->port);
	}
}

/* Waits for HELLO: 0 with c->hello, -ETIMEDOUT, or another -errno (EOF,
 * not a HELLO, not frames): the caller reconnects. */
static int wait_hello(struct agent_client *c, int timeout_ms, struct gr_error *err)
{
	struct agent_frame f;
	int r = agent_client_recv(c, &f, timeout_ms, err);
	if (r < 0)
		return r;
	if (f.type != AGENT_HELLO)
		return gr_error_set(err, EPROTO, "the agent's first frame was %s, not HELLO (an old session's output)",
				    agent_frame_type_name(f.type));
	json_t *h = agent_frame_json(&f, err);
	if (!h)
		return -EPROTO;
	json_int_t v = json_integer_value(json_object_get(h, "version"));
	if (v != AGENT_PROTO_VERSION) {
		json_decref(h);
		c->broken = true;
		return gr_error_set(err, EPROTONOSUPPORT, "the guest agent speaks protocol version %lld, gureum %d",
				    (long long)v, AGENT_PROTO_VERSION);
	}
	c->hello = h;
	return 0;
}

static int connect_ports(struct agent_client *c, const char *dir, int first, int last, bool try_vsock, int timeout_ms,
			 struct gr_error *err)
{
	drop_socket(c);
	if (c->lock_fd >= 0)
		close(c->lock_fd);
	c->lock_fd = -1;
	if (c->dir_fd >= 0)
		close(c->dir_fd);
	c->vsock = false;
	c->vsock_host_port = 0;
	c->dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (c->dir_fd < 0)
		return gr_error_sys(err, errno, "cannot open %s (is the VM running?)", dir);
	int64_t deadline = now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	int64_t backoff = AGENT_CLIENT_BACKOFF_MS, hello = AGENT_CLIENT_HELLO_MS;
	struct gr_error last_err = { 0 };
	int r;
	for (;;) {
		/* gureum-vmm's run directory has vsock.sock (every session its own
		 * connection), made once gureum-vmm runs: a VM just started may not
		 * have it yet, so it is looked for at every attempt. */
		if (try_vsock && !c->vsock && faccessat(c->dir_fd, AGENT_CLIENT_VSOCK_SOCK, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
			if (c->lock_fd >= 0)
				close(c->lock_fd);
			c->lock_fd = -1;
			c->vsock = true;
			c->port = AGENT_CLIENT_VSOCK_PORT;
		}
		if (!c->vsock && c->lock_fd < 0) {
			for (int n = first; n <= last && c->lock_fd < 0; n++)
				if ((r = lock_port(c, (unsigned)n, err)) < 0)
					return r;
			if (c->lock_fd < 0) {
				if (first == last)
					gr_error_set(&last_err, EBUSY, "the agent port agent.%d of %s is in use by another session",
						     first, dir);
				else
					gr_error_set(&last_err, EBUSY, "all %d agent ports of %s are in use by other sessions",
						     last - first + 1, dir);
				goto retry;
			}
		}
		if ((r = connect_socket(c, &last_err)) < 0)
			goto retry;
		int wait = (int)(hello < left_ms(deadline) ? hello : left_ms(deadline));
		if (wait < 1)
			wait = 1;
		if (c->vsock && (r = vsock_handshake(c, wait, &last_err)) < 0) {
			drop_socket(c);
			if (r == -EPROTO) {
				*err = last_err;
				return r;
			}
			if (r == -ETIMEDOUT)
				hello = hello * 2 > AGENT_CLIENT_HELLO_MAX_MS ? AGENT_CLIENT_HELLO_MAX_MS : hello * 2;
			goto retry;
		}
		if (c->vsock && wait > left_ms(deadline)) /* the handshake took some of it */
			wait = left_ms(deadline) > 0 ? left_ms(deadline) : 1;
		if ((r = wait_hello(c, wait, &last_err)) == 0)
			return 0;
		if (r == -EPROTONOSUPPORT) {
			*err = last_err;
			drop_socket(c);
			return r;
		}
		drop_socket(c);
		if (r == -ETIMEDOUT) {
			if (c->vsock)
				gr_error_set(&last_err, ETIMEDOUT, "the guest agent on vsock port %u of %s did not say HELLO",
					     c->port, dir);
			else
				gr_error_set(&last_err, ETIMEDOUT, "the guest agent on agent.%u of %s did not say HELLO", c->port,
					     dir);
			hello = hello * 2 > AGENT_CLIENT_HELLO_MAX_MS ? AGENT_CLIENT_HELLO_MAX_MS : hello * 2;
		}
	retry:
		if (now_ms() + backoff > deadline) {
			*err = last_err;
			if (c->lock_fd >= 0)
				close(c->lock_fd);
			c->lock_fd = -1;
			return -last_err.code;
		}
		sleep_ms(backoff);
		backoff = backoff * 2 > AGENT_CLIENT_BACKOFF_MAX_MS ? AGENT_CLIENT_BACKOFF_MAX_MS : backoff * 2;
	}
}

int agent_client_connect(struct agent_client *c, const char *dir, int timeout_ms, struct gr_error *err)
{
	return connect_ports(c, dir, 0, AGENT_CLIENT_PORTS - 1, true, timeout_ms, err);
}

int agent_client_connect_port(struct agent_client *c, const char *dir, unsigned port, int timeout_ms,
			      struct gr_error *err)
{
	if (port >= 1000)
		return gr_error_set(err, EINVAL, "agent port %u: at most 3 digits", port);
	return connect_ports(c, dir, (int)port, (int)port, false, timeout_ms, err);
}

/* ---- frames ---- */

int agent_client_queue(struct agent_client *c, unsigned type, const void *payload, size_t len, struct gr_error *err)
{
	int r = agent_buf_append_frame(&c->out, type, payload, len);
	if (r == -EMSGSIZE)
		return gr_error_set(err, EMSGSIZE, "a %s frame of %zu bytes is over the protocol's limit (%u)",
				    agent_frame_type_name(type), len, AGENT_PAYLOAD_MAX);
	if (r < 0)
		return gr_error_set(err, -r, "cannot queue a %s frame", agent_frame_type_name(type));
	return 0;
}

int agent_client_queue_json(struct agent_client *c, unsigned type, const json_t *obj, struct gr_error *err)
{
	gr_autofree char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	if (!text)
		return gr_error_set(err, ENOMEM, "cannot encode a %s frame", agent_frame_type_name(type));
	return agent_client_queue(c, type, text, strlen(text), err);
}

int agent_client_write_some(struct agent_client *c, struct gr_error *err)
{
	while (agent_buf_pending(&c->out) > 0) {
		ssize_t n = send(c->fd, agent_buf_head(&c->out), agent_buf_pending(&c->out), MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0) {
			c->broken = true;
			return gr_error_sys(err, errno, "cannot write to the guest agent");
		}
		agent_buf_consume(&c->out, (size_t)n);
	}
	agent_buf_reset(&c->out);
	return 0;
}

int agent_client_flush(struct agent_client *c, int timeout_ms, struct gr_error *err)
{
	int r;
	while (agent_buf_pending(&c->out) > 0) {
		if ((r = agent_client_write_some(c, err)) < 0)
			return r;
		if (agent_buf_pending(&c->out) == 0)
			break;
		struct pollfd p = { .fd = c->fd, .events = POLLOUT };
		int k = poll(&p, 1, timeout_ms);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return gr_error_sys(err, errno, "poll");
		if (k == 0) {
			c->broken = true;
			return gr_error_set(err, ETIMEDOUT, "the guest agent did not read for %d ms", timeout_ms);
		}
	}
	return 0;
}

ssize_t agent_client_read_some(struct agent_client *c, struct gr_error *err)
{
	if (agent_buf_reserve(&c->in, 65536) < 0)
		return gr_error_set(err, ENOMEM, "out of memory");
	for (;;) {
		ssize_t n = read(c->fd, c->in.data + c->in.len, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return -EAGAIN;
		if (n < 0) {
			if (errno == ECONNRESET)
				return 0;
			return gr_error_sys(err, errno, "cannot read from the guest agent");
		}
		c->in.len += (size_t)n;
		return n;
	}
}

int agent_client_next(struct agent_client *c, struct agent_frame *f, struct gr_error *err)
{
	if (c->taken) {
		agent_buf_consume(&c->in, c->taken);
		c->taken = 0;
	}
	if (agent_buf_pending(&c->in) == 0) {
		agent_buf_reset(&c->in);
		return 0;
	}
	enum agent_parse_error why;
	int r = agent_frame_parse(agent_buf_head(&c->in), agent_buf_pending(&c->in), f, &why, NULL);
	if (r < 0) {
		c->broken = true;
		return gr_error_set(err, EPROTO, "the guest agent sent bytes that are not a frame: %s",
				    agent_parse_error_str(why));
	}
	if (r == 0)
		return 0;
	if (!agent_frame_from_agent(f->type)) {
		c->broken = true;
		return gr_error_set(err, EPROTO, "the guest agent sent a %s frame, which only the host sends",
				    agent_frame_type_name(f->type));
	}
	c->taken = f->size;
	return 1;
}

int agent_client_recv(struct agent_client *c, struct agent_frame *f, int timeout_ms, struct gr_error *err)
{
	int r;
	if (c->fd < 0)
		return gr_error_set(err, ENOTCONN, "not connected to the guest agent");
	int64_t deadline = now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	for (;;) {
		if ((r = agent_client_next(c, f, err)) != 0)
			return r;
		if ((r = agent_client_write_some(c, err)) < 0)
			return r;
		struct pollfd p = { .fd = c->fd, .events = POLLIN | (agent_buf_pending(&c->out) ? POLLOUT : 0) };
		int k = poll(&p, 1, left_ms(deadline));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return gr_error_sys(err, errno, "poll");
		if (k == 0)
			return gr_error_set(err, ETIMEDOUT, "the guest agent did not answer within %d ms", timeout_ms);
		if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		ssize_t n = agent_client_read_some(c, err);
		if (n == -EAGAIN)
			continue;
		if (n < 0)
			return (int)n;
		if (n == 0) {
			c->broken = true;
			return gr_error_set(err, ECONNRESET, "the guest agent's connection ended");
		}
	}
}

json_t *agent_frame_json(const struct agent_frame *f, struct gr_error *err)
{
	json_error_t je;
	json_t *j = json_loadb((const char *)f->payload, f->payload_len, JSON_REJECT_DUPLICATES, &je);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		gr_error_set(err, EPROTO, "the guest agent's %s frame is not a JSON object%s%s",
			     agent_frame_type_name(f->type), j ? "" : ": ", j ? "" : je.text);
		return NULL;
	}
	return j;
}

int agent_client_error_frame(struct agent_client *c, const struct agent_frame *f, struct gr_error *err)
{
	gr_autojson json_t *j = agent_frame_json(f, err);
	if (!j) {
		c->broken = true;
		return -EPROTO;
	}
	const char *msg = json_string_value(json_object_get(j, "error"));
	bool fatal = json_is_true(json_object_get(j, "fatal"));
	if (fatal)
		c->broken = true;
	return gr_error_set(err, fatal ? EPROTO : agent_error_errno(msg), "%s%s",
			    fatal ? "guest agent protocol error: " : "", msg ? msg : "the guest agent failed (no message)");
}

/* Sends a REQUEST and waits for its RESPONSE (or ERROR): *out (optional)
 * gets the RESPONSE object. */
static int request(struct agent_client *c, json_t *req, int timeout_ms, json_t **out, struct gr_error *err)
{
	int r;
	if ((r = agent_client_queue_json(c, AGENT_REQUEST, req, err)) < 0 ||
	    (r = agent_client_flush(c, timeout_ms, err)) < 0)
		return r;
	struct agent_frame f;
	if ((r = agent_client_recv(c, &f, timeout_ms, err)) < 0)
		return r;
	if (f.type == AGENT_ERROR)
		return agent_client_error_frame(c, &f, err);
	if (f.type != AGENT_RESPONSE) {
		c->broken = true;
		return gr_error_set(err, EPROTO, "the guest agent answered with %s instead of RESPONSE",
				    agent_frame_type_name(f.type));
	}
	json_t *j = agent_frame_json(&f, err);
	if (!j) {
		c->broken = true;
		return -EPROTO;
	}
	if (out)
		*out = j;
	else
		json_decref(j);
	return 0;
}

int agent_client_health(struct agent_client *c, int timeout_ms, json_t **out, struct gr_error *err)
{
	gr_autojson json_t *req = json_pack("{s:s}", "op", "health");
	return request(c, req, timeout_ms, out, err);
}

int agent_client_shutdown(struct agent_client *c, bool reboot, int timeout_ms, struct gr_error *err)
{
	gr_autojson json_t *req = json_pack("{s:s, s:b}", "op", "shutdown", "reboot", reboot);
	return request(c, req, timeout_ms, NULL, err);
}

/* ---- files ---- */

/* An early ERROR for a push in progress, without waiting: 1 (err set), 0 none, -errno. */
static int push_early_error(struct agent_client *c, struct gr_error *err)
{
	for (;;) {
		struct agent_frame f;
		int r = agent_client_next(c, &f, err);
		if (r < 0)
			return r;
		if (r == 1) {
			if (f.type == AGENT_ERROR) {
				agent_client_error_frame(c, &f, err);
				return 1;
			}
			c->broken = true;
			return gr_error_set(err, EPROTO, "the guest agent sent %s during a push",
					    agent_frame_type_name(f.type));
		}
		ssize_t n = agent_client_read_some(c, err);
		if (n == -EAGAIN)
			return 0;
		if (n < 0)
			return (int)n;
		if (n == 0) {
			c->broken = true;
			return gr_error_set(err, ECONNRESET, "the guest agent's connection ended during a push");
		}
	}
}

int agent_client_push(struct agent_client *c, const char *path, int fd, const struct agent_file_meta *meta,
		      int timeout_ms, uint64_t *size, struct gr_error *err)
{
	int r;
	gr_autojson json_t *req = json_pack("{s:s, s:s, s:I, s:I, s:I}", "op", "push", "path", path, "mode",
					    (json_int_t)(meta->mode & 07777), "uid", (json_int_t)meta->uid, "gid",
					    (json_int_t)meta->gid);
	if (!req)
		return gr_error_set(err, ENOMEM, "out of memory");
	if ((r = agent_client_queue_json(c, AGENT_REQUEST, req, err)) < 0)
		return r;
	gr_autofree uint8_t *buf = malloc(AGENT_CLIENT_CHUNK);
	if (!buf)
		return gr_error_set(err, ENOMEM, "out of memory");
	struct gr_error early = { 0 };
	bool failed = false;
	for (;;) {
		ssize_t n = read(fd, buf, AGENT_CLIENT_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* The agent leaves nothing behind when we disconnect mid-push. */
			c->broken = true;
			return gr_error_sys(err, errno, "push %s: cannot read the data", path);
		}
		if (n == 0)
			break;
		if ((r = agent_client_queue(c, AGENT_FILE_DATA, buf, (size_t)n, err)) < 0 ||
		    (r = agent_client_flush(c, timeout_ms, err)) < 0)
			return r;
		if ((r = push_early_error(c, &early)) < 0) {
			*err = early;
			return r;
		}
		if (r == 1) {
			/* Refused: the agent skips FILE_DATA up to FILE_END, and
			 * sends nothing more for this push. */
			failed = true;
			break;
		}
	}
	if ((r = agent_client_queue(c, AGENT_FILE_END, NULL, 0, err)) < 0 ||
	    (r = agent_client_flush(c, timeout_ms, err)) < 0)
		return r;
	if (failed) {
		*err = early;
		return -early.code;
	}
	struct agent_frame f;
	if ((r = agent_client_recv(c, &f, timeout_ms, err)) < 0)
		return r;
	if (f.type == AGENT_ERROR)
		return agent_client_error_frame(c, &f, err);
	if (f.type != AGENT_RESPONSE) {
		c->broken = true;
		return gr_error_set(err, EPROTO, "the guest agent ended a push with %s", agent_frame_type_name(f.type));
	}
	gr_autojson json_t *j = agent_frame_json(&f, err);
	if (!j)
		return -EPROTO;
	if (size)
		*size = (uint64_t)json_integer_value(json_object_get(j, "size"));
	return 0;
}

int agent_client_pull(struct agent_client *c, const char *path, int fd, uint64_t max, int timeout_ms,
		      struct agent_file_meta *meta, struct gr_error *err)
{
	int r;
	gr_autojson json_t *req = json_pack("{s:s, s:s}", "op", "pull", "path", path);
	gr_autojson json_t *resp = NULL;
	if (!req)
		return gr_error_set(err, ENOMEM, "out of memory");
	if ((r = request(c, req, timeout_ms, &resp, err)) < 0)
		return r;
	json_int_t mode = json_integer_value(json_object_get(resp, "mode"));
	json_int_t sz = json_integer_value(json_object_get(resp, "size"));
	*meta = (struct agent_file_meta){ .mode = (uint32_t)(mode & 07777),
					  .uid = (uint32_t)json_integer_value(json_object_get(resp, "uid")),
					  .gid = (uint32_t)json_integer_value(json_object_get(resp, "gid")),
					  .size = sz > 0 ? (uint64_t)sz : 0 };
	if (meta->size > max) {
		c->broken = true;   /* the pull goes on: only a disconnect ends it */
		return gr_error_set(err, EFBIG, "pull %s: the file has %llu bytes, more than the limit of %llu", path,
				    (unsigned long long)meta->size, (unsigned long long)max);
	}
	uint64_t got = 0;
	for (;;) {
		struct agent_frame f;
		if ((r = agent_client_recv(c, &f, timeout_ms, err)) < 0)
			return r;
		if (f.type == AGENT_FILE_END)
			return 0;
		if (f.type == AGENT_ERROR)
			return agent_client_error_frame(c, &f, err);
		if (f.type != AGENT_FILE_DATA) {
			c->broken = true;
			return gr_error_set(err, EPROTO, "the guest agent sent %s during a pull", agent_frame_type_name(f.type));
		}
		got += f.payload_len;
		if (got > max) {
			c->broken = true;
			return gr_error_set(err, EFBIG, "pull %s: the file grew beyond the limit of %llu bytes", path,
					    (unsigned long long)max);
		}
		if ((r = gr_write_all(fd, f.payload, f.payload_len)) < 0) {
			c->broken = true;
			return gr_error_sys(err, -r, "pull %s: cannot write the data", path);
		}
	}
}
