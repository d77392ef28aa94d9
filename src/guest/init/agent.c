/* The agent's ports, connections and frames; requests are dispatched to
 * agent_exec.c and agent_file.c. See agent.h and docs/guest-agent.md. */
#include "agent_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"

#ifndef GR_GUEST_VERSION
#define GR_GUEST_VERSION "0"
#endif

void agent_logf(struct agent *a, const char *fmt, ...)
{
	if (!a->hooks.log)
		return;
	char line[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	a->hooks.log(a->hooks.ctx, line);
}

int agent_pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int set_fd_flags(int fd, bool async)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	if (async && fcntl(fd, F_SETOWN, getpid()) < 0)
		return -errno;
	if (fcntl(fd, F_SETFL, fl | O_NONBLOCK | (async ? O_ASYNC : 0)) < 0)
		return -errno;
	int fdfl = fcntl(fd, F_GETFD);
	if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0)
		return -errno;
	return 0;
}

int agent_new(struct agent **out, const struct agent_hooks *hooks, struct gr_error *err)
{
	struct agent *a = calloc(1, sizeof(*a));
	if (!a)
		return gr_error_set(err, ENOMEM, "agent: out of memory");
	if (hooks)
		a->hooks = *hooks;
	a->watch_fd = a->stop_fd = -1;
	/* virtio-serial ports report host (dis)connections with SIGIO
	 * (O_ASYNC); it is read from a signalfd, so it must be blocked. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGIO);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
		free(a);
		return gr_error_sys(err, errno, "agent: cannot block SIGIO");
	}
	a->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (a->sigfd < 0) {
		int e = errno;
		free(a);
		return gr_error_sys(err, e, "agent: cannot create a signalfd for SIGIO");
	}
	/* A host that leaves while we write must give EPIPE, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	*out = a;
	return 0;
}

/* ---- output ---- */

void port_queue(struct agent_port *p, unsigned type, const void *payload, size_t n)
{
	if (p->state != PORT_OPEN)
		return;
	int r = agent_buf_append_frame(&p->out, type, payload, n);
	if (r < 0)
		port_fatal(p, "cannot queue a %s frame: %s", agent_frame_type_name(type), strerror(-r));
}

void port_queue_json(struct agent_port *p, unsigned type, json_t *j)
{
	if (!j) {
		port_fatal(p, "out of memory building a %s frame", agent_frame_type_name(type));
		return;
	}
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!s) {
		port_fatal(p, "out of memory building a %s frame", agent_frame_type_name(type));
		return;
	}
	port_queue(p, type, s, strlen(s));
	free(s);
}

static void queue_error(struct agent_port *p, bool fatal, const char *msg)
{
	json_t *j = json_pack("{s:s, s:b}", "error", msg, "fatal", fatal);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	/* Even a fatal error is queued behind the frames already there, which are whole. */
	if (!s || agent_buf_append_frame(&p->out, AGENT_ERROR, s, strlen(s)) < 0)
		agent_logf(p->agent, "port %s: cannot queue the ERROR frame", p->name);
	free(s);
}

void port_request_error(struct agent_port *p, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->state != PORT_OPEN)
		return;
	agent_logf(p->agent, "port %s: request failed: %s", p->name, msg);
	queue_error(p, false, msg);
}

static void port_end_session(struct agent_port *p)
{
	enum session_kind s = p->session;
	p->session = SESSION_IDLE;
	switch (s) {
	case SESSION_IDLE:
		break;
	case SESSION_EXEC:
		p->session = SESSION_EXEC;  /* exec_abort looks at it */
		exec_abort(p);
		p->session = SESSION_IDLE;
		break;
	case SESSION_PUSH:
		push_abort(p);
		break;
	case SESSION_PULL:
		pull_abort(p);
		break;
	case SESSION_SHUTDOWN:
		/* The host left before reading the RESPONSE: shut down all the same. */
		if (p->agent->hooks.shutdown)
			p->agent->hooks.shutdown(p->agent->hooks.ctx, p->shutdown_reboot);
		break;
	}
}

static void port_close(struct agent_port *p)
{
	port_end_session(p);
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	agent_buf_free(&p->in);
	agent_buf_free(&p->out);
	p->state = PORT_GONE;
}

void port_fatal(struct agent_port *p, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->state != PORT_OPEN)
		return;
	agent_logf(p->agent, "port %s: protocol error, closing the connection: %s", p->name, msg);
	port_end_session(p);
	agent_buf_reset(&p->in);
	queue_error(p, true, msg);
	p->state = p->kind == AGENT_PORT_STREAM ? PORT_CLOSING : PORT_DRAINING;
}

/* The host is gone (read() == 0, a hang-up or a write error). */
static void port_disconnected(struct agent_port *p, const char *why)
{
	agent_logf(p->agent, "port %s: host disconnected%s%s", p->name, why ? ": " : "", why ? why : "");
	if (p->kind == AGENT_PORT_STREAM) {
		port_close(p);
		return;
	}
	port_end_session(p);
	agent_buf_free(&p->in);
	agent_buf_free(&p->out);
	p->state = PORT_WAITING;
}

static void port_connected(struct agent_port *p)
{
	p->state = PORT_OPEN;
	p->session = SESSION_IDLE;
	agent_logf(p->agent, "port %s: host connected", p->name);
	port_queue_json(p, AGENT_HELLO, json_pack("{s:i, s:s, s:s, s:s}", "version", AGENT_PROTO_VERSION,
						 "agent", "gureum-init", "agent_version", GR_GUEST_VERSION,
						 "port", p->name));
}

static void port_flush(struct agent_port *p)
{
	while (agent_buf_pending(&p->out) > 0) {
		size_t n = agent_buf_pending(&p->out);
		if (n > AGENT_WRITE_CHUNK)
			n = AGENT_WRITE_CHUNK;
		ssize_t w = write(p->fd, agent_buf_head(&p->out), n);
		if (w > 0) {
			agent_buf_consume(&p->out, (size_t)w);
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (p->state == PORT_CLOSING) {
			port_close(p);
			return;
		}
		port_disconnected(p, w < 0 ? strerror(errno) : "write returned 0");
		return;
	}
	if (p->state == PORT_CLOSING) {
		/* The fatal ERROR is out: the connection ends here. */
		shutdown(p->fd, SHUT_RDWR);
		port_close(p);
	} else if (p->state == PORT_OPEN && p->session == SESSION_SHUTDOWN) {
		p->session = SESSION_IDLE;
		agent_logf(p->agent, "port %s: %s requested", p->name, p->shutdown_reboot ? "reboot" : "power-off");
		if (p->agent->hooks.shutdown)
			p->agent->hooks.shutdown(p->agent->hooks.ctx, p->shutdown_reboot);
	}
}

/* ---- input ---- */

json_t *port_parse_json(struct agent_port *p, const struct agent_frame *f)
{
	const char *what = agent_frame_type_name(f->type);
	if (f->payload_len == 0) {
		port_fatal(p, "%s frame: empty payload, expected a JSON object", what);
		return NULL;
	}
	if (memchr(f->payload, 0, f->payload_len)) {
		port_fatal(p, "%s frame: NUL byte in the JSON payload", what);
		return NULL;
	}
	json_error_t je;
	json_t *j = json_loadb((const char *)f->payload, f->payload_len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		port_fatal(p, "%s frame: invalid JSON at byte %d: %s", what, je.position, je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		port_fatal(p, "%s frame: expected a JSON object", what);
		return NULL;
	}
	return j;
}

static void request_health(struct agent_port *p)
{
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	struct utsname u;
	if (uname(&u) < 0)
		snprintf(u.release, sizeof(u.release), "unknown");
	json_t *r = json_pack("{s:s, s:f, s:s, s:s}", "status", "ok",
			      "uptime", (double)ts.tv_sec + (double)ts.tv_nsec / 1e9,
			      "kernel", u.release, "agent_version", GR_GUEST_VERSION);
	if (r && p->agent->hooks.health)
		p->agent->hooks.health(r, p->agent->hooks.ctx);
	port_queue_json(p, AGENT_RESPONSE, r);
}

static void request_shutdown(struct agent_port *p, json_t *req)
{
	json_t *rb = json_object_get(req, "reboot");
	if (rb && !json_is_boolean(rb) && !json_is_null(rb)) {
		port_request_error(p, "shutdown: \"reboot\" must be true or false");
		return;
	}
	if (!p->agent->hooks.shutdown) {
		port_request_error(p, "shutdown: not available in this agent");
		return;
	}
	p->shutdown_reboot = json_is_true(rb);
	port_queue_json(p, AGENT_RESPONSE, json_object());
	if (p->state == PORT_OPEN)
		p->session = SESSION_SHUTDOWN;  /* the hook runs once the RESPONSE is written */
}

static void port_request(struct agent_port *p, const struct agent_frame *f)
{
	json_t *req = port_parse_json(p, f);
	if (!req)
		return;
	json_t *opv = json_object_get(req, "op");
	const char *op = json_string_value(opv);
	if (!op)
		port_request_error(p, "request: \"op\" must be a string (health, exec, push, pull, shutdown)");
	else if (strcmp(op, "health") == 0)
		request_health(p);
	else if (strcmp(op, "exec") == 0)
		exec_start(p, req);
	else if (strcmp(op, "push") == 0)
		push_start(p, req);
	else if (strcmp(op, "pull") == 0)
		pull_start(p, req);
	else if (strcmp(op, "shutdown") == 0)
		request_shutdown(p, req);
	else
		port_request_error(p, "request: unknown op \"%.64s\" (health, exec, push, pull, shutdown)", op);
	json_decref(req);
}

static bool is_exec_frame(unsigned t)
{
	return t == AGENT_STDIN || t == AGENT_STDIN_EOF || t == AGENT_RESIZE || t == AGENT_SIGNAL;
}

static void port_frame(struct agent_port *p, const struct agent_frame *f)
{
	const char *name = agent_frame_type_name(f->type);
	if (!agent_frame_from_host(f->type)) {
		port_fatal(p, "frame type %s (%u) is sent by the agent, not the host", name, f->type);
		return;
	}
	switch (p->session) {
	case SESSION_IDLE:
		if (f->type == AGENT_REQUEST)
			port_request(p, f);
		else if (is_exec_frame(f->type))
			;  /* late input for an exec that has ended: ignored */
		else
			port_fatal(p, "%s frame without a push in progress", name);
		return;
	case SESSION_EXEC:
		if (is_exec_frame(f->type))
			exec_frame(p, f);
		else if (f->type == AGENT_REQUEST)
			port_fatal(p, "REQUEST while an exec is running on this connection (one request at a time)");
		else
			port_fatal(p, "%s frame during an exec", name);
		return;
	case SESSION_PUSH:
		if (f->type == AGENT_FILE_DATA || f->type == AGENT_FILE_END)
			push_frame(p, f);
		else if (f->type == AGENT_REQUEST)
			port_fatal(p, "REQUEST while a push is running on this connection (one request at a time)");
		return;  /* exec input: ignored */
	case SESSION_PULL:
	case SESSION_SHUTDOWN:
		if (f->type == AGENT_REQUEST)
			port_fatal(p, "REQUEST before the previous request was answered (one request at a time)");
		else if (!is_exec_frame(f->type))
			port_fatal(p, "%s frame while no push is in progress", name);
		return;
	}
}

static bool port_input_blocked(const struct agent_port *p)
{
	return p->session == SESSION_EXEC && exec_input_blocked(p);
}

void port_process_input(struct agent_port *p)
{
	while (p->state == PORT_OPEN && !port_input_blocked(p)) {
		struct agent_frame f;
		enum agent_parse_error why;
		int r = agent_frame_parse(agent_buf_head(&p->in), agent_buf_pending(&p->in), &f, &why, NULL);
		if (r == 0)
			return;
		if (r < 0) {
			const uint8_t *h = agent_buf_head(&p->in);
			port_fatal(p, "bad frame header (length %u, type %u): %s",
				   (unsigned)h[0] << 24 | (unsigned)h[1] << 16 | (unsigned)h[2] << 8 | h[3],
				   h[4], agent_parse_error_str(why));
			return;
		}
		port_frame(p, &f);
		agent_buf_consume(&p->in, f.size);
	}
}

/* One read() on an OPEN or DRAINING port. */
static void port_read(struct agent_port *p)
{
	if (agent_buf_reserve(&p->in, AGENT_READ_CHUNK) < 0) {
		port_fatal(p, "out of memory reading the connection");
		return;
	}
	ssize_t n = read(p->fd, p->in.data + p->in.len, AGENT_READ_CHUNK);
	if (n > 0) {
		if (p->state == PORT_DRAINING)
			return;  /* discarded: never appended */
		p->in.len += (size_t)n;
		port_process_input(p);
	} else if (n == 0) {
		port_disconnected(p, NULL);
	} else if (errno != EAGAIN && errno != EINTR) {
		port_disconnected(p, strerror(errno));
	}
}

/* A WAITING port: has a host connected? read() == 0 says no (virtio:
 * nobody connected and nothing buffered); EAGAIN or data says yes. */
static void port_probe(struct agent_port *p)
{
	if (agent_buf_reserve(&p->in, AGENT_READ_CHUNK) < 0)
		return;
	ssize_t n = read(p->fd, p->in.data + p->in.len, AGENT_READ_CHUNK);
	if (n == 0) {
		if (p->kind == AGENT_PORT_STREAM)
			port_close(p);
		else
			agent_buf_free(&p->in);
		return;
	}
	if (n < 0 && errno != EAGAIN && errno != EINTR) {
		agent_logf(p->agent, "port %s: read failed, no longer served: %s", p->name, strerror(errno));
		port_close(p);
		return;
	}
	port_connected(p);
	if (n > 0) {
		p->in.len += (size_t)n;
		port_process_input(p);
	}
}

static void port_event(struct agent_port *p, short revents)
{
	if (p->state == PORT_GONE || p->state == PORT_WAITING)
		return;  /* changed earlier in this round */
	if (p->state == PORT_CLOSING) {
		if (revents & POLLOUT)
			port_flush(p);
		else if (revents & (POLLHUP | POLLERR))
			port_close(p);
		return;
	}
	if (revents & POLLOUT)
		port_flush(p);
	if (p->state != PORT_OPEN && p->state != PORT_DRAINING)
		return;
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return;
	if (p->state == PORT_OPEN && port_input_blocked(p)) {
		/* Not reading (the exec has not taken its stdin yet), so a
		 * hang-up would be reported again and again: end it now. */
		if (revents & (POLLHUP | POLLERR))
			port_disconnected(p, "hang-up");
		return;
	}
	port_read(p);
}

/* ---- ports, listeners, children ---- */

static void port_free(struct agent_port *p)
{
	port_close(p);
	free(p);
}

int agent_add_port(struct agent *a, int fd, const char *name, enum agent_port_kind kind, struct gr_error *err)
{
	if (a->nports == AGENT_MAX_PORTS) {
		close(fd);
		return gr_error_set(err, EMFILE, "agent: port %s: already serving %d ports", name, AGENT_MAX_PORTS);
	}
	int r = set_fd_flags(fd, kind == AGENT_PORT_VIRTIO);
	if (r < 0) {
		close(fd);
		return gr_error_sys(err, -r, "agent: port %s: cannot set O_NONBLOCK|O_ASYNC", name);
	}
	struct agent_port *p = calloc(1, sizeof(*p));
	if (!p) {
		close(fd);
		return gr_error_set(err, ENOMEM, "agent: out of memory");
	}
	p->agent = a;
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->fd = fd;
	p->kind = kind;
	p->state = PORT_WAITING;
	p->exec.pid = -1;
	p->exec.pidfd = p->exec.stdin_fd = p->exec.out_fd = p->exec.err_fd = -1;
	p->push.dirfd = p->push.fd = -1;
	p->pull.fd = -1;
	a->ports[a->nports++] = p;
	agent_logf(a, "port %s: serving (%s)", p->name, kind == AGENT_PORT_VIRTIO ? "virtio-serial" : "stream");
	port_probe(p);
	return 0;
}

bool agent_has_port(const struct agent *a, const char *name)
{
	for (size_t i = 0; i < a->nports; i++)
		if (a->ports[i]->state != PORT_GONE && strcmp(a->ports[i]->name, name) == 0)
			return true;
	return false;
}

int agent_add_listener(struct agent *a, int fd, const char *name, struct gr_error *err)
{
	if (a->nlisteners == AGENT_MAX_LISTENERS) {
		close(fd);
		return gr_error_set(err, EMFILE, "agent: listener %s: too many listeners", name);
	}
	int r = set_fd_flags(fd, false);
	if (r < 0) {
		close(fd);
		return gr_error_sys(err, -r, "agent: listener %s: cannot set O_NONBLOCK", name);
	}
	struct agent_listener *l = &a->listeners[a->nlisteners++];
	l->fd = fd;
	l->accepted = 0;
	snprintf(l->name, sizeof(l->name), "%s", name);
	return 0;
}

void agent_set_watch_fd(struct agent *a, int fd)
{
	a->watch_fd = fd;
}

void agent_set_stop_fd(struct agent *a, int fd)
{
	a->stop_fd = fd;
}

static void listener_accept(struct agent *a, struct agent_listener *l)
{
	int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			agent_logf(a, "listener %s: accept failed: %s", l->name, strerror(errno));
		return;
	}
	char name[96];
	snprintf(name, sizeof(name), "%s#%lu", l->name, ++l->accepted);
	struct gr_error err = { 0 };
	if (agent_add_port(a, fd, name, AGENT_PORT_STREAM, &err) < 0)
		agent_logf(a, "%s", err.msg);
}

void agent_reap_later(struct agent *a, pid_t pid, int pidfd)
{
	if (a->ndying == a->capdying) {
		size_t cap = a->capdying ? a->capdying * 2 : 8;
		struct agent_dying *d = realloc(a->dying, cap * sizeof(*d));
		if (!d) {
			/* Cannot track it: reap it now (it was sent SIGKILL). */
			waitpid(pid, NULL, 0);
			if (pidfd >= 0)
				close(pidfd);
			return;
		}
		a->dying = d;
		a->capdying = cap;
	}
	a->dying[a->ndying++] = (struct agent_dying){ .pid = pid, .pidfd = pidfd };
}

static void reap_dying(struct agent *a, bool block)
{
	for (size_t i = 0; i < a->ndying;) {
		pid_t r = waitpid(a->dying[i].pid, NULL, block ? 0 : WNOHANG);
		if (r == 0) {
			i++;
			continue;
		}
		/* Reaped, or not ours any more (ECHILD): forget it. */
		if (a->dying[i].pidfd >= 0)
			close(a->dying[i].pidfd);
		a->dying[i] = a->dying[--a->ndying];
	}
}

static void sweep_ports(struct agent *a)
{
	size_t j = 0;
	for (size_t i = 0; i < a->nports; i++) {
		if (a->ports[i]->state == PORT_GONE) {
			agent_logf(a, "port %s: closed", a->ports[i]->name);
			free(a->ports[i]);
		} else {
			a->ports[j++] = a->ports[i];
		}
	}
	a->nports = j;
}

void agent_free(struct agent *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->nports; i++)
		port_free(a->ports[i]);
	for (size_t i = 0; i < a->nlisteners; i++)
		close(a->listeners[i].fd);
	reap_dying(a, true);
	free(a->dying);
	if (a->sigfd >= 0)
		close(a->sigfd);
	free(a);
}

/* ---- the loop ---- */

enum tag_kind { TAG_SIG, TAG_STOP, TAG_WATCH, TAG_LISTENER, TAG_PORT, TAG_EXEC, TAG_DYING };

struct poll_tag {
	enum tag_kind kind;
	size_t idx;           /* listener or port index */
	enum exec_fd which;   /* TAG_EXEC */
	pid_t pid;            /* TAG_EXEC: the exec it was polled for */
};

static bool pull_has_room(const struct agent_port *p)
{
	return p->state == PORT_OPEN && p->session == SESSION_PULL &&
	       agent_buf_pending(&p->out) < AGENT_OUT_HIGH;
}

int agent_run(struct agent *a, struct gr_error *err)
{
	struct pollfd *pfd = NULL;
	struct poll_tag *tags = NULL;
	size_t cap = 0;
	int ret = 0;

	for (;;) {
		sweep_ports(a);
		if (a->nports == 0 && a->nlisteners == 0 && a->watch_fd < 0)
			break;
		/* Write what is queued; let pulls read ahead while there is room. */
		bool busy = false;
		for (size_t i = 0; i < a->nports; i++) {
			struct agent_port *p = a->ports[i];
			for (int round = 0; round < 4 && pull_has_room(p); round++) {
				pull_produce(p);
				port_flush(p);
			}
			if (agent_buf_pending(&p->out) > 0 && (p->state == PORT_OPEN || p->state == PORT_DRAINING ||
								p->state == PORT_CLOSING))
				port_flush(p);
			if (pull_has_room(p))
				busy = true;
		}
		sweep_ports(a);

		size_t need = 3 + a->nlisteners + a->nports * 5 + a->ndying;
		if (need > cap) {
			struct pollfd *np = realloc(pfd, need * sizeof(*np));
			if (!np) {
				ret = gr_error_set(err, ENOMEM, "agent: out of memory");
				break;
			}
			pfd = np;
			struct poll_tag *nt = realloc(tags, need * sizeof(*nt));
			if (!nt) {
				ret = gr_error_set(err, ENOMEM, "agent: out of memory");
				break;
			}
			tags = nt;
			cap = need;
		}
		size_t n = 0;
#define ADD(fd_, ev_, ...) do { pfd[n] = (struct pollfd){ .fd = (fd_), .events = (ev_) }; \
		tags[n++] = (struct poll_tag){ __VA_ARGS__ }; } while (0)
		ADD(a->sigfd, POLLIN, .kind = TAG_SIG);
		if (a->stop_fd >= 0)
			ADD(a->stop_fd, POLLIN, .kind = TAG_STOP);
		if (a->watch_fd >= 0)
			ADD(a->watch_fd, POLLIN, .kind = TAG_WATCH);
		for (size_t i = 0; i < a->nlisteners; i++)
			ADD(a->listeners[i].fd, POLLIN, .kind = TAG_LISTENER, .idx = i);
		for (size_t i = 0; i < a->nports; i++) {
			struct agent_port *p = a->ports[i];
			if (p->state == PORT_WAITING)
				continue;  /* SIGIO says when a host connects */
			short ev = agent_buf_pending(&p->out) ? POLLOUT : 0;
			if (p->state == PORT_DRAINING || (p->state == PORT_OPEN && !port_input_blocked(p)))
				ev |= POLLIN;
			ADD(p->fd, ev, .kind = TAG_PORT, .idx = i);
			if (p->state != PORT_OPEN || p->session != SESSION_EXEC)
				continue;
			for (enum exec_fd w = EXEC_FD_STDIN; w <= EXEC_FD_PID; w++) {
				short eev;
				int fd = exec_poll_fd(p, w, &eev);
				if (fd >= 0)
					ADD(fd, eev, .kind = TAG_EXEC, .idx = i, .which = w, .pid = p->exec.pid);
			}
		}
		for (size_t i = 0; i < a->ndying; i++)
			if (a->dying[i].pidfd >= 0)
				ADD(a->dying[i].pidfd, POLLIN, .kind = TAG_DYING, .idx = i);
#undef ADD

		int r = poll(pfd, n, busy ? 0 : -1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			ret = gr_error_sys(err, errno, "agent: poll failed");
			break;
		}
		bool stop = false, reap = false, probe = false;
		for (size_t k = 0; k < n; k++) {
			short re = pfd[k].revents;
			if (!re)
				continue;
			struct poll_tag *t = &tags[k];
			switch (t->kind) {
			case TAG_SIG: {
				struct signalfd_siginfo si;
				while (read(a->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
					;
				probe = true;
				break;
			}
			case TAG_STOP:
				stop = true;
				break;
			case TAG_WATCH:
				if (a->hooks.watch)
					a->hooks.watch(a, a->hooks.ctx);
				else
					a->watch_fd = -1;
				break;
			case TAG_LISTENER:
				listener_accept(a, &a->listeners[t->idx]);
				break;
			case TAG_PORT:
				port_event(a->ports[t->idx], re);
				break;
			case TAG_EXEC: {
				struct agent_port *p = a->ports[t->idx];
				/* Skip events for an exec that ended earlier in this round. */
				if (p->state == PORT_OPEN && p->session == SESSION_EXEC && p->exec.pid == t->pid)
					exec_event(p, t->which, re);
				break;
			}
			case TAG_DYING:
				reap = true;
				break;
			}
		}
		if (reap)
			reap_dying(a, false);
		if (probe)
			for (size_t i = 0; i < a->nports; i++)
				if (a->ports[i]->state == PORT_WAITING)
					port_probe(a->ports[i]);
		if (stop)
			break;
	}
	free(pfd);
	free(tags);
	return ret;
}
