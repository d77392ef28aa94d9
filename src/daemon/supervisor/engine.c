/* The engine workload of gureum-supervisor (engine.h, workload.h): a VM
 * engine process on a pty, stopped through QMP, gureum-vmm's API or
 * SIGTERM, killed with its process group. */
#include "daemon/supervisor/engine.h"
#include "daemon/supervisor/workload.h"
#include "common/cleanup.h"
#include "common/fs.h"
#include "container/terminal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

extern char **environ;

/* ---- the command line ---- */

enum engine_opt { E_STATE, E_RUN, E_NAME, E_RESTART, E_READY, E_DAEMON, E_QMP, E_VMM_API, E_LOGMAX, E_LOGFILES };

static const struct {
	const char *name;
	enum engine_opt id;
	bool value;
} engine_opts[] = {
	{ "state-dir", E_STATE, true }, { "run-dir", E_RUN, true }, { "name", E_NAME, true },
	{ "restart", E_RESTART, true }, { "ready-fd", E_READY, true }, { "daemonize", E_DAEMON, false },
	{ "qmp", E_QMP, true }, { "vmm-api", E_VMM_API, true }, { "log-max", E_LOGMAX, true },
	{ "log-files", E_LOGFILES, true },
};

int supervisor_engine_args(int argc, char **argv, struct supervisor_opts *o, bool *daemonize,
			   struct gr_error *err)
{
	*o = (struct supervisor_opts){ .ready_fd = -1 };
	*daemonize = false;
	int i = 1;
	bool dashdash = false;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			dashdash = true;
			i++;
			break;
		}
		if (strncmp(a, "--", 2) != 0)
			return gr_error_set(err, EINVAL, "run-engine: unexpected argument \"%s\" (the engine's command "
					    "line goes after \"--\")", a);
		const char *name = a + 2, *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		size_t k = 0, nopts = sizeof(engine_opts) / sizeof(engine_opts[0]);
		while (k < nopts && !(strlen(engine_opts[k].name) == len && strncmp(engine_opts[k].name, name, len) == 0))
			k++;
		if (k == nopts)
			return gr_error_set(err, EINVAL, "run-engine: unknown option \"%s\"", a);
		const char *v = NULL;
		if (!engine_opts[k].value) {
			if (eq)
				return gr_error_set(err, EINVAL, "run-engine: --%s takes no value", engine_opts[k].name);
		} else if (eq) {
			v = eq + 1;
		} else if (i + 1 < argc) {
			v = argv[++i];
		} else {
			return gr_error_set(err, EINVAL, "run-engine: --%s needs a value", engine_opts[k].name);
		}
		uint64_t n;
		int r;
		switch (engine_opts[k].id) {
		case E_STATE: o->state_dir = v; break;
		case E_RUN: o->run_dir = v; break;
		case E_NAME: o->name = v; break;
		case E_RESTART:
			if ((r = restart_policy_parse(v, &o->restart, err)) < 0)
				return r;
			break;
		case E_READY:
			if (gr_parse_u64(v, &n) < 0 || n < 3 || n > INT_MAX || fcntl((int)n, F_GETFD) < 0)
				return gr_error_set(err, EINVAL, "--ready-fd: \"%s\" is not an open descriptor >= 3", v);
			o->ready_fd = (int)n;
			break;
		case E_DAEMON: *daemonize = true; break;
		case E_QMP:
			if (v[0] != '/')
				return gr_error_set(err, EINVAL, "--qmp: \"%s\" is not an absolute path to QMP's unix socket",
						    v);
			o->qmp = v;
			break;
		case E_VMM_API:
			if (v[0] != '/')
				return gr_error_set(err, EINVAL, "--vmm-api: \"%s\" is not an absolute path to gureum-vmm's API "
						    "socket", v);
			o->vmm_api = v;
			break;
		case E_LOGMAX:
			if (gr_parse_u64(v, &n) < 0 || n < 4096 || n > (1ull << 40))
				return gr_error_set(err, EINVAL, "--log-max: expected bytes from 4096, got \"%s\"", v);
			o->log_max = n;
			break;
		case E_LOGFILES:
			if (gr_parse_u64(v, &n) < 0 || n < 1 || n > 100)
				return gr_error_set(err, EINVAL, "--log-files: expected 1 to 100, got \"%s\"", v);
			o->log_files = (unsigned)n;
			break;
		}
	}
	if (!o->state_dir || !o->run_dir || !o->name)
		return gr_error_set(err, EINVAL, "run-engine: --state-dir, --run-dir and --name are required");
	if (o->qmp && o->vmm_api)
		return gr_error_set(err, EINVAL, "run-engine: --qmp and --vmm-api are two ways to stop one engine: give one");
	if (!instance_name_valid(o->name))
		return gr_error_set(err, EINVAL, "--name: \"%s\" is not an instance name ([a-z0-9][a-z0-9-]*, at most 63)",
				    o->name);
	if (!dashdash || i >= argc || !argv[i])
		return gr_error_set(err, EINVAL, "run-engine: the engine's command line is missing: "
				    "-- /ABSOLUTE/PATH [ARGS...]");
	if (argv[i][0] != '/')
		return gr_error_set(err, EINVAL, "run-engine: the engine \"%s\" must be an absolute path (it is run "
				    "without a shell or a PATH search)", argv[i]);
	o->engine_argv = argv + i;
	return 0;
}

/* ---- one run ---- */

enum child_stage { STAGE_EXEC, STAGE_PDEATHSIG, STAGE_SETSID, STAGE_STDIO, STAGE_CTTY };
static const char *const stage_what[] = {
	[STAGE_EXEC] = "exec", [STAGE_PDEATHSIG] = "PR_SET_PDEATHSIG", [STAGE_SETSID] = "setsid",
	[STAGE_STDIO] = "cannot put the pty on its stdio", [STAGE_CTTY] = "cannot make the pty its controlling terminal",
};

struct child_report {
	int stage, err;
};

/* In the forked child: only async-signal-safe calls until execve. Failures
 * go to the supervisor through report (close-on-exec: EOF means the exec
 * succeeded). */
static void __attribute__((noreturn)) engine_child(const struct sup *s, int slave, int report, pid_t parent)
{
	struct child_report rep = { STAGE_PDEATHSIG, 0 };
	/* The supervisor's ignored signals (SIGHUP, SIGPIPE) and blocked ones
	 * (SIGCHLD, SIGTERM, SIGINT) would survive the exec. */
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	for (int sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &dfl, NULL);
	sigset_t none;
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		goto fail;
	if (getppid() != parent)
		_exit(127); /* the supervisor died already */
	rep.stage = STAGE_SETSID;
	if (setsid() < 0)
		goto fail;
	/* Out of 0..2 first, so that the dup2s below cannot close them. */
	rep.stage = STAGE_STDIO;
	if (report < 3) {
		int r = fcntl(report, F_DUPFD_CLOEXEC, 3);
		if (r < 0)
			goto fail;
		report = r;
	}
	if (slave < 3 && (slave = fcntl(slave, F_DUPFD_CLOEXEC, 3)) < 0)
		goto fail;
	rep.stage = STAGE_CTTY;
	if (ioctl(slave, TIOCSCTTY, 0) < 0)
		goto fail;
	rep.stage = STAGE_STDIO;
	for (int fd = 0; fd < 3; fd++)
		if (dup2(slave, fd) < 0)
			goto fail;
	/* Nothing else of the supervisor's goes to the engine. */
	(void)close_range(3, ~0u, CLOSE_RANGE_CLOEXEC);
	rep.stage = STAGE_EXEC;
	execve(s->o->engine_argv[0], s->o->engine_argv, environ);
fail:
	rep.err = errno;
	(void)!write(report, &rep, sizeof(rep));
	_exit(127);
}

static int engine_start(struct sup *s, struct gr_error *err)
{
	const char *path = s->o->engine_argv[0];
	s->exited = false;
	s->init = 0;
	int m = -1, sl = -1;
	char slave_path[64];
	int r = terminal_open_pty(&m, &sl, slave_path, sizeof(slave_path), err);
	if (r < 0)
		return r;
	gr_autoclose int master = m, slave = sl;
	/* Raw: the bytes go to the guest and back untouched (^C is the guest's,
	 * not a SIGINT for the engine). QEMU's stdio backend turns OPOST on
	 * again over the settings it finds, so the translations go too: else
	 * ONLCR would make the guest's "\r\n" "\r\r\n". */
	struct termios t;
	if (tcgetattr(slave, &t) < 0)
		return gr_error_sys(err, errno, "cannot read the settings of the pty %s", slave_path);
	cfmakeraw(&t);
	t.c_oflag &= ~(tcflag_t)(ONLCR | OCRNL | ONOCR | ONLRET | OFILL);
	if (tcsetattr(slave, TCSANOW, &t) < 0)
		return gr_error_sys(err, errno, "cannot make the pty %s raw", slave_path);
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return gr_error_sys(err, errno, "pipe");
	gr_autoclose int rd = pfd[0], wr = pfd[1];
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return gr_error_sys(err, errno, "cannot fork the engine %s", path);
	if (pid == 0)
		engine_child(s, slave, wr, parent);
	close(gr_steal_fd(wr));
	close(gr_steal_fd(slave));
	struct child_report rep = { 0 };
	ssize_t n = gr_read_all(rd, &rep, sizeof(rep));
	if (n != 0) {
		if (n != (ssize_t)sizeof(rep)) {
			kill(pid, SIGKILL);
			rep = (struct child_report){ STAGE_EXEC, n < 0 ? (int)-n : EIO };
		}
		waitpid(pid, NULL, 0);
		if (rep.stage == STAGE_EXEC)
			return gr_error_sys(err, rep.err, "cannot run the engine %s", path);
		return gr_error_sys(err, rep.err, "cannot start the engine %s: %s", path,
				    rep.stage >= 0 && rep.stage <= STAGE_CTTY ? stage_what[rep.stage] : "?");
	}
	fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
	s->init = pid;
	s->out_fd = gr_steal_fd(master);
	return 0;
}

/* ---- stopping ---- */

/* To its process group (its pgid is its pid: setsid), else to it alone. */
static void engine_signal(struct sup *s, int sig)
{
	if (s->init <= 0)
		return;
	if (kill(-s->init, sig) < 0)
		(void)kill(s->init, sig);
}

static void qmp_end(struct sup *s)
{
	if (!s->qmp)
		return;
	qmp_client_close(s->qmp);
	free(s->qmp);
	s->qmp = NULL;
}

/* A stop presses the power button through the engine's control socket
 * (QMP or gureum-vmm's API: one path, two transports), else SIGTERM. */
static void engine_request_stop(struct sup *s, int timeout_s, bool first)
{
	if (!first || timeout_s == 0)
		return; /* a kill follows (0), or the first request's way goes on */
	const char *path = s->o->vmm_api ? s->o->vmm_api : s->o->qmp;
	enum engine_ctl t = s->o->vmm_api ? ENGINE_CTL_VMM_API : ENGINE_CTL_QMP;
	if (!path) {
		sup_note(s, "stopping: SIGTERM, SIGKILL after %d s", timeout_s);
		engine_signal(s, SIGTERM);
		return;
	}
	struct gr_error err = { 0 };
	int fd = -1;
	if (engine_ctl_connect(t, path, &fd, &err) == 0) {
		s->qmp = malloc(sizeof(*s->qmp));
		if (s->qmp) {
			if (t == ENGINE_CTL_VMM_API) {
				/* gureum-vmm forces the stop itself at the same deadline (exit 6). */
				vmm_api_client_init(s->qmp, fd, "stop", timeout_s);
				sup_note(s, "stopping: the power button through gureum-vmm's API, SIGKILL after %d s",
					 timeout_s);
			} else {
				qmp_client_init(s->qmp, fd, "system_powerdown");
				sup_note(s, "stopping: system_powerdown through QMP, SIGKILL after %d s", timeout_s);
			}
			return;
		}
		close(fd);
		gr_error_set(&err, ENOMEM, "out of memory for the engine's control socket");
	}
	sup_note(s, "stopping: %s; SIGTERM instead, SIGKILL after %d s", err.msg, timeout_s);
	engine_signal(s, SIGTERM);
}

static int engine_poll_fd(struct sup *s, short *events)
{
	if (!s->qmp)
		return -1;
	*events = s->qmp->events;
	return s->qmp->fd;
}

static void engine_poll_event(struct sup *s, short revents)
{
	if (!s->qmp || qmp_client_io(s->qmp, revents) != 0)
		return;
	if (s->qmp->state == QMP_DONE) {
		sup_note(s, s->qmp->transport == ENGINE_CTL_VMM_API ? "gureum-vmm's API: stop accepted"
								     : "QMP: system_powerdown accepted");
	} else {
		sup_note(s, "stopping: %s; SIGTERM instead", s->qmp->err.msg);
		engine_signal(s, SIGTERM);
	}
	qmp_end(s);
}

static void engine_kill(struct sup *s)
{
	engine_signal(s, SIGKILL);
}

/* The engine is a zombie still holding its pid, so its process group's id
 * names no one else: what it left in the group goes. */
static void engine_exited(struct sup *s)
{
	(void)kill(-s->init, SIGKILL);
}

static int engine_prepare(struct sup *s, struct gr_error *err)
{
	s->terminal = true;
	if (s->o->ready_fd >= 0)
		(void)fcntl(s->o->ready_fd, F_SETFD, FD_CLOEXEC);
	/* Orphans of the engine come back here to be reaped. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		return gr_error_sys(err, errno, "cannot become a child subreaper");
	return 0;
}

const struct workload_ops engine_workload = {
	.what = "engine",
	.prepare = engine_prepare,
	.start = engine_start,
	.request_stop = engine_request_stop,
	.kill = engine_kill,
	.exited = engine_exited,
	.finish = qmp_end,
	.cleanup = qmp_end,
	.poll_fd = engine_poll_fd,
	.poll_event = engine_poll_event,
};
