/* exec requests: a child process with pipes or a pty, its stdin/stdout/
 * stderr carried in frames, RESIZE and SIGNAL, and its EXIT. */
#include "agent_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/json.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* ---- signals ---- */

static const struct { const char *name; int sig; } signal_names[] = {
	{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "ILL", SIGILL },
	{ "TRAP", SIGTRAP }, { "ABRT", SIGABRT }, { "BUS", SIGBUS }, { "FPE", SIGFPE },
	{ "KILL", SIGKILL }, { "USR1", SIGUSR1 }, { "SEGV", SIGSEGV }, { "USR2", SIGUSR2 },
	{ "PIPE", SIGPIPE }, { "ALRM", SIGALRM }, { "TERM", SIGTERM }, { "STKFLT", SIGSTKFLT },
	{ "CHLD", SIGCHLD }, { "CONT", SIGCONT }, { "STOP", SIGSTOP }, { "TSTP", SIGTSTP },
	{ "TTIN", SIGTTIN }, { "TTOU", SIGTTOU }, { "URG", SIGURG }, { "XCPU", SIGXCPU },
	{ "XFSZ", SIGXFSZ }, { "VTALRM", SIGVTALRM }, { "PROF", SIGPROF }, { "WINCH", SIGWINCH },
	{ "IO", SIGIO }, { "PWR", SIGPWR }, { "SYS", SIGSYS },
};

int agent_signal_parse(json_t *v, int *sig)
{
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		if (n < 1 || n > SIGRTMAX)
			return -EINVAL;
		*sig = (int)n;
		return 0;
	}
	const char *s = json_string_value(v);
	if (!s)
		return -EINVAL;
	if (strncmp(s, "SIG", 3) == 0)
		s += 3;
	for (size_t i = 0; i < sizeof(signal_names) / sizeof(signal_names[0]); i++)
		if (strcmp(s, signal_names[i].name) == 0) {
			*sig = signal_names[i].sig;
			return 0;
		}
	return -EINVAL;
}

/* ---- the request ---- */

struct exec_spec {
	char **args, **env;
	const char *cwd;
	uint32_t uid, gid, width, height;
	bool tty;
	char path[4096];
};

static bool env_entry_ok(const char *e)
{
	const char *eq = strchr(e, '=');
	return eq && eq != e;
}

static const char *env_get(char **env, const char *key)
{
	size_t n = strlen(key);
	for (char **e = env; *e; e++)
		if (strncmp(*e, key, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

int agent_find_program(const char *name, char *const *env, char *out, size_t n)
{
	if (strchr(name, '/')) {
		if (strlen(name) >= n)
			return -ENAMETOOLONG;
		snprintf(out, n, "%s", name);
		return 0;
	}
	const char *path = env ? env_get((char **)env, "PATH") : NULL;
	if (!path)
		path = DEFAULT_PATH;
	for (const char *d = path;;) {
		const char *end = strchrnul(d, ':');
		int dl = (int)(end - d);
		int w = dl == 0 ? snprintf(out, n, "%s", name) : snprintf(out, n, "%.*s/%s", dl, d, name);
		struct stat st;
		if (w > 0 && (size_t)w < n && stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
			return 0;
		if (!*end)
			break;
		d = end + 1;
	}
	return -ENOENT;
}

/* args[0] as run: itself when it has a '/', else the first executable regular file in PATH. */
static int find_program(struct exec_spec *s, char *why, size_t whylen)
{
	int r = agent_find_program(s->args[0], s->env, s->path, sizeof(s->path));
	if (r == -ENAMETOOLONG)
		snprintf(why, whylen, "exec: program path too long");
	else if (r < 0) {
		const char *path = env_get(s->env, "PATH");
		snprintf(why, whylen, "exec: %.256s: command not found (PATH=%.512s)", s->args[0],
			 path ? path : DEFAULT_PATH);
	}
	return r;
}

static int parse_spec(json_t *req, struct exec_spec *s, char *why, size_t whylen)
{
	struct gr_error e = { 0 };
	int r = gr_json_get_strv(req, "exec", "args", &s->args, &e);
	if (r < 0)
		goto bad;
	if (r == 0 || !s->args[0] || !s->args[0][0]) {
		snprintf(why, whylen, "exec: \"args\" must be a non-empty array of strings, the first one not empty");
		return -EINVAL;
	}
	if (gr_strv_len(s->args) > AGENT_MAX_ARGS) {
		snprintf(why, whylen, "exec: more than %d args", AGENT_MAX_ARGS);
		return -E2BIG;
	}
	r = gr_json_get_strv(req, "exec", "env", &s->env, &e);
	if (r < 0)
		goto bad;
	if (r > 0) {
		if (gr_strv_len(s->env) > AGENT_MAX_ARGS) {
			snprintf(why, whylen, "exec: more than %d env entries", AGENT_MAX_ARGS);
			return -E2BIG;
		}
		for (size_t i = 0; s->env[i]; i++)
			if (!env_entry_ok(s->env[i])) {
				snprintf(why, whylen, "exec.env[%zu]: expected NAME=VALUE, got \"%.128s\"", i, s->env[i]);
				return -EINVAL;
			}
	}
	s->cwd = "/";
	if ((r = gr_json_get_string(req, "exec", "cwd", &s->cwd, &e)) < 0)
		goto bad;
	if (s->cwd[0] != '/') {
		snprintf(why, whylen, "exec.cwd: must be an absolute path, got \"%.256s\"", s->cwd);
		return -EINVAL;
	}
	if ((r = gr_json_get_uint32(req, "exec", "uid", &s->uid, &e)) < 0 ||
	    (r = gr_json_get_uint32(req, "exec", "gid", &s->gid, &e)) < 0 ||
	    (r = gr_json_get_bool(req, "exec", "tty", &s->tty, &e)) < 0)
		goto bad;
	if (s->uid == UINT32_MAX || s->gid == UINT32_MAX) {
		snprintf(why, whylen, "exec: uid and gid must be below 4294967295");
		return -EINVAL;
	}
	s->width = 80;
	s->height = 24;
	if ((r = gr_json_get_uint32(req, "exec", "width", &s->width, &e)) < 0 ||
	    (r = gr_json_get_uint32(req, "exec", "height", &s->height, &e)) < 0)
		goto bad;
	if (s->width > 65535 || s->height > 65535) {
		snprintf(why, whylen, "exec: width and height must be 0 to 65535");
		return -EINVAL;
	}
	if (!s->env) {
		/* The host gave no environment: a minimal one. */
		s->env = calloc(4, sizeof(char *));
		if (!s->env || !(s->env[0] = strdup("PATH=" DEFAULT_PATH)) ||
		    !(s->env[1] = strdup(s->uid == 0 ? "HOME=/root" : "HOME=/")) ||
		    (s->tty && !(s->env[2] = strdup("TERM=xterm")))) {
			snprintf(why, whylen, "exec: out of memory");
			return -ENOMEM;
		}
	}
	return find_program(s, why, whylen);
bad:
	snprintf(why, whylen, "%s", e.msg);
	return r;
}

/* ---- the child ---- */

enum child_stage { STAGE_SETSID = 1, STAGE_TTY, STAGE_STDIO, STAGE_CHDIR, STAGE_USER, STAGE_EXEC };

static const char *stage_name(int stage)
{
	switch (stage) {
	case STAGE_SETSID: return "setsid";
	case STAGE_TTY: return "making the pty the controlling terminal";
	case STAGE_STDIO: return "setting up stdin/stdout/stderr";
	case STAGE_CHDIR: return "changing to the working directory";
	case STAGE_USER: return "switching to the uid/gid";
	case STAGE_EXEC: return "execve";
	}
	return "?";
}

struct child_fail {
	int stage, err;
};

/* Between fork and execve: async-signal-safe calls only. */
static void __attribute__((noreturn)) child_fail(int status_fd, int stage)
{
	struct child_fail f = { stage, errno };
	ssize_t w = write(status_fd, &f, sizeof(f));
	(void)w;
	_exit(127);
}

static void __attribute__((noreturn)) child_run(const struct exec_spec *s, int in, int out, int errfd,
						 int status_fd)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	if (setsid() < 0)
		child_fail(status_fd, STAGE_SETSID);
	if (s->tty && ioctl(in, TIOCSCTTY, 0) < 0)
		child_fail(status_fd, STAGE_TTY);
	/* Above 2 first, so no dup2 below overwrites a source. */
	int fin = fcntl(in, F_DUPFD_CLOEXEC, 3);
	int fout = fcntl(out, F_DUPFD_CLOEXEC, 3);
	int ferr = fcntl(errfd, F_DUPFD_CLOEXEC, 3);
	if (fin < 0 || fout < 0 || ferr < 0 || dup2(fin, 0) < 0 || dup2(fout, 1) < 0 || dup2(ferr, 2) < 0)
		child_fail(status_fd, STAGE_STDIO);
	/* Nothing of the agent's (or a test's) leaks into the program. */
	if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		for (int fd = 3; fd < 4096; fd++)
			if (fd != status_fd)
				fcntl(fd, F_SETFD, FD_CLOEXEC);
	if (chdir(s->cwd) < 0)
		child_fail(status_fd, STAGE_CHDIR);
	if (geteuid() == 0) {
		gid_t g = s->gid;
		if (setgroups(1, &g) < 0 || setgid(s->gid) < 0 || setuid(s->uid) < 0)
			child_fail(status_fd, STAGE_USER);
	} else if (s->uid != geteuid() || s->gid != getegid()) {
		errno = EPERM;
		child_fail(status_fd, STAGE_USER);
	}
	execve(s->path, s->args, s->env);
	child_fail(status_fd, STAGE_EXEC);
}

static int open_pty(int *master, int *slave)
{
	int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (m < 0)
		return -errno;
	int unlock = 0;
	if (ioctl(m, TIOCSPTLCK, &unlock) < 0) {
		int e = errno;
		close(m);
		return -e;
	}
	int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0) {
		char name[64];
		if (ptsname_r(m, name, sizeof(name)) == 0)
			s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	}
	if (s < 0) {
		int e = errno;
		close(m);
		return -e;
	}
	*master = m;
	*slave = s;
	return 0;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

static void spec_free(struct exec_spec *s)
{
	gr_strv_free(s->args);
	gr_strv_free(s->env);
}

void exec_start(struct agent_port *p, json_t *req)
{
	struct exec_spec s = { 0 };
	char why[1024];
	if (parse_spec(req, &s, why, sizeof(why)) < 0) {
		port_request_error(p, "%s", why);
		spec_free(&s);
		return;
	}
	/* Parent ends (kept) and child ends (closed after the fork). */
	int pin = -1, pout = -1, perr = -1, cin = -1, cout = -1, cerr = -1;
	int r = 0;
	if (s.tty) {
		int m = -1, sl = -1;
		r = open_pty(&m, &sl);
		if (r == 0) {
			struct winsize ws = { .ws_row = (unsigned short)s.height, .ws_col = (unsigned short)s.width };
			ioctl(m, TIOCSWINSZ, &ws);
			pout = m;
			cin = cout = cerr = sl;
		} else {
			snprintf(why, sizeof(why), "exec: cannot open a pty (is devpts mounted on /dev/pts?): %s",
				 strerror(-r));
		}
	} else {
		int a[2], b[2], c[2];
		if (pipe2(a, O_CLOEXEC) < 0) {
			r = -errno;
		} else if (pipe2(b, O_CLOEXEC) < 0) {
			r = -errno;
			close(a[0]), close(a[1]);
		} else if (pipe2(c, O_CLOEXEC) < 0) {
			r = -errno;
			close(a[0]), close(a[1]), close(b[0]), close(b[1]);
		} else {
			cin = a[0], pin = a[1];
			pout = b[0], cout = b[1];
			perr = c[0], cerr = c[1];
			if ((r = set_nonblock(pin)) == 0 && (r = set_nonblock(pout)) == 0)
				r = set_nonblock(perr);
		}
		if (r < 0)
			snprintf(why, sizeof(why), "exec: cannot create pipes: %s", strerror(-r));
	}
	int sp[2] = { -1, -1 };
	if (r == 0 && pipe2(sp, O_CLOEXEC) < 0) {
		r = -errno;
		snprintf(why, sizeof(why), "exec: cannot create a pipe: %s", strerror(-r));
	}
	pid_t pid = -1;
	if (r == 0) {
		pid = fork();
		if (pid == 0)
			child_run(&s, cin, cout, cerr, sp[1]);
		if (pid < 0) {
			r = -errno;
			snprintf(why, sizeof(why), "exec: fork failed: %s", strerror(-r));
		}
	}
	close_fd(&sp[1]);
	if (cin >= 0)
		close(cin);
	if (cout >= 0 && cout != cin)
		close(cout);
	if (cerr >= 0 && cerr != cin)
		close(cerr);
	int pidfd = -1;
	if (r == 0) {
		/* Wait until the child has exec'd (the pipe closes) or says why it could not. */
		struct child_fail f;
		ssize_t n;
		do
			n = read(sp[0], &f, sizeof(f));
		while (n < 0 && errno == EINTR);
		if (n == (ssize_t)sizeof(f)) {
			waitpid(pid, NULL, 0);
			r = -f.err;
			snprintf(why, sizeof(why), "exec %.512s: %s: %s", s.path, stage_name(f.stage), strerror(f.err));
		} else if ((pidfd = agent_pidfd_open(pid)) < 0) {
			r = -errno;
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			snprintf(why, sizeof(why), "exec: pidfd_open: %s", strerror(-r));
		}
	}
	close_fd(&sp[0]);
	if (r < 0) {
		close_fd(&pin), close_fd(&pout), close_fd(&perr);
		port_request_error(p, "%s", why);
		spec_free(&s);
		return;
	}
	agent_logf(p->agent, "port %s: exec %s%s (pid %d)", p->name, s.path, s.tty ? " with a tty" : "", (int)pid);
	spec_free(&s);
	struct exec_session *e = &p->exec;
	*e = (struct exec_session){
		.pid = pid, .pidfd = pidfd, .tty = s.tty,
		.stdin_fd = pin, .out_fd = pout, .err_fd = perr,
	};
	p->session = SESSION_EXEC;
	port_queue_json(p, AGENT_RESPONSE, json_pack("{s:i}", "pid", (int)pid));
}

/* ---- while it runs ---- */

bool exec_input_blocked(const struct agent_port *p)
{
	return agent_buf_pending(&p->exec.in) > 0;
}

static int stdin_target(const struct exec_session *e)
{
	return e->tty ? e->out_fd : e->stdin_fd;
}

int exec_poll_fd(const struct agent_port *p, enum exec_fd which, short *events)
{
	const struct exec_session *e = &p->exec;
	bool room = agent_buf_pending(&p->out) < AGENT_OUT_HIGH;
	switch (which) {
	case EXEC_FD_STDIN:
		*events = POLLOUT;
		return agent_buf_pending(&e->in) > 0 ? stdin_target(e) : -1;
	case EXEC_FD_STDOUT:
		*events = POLLIN;
		return room && !e->tty_hup ? e->out_fd : -1;
	case EXEC_FD_STDERR:
		*events = POLLIN;
		return room ? e->err_fd : -1;
	case EXEC_FD_PID:
		*events = POLLIN;
		return e->pidfd;
	}
	return -1;
}

static void send_eof(struct agent_port *p)
{
	struct exec_session *e = &p->exec;
	if (!e->tty) {
		close_fd(&e->stdin_fd);
		return;
	}
	/* A terminal has no EOF of its own: type its EOF character (^D). */
	struct termios t;
	unsigned char c = 4;
	if (e->out_fd >= 0 && tcgetattr(e->out_fd, &t) == 0 && t.c_cc[VEOF] != _POSIX_VDISABLE)
		c = t.c_cc[VEOF];
	if (e->out_fd >= 0 && write(e->out_fd, &c, 1) < 0)
		agent_logf(p->agent, "port %s: cannot send EOF to the pty: %s", p->name, strerror(errno));
}

static void write_stdin(struct agent_port *p)
{
	struct exec_session *e = &p->exec;
	int fd = stdin_target(e);
	while (agent_buf_pending(&e->in) > 0) {
		if (fd < 0) {
			agent_buf_reset(&e->in);  /* nobody reads it any more */
			break;
		}
		ssize_t w = write(fd, agent_buf_head(&e->in), agent_buf_pending(&e->in));
		if (w > 0) {
			agent_buf_consume(&e->in, (size_t)w);
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		/* EPIPE: the program closed its stdin; the rest is dropped. */
		agent_buf_reset(&e->in);
		if (!e->tty)
			close_fd(&e->stdin_fd);
		break;
	}
	if (e->in_eof) {
		e->in_eof = false;
		send_eof(p);
	}
}

/* One read; returns the bytes queued, 0 at EOF (the fd is closed), -1 when nothing was there. */
static ssize_t read_output(struct agent_port *p, int *fd, unsigned type)
{
	uint8_t buf[AGENT_READ_CHUNK];
	ssize_t n = read(*fd, buf, sizeof(buf));
	if (n > 0) {
		port_queue(p, type, buf, (size_t)n);
		return n;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return -1;
	if (p->exec.tty && fd == &p->exec.out_fd) {
		/* EIO: no process has the terminal open. The exiting process
		 * may still be in do_exit: closing the master now would hang
		 * the terminal up and turn its exit status into SIGHUP, so the
		 * master stays open until the process is reaped. */
		p->exec.tty_hup = true;
		return 0;
	}
	close_fd(fd);  /* EOF on a pipe */
	return 0;
}

static void drain_output(struct agent_port *p, int *fd, unsigned type)
{
	size_t total = 0;
	while (*fd >= 0 && !(p->exec.tty && p->exec.tty_hup) && total < AGENT_DRAIN_MAX && p->state == PORT_OPEN) {
		ssize_t n = read_output(p, fd, type);
		if (n <= 0)
			break;
		total += (size_t)n;
	}
}

static void exec_cleanup(struct exec_session *e)
{
	close_fd(&e->stdin_fd);
	close_fd(&e->out_fd);
	close_fd(&e->err_fd);
	close_fd(&e->pidfd);
	agent_buf_free(&e->in);
	e->pid = -1;
	e->in_eof = false;
	e->tty_hup = false;
}

static void exec_reap(struct agent_port *p)
{
	struct exec_session *e = &p->exec;
	int status = 0;
	pid_t r = waitpid(e->pid, &status, WNOHANG);
	if (r == 0)
		return;
	/* All it wrote before exiting is in the pipes (or the pty) now. */
	drain_output(p, &e->out_fd, AGENT_STDOUT);
	drain_output(p, &e->err_fd, AGENT_STDERR);
	json_t *j;
	if (r < 0)
		j = json_pack("{s:i, s:n, s:s}", "code", 255, "signal", "error", "the exit status was lost");
	else if (WIFSIGNALED(status))
		j = json_pack("{s:i, s:i, s:b}", "code", 128 + WTERMSIG(status), "signal", WTERMSIG(status),
			      "core_dumped", WCOREDUMP(status) != 0);
	else
		j = json_pack("{s:i, s:n}", "code", WEXITSTATUS(status), "signal");
	agent_logf(p->agent, "port %s: exec pid %d ended (%s %d)", p->name, (int)e->pid,
		   r > 0 && WIFSIGNALED(status) ? "signal" : "code",
		   r > 0 ? (WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status)) : 255);
	exec_cleanup(e);
	p->session = SESSION_IDLE;
	port_queue_json(p, AGENT_EXIT, j);
	port_process_input(p);  /* input held back for its stdin may go on */
}

void exec_event(struct agent_port *p, enum exec_fd which, short revents)
{
	struct exec_session *e = &p->exec;
	switch (which) {
	case EXEC_FD_STDIN:
		write_stdin(p);
		port_process_input(p);  /* frames held back behind the stdin may go on */
		break;
	case EXEC_FD_STDOUT:
		read_output(p, &e->out_fd, AGENT_STDOUT);
		break;
	case EXEC_FD_STDERR:
		read_output(p, &e->err_fd, AGENT_STDERR);
		break;
	case EXEC_FD_PID:
		if (revents & (POLLIN | POLLHUP | POLLERR))
			exec_reap(p);
		break;
	}
}

void exec_frame(struct agent_port *p, const struct agent_frame *f)
{
	struct exec_session *e = &p->exec;
	switch (f->type) {
	case AGENT_STDIN:
		if (e->in_eof || (e->tty ? e->out_fd : e->stdin_fd) < 0 || f->payload_len == 0)
			return;  /* after STDIN_EOF, or stdin is closed: dropped */
		if (agent_buf_append(&e->in, f->payload, f->payload_len) < 0) {
			port_fatal(p, "out of memory buffering STDIN");
			return;
		}
		write_stdin(p);
		return;
	case AGENT_STDIN_EOF:
		if (agent_buf_pending(&e->in) > 0)
			e->in_eof = true;  /* once the buffered input is written */
		else
			send_eof(p);
		return;
	case AGENT_RESIZE: {
		json_t *j = port_parse_json(p, f);
		if (!j)
			return;
		json_t *w = json_object_get(j, "width"), *h = json_object_get(j, "height");
		json_int_t wv = json_integer_value(w), hv = json_integer_value(h);
		bool ok = json_is_integer(w) && json_is_integer(h) && wv >= 0 && wv <= 65535 && hv >= 0 && hv <= 65535;
		json_decref(j);
		if (!ok) {
			port_fatal(p, "RESIZE: \"width\" and \"height\" must be integers from 0 to 65535");
			return;
		}
		if (e->tty && e->out_fd >= 0) {
			struct winsize ws = { .ws_row = (unsigned short)hv, .ws_col = (unsigned short)wv };
			if (ioctl(e->out_fd, TIOCSWINSZ, &ws) < 0)
				agent_logf(p->agent, "port %s: TIOCSWINSZ: %s", p->name, strerror(errno));
		}
		return;
	}
	case AGENT_SIGNAL: {
		json_t *j = port_parse_json(p, f);
		if (!j)
			return;
		int sig = 0;
		int r = agent_signal_parse(json_object_get(j, "signal"), &sig);
		json_decref(j);
		if (r < 0) {
			port_fatal(p, "SIGNAL: \"signal\" must be a signal number (1-%d) or name (\"TERM\", \"SIGKILL\", ...)",
				   SIGRTMAX);
			return;
		}
		/* Not reaped yet, so the pid is still this process (or its zombie). */
		if (e->pid > 0 && kill(e->pid, sig) < 0 && errno != ESRCH)
			agent_logf(p->agent, "port %s: kill(%d, %d): %s", p->name, (int)e->pid, sig, strerror(errno));
		return;
	}
	}
}

void exec_abort(struct agent_port *p)
{
	struct exec_session *e = &p->exec;
	if (e->pid > 0) {
		/* Its own session and process group (setsid): the whole group goes. */
		kill(-e->pid, SIGKILL);
		kill(e->pid, SIGKILL);
		agent_logf(p->agent, "port %s: exec pid %d killed (the connection ended)", p->name, (int)e->pid);
		agent_reap_later(p->agent, e->pid, e->pidfd);
		e->pidfd = -1;
	}
	exec_cleanup(e);
}
