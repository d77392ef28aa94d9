/* gureum-supervisor vm-exec (vm_exec.h): an exec in a VM, the agent's
 * frames bridged to stdio or to a pty of our own.
 *
 * With a terminal the command's pty is in the guest; here a second pty
 * stands in for it: its slave is put in raw mode (the guest's terminal does
 * the line discipline, echo and \r\n) and becomes our controlling terminal,
 * so that a resize of its master by gureumd (TIOCSWINSZ) sends us SIGWINCH,
 * which becomes a RESIZE frame. Bytes typed on the master are STDIN frames,
 * STDOUT frames are written to the slave. */
#include "daemon/supervisor/vm_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "container/terminal.h"
#include "daemon/vm/agent_client.h"

#define VM_EXEC_CONNECT_MS 120000   /* a VM that is still booting gets this long to answer */
#define VM_EXEC_START_MS 60000      /* for the agent's answer to the exec request */
#define OUT_HIGH (1u << 20)         /* output waiting for our readers: the agent is not read above it */
#define IN_HIGH (256u << 10)        /* input waiting for the agent: stdin is not read above it */
#define GUEST_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static const int forwarded_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };

/* NAME=VALUE into env (an array of strings), replacing NAME's entry. */
static int env_set(json_t *env, const char *kv)
{
	size_t n = strcspn(kv, "=");
	size_t i;
	json_t *v;
	json_array_foreach(env, i, v) {
		const char *s = json_string_value(v);
		if (s && strncmp(s, kv, n) == 0 && s[n] == '=')
			return json_array_set_new(env, i, json_string(kv));
	}
	return json_array_append_new(env, json_string(kv));
}

/* The agent's exec request from the helper's. The environment is the
 * agent's defaults (PATH, HOME, TERM with a terminal) with the request's
 * entries over them: the agent takes a given env as the whole one. */
static json_t *agent_exec_request(const json_t *req, bool *tty, unsigned *width, unsigned *height,
				  struct gr_error *err)
{
	json_t *args = json_object_get(req, "args");
	if (!json_is_array(args) || json_array_size(args) == 0)
		return gr_error_set(err, EINVAL, "exec: args: expected a non-empty array of strings"), NULL;
	size_t i;
	json_t *v;
	json_array_foreach(args, i, v) {
		if (!json_is_string(v) || (i == 0 && json_string_length(v) == 0))
			return gr_error_set(err, EINVAL, "exec: args[%zu]: expected a %sstring", i,
					    i == 0 ? "non-empty " : ""), NULL;
	}
	json_int_t uid = json_integer_value(json_object_get(req, "uid"));
	json_int_t gid = json_integer_value(json_object_get(req, "gid"));
	if (uid < 0 || uid > 4294967294LL || gid < 0 || gid > 4294967294LL)
		return gr_error_set(err, EINVAL, "exec: uid/gid out of range"), NULL;
	*tty = json_is_true(json_object_get(req, "terminal"));
	json_int_t w = json_integer_value(json_object_get(req, "width"));
	json_int_t h = json_integer_value(json_object_get(req, "height"));
	*width = w > 0 && w <= 65535 ? (unsigned)w : 80;
	*height = h > 0 && h <= 65535 ? (unsigned)h : 24;
	gr_autojson json_t *env = json_array();
	if (!env)
		return gr_error_set(err, ENOMEM, "out of memory"), NULL;
	env_set(env, "PATH=" GUEST_DEFAULT_PATH);
	env_set(env, uid == 0 ? "HOME=/root" : "HOME=/");
	if (*tty)
		env_set(env, "TERM=xterm");
	json_array_foreach(json_object_get(req, "env"), i, v) {
		const char *kv = json_string_value(v);
		if (!kv || !strchr(kv, '=') || kv[0] == '=')
			return gr_error_set(err, EINVAL, "exec: env[%zu]: expected NAME=VALUE", i), NULL;
		if (env_set(env, kv) < 0)
			return gr_error_set(err, ENOMEM, "out of memory"), NULL;
	}
	json_t *out = json_pack("{s:s, s:O, s:O, s:I, s:I, s:b, s:I, s:I}", "op", "exec", "args", args, "env", env,
				"uid", uid, "gid", gid, "tty", *tty, "width", (json_int_t)*width, "height",
				(json_int_t)*height);
	const char *cwd = json_string_value(json_object_get(req, "cwd"));
	if (out && cwd)
		json_object_set_new(out, "cwd", json_string(cwd));
	if (!out)
		gr_error_set(err, ENOMEM, "out of memory");
	return out;
}

/* ---- the bridge ---- */

struct sink {
	int fd;                       /* -1: none, or its reader left (output dropped) */
	struct agent_buf buf;
};

struct bridge {
	struct agent_client ac;
	bool tty;
	int in_fd;                    /* stdin or the slave; -1 once it ended */
	int slave;                    /* tty: our pty's slave, else -1 */
	struct sink out, err;
	int sfd;                      /* signalfd of the forwarded signals */
	bool exited;
	int code;
};

static void sink_write(struct sink *s)
{
	while (s->fd >= 0 && agent_buf_pending(&s->buf) > 0) {
		ssize_t n = write(s->fd, agent_buf_head(&s->buf), agent_buf_pending(&s->buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			/* EPIPE (gureumd stopped reading) or EIO (the terminal
			 * was hung up): what the command writes is dropped. */
			s->fd = -1;
			break;
		}
		agent_buf_consume(&s->buf, (size_t)n);
	}
	if (s->fd < 0 || agent_buf_pending(&s->buf) == 0)
		agent_buf_reset(&s->buf);
}

static int sink_add(struct sink *s, const void *p, size_t n, struct gr_error *err)
{
	if (s->fd < 0 || n == 0)
		return 0;
	if (agent_buf_append(&s->buf, p, n) < 0)
		return gr_error_set(err, ENOMEM, "out of memory");
	sink_write(s);
	return 0;
}

static int handle_frame(struct bridge *b, const struct agent_frame *f, struct gr_error *err)
{
	switch (f->type) {
	case AGENT_STDOUT:
		return sink_add(&b->out, f->payload, f->payload_len, err);
	case AGENT_STDERR:
		return sink_add(b->tty ? &b->out : &b->err, f->payload, f->payload_len, err);
	case AGENT_EXIT: {
		gr_autojson json_t *j = agent_frame_json(f, err);
		if (!j)
			return -EPROTO;
		json_int_t code = json_integer_value(json_object_get(j, "code"));
		b->code = code >= 0 && code <= 255 ? (int)code : 255;
		b->exited = true;
		return 0;
	}
	case AGENT_ERROR:
		return agent_client_error_frame(&b->ac, f, err);
	default:
		return gr_error_set(err, EPROTO, "the guest agent sent %s during an exec", agent_frame_type_name(f->type));
	}
}

static int handle_signals(struct bridge *b, struct gr_error *err)
{
	struct signalfd_siginfo si;
	int r;
	while (read(b->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		gr_autojson json_t *j = NULL;
		unsigned type = AGENT_SIGNAL;
		if (si.ssi_signo == SIGWINCH && b->tty) {
			struct winsize ws;
			if (ioctl(b->slave, TIOCGWINSZ, &ws) < 0)
				continue;
			type = AGENT_RESIZE;
			j = json_pack("{s:i, s:i}", "width", (int)ws.ws_col, "height", (int)ws.ws_row);
		} else {
			j = json_pack("{s:i}", "signal", (int)si.ssi_signo);
		}
		if ((r = agent_client_queue_json(&b->ac, type, j, err)) < 0)
			return r;
	}
	return 0;
}

static int read_input(struct bridge *b, struct gr_error *err)
{
	uint8_t buf[65536];
	ssize_t n = read(b->in_fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n > 0)
		return agent_client_queue(&b->ac, AGENT_STDIN, buf, (size_t)n, err);
	/* The end of stdin is passed on. A terminal's master closed (EIO):
	 * nothing more to type; gureumd's SIGHUP says the rest. */
	if (!b->tty) {
		int r = agent_client_queue(&b->ac, AGENT_STDIN_EOF, NULL, 0, err);
		close(b->in_fd);
		b->in_fd = -1;
		return r;
	}
	b->in_fd = -1;
	return 0;
}

/* Relays until the EXIT frame (1), or the agent's connection ends (0). */
static int relay(struct bridge *b, struct gr_error *err)
{
	int r;
	for (;;) {
		/* Frames already read first: the exec's RESPONSE may have come
		 * with its first output, and no more may come for a long time. */
		struct agent_frame f;
		while ((r = agent_client_next(&b->ac, &f, err)) == 1) {
			if ((r = handle_frame(b, &f, err)) < 0)
				return r;
			if (b->exited)
				return 1;
		}
		if (r < 0)
			return r;
		struct pollfd p[5];
		int n = 0, i_ac = -1, i_in = -1, i_out = -1, i_err = -1, i_sig;
		bool room = agent_buf_pending(&b->out.buf) + agent_buf_pending(&b->err.buf) < OUT_HIGH;
		short ev = (short)((room ? POLLIN : 0) | (agent_client_out_pending(&b->ac) ? POLLOUT : 0));
		i_ac = n;
		/* (Not watched at all while there is nothing to do with it: a
		 * hang-up would wake us for nothing until our readers catch up.) */
		p[n++] = (struct pollfd){ .fd = ev ? b->ac.fd : -1, .events = ev };
		if (b->in_fd >= 0 && agent_client_out_pending(&b->ac) < IN_HIGH) {
			i_in = n;
			p[n++] = (struct pollfd){ .fd = b->in_fd, .events = POLLIN };
		}
		if (b->out.fd >= 0 && agent_buf_pending(&b->out.buf)) {
			i_out = n;
			p[n++] = (struct pollfd){ .fd = b->out.fd, .events = POLLOUT };
		}
		if (b->err.fd >= 0 && agent_buf_pending(&b->err.buf)) {
			i_err = n;
			p[n++] = (struct pollfd){ .fd = b->err.fd, .events = POLLOUT };
		}
		i_sig = n;
		p[n++] = (struct pollfd){ .fd = b->sfd, .events = POLLIN };
		if (poll(p, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			return gr_error_sys(err, errno, "poll");
		}
		if (p[i_sig].revents && (r = handle_signals(b, err)) < 0)
			return r;
		if (i_out >= 0 && p[i_out].revents)
			sink_write(&b->out);
		if (i_err >= 0 && p[i_err].revents)
			sink_write(&b->err);
		if (i_in >= 0 && p[i_in].revents && (r = read_input(b, err)) < 0)
			return r;
		if (p[i_ac].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t k = agent_client_read_some(&b->ac, err);
			if (k == 0)
				return 0;
			if (k < 0 && k != -EAGAIN)
				return (int)k;
		}
		if ((r = agent_client_write_some(&b->ac, err)) < 0)
			return r;
	}
}

/* Whatever output is still buffered goes out (blocking). */
static void drain(struct sink *s)
{
	while (s->fd >= 0 && agent_buf_pending(&s->buf) > 0) {
		struct pollfd p = { .fd = s->fd, .events = POLLOUT };
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			break;
		sink_write(s);
	}
}

static void nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* The pty standing in for the guest's: raw, ours (SIGWINCH), its master
 * sent to console_socket. */
static int make_terminal(struct bridge *b, const char *console_socket, unsigned width, unsigned height,
			 struct gr_error *err)
{
	gr_autoclose int master = -1, conn = -1;
	char path[64];
	int r;
	if ((r = terminal_open_pty(&master, &b->slave, path, sizeof(path), err)) < 0)
		return r;
	struct termios t;
	if (tcgetattr(b->slave, &t) == 0) {
		cfmakeraw(&t);
		(void)tcsetattr(b->slave, TCSANOW, &t);
	}
	/* The size first: once the master is sent its receiver may resize it. */
	(void)terminal_set_size(b->slave, height, width, NULL);
	/* A session of our own whose controlling terminal it is: resizes of
	 * the master then signal us. Without it they are not passed on. */
	if (getsid(0) != getpid())
		(void)setsid();
	(void)ioctl(b->slave, TIOCSCTTY, 0);
	if ((r = terminal_connect(console_socket, &conn, err)) < 0 || (r = terminal_send_fd(conn, master, err)) < 0)
		return r;
	nonblock(b->slave);
	b->in_fd = b->slave;
	b->out.fd = b->slave;
	b->err.fd = -1;
	return 0;
}

int supervisor_vm_exec(const char *run_dir, const char *name, const json_t *req, const char *console_socket,
		       struct gr_error *err)
{
	struct bridge b = { .ac = AGENT_CLIENT_INIT, .in_fd = 0, .slave = -1, .out = { .fd = 1 }, .err = { .fd = 2 },
			    .sfd = -1 };
	unsigned width, height;
	int r;
	gr_autojson json_t *areq = agent_exec_request(req, &b.tty, &width, &height, err);
	if (!areq)
		return -err->code;
	if (b.tty && !console_socket)
		return gr_error_set(err, EINVAL, "exec: a terminal needs a console socket");
	char dir[PATH_MAX];
	if (snprintf(dir, sizeof(dir), "%s/instances/%s", run_dir, name) >= (int)sizeof(dir))
		return gr_error_set(err, ENAMETOOLONG, "exec: --run-dir too long");

	/* Signals wait (blocked) until the command exists, then go to it. */
	sigset_t set;
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(forwarded_signals) / sizeof(forwarded_signals[0]); i++)
		sigaddset(&set, forwarded_signals[i]);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	b.sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (b.sfd < 0)
		return gr_error_sys(err, errno, "signalfd");

	if ((r = agent_client_connect(&b.ac, dir, VM_EXEC_CONNECT_MS, err)) < 0) {
		gr_error_prefix(err, "exec in VM %s", name);
		goto out;
	}
	/* The terminal goes to gureumd once the agent is there, before the
	 * command starts (as the container's exec helper sends it before its
	 * execve): a command that cannot start is then said on stderr, with
	 * exit code 127 or 126, not as a failed exec. */
	if (b.tty && (r = make_terminal(&b, console_socket, width, height, err)) < 0)
		goto out;
	struct agent_frame f;
	if ((r = agent_client_queue_json(&b.ac, AGENT_REQUEST, areq, err)) < 0 ||
	    (r = agent_client_recv(&b.ac, &f, VM_EXEC_START_MS, err)) < 0)
		goto out;
	if (f.type == AGENT_ERROR) {
		r = agent_client_error_frame(&b.ac, &f, err);
		goto out;
	}
	if (f.type != AGENT_RESPONSE) {
		r = gr_error_set(err, EPROTO, "exec: the guest agent answered with %s", agent_frame_type_name(f.type));
		goto out;
	}
	if (!b.tty) {
		nonblock(0);
		nonblock(1);
		nonblock(2);
	}
	r = relay(&b, err);
	if (r >= 0) {
		drain(&b.out);
		drain(&b.err);
	}
	if (r == 0) {
		/* The connection ended first: the agent killed the command (or
		 * the VM stopped). Said where the command's errors go. */
		char msg[] = "gureum-supervisor: vm-exec: the VM's agent connection ended before the command exited\n";
		if (!b.tty && b.err.fd >= 0)
			(void)gr_write_all(b.err.fd, msg, sizeof(msg) - 1);
		r = 128 + SIGKILL;
	} else if (r == 1) {
		r = b.code;
	}
out:
	agent_client_close(&b.ac);
	agent_buf_free(&b.out.buf);
	agent_buf_free(&b.err.buf);
	if (b.slave >= 0)
		close(b.slave);
	if (b.sfd >= 0)
		close(b.sfd);
	return r;
}
